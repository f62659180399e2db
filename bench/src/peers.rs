//! Child processes: servers under test and idle spinners. Start, wait until
//! ready, and always kill.
//!
//! Every child is killed when its guard is dropped (normal exit, error or
//! panic), and also on SIGINT/SIGTERM through a process-wide registry, so a
//! benchmark never leaves servers holding ports behind.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::load;

/// Children to kill if the benchmark is interrupted by a signal.
static CHILDREN: Mutex<Vec<Weak<Mutex<Child>>>> = Mutex::new(Vec::new());

/// A child process, killed and reaped when dropped.
struct Guarded(Arc<Mutex<Child>>);

impl Guarded {
    fn spawn(cmd: &mut Command, what: &str) -> Result<Guarded> {
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        let child = Arc::new(Mutex::new(child));
        lock(&CHILDREN).push(Arc::downgrade(&child));
        Ok(Guarded(child))
    }

    fn pid(&self) -> u32 {
        lock(&self.0).id()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let mut child = lock(&self.0);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running server process.
pub struct Peer {
    pub name: String,
    pub addr: SocketAddr,
    /// Program and arguments exactly as started.
    pub argv: Vec<String>,
    child: Guarded,
}

/// One lowest-priority busy loop per core, so that no vCPU ever idles.
///
/// Why: on a virtual machine, waking an idle vCPU goes through the
/// hypervisor and costs hundreds of microseconds (seen as steal time), which
/// swamps a single-connection benchmark and makes it bimodal. Spinning at
/// nice 19 keeps the vCPUs awake, like booting with `idle=poll`, while taking
/// almost no CPU from the processes being measured (CFS gives nice 19 about
/// 1.5% of a nice-0 process's share).
pub struct Spinners(Vec<Guarded>);

impl Spinners {
    pub fn start(count: usize) -> Result<Spinners> {
        (0..count)
            .map(|_| {
                Guarded::spawn(
                    Command::new("nice")
                        .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                        .stdin(Stdio::null()),
                    "a nice-19 spin loop",
                )
            })
            .collect::<Result<_>>()
            .map(Spinners)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Guarded::pid).collect()
    }
}

impl Peer {
    /// `fado serve --manifest M` on a free port with no admin listener and
    /// `extra` flags, ready once its health path answers.
    pub fn fado_serve(
        name: &str,
        fado: &Path,
        manifest: &Path,
        extra: &[&str],
        log_dir: &Path,
        timeout: Duration,
    ) -> Result<Peer> {
        let addr = free_addr()?;
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--manifest".into(),
            manifest.display().to_string(),
            "--listen".into(),
            addr.to_string(),
            "--admin-listen".into(),
            "none".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(
            name,
            fado,
            args,
            addr,
            "/.well-known/spin/health",
            log_dir,
            timeout,
        )
    }

    /// Starts `program args` with stdout/stderr captured in `log_dir`, then polls
    /// `GET ready_path` on `addr` until it answers 200.
    pub fn start(
        name: &str,
        program: &Path,
        args: Vec<String>,
        addr: SocketAddr,
        ready_path: &str,
        log_dir: &Path,
        timeout: Duration,
    ) -> Result<Peer> {
        Self::launch(
            name,
            program,
            args,
            addr,
            Some(ready_path),
            log_dir,
            timeout,
        )
    }

    /// Like [`Peer::start`], for a server with no open health path (an S3
    /// service): ready once `GET /` gets any HTTP answer.
    pub fn start_answering(
        name: &str,
        program: &Path,
        args: Vec<String>,
        addr: SocketAddr,
        log_dir: &Path,
        timeout: Duration,
    ) -> Result<Peer> {
        Self::launch(name, program, args, addr, None, log_dir, timeout)
    }

    fn launch(
        name: &str,
        program: &Path,
        args: Vec<String>,
        addr: SocketAddr,
        ready_path: Option<&str>,
        log_dir: &Path,
        timeout: Duration,
    ) -> Result<Peer> {
        let stdout_path = log_dir.join(format!("{name}.stdout.log"));
        let stderr_path = log_dir.join(format!("{name}.stderr.log"));
        let child = Guarded::spawn(
            Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(File::create(&stdout_path).context("creating stdout log")?)
                .stderr(File::create(&stderr_path).context("creating stderr log")?),
            &format!("{name}: {}", program.display()),
        )?;

        let mut argv = vec![program.display().to_string()];
        argv.extend(args);
        let peer = Peer {
            name: name.to_string(),
            addr,
            argv,
            child,
        };
        peer.wait_ready(ready_path, timeout, &stderr_path)?;
        Ok(peer)
    }

    /// The process id, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Polls until `GET path` answers 2xx, or with no path until `GET /`
    /// answers at all.
    fn wait_ready(&self, path: Option<&str>, timeout: Duration, stderr_path: &Path) -> Result<()> {
        let (path, any_status) = match path {
            Some(p) => (p, false),
            None => ("/", true),
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = lock(&self.child.0)
                .try_wait()
                .context("polling the child")?
            {
                bail!(
                    "{} exited with {status} before it was ready ({}); stderr:\n{}",
                    self.name,
                    self.argv.join(" "),
                    tail(stderr_path)
                );
            }
            let last_error = match load::get_once(self.addr, path, Duration::from_secs(5)) {
                Ok((status, _)) if any_status || status.is_success() => return Ok(()),
                Ok((status, body)) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body)),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} not ready on http://{}{path} after {timeout:?} (last: {last_error}); stderr:\n{}",
                    self.name,
                    self.addr,
                    tail(stderr_path)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// FaDO itself: `fado up` on the root spin.toml against a fresh database on
/// the shared PostgreSQL, logging warnings only, without the periodic sweeps
/// (one would land inside a measurement); `replicator` runs the data plane's
/// background components too.
pub async fn orchestrator(replicator: bool) -> Result<harness::orchestrator::Orchestrator> {
    let database = harness::shared_postgres().create_database().await?;
    harness::orchestrator::Orchestrator::start_with(
        database,
        harness::orchestrator::Options {
            env: vec![("RUST_LOG", "warn".into())],
            sweeps: false,
            replicator,
            ..Default::default()
        },
    )
    .await
}

/// Kills every child still running; called from the signal handler.
pub fn kill_all() {
    for weak in lock(&CHILDREN).drain(..) {
        if let Some(child) = weak.upgrade() {
            let _ = lock(&child).kill();
        }
    }
}

/// Installs a SIGINT/SIGTERM handler that kills all children and exits.
pub fn kill_children_on_signal() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("creating the signal runtime")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                eprintln!("fado-bench: interrupted, stopping servers");
                kill_all();
                std::process::exit(130);
            })
        })
        .context("spawning the signal thread")?;
    Ok(())
}

/// A loopback address with a port that was free a moment ago (bind port 0).
pub fn free_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    listener.local_addr().context("reading the bound address")
}

/// Runs `program args` and returns its trimmed stdout (e.g. `--version`).
pub fn output_of(program: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed with {}: {}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The last few KiB of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let start = text.len().saturating_sub(4096);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Locks ignoring poisoning: killing children must work even after a panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
