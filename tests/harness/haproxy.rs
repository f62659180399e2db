//! A throw-away HAProxy (Debian's `haproxy`) in front of several `fado`
//! processes, as an operator runs replicas of the orchestrator behind a load
//! balancer.

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{free_port, spawn_watched, wait_for_port};

pub struct Haproxy {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
    _watchdog: Child,
}

impl Haproxy {
    /// Round robin over `servers`, each health-checked on `/healthz` every
    /// 200 ms. A request whose connection is refused, or that a server
    /// drops before answering, is tried again on another server (L7
    /// retries, `option redispatch`); HAProxy only replays what it still
    /// holds in its buffer, so a large upload cut short fails instead.
    pub fn start(servers: &[SocketAddr]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-haproxy-").tempdir()?;
        let port = free_port();
        let socket = dir.path().join("admin.sock");
        let mut conf = format!(
            "global\n\
             \x20   maxconn 2000\n\
             \x20   stats socket {}\n\
             defaults\n\
             \x20   mode http\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 60s\n\
             \x20   timeout server 60s\n\
             \x20   retries 3\n\
             \x20   option redispatch 1\n\
             \x20   retry-on conn-failure empty-response\n\
             frontend ingress\n\
             \x20   bind 127.0.0.1:{port}\n\
             \x20   default_backend fado\n\
             backend fado\n\
             \x20   balance roundrobin\n\
             \x20   option httpchk GET /healthz\n\
             \x20   http-check expect status 200\n\
             \x20   default-server inter 200ms fall 2 rise 2\n",
            socket.display()
        );
        for (i, s) in servers.iter().enumerate() {
            conf.push_str(&format!("    server fado{i} {s} check\n"));
        }
        let conf_file = dir.path().join("haproxy.cfg");
        std::fs::write(&conf_file, conf)?;
        let log = dir.path().join("haproxy.log");
        // -db: stay in the foreground, so the watchdog sees it exit.
        let watchdog = spawn_watched(
            &format!("haproxy -db -f {}", conf_file.display()),
            "kill $child 2>/dev/null",
            &log,
        )
        .context("starting haproxy (install it: infra/test does)")?;
        wait_for_port(port, "haproxy", &log, Duration::from_secs(10))?;
        Ok(Self {
            socket,
            _dir: dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _watchdog: watchdog,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Per server, in the order given to [`Haproxy::start`]: the requests
    /// it was sent and its state (`UP`, `DOWN`, …), from HAProxy's
    /// `show stat`.
    pub fn servers(&self) -> Result<Vec<(u64, String)>> {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket)
            .context("connecting to haproxy's stats socket")?;
        s.write_all(b"show stat\n")?;
        let mut csv = String::new();
        s.read_to_string(&mut csv)?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .context("empty stats")?
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |name: &str| header.iter().position(|h| *h == name);
        let (sv, total, status) = (
            col("svname").context("no svname")?,
            col("stot").context("no stot")?,
            col("status").context("no status")?,
        );
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > status && f[sv].starts_with("fado") && f[0] == "fado")
            .map(|f| (f[total].parse().unwrap_or(0), f[status].to_string()))
            .collect())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
