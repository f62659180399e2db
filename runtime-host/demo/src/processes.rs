//! The demo's child processes: started with their output in a log file each,
//! watched, and stopped in reverse order of starting.
//!
//! Children run in process groups of their own, so the terminal's Ctrl-C
//! reaches only the demo, which then stops the orchestrator before the
//! functions and the storage they call (nothing in flight loses its peer).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

/// How to start one child.
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

struct Running {
    name: String,
    child: Child,
    log: PathBuf,
}

pub struct Supervisor {
    logs: PathBuf,
    running: Vec<Running>,
}

impl Supervisor {
    pub fn new(logs: &Path) -> Result<Self> {
        std::fs::create_dir_all(logs)
            .with_context(|| format!("creating the log directory {}", logs.display()))?;
        Ok(Self {
            logs: logs.to_path_buf(),
            running: Vec::new(),
        })
    }

    pub fn log_of(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    pub fn spawn(&mut self, spec: Spec) -> Result<()> {
        let log = self.log_of(&spec.name);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        self.running.push(Running {
            name: spec.name,
            child,
            log,
        });
        Ok(())
    }

    /// Fails, with the end of its log, when `name` has exited.
    pub fn check_alive(&mut self, name: &str) -> Result<()> {
        let r = self
            .running
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("{name} was never started"))?;
        if let Some(status) = r.child.try_wait().context("polling a child")? {
            bail!(
                "{name} exited ({status}); the end of {}:\n{}",
                r.log.display(),
                tail(&r.log, 25)
            );
        }
        Ok(())
    }

    /// The first child to exit, and how.
    pub async fn first_exit(&mut self) -> (String, std::io::Result<ExitStatus>, String) {
        if self.running.is_empty() {
            return std::future::pending().await;
        }
        let waits = self
            .running
            .iter_mut()
            .map(|r| Box::pin(async { (r.child.wait().await, r.name.clone(), r.log.clone()) }));
        let ((status, name, log), _, _) = futures::future::select_all(waits).await;
        let tail = tail(&log, 25);
        (name, status, tail)
    }

    /// SIGTERM to each child, last started first, each given `grace` to
    /// finish (the hosts drain in-flight requests), then SIGKILL.
    pub async fn stop_all(&mut self, grace: Duration) {
        while let Some(mut r) = self.running.pop() {
            if let Ok(Some(_)) = r.child.try_wait() {
                continue;
            }
            if let Some(pid) = r.child.id().and_then(|id| Pid::from_raw(id as i32)) {
                let _ = kill_process(pid, Signal::TERM);
            }
            match tokio::time::timeout(grace, r.child.wait()).await {
                Ok(_) => tracing::info!("{} stopped", r.name),
                Err(_) => {
                    tracing::warn!("{} did not stop within {grace:?}: killing it", r.name);
                    let _ = r.child.kill().await;
                }
            }
        }
    }
}

/// The last `n` lines of a log file (or why it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
