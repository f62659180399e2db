//! Real S3 storage for tests without Garage: `fado s3 serve` processes (the
//! S3 server embedded in `fado`, crate `fado-s3-server`), one per simulated
//! cluster, each on a free port with a directory of its own, stopped when
//! dropped. The shape follows [`crate::garage::Garage`], so tests move
//! between the two.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{fado_bin, free_port, spawn_watched, wait_for_port};

/// One running `fado s3 serve`.
pub struct S3Server {
    /// `s3-1`, `s3-2`, …
    pub name: String,
    /// e.g. `http://127.0.0.1:23900` (path-style addressing).
    pub endpoint: String,
    pub port: u16,
    pub key_id: String,
    pub secret: String,
    /// The region requests are signed for (the server's default, `us-east-1`).
    pub region: String,
    /// Where the server keeps its buckets.
    pub data: PathBuf,
    /// The logs of every start (`s3-1.log`, `s3-2.log`, …).
    dir: tempfile::TempDir,
    watchdog: Option<Child>,
    starts: u32,
}

impl S3Server {
    /// Starts one server.
    pub fn start() -> Result<Self> {
        Self::start_named("s3-1")
    }

    /// Starts `n` independent servers (separate ports, data and keys).
    pub fn start_many(n: usize) -> Result<Vec<Self>> {
        anyhow::ensure!(n > 0, "start_many needs at least one server");
        (1..=n)
            .map(|i| Self::start_named(&format!("s3-{i}")))
            .collect()
    }

    /// [`S3Server::start_many`] from async code (it blocks until they listen).
    pub async fn launch(n: usize) -> Vec<Self> {
        tokio::task::spawn_blocking(move || Self::start_many(n))
            .await
            .expect("the S3 server start task")
            .expect("starting fado s3 serve")
    }

    fn start_named(name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("fado-s3-").tempdir()?;
        let port = free_port();
        let mut server = Self {
            name: name.to_string(),
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            key_id: format!("FADOTEST{}", name.replace('-', "").to_uppercase()),
            secret: format!("secret-of-{name}-{}-{port}", std::process::id()),
            region: "us-east-1".to_string(),
            data: dir.path().join("data"),
            dir,
            watchdog: None,
            starts: 0,
        };
        server.up()?;
        Ok(server)
    }

    fn up(&mut self) -> Result<()> {
        self.starts += 1;
        let log = self.dir.path().join(format!("{}.log", self.starts));
        // The secret goes by environment, as an operator would pass it.
        let start = format!(
            "FADO_S3_SECRET_KEY='{}' RUST_LOG=info exec '{}' s3 serve --dir '{}' --listen 127.0.0.1:{} --access-key '{}'",
            self.secret,
            fado_bin().display(),
            self.data.display(),
            self.port,
            self.key_id,
        );
        let stop = "kill -TERM $child 2>/dev/null; wait $child 2>/dev/null";
        self.watchdog = Some(spawn_watched(&start, stop, &log)?);
        wait_for_port(self.port, "fado s3 serve", &log, Duration::from_secs(30))
    }

    /// The body that registers this server as storage deployment `name`
    /// of `cluster` (`POST /api/storage-deployments`).
    pub fn storage_body(&self, name: &str, cluster: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "cluster": cluster, "endpoint": self.endpoint,
                           "region": self.region, "access_key": self.key_id, "secret_key": self.secret})
    }

    /// An S3 client for this server: path-style, with its key and region,
    /// nothing taken from the environment (see `Garage::client`).
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(&self.key_id, &self.secret)
    }

    /// An S3 client signing with another key.
    pub fn client_with(&self, key_id: &str, secret: &str) -> aws_sdk_s3::Client {
        self.client_for(key_id, secret, &self.region)
    }

    /// An S3 client signing with another key and region.
    pub fn client_for(&self, key_id: &str, secret: &str, region: &str) -> aws_sdk_s3::Client {
        crate::s3::client(&self.endpoint, region, key_id, secret)
    }

    /// (key, size, unquoted ETag) of the objects of `bucket`, in listing
    /// order (first 1000).
    pub async fn listing(&self, bucket: &str) -> Vec<(String, i64, String)> {
        crate::s3::listing(&self.client(), &self.name, bucket).await
    }

    /// Keys and sizes of `bucket`, in listing order (first 1000).
    pub async fn keys(&self, bucket: &str) -> Vec<(String, i64)> {
        self.listing(bucket)
            .await
            .into_iter()
            .map(|(k, size, _)| (k, size))
            .collect()
    }

    /// The bytes of `bucket/key`, or `None` when it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        crate::s3::get(&self.client(), bucket, key).await
    }

    /// Writes `bucket/key` directly; returns the unquoted ETag.
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) -> String {
        crate::s3::put(&self.client(), &self.name, bucket, key, data).await
    }

    /// Stops the server with SIGTERM and waits until it is gone; its data
    /// and port stay, so [`S3Server::resume`] brings the same storage back.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut watchdog) = self.watchdog.take() else {
            return Ok(());
        };
        // The watchdog's trap sends SIGTERM to the server and waits for it.
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(watchdog.id().to_string())
            .status()?;
        watchdog.wait()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if Instant::now() > deadline {
                bail!("{} still listens 15 s after SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory.
    pub fn resume(&mut self) -> Result<()> {
        anyhow::ensure!(self.watchdog.is_none(), "{} is running", self.name);
        self.up()
            .with_context(|| format!("restarting {}", self.name))
    }

    /// The logs of every start, for assertion messages.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
