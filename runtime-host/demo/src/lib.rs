//! `fado demo`: FaDO on one machine as on three clusters. It starts, and on
//! Ctrl-C stops, each cluster's S3 storage (`fado s3 serve`, or Garage) and
//! function endpoint (`fado serve` on `examples/functions/spin.toml`), then
//! the orchestrator (`fado up` on the root `spin.toml`); registers the
//! thesis testbed through the API; and creates a sample bucket with a policy
//! and an image. Everything it keeps lives under one data directory (the
//! catalog itself in PostgreSQL), so a second run picks up where the first
//! stopped.

mod processes;
mod register;
mod sample;
pub mod topology;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rand::Rng;

use processes::{Spec, Supervisor};
use register::{StorageAccess, wait_http};
use topology::{Layout, Ports, SAMPLE_BUCKET, SAMPLE_KEY};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its state: storage data, secrets, logs.
    #[arg(long, default_value = ".fado", env = "FADO_DATA_DIR")]
    pub data_dir: PathBuf,

    /// The FaDO checkout: its spin.toml, examples/functions/spin.toml and infra/.
    #[arg(long, default_value = ".", env = "FADO_ROOT")]
    pub root: PathBuf,

    /// Where the orchestrator listens: API, console and invocation ingress.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The orchestrator's admin listener (Prometheus /metrics), or `none`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: String,

    /// The clusters' storage: the S3 server embedded in `fado`, or Garage
    /// (built by `infra/garage install`, as the tests use).
    #[arg(long, value_enum, default_value_t = StorageKind::Embedded)]
    pub storage: StorageKind,

    /// First of three loopback ports for the embedded S3 servers.
    #[arg(long, default_value_t = 3901)]
    pub storage_port_base: u16,

    /// First of three loopback ports for the clusters' function endpoints.
    #[arg(long, default_value_t = 8081)]
    pub faas_port_base: u16,

    /// How long start-up may take (the first run compiles every component).
    #[arg(long, default_value_t = 600)]
    pub ready_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    Embedded,
    Garage,
}

/// What a newcomer needs to use the running demo.
struct Running {
    api: String,
    token: String,
    routed_to: Vec<String>,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(run_async(args))
}

async fn run_async(args: DemoArgs) -> Result<()> {
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("--root {}", args.root.display()))?;
    let manifest = root.join("spin.toml");
    let functions = root.join("examples/functions/spin.toml");
    for (what, path) in [
        ("the orchestrator's manifest", &manifest),
        ("the example functions' manifest", &functions),
    ] {
        if !path.is_file() {
            bail!(
                "{what} {} is missing: run from the FaDO checkout or pass --root",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let data = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("--data-dir {}", args.data_dir.display()))?;
    let layout = topology::plan(
        &data,
        Ports {
            storage_base: args.storage_port_base,
            faas_base: args.faas_port_base,
        },
        args.listen,
    )?;
    let fado = std::env::current_exe().context("finding the fado binary")?;
    let mut sup = Supervisor::new(&data.join("logs"))?;
    let started = Instant::now();

    let outcome = tokio::select! {
        r = start(&args, &root, &data, &layout, &fado, &mut sup) => r.map(Some),
        _ = tokio::signal::ctrl_c() => Ok(None),
    };
    let result = match outcome {
        Ok(Some(running)) => {
            banner(&running, &layout, &data, started.elapsed());
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Ok(()),
                _ = terminated() => Ok(()),
                (name, status, tail) = sup.first_exit() => {
                    Err(anyhow::anyhow!("{name} exited ({status:?}); the end of its log:\n{tail}"))
                }
            }
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    eprintln!("stopping the demo");
    sup.stop_all(Duration::from_secs(35)).await;
    if args.storage == StorageKind::Garage {
        garage(&root, &["stop".into(), data.join("garage").into()]).await?;
    }
    result
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn start(
    args: &DemoArgs,
    root: &Path,
    data: &Path,
    layout: &Layout,
    fado: &Path,
    sup: &mut Supervisor,
) -> Result<Running> {
    let timeout = Duration::from_secs(args.ready_timeout_secs);
    let token = secret(data, "admin-token", "FADO_ADMIN_TOKEN")?;
    let encryption = secret(data, "encryption-key", "FADO_ENCRYPTION_KEY")?;
    let api = format!("http://{}", args.listen);

    let storage = match args.storage {
        StorageKind::Embedded => embedded_storage(data, layout, fado, sup, timeout).await?,
        StorageKind::Garage => garage_storage(root, data).await?,
    };

    sup.spawn(Spec {
        name: "orchestrator".into(),
        program: fado.to_path_buf(),
        args: vec![
            "up".into(),
            "--manifest".into(),
            root.join("spin.toml").into(),
            "--listen".into(),
            args.listen.to_string().into(),
            "--admin-listen".into(),
            args.admin_listen.clone().into(),
            "--state-dir".into(),
            data.join("orchestrator").into(),
        ],
        env: vec![
            ("SPIN_VARIABLE_ADMIN_TOKEN".into(), token.clone()),
            ("SPIN_VARIABLE_ENCRYPTION_KEY".into(), encryption),
        ],
    })?;
    for (i, (c, s)) in layout.clusters.iter().zip(&storage).enumerate() {
        // Where a function looks for a bucket its own storage lacks: the
        // other clusters' storage, reachable with the one demo key pair.
        // Garage instances each have their own key, so there the functions
        // read only their own storage (FaDO's routing keeps reads local).
        let fallbacks: Vec<&str> = match args.storage {
            StorageKind::Embedded => storage
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, o)| o.endpoint.as_str())
                .collect(),
            StorageKind::Garage => Vec::new(),
        };
        // Every cluster's storage is on loopback: one outbound rule covers them.
        let fallback_hosts = if fallbacks.is_empty() {
            ""
        } else {
            "http://127.0.0.1:*"
        };
        let vars = [
            ("cluster", c.spec.name.to_string()),
            ("deployment", c.faas.clone()),
            ("s3_endpoint", s.endpoint.clone()),
            ("s3_region", s.region.clone()),
            ("s3_access_key", s.access_key.clone()),
            ("s3_secret_key", s.secret_key.clone()),
            ("s3_fallback_endpoints", fallbacks.join(",")),
            ("s3_fallback_hosts", fallback_hosts.to_string()),
            ("fado_api", api.clone()),
            ("fado_token", token.clone()),
        ];
        let a: Vec<OsString> = vec![
            "serve".into(),
            "--manifest".into(),
            root.join("examples/functions/spin.toml").into(),
            "--listen".into(),
            c.faas_addr.to_string().into(),
            "--admin-listen".into(),
            "none".into(),
            "--state-dir".into(),
            c.faas_dir.clone().into(),
        ];
        // Through the environment, which only this user can read: a
        // command line is visible to every local user.
        let env = vars
            .into_iter()
            .map(|(k, v)| (format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v))
            .collect();
        sup.spawn(Spec {
            name: c.faas.clone(),
            program: fado.to_path_buf(),
            args: a,
            env,
        })?;
    }

    eprintln!(
        "waiting for the orchestrator and the function endpoints (the first run compiles every component)"
    );
    wait_http(&format!("{api}/readyz"), false, timeout, || {
        sup.check_alive("orchestrator")
    })
    .await?;
    for c in &layout.clusters {
        let url = format!("http://{}/nodeinfo", c.faas_addr);
        wait_http(&url, false, timeout, || sup.check_alive(&c.faas)).await?;
    }

    let client = fado_client::Client::new(&api, Some(token.clone()))?;
    register::register(&client, layout, &storage).await?;
    register::sample(&client, layout, sample::image()?).await?;
    let routed_to = register::routed(&client, Duration::from_secs(60)).await?;
    Ok(Running {
        api,
        token,
        routed_to,
    })
}

/// One `fado s3 serve` per cluster, all with the one key pair kept under
/// the data directory.
async fn embedded_storage(
    data: &Path,
    layout: &Layout,
    fado: &Path,
    sup: &mut Supervisor,
    timeout: Duration,
) -> Result<Vec<StorageAccess>> {
    let access_key = secret(data, "storage-access-key", "FADO_S3_ACCESS_KEY")?;
    let secret_key = secret(data, "storage-secret-key", "FADO_S3_SECRET_KEY")?;
    let mut out = Vec::new();
    for c in &layout.clusters {
        sup.spawn(Spec {
            name: c.storage.clone(),
            program: fado.to_path_buf(),
            args: vec![
                "s3".into(),
                "serve".into(),
                "--dir".into(),
                c.storage_dir.clone().into(),
                "--listen".into(),
                c.storage_addr.to_string().into(),
            ],
            env: vec![
                ("FADO_S3_ACCESS_KEY".into(), access_key.clone()),
                ("FADO_S3_SECRET_KEY".into(), secret_key.clone()),
            ],
        })?;
        out.push(StorageAccess {
            endpoint: format!("http://{}", c.storage_addr),
            region: "us-east-1".into(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
        });
    }
    for c in &layout.clusters {
        // Any HTTP answer will do: an unsigned request gets an S3 error.
        let url = format!("http://{}/", c.storage_addr);
        wait_http(&url, true, timeout, || sup.check_alive(&c.storage)).await?;
    }
    Ok(out)
}

/// Three Garage instances through `infra/garage` (restarted on the same
/// directory by later runs, so their data stays).
async fn garage_storage(root: &Path, data: &Path) -> Result<Vec<StorageAccess>> {
    let dir = data.join("garage");
    let out = garage(root, &["start".into(), "3".into(), dir.into()]).await?;
    let mut storage = Vec::new();
    for line in out.lines().filter(|l| l.starts_with("name=")) {
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("infra/garage printed no {k}= in: {line}"))
        };
        storage.push(StorageAccess {
            endpoint: field("s3")?,
            region: field("region")?,
            access_key: field("key_id")?,
            secret_key: field("secret")?,
        });
    }
    if storage.len() != topology::TESTBED.len() {
        bail!(
            "infra/garage started {} instances, expected {}:\n{out}",
            storage.len(),
            topology::TESTBED.len()
        );
    }
    Ok(storage)
}

async fn garage(root: &Path, args: &[OsString]) -> Result<String> {
    let script = root.join("infra/garage");
    let out = tokio::process::Command::new(&script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {:?} failed ({}):\n{}",
            script.display(),
            args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The secret in `env`, or the one kept in `data/file`, created on the first
/// run (owner-only) so stored credentials stay readable across restarts.
fn secret(data: &Path, file: &str, env: &str) -> Result<String> {
    if let Ok(v) = std::env::var(env)
        && !v.is_empty()
    {
        return Ok(v);
    }
    let path = data.join(file);
    if let Ok(v) = std::fs::read_to_string(&path) {
        let v = v.trim().to_string();
        if !v.is_empty() {
            return Ok(v);
        }
    }
    let v: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    write_private(&path, &v).with_context(|| format!("writing {}", path.display()))?;
    Ok(v)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

fn banner(r: &Running, layout: &Layout, data: &Path, took: Duration) {
    let clusters: Vec<String> = layout
        .clusters
        .iter()
        .map(|c| format!("{} ({})", c.spec.name, c.spec.zones.join(", ")))
        .collect();
    let api = &r.api;
    println!(
        "\nFaDO is running ({} clusters: {}), started in {:.0} s; state in {}\n\
         \n  console  {api}/console/\
         \n  API      {api}/api\
         \n  ingress  {api}/<function>/...   (header X-FaDO-Bucket: <bucket>)\
         \n  token    {}   (also in {})\
         \n\nBucket {SAMPLE_BUCKET} holds {SAMPLE_KEY}; its invocations go to: {}.\n\
         \nTry:\
         \n  curl -H 'X-FaDO-Bucket: {SAMPLE_BUCKET}' {api}/nodeinfo\
         \n  curl -H 'X-FaDO-Bucket: {SAMPLE_BUCKET}' '{api}/image?bucket={SAMPLE_BUCKET}&key={SAMPLE_KEY}'\
         \n  curl -H 'Authorization: Bearer {}' {api}/api/buckets/{SAMPLE_BUCKET}/replicas\
         \n\nLogs in {}. Ctrl-C stops everything.",
        layout.clusters.len(),
        clusters.join(", "),
        took.as_secs_f64(),
        data.display(),
        r.token,
        data.join("admin-token").display(),
        r.routed_to.join(", "),
        r.token,
        data.join("logs").display(),
    );
}
