//! `fado up` and `fado serve`: command-line options for the host and the
//! process lifecycle (signals, draining).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use fado_runtime::{HostOptions, InstanceLimits, ServeOptions};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct HostArgs {
    /// The application manifest.
    #[arg(
        long,
        short = 'f',
        visible_alias = "from",
        default_value = "spin.toml",
        env = "FADO_MANIFEST"
    )]
    manifest: PathBuf,

    /// Address the HTTP trigger listens on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "FADO_LISTEN")]
    listen: SocketAddr,

    /// Address of the admin listener (Prometheus /metrics, /healthz), or `none`.
    #[arg(long, default_value = "127.0.0.1:9090", env = "FADO_ADMIN_LISTEN")]
    admin_listen: String,

    /// Set an application variable: NAME=VALUE, or NAME=@FILE to read the value from a file.
    #[arg(long = "variable", value_name = "NAME=VALUE")]
    variables: Vec<String>,

    /// Set an environment variable for every component: NAME=VALUE.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    env: Vec<String>,

    /// A Spin runtime-config file (key-value store backends, SQLite database files).
    #[arg(long, env = "FADO_RUNTIME_CONFIG_FILE")]
    runtime_config_file: Option<PathBuf>,

    /// Directory for the default key-value store, SQLite databases and other state
    /// [default: a directory per application under $XDG_DATA_HOME/fado/apps or ~/.local/share/fado/apps].
    #[arg(long, env = "FADO_STATE_DIR")]
    state_dir: Option<PathBuf>,

    /// Directory for compiled components [default: ~/.cache/fado/components].
    #[arg(long, env = "FADO_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not cache compiled components on disk.
    #[arg(long)]
    no_cache: bool,

    /// PEM certificate chain for HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key", env = "FADO_TLS_CERT")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS (with --tls-cert).
    #[arg(long, requires = "tls_cert", env = "FADO_TLS_KEY")]
    tls_key: Option<PathBuf>,

    /// Largest linear memory one instance may use, e.g. 256MiB.
    #[arg(long, default_value = "256MiB", env = "FADO_MAX_INSTANCE_MEMORY")]
    max_instance_memory: String,

    /// Instances that may run at once; more concurrent invocations get a 503.
    #[arg(long, default_value_t = 1000, env = "FADO_MAX_INSTANCES")]
    max_instances: u32,

    /// Wall-clock budget per invocation in seconds; unlimited when unset.
    #[arg(long, env = "FADO_MAX_EXECUTION_TIME")]
    max_execution_time: Option<f64>,

    /// Open a new connection for every outbound HTTP request (for comparison runs).
    #[arg(long)]
    no_outbound_pooling: bool,

    /// Seconds in-flight requests and messages may run after SIGTERM or Ctrl-C.
    #[arg(long, default_value_t = 30.0, env = "FADO_DRAIN_TIMEOUT")]
    drain_timeout: f64,
}

fn parse_variable(spec: &str) -> Result<(String, String)> {
    let Some((name, value)) = spec.split_once('=') else {
        bail!("--variable {spec:?}: expected NAME=VALUE or NAME=@FILE");
    };
    let value = match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--variable {name}: cannot read {path}"))?
            .trim_end_matches('\n')
            .to_string(),
        None => value.to_string(),
    };
    Ok((name.to_string(), value))
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("fado").join("components"))
}

/// The state directory of the application whose manifest is `manifest`:
/// `<data home>/fado/apps/<directory name>-<hash of the manifest's path>`, so
/// two applications never share one and the same one always finds its own.
/// A `.fado` directory beside the manifest, where earlier versions kept
/// state, is used as before so no data is left behind.
fn default_state_dir(manifest: &std::path::Path) -> Option<PathBuf> {
    use sha2::Digest;
    // A manifest that cannot be found is reported when it is loaded.
    let manifest = std::fs::canonicalize(manifest).ok()?;
    let dir = manifest.parent().unwrap_or(std::path::Path::new("/"));
    let legacy = dir.join(".fado");
    if legacy.join("key_value").is_dir() {
        tracing::info!(
            "keeping application state in {} (where earlier versions put it; --state-dir chooses another)",
            legacy.display()
        );
        return Some(legacy);
    }
    let base = fado_client::config::xdg_base(
        |name| std::env::var(name).ok(),
        "XDG_DATA_HOME",
        ".local/share",
    )?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    let hash = sha2::Sha256::digest(manifest.as_os_str().as_encoded_bytes());
    Some(
        base.join("fado")
            .join("apps")
            .join(format!("{name}-{}", &hex::encode(hash)[..12])),
    )
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("{flag} {v}: expected a non-negative number of seconds"))
}

impl HostArgs {
    fn options(&self) -> Result<(HostOptions, ServeOptions)> {
        let max_memory: bytesize::ByteSize = self.max_instance_memory.parse().map_err(|e| {
            anyhow::anyhow!("--max-instance-memory {:?}: {e}", self.max_instance_memory)
        })?;
        let admin_listen = match self.admin_listen.as_str() {
            "none" | "off" | "" => None,
            a => Some(
                a.parse()
                    .with_context(|| format!("--admin-listen {a:?}: expected HOST:PORT or none"))?,
            ),
        };
        let variables = self
            .variables
            .iter()
            .map(|v| parse_variable(v))
            .collect::<Result<_>>()?;
        let env = self
            .env
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => bail!("--env {spec:?}: expected NAME=VALUE"),
            })
            .collect::<Result<_>>()?;
        let host = HostOptions {
            manifest: self.manifest.clone(),
            variables,
            env,
            runtime_config_file: self.runtime_config_file.clone(),
            state_dir: match &self.state_dir {
                Some(d) => Some(d.clone()),
                None => default_state_dir(&self.manifest),
            },
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or_else(default_cache_dir)
            },
            limits: InstanceLimits {
                max_memory_bytes: usize::try_from(max_memory.as_u64())
                    .context("--max-instance-memory is too large")?,
                max_instances: self.max_instances,
                max_execution_time: self
                    .max_execution_time
                    .map(|s| seconds("--max-execution-time", s))
                    .transpose()?,
            },
            outbound_http_pooling: !self.no_outbound_pooling,
        };
        let serve = ServeOptions {
            listen: self.listen,
            admin_listen,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            drain_timeout: seconds("--drain-timeout", self.drain_timeout)?,
        };
        Ok((host, serve))
    }
}

pub fn run(args: HostArgs) -> Result<()> {
    let (host, serve) = args.options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fado")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        fado_runtime::run(host, serve, shutdown).await
    })
}

/// First SIGTERM or Ctrl-C starts a graceful drain; a second one exits at once.
async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining, then exiting"),
        _ = int.recv() => tracing::info!("interrupt: draining, then exiting (press Ctrl-C again to exit now)"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(130);
}
