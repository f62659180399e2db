//! A throw-away MariaDB server with a password-protected user.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{free_port, running_as_root, spawn_watched, wait_for_port};

pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
    _watchdog: Child,
}

/// The user the tests connect as, and its password.
pub const USER: &str = "fado";
pub const PASSWORD: &str = "fado-pw";

impl MariaDb {
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-mariadb-").tempdir()?;
        let data = dir.path().join("data");
        let socket = dir.path().join("mariadb.sock");
        let port = free_port();
        // The server refuses to run as root unless told to.
        let user = if running_as_root() { "--user=root" } else { "" };
        let install = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .args((!user.is_empty()).then_some(user))
            .output()
            .context("running mariadb-install-db (install mariadb-server: infra/setup)")?;
        if !install.status.success() {
            bail!(
                "mariadb-install-db failed:\n{}{}",
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            );
        }
        let log = dir.path().join("mariadb.log");
        // Durability off: the data is thrown away with the test.
        let start = format!(
            "mariadbd --no-defaults --datadir={d} --socket={s} --port={port} \
             --bind-address=127.0.0.1 --skip-name-resolve {user} \
             --pid-file={dir}/mariadb.pid --log-error={dir}/mariadb-error.log \
             --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
             --innodb-flush-log-at-trx-commit=0 --skip-innodb-doublewrite \
             --sync-binlog=0 --max-connections=500",
            d = data.display(),
            s = socket.display(),
            dir = dir.path().display(),
        );
        let stop = format!(
            "kill -9 $child 2>/dev/null; rm -rf {}",
            dir.path().display()
        );
        let watchdog = spawn_watched(&start, &stop, &log)?;
        let error_log = dir.path().join("mariadb-error.log");
        wait_for_port(port, "mariadbd", &error_log, Duration::from_secs(60))?;
        let db = Self {
            dir,
            port,
            _watchdog: watchdog,
        };
        db.admin(&format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON *.* TO '{USER}'@'%';"
        ))?;
        Ok(db)
    }

    /// Runs `sql` as root over the server's socket.
    pub fn admin(&self, sql: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql])
                .output()
                .context("running the mariadb client")?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            // The port opens a moment before the server takes logins.
            if !err.contains("Can't connect") || Instant::now() > deadline {
                bail!("mariadb -e {sql:?} failed: {err}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// Creates an empty database and returns its name.
    pub fn create_database(&self) -> Result<String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("fado_test_{n}");
        self.admin(&format!("CREATE DATABASE {name}"))?;
        Ok(name)
    }

    /// Spin's address form for database `db` as [`USER`] with `password`.
    pub fn address_with(&self, db: &str, password: &str) -> String {
        format!("mysql://{USER}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    pub fn address(&self, db: &str) -> String {
        self.address_with(db, PASSWORD)
    }
}

/// One MariaDB server shared by every test in the process.
pub fn shared_mariadb() -> &'static MariaDb {
    static DB: std::sync::OnceLock<MariaDb> = std::sync::OnceLock::new();
    DB.get_or_init(|| MariaDb::start().expect("starting MariaDB"))
}
