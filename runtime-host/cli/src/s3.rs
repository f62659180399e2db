//! `fado s3 serve`: the S3 server of `fado-s3-server` as a process, for
//! demos and tests (one directory and port per simulated cluster).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct S3Args {
    #[command(subcommand)]
    command: S3Command,
}

#[derive(Subcommand, Debug)]
enum S3Command {
    /// Serve an S3 API over the files in --dir (for demos and tests; not production storage).
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Where buckets and objects are kept (created if missing; data survives restarts).
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3900")]
    listen: SocketAddr,
    /// The one access key requests must be signed with.
    #[arg(long, env = "FADO_S3_ACCESS_KEY")]
    access_key: String,
    /// Its secret key.
    #[arg(long, env = "FADO_S3_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// The region requests must be signed for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
}

impl std::fmt::Debug for ServeArgs {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("dir", &self.dir)
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

pub fn run(args: S3Args) -> Result<()> {
    match args.command {
        S3Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let dir = args.dir.clone();
        let config = fado_s3_server::Config {
            root: args.dir,
            listen: args.listen,
            access_key: args.access_key,
            secret_key: args.secret_key,
            region: args.region.clone(),
        };
        let server = fado_s3_server::S3Server::start(config)
            .await
            .with_context(|| format!("starting the S3 server for --dir {}", dir.display()))?;
        tracing::info!(
            "Serving S3 at {} (region {}, path-style), data in {}",
            server.endpoint(),
            args.region,
            dir.display()
        );
        stopped().await;
        tracing::info!("stopping: finishing in-flight S3 requests");
        server.shutdown().await;
        Ok(())
    })
}

/// Returns on the first SIGINT or SIGTERM.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
