//! Real S3 storage for tests: single-node Garage instances, one per simulated
//! cluster, started by `infra/garage start` (the same script developers use,
//! so there is one way to bring Garage up) and stopped when dropped.
//!
//! The Garage binary is not built here: `infra/garage install` (run by
//! `infra/test`) builds it once into `$FADO_CACHE/tools/bin`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

/// One running single-node Garage.
pub struct Garage {
    /// `garage-1`, `garage-2`, …
    pub name: String,
    /// The S3 API, e.g. `http://127.0.0.1:23900` (path-style addressing).
    pub endpoint: String,
    /// The admin API (its token is in `dir/garage.toml`).
    pub admin: String,
    /// An access key allowed to create buckets.
    pub key_id: String,
    pub secret: String,
    /// The S3 region Garage expects in signatures (`garage`).
    pub region: String,
    /// This instance's config, data, metadata and log (`garage.log`).
    pub dir: PathBuf,
    /// The directory all instances of one `start_many` share; removed with the last of them.
    parent: Arc<tempfile::TempDir>,
}

/// Where `infra/garage install` puts the binary (`$FADO_CACHE/tools/bin/garage`).
pub fn garage_bin() -> PathBuf {
    let cache = std::env::var_os("FADO_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/fado")))
        .unwrap_or_else(|| PathBuf::from(".cache/fado"));
    cache.join("tools").join("bin").join("garage")
}

fn script() -> PathBuf {
    crate::workspace().join("infra").join("garage")
}

impl Garage {
    /// Starts one instance.
    pub fn start() -> Result<Self> {
        Ok(Self::start_many(1)?.remove(0))
    }

    /// Starts `n` independent instances (separate ports, data, keys). Blocks
    /// for a second or two; call it from `spawn_blocking` in async tests.
    pub fn start_many(n: usize) -> Result<Vec<Self>> {
        anyhow::ensure!(n > 0, "start_many needs at least one instance");
        let bin = garage_bin();
        if !bin.exists() {
            bail!(
                "{} is missing: run `infra/garage install` (builds Garage once, about 20 minutes on 2 cores; infra/test does it)",
                bin.display()
            );
        }
        let parent = Arc::new(tempfile::Builder::new().prefix("fado-garage-").tempdir()?);
        let out = Command::new(script())
            .arg("start")
            .arg(n.to_string())
            .arg(parent.path())
            // If this test process dies without dropping us, the script's
            // watchdog stops the servers and removes the directory.
            .env("FADO_GARAGE_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", script().display()))?;
        if !out.status.success() {
            bail!(
                "infra/garage start {n} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8(out.stdout).context("infra/garage printed non-UTF-8")?;
        let garages = stdout
            .lines()
            .filter(|l| l.starts_with("name="))
            .map(|line| Self::parse(line, &parent))
            .collect::<Result<Vec<_>>>()?;
        anyhow::ensure!(
            garages.len() == n,
            "infra/garage start {n} printed {} instances:\n{stdout}",
            garages.len()
        );
        Ok(garages)
    }

    /// [`Garage::start_many`] from async code (it blocks while they boot).
    pub async fn launch(n: usize) -> Vec<Self> {
        tokio::task::spawn_blocking(move || Self::start_many(n))
            .await
            .expect("the Garage start task")
            .expect("starting Garage")
    }

    /// The body that registers this instance as storage deployment `name`
    /// of `cluster` (`POST /api/storage-deployments`).
    pub fn storage_body(&self, name: &str, cluster: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "cluster": cluster, "endpoint": self.endpoint,
                           "region": self.region, "access_key": self.key_id, "secret_key": self.secret})
    }

    /// Reads one `name=… s3=… admin=… key_id=… secret=… region=… dir=…` line.
    fn parse(line: &str, parent: &Arc<tempfile::TempDir>) -> Result<Self> {
        let mut fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let mut take = |k: &str| {
            fields
                .remove(k)
                .map(str::to_string)
                .with_context(|| format!("no `{k}=` in infra/garage's line: {line}"))
        };
        Ok(Self {
            name: take("name")?,
            endpoint: take("s3")?,
            admin: take("admin")?,
            key_id: take("key_id")?,
            secret: take("secret")?,
            region: take("region")?,
            dir: PathBuf::from(take("dir")?),
            parent: Arc::clone(parent),
        })
    }

    /// An S3 client for this instance: path-style, with this key and region.
    ///
    /// Everything is set explicitly, nothing comes from the environment, so
    /// `AWS_*` variables of the machine (AWS_CA_BUNDLE, AWS_PROFILE,
    /// AWS_ENDPOINT_URL, …) cannot redirect or break it.
    pub fn client(&self) -> aws_sdk_s3::Client {
        self.client_with(&self.key_id, &self.secret)
    }

    /// An S3 client for this instance signing with another key.
    pub fn client_with(&self, key_id: &str, secret: &str) -> aws_sdk_s3::Client {
        crate::s3::client(&self.endpoint, &self.region, key_id, secret)
    }

    /// (key, size, unquoted ETag) of the objects of `bucket`, in S3 listing
    /// order (first 1000).
    pub async fn listing(&self, bucket: &str) -> Vec<(String, i64, String)> {
        crate::s3::listing(&self.client(), &self.name, bucket).await
    }

    /// Keys and sizes of `bucket`, in S3 listing order (first 1000).
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

    /// Writes `bucket/key` directly, as a user of the storage would; returns
    /// the unquoted ETag.
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) -> String {
        crate::s3::put(&self.client(), &self.name, bucket, key, data).await
    }

    /// Stops this instance (SIGTERM); its data, ports and keys stay, so
    /// [`Garage::resume`] brings the same storage back.
    pub fn stop(&self) -> Result<()> {
        self.script(&["stop", &self.dir.display().to_string()])
    }

    /// Starts this instance again after [`Garage::stop`].
    pub fn resume(&self) -> Result<()> {
        let n = self
            .name
            .strip_prefix("garage-")
            .and_then(|n| n.parse::<usize>().ok())
            .with_context(|| format!("cannot read the instance number of {}", self.name))?;
        // `start N DIR` restarts the instances of DIR that are not running
        // and leaves the others alone.
        self.script(&[
            "start",
            &n.to_string(),
            &self.parent.path().display().to_string(),
        ])
    }

    fn script(&self, args: &[&str]) -> Result<()> {
        let out = Command::new(script())
            .args(args)
            .env("FADO_GARAGE_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", script().display()))?;
        if !out.status.success() {
            bail!(
                "infra/garage {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic bytes that differ per seed and position.
pub fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ seed)
        .collect()
}
