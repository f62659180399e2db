//! Test harness: starts real PostgreSQL, Redis, Mosquitto and MariaDB
//! servers and `fado` processes on free loopback ports, and cleans them up
//! when the test (or the whole test process) ends.
//!
//! Binaries are not built here: `infra/test` builds the release `fado`
//! binary and the test components first. The harness finds them under
//! `$CARGO_TARGET_DIR` (or `target/`) and says what to run if they are missing.

pub mod garage;
pub mod haproxy;
pub mod mqtt;
pub mod mysql;
pub mod orchestrator;
pub mod s3;
pub mod s3_server;
pub mod upstream;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root: the one `cargo test` or `cargo run` names (it sets
/// `CARGO_MANIFEST_DIR` for what it runs, a crate one level down), else the
/// one holding the current directory, else the one this binary was built
/// from. Not the compile-time value first: clones that share one target
/// directory (`~/.cache/fado/target`) reuse each other's binaries, and the
/// path baked in would name the clone that built them.
pub fn workspace() -> PathBuf {
    let is_root = |dir: &Path| dir.join("spin.toml").is_file() && dir.join("tests").is_dir();
    if let Some(krate) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from)
        && let Some(root) = krate.parent()
        && is_root(root)
    {
        return root.to_path_buf();
    }
    if let Ok(cwd) = std::env::current_dir()
        && let Some(root) = cwd.ancestors().find(|dir| is_root(dir))
    {
        return root.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// The release `fado` binary.
pub fn fado_bin() -> PathBuf {
    let p = target_dir().join("release").join("fado");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --release -p fado` (infra/test does)",
        p.display()
    );
    p
}

/// A test component built with `cargo build --release --target wasm32-wasip2`.
pub fn component(name: &str) -> PathBuf {
    let p = target_dir()
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --release --target wasm32-wasip2 -p {name}` (infra/test does)",
        p.display()
    );
    p
}

/// A loopback port nobody is listening on right now (see [`free_port_block`]).
pub fn free_port() -> u16 {
    free_port_block(1)
}

/// The first of `n` consecutive loopback ports nobody listens on, for a
/// process that is told its ports before it binds them. They come from below
/// the kernel's ephemeral range: a port from that range can be handed to any
/// outgoing connection between this check and the process's bind, and the
/// tests make many connections. Within this test process no port is handed
/// out twice (cargo runs test binaries one after another, so the tests that
/// run side by side share this process).
pub fn free_port_block(n: u16) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.saturating_sub(n));
    assert!(
        high > low,
        "no room below the ephemeral range ({ephemeral_low})"
    );
    let mut seed = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = low + ((seed >> 33) % u64::from(high - low)) as u16;
        let block = base..base + n;
        if block.clone().any(|p| given.contains(&p)) {
            continue;
        }
        if block
            .clone()
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        {
            given.extend(block);
            return base;
        }
    }
    panic!("no {n} consecutive free ports below {ephemeral_low}");
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts `cmd` under a shell watchdog that stops it when this test process
/// exits, even if it exits without running destructors (statics, aborts).
fn spawn_watched(start: &str, stop: &str, log: &Path) -> Result<Child> {
    let me = std::process::id();
    let script = format!(
        "{start} & child=$!\n\
         trap '{stop}; exit 0' TERM INT\n\
         while kill -0 {me} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.3; done\n\
         {stop}\n"
    );
    let out = std::fs::File::create(log)?;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("spawning sh")
}

fn wait_for_port(port: u16, what: &str, log: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{what} did not start listening on port {port} within {timeout:?}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

/// Whether the shared server commits durably; see [`durable_postgres`].
static DURABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the servers started from now on (the shared one starts on first
/// use) commit as production does: fsync, synchronous commit and full-page
/// writes on. Tests leave them off for speed; benchmarks turn them on, so
/// the latency of a write the API acknowledges includes its flush.
pub fn durable_postgres() {
    DURABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A throw-away PostgreSQL server.
pub struct Postgres {
    _dir: tempfile::TempDir,
    pub port: u16,
    watchdog: Option<Child>,
    /// How to start it and stop it again (see [`Postgres::stop`]).
    start: String,
    stop: String,
    log: PathBuf,
}

impl Postgres {
    pub fn start() -> Result<Self> {
        Self::start_with(DURABLE.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A server that commits durably (fsync and synchronous commit on), or
    /// not: one that loses its last commits when stopped abruptly.
    pub fn start_with(durable: bool) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-pg-").tempdir()?;
        let data = dir.path().join("data");
        let port = free_port();
        let root = running_as_root();
        let as_pg = if root { "runuser -u postgres -- " } else { "" };
        if root {
            // The server refuses to run as root, so the data belongs to `postgres`.
            let st = Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(st.success(), "chown of the Postgres directory failed");
        }
        let bin = pg_bin_dir()?;
        let init = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{as_pg}{bin}/initdb -D {} -U postgres --auth=trust --no-sync -E UTF8",
                data.display()
            ))
            .output()?;
        if !init.status.success() {
            bail!("initdb failed:\n{}", String::from_utf8_lossy(&init.stderr));
        }
        let log = dir.path().join("postgres.log");
        let durability = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        // `FADO_PG_OPTIONS` adds server settings, for a look into a run
        // (e.g. `-c log_min_duration_statement=5`).
        let extra = std::env::var("FADO_PG_OPTIONS").unwrap_or_default();
        let start = format!(
            "{as_pg}{bin}/postgres -D {d} -p {port} -k {s} -c listen_addresses=127.0.0.1 \
             {durability} -c max_connections=200 {extra}",
            d = data.display(),
            s = dir.path().display(),
        );
        // Stop the server, then remove its files once the tests are gone:
        // the TempDir of a static is never dropped. A server stopped by
        // [`Postgres::stop`] keeps them, to start again.
        let stop = format!(
            "{as_pg}{bin}/pg_ctl stop -m immediate -D {} >/dev/null 2>&1; \
             kill -0 {} 2>/dev/null || rm -rf {}",
            data.display(),
            std::process::id(),
            dir.path().display()
        );
        let mut pg = Self {
            _dir: dir,
            port,
            watchdog: None,
            start,
            stop,
            log,
        };
        pg.up()?;
        Ok(pg)
    }

    fn up(&mut self) -> Result<()> {
        let (port, log, bin) = (self.port, self.log.clone(), pg_bin_dir()?);
        self.watchdog = Some(spawn_watched(&self.start, &self.stop, &log)?);
        wait_for_port(port, "postgres", &log, Duration::from_secs(30))?;
        // The port opens while the server is still starting up and refusing
        // connections; wait until it accepts them.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(format!("{bin}/pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()?;
            if ready.success() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 30 s; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (its sessions are cut at once), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // The watchdog's trap stops the server and waits for it.
            let _ = Command::new("kill").arg(w.id().to_string()).status();
            let _ = w.wait();
        }
    }

    /// Starts the server again after [`Postgres::stop`], on the same port.
    pub fn resume(&mut self) -> Result<()> {
        self.up()
    }

    /// A connection string the host and tests both accept.
    pub fn address(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Creates an empty database for one test and returns its name.
    pub async fn create_database(&self) -> Result<String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fado_test_{}_{n}", std::process::id());
        self.client()
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(name)
    }

    /// A client connected to database `name`.
    pub async fn client_for(&self, name: &str) -> Result<tokio_postgres::Client> {
        postgres_client(self.port, name).await
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) =
            tokio_postgres::connect(&self.address(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

/// A client of database `name` on the test server listening on `port`.
pub async fn postgres_client(port: u16, name: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname={name}"),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

fn pg_bin_dir() -> Result<String> {
    for v in ["17", "16", "15", "14", "13"] {
        let d = format!("/usr/lib/postgresql/{v}/bin");
        if Path::new(&d).join("postgres").exists() {
            return Ok(d);
        }
    }
    bail!("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (run infra/setup)")
}

/// One Postgres server shared by every test in the process.
pub fn shared_postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().expect("starting PostgreSQL"))
}

/// A throw-away Redis server that can be stopped and started on the same port.
pub struct Redis {
    dir: tempfile::TempDir,
    pub port: u16,
    watchdog: Option<Child>,
    starts: u32,
}

impl Redis {
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-redis-").tempdir()?;
        let mut r = Self {
            dir,
            port: free_port(),
            watchdog: None,
            starts: 0,
        };
        r.up()?;
        Ok(r)
    }

    fn up(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let start = format!(
            "redis-server --port {} --bind 127.0.0.1 --save '' --appendonly no --dir {}",
            self.port,
            self.dir.path().display()
        );
        let stop = format!("redis-cli -p {} shutdown nosave >/dev/null 2>&1", self.port);
        self.watchdog = Some(spawn_watched(&start, &stop, &log)?);
        wait_for_port(self.port, "redis-server", &log, Duration::from_secs(10))
    }

    /// Stops the server (its data is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "nosave"])
            .output();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.up()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn conn(&self) -> Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// How many times the server has run command `name` (lowercase), by
    /// `INFO commandstats`; commands run by scripts count too.
    pub async fn command_calls(&self, name: &str) -> Result<u64> {
        let mut c = self.conn().await?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One Redis server shared by tests that do not restart it.
pub fn shared_redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| Redis::start().expect("starting Redis"))
}

/// Writes an application directory: `spin.toml` from `manifest`, where
/// `{{wasm:NAME}}` becomes the path of test component NAME.
pub struct AppDir {
    pub dir: tempfile::TempDir,
}

impl AppDir {
    pub fn new(manifest: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-app-").tempdir()?;
        let mut text = manifest.to_string();
        while let Some(start) = text.find("{{wasm:") {
            let end = start + text[start..].find("}}").context("unclosed {{wasm:")?;
            let name = &text[start + 7..end];
            let path = component(name).display().to_string();
            text.replace_range(start..end + 2, &path);
        }
        std::fs::write(dir.path().join("spin.toml"), text)?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.path().join("spin.toml")
    }

    /// The `XDG_DATA_HOME` the harness gives `fado` for this app, so the
    /// default state directory stays inside the app's temporary directory.
    pub fn data_home(&self) -> PathBuf {
        self.dir.path().join("data-home")
    }

    pub fn write(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let p = self.dir.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&p)?.write_all(contents.as_bytes())?;
        Ok(p)
    }
}

/// An application with one component `name` (a test component) on `/...`
/// that may reach `allowed_outbound_hosts`.
pub fn one_component_app(name: &str, allowed_outbound_hosts: &[String]) -> AppDir {
    let rules: Vec<String> = allowed_outbound_hosts
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "{name}"
[[trigger.http]]
route = "/..."
component = "{name}"
[component.{name}]
source = "{{{{wasm:{name}}}}}"
allowed_outbound_hosts = [{}]
"#,
        rules.join(", ")
    ))
    .expect("writing the app")
}

/// An application with one `probe` component on `/...` that may reach
/// `allowed_outbound_hosts`.
pub fn probe_app(allowed_outbound_hosts: &[String]) -> AppDir {
    AppDir::new(&probe_manifest(allowed_outbound_hosts)).expect("writing the probe app")
}

/// The manifest [`probe_app`] writes, for tests that alter it.
pub fn probe_manifest(allowed_outbound_hosts: &[String]) -> String {
    let rules: Vec<String> = allowed_outbound_hosts
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "probe"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{{{{wasm:probe}}}}"
allowed_outbound_hosts = [{}]
"#,
        rules.join(", ")
    )
}

/// A running `fado serve`.
pub struct Fado {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    _logdir: Option<tempfile::TempDir>,
}

#[derive(Default)]
pub struct FadoOptions<'a> {
    pub args: Vec<String>,
    pub env: Vec<(&'a str, String)>,
    pub cache_dir: Option<PathBuf>,
}

impl Fado {
    pub fn start(app: &AppDir) -> Result<Self> {
        Self::start_with(app, FadoOptions::default())
    }

    pub fn start_with(app: &AppDir, opts: FadoOptions<'_>) -> Result<Self> {
        let port = free_port();
        let admin_port = free_port();
        let logdir = tempfile::Builder::new().prefix("fado-log-").tempdir()?;
        let log = logdir.path().join("fado.log");
        let out = std::fs::File::create(&log)?;
        let cache = opts
            .cache_dir
            .clone()
            .unwrap_or_else(|| target_dir().join("test-component-cache"));
        let mut cmd = Command::new(fado_bin());
        cmd.arg("serve")
            .arg("--manifest")
            .arg(app.manifest())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin_port}"))
            .arg("--cache-dir")
            .arg(cache)
            .args(&opts.args)
            .env("RUST_LOG", "info,fado_runtime=debug")
            // The default state directory goes under the data home: keep it
            // inside the app's directory, not the user's.
            .env("XDG_DATA_HOME", app.data_home())
            .env_remove("FADO_MANIFEST")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("spawning fado")?;
        // `FADO_KEEP_LOGS=1` keeps every log for a look after the run.
        let logdir = if std::env::var_os("FADO_KEEP_LOGS").is_some() {
            eprintln!("fado log kept: {}", log.display());
            let _ = logdir.keep();
            None
        } else {
            Some(logdir)
        };
        let mut fado = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            log,
            _logdir: logdir,
        };
        // Generous: a cold start compiles every component (seconds each on a
        // loaded 2-core machine) before serving.
        fado.wait_ready(Duration::from_secs(240))?;
        Ok(fado)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "fado exited with {status} before serving; log:\n{}",
                    self.log()
                );
            }
            let log = self.log();
            if (log.contains("Serving http") && std::net::TcpStream::connect(self.addr).is_ok())
                || log.contains("Running application")
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "fado did not start within {timeout:?}; log:\n{}",
            self.log()
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The Prometheus text from the admin listener.
    pub async fn metrics(&self) -> String {
        http()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The sample line of metric `name` for `component`.
    pub async fn metric(&self, name: &str, component: &str) -> Option<String> {
        let label = format!("component=\"{component}\"");
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&label))
            .map(str::to_string)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "fado did not exit within {timeout:?} of SIGTERM; log:\n{}",
            self.log()
        )
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Fado {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `fado serve` expecting it to fail at start-up; returns its output.
pub fn fado_fails(app: &AppDir, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let mut cmd = Command::new(fado_bin());
    cmd.arg("serve")
        .arg("--manifest")
        .arg(app.manifest())
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--admin-listen")
        .arg("none")
        .args(args)
        .env("XDG_DATA_HOME", app.data_home())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let out = child.wait_with_output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::ensure!(!status.success(), "fado unexpectedly succeeded:\n{text}");
            return Ok(text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("fado kept running although it should have failed at start-up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A reqwest client that does not pool (each test request is independent).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(0)
        .build()
        .expect("building an HTTP client")
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
