//! The FaDO host: runs Spin applications (manifest version 2) on wasmtime.
//!
//! - [`app`] loads an application and prepares its components;
//! - [`capabilities`] holds one module per host interface family;
//! - [`triggers`] turns HTTP requests and Redis messages into invocations;
//! - [`engine`] configures wasmtime and caches compiled components;
//! - [`metrics`] exposes Prometheus metrics on the admin listener.

pub mod app;
mod bindings;
pub mod capabilities;
pub mod engine;
pub mod metrics;
pub mod redis_pool;
pub mod triggers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use app::{App, HostOptions};
pub use engine::InstanceLimits;

/// Listener settings for `fado up` / `fado serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Where `/metrics` is served; `None` turns the admin listener off.
    pub admin_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long in-flight work may run after a shutdown signal.
    pub drain_timeout: Duration,
}

/// HTTP worker threads: one per core the process may use.
fn http_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Loads the application and serves it until `shutdown` is cancelled, then
/// drains in-flight requests and messages.
pub async fn run(
    host: HostOptions,
    serve: ServeOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    let prometheus = metrics::install()?;
    let engine = engine::build_engine(&host.limits)?;
    engine::spawn_epoch_ticker(engine.clone());
    let app = Arc::new(App::load(host, engine).await?);
    let tracker = TaskTracker::new();

    let tls = match &serve.tls {
        Some((cert, key)) => Some(triggers::http::tls_acceptor(cert, key)?),
        None => None,
    };
    let http = if app.ctx.manifest.http_triggers.is_empty() {
        None
    } else {
        let trigger = triggers::http::HttpTrigger::new(app.clone(), tracker.clone())?;
        let listeners = triggers::http::listeners(serve.listen, http_workers())?;
        Some((trigger, listeners))
    };
    if let Some(addr) = serve.admin_listen {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr} for metrics (pass --admin-listen ADDR, or --admin-listen none)")
        })?;
        tokio::spawn(metrics::serve_admin(listener, prometheus, shutdown.clone()));
    }
    let redis = triggers::redis::RedisTrigger::new(app.clone(), tracker.clone())?;
    let redis_task = redis.map(|r| tokio::spawn(r.run(shutdown.clone())));
    let sweeps_task = (!app.ctx.manifest.sweeps.is_empty())
        .then(|| tokio::spawn(triggers::sweeps::run(app.clone(), shutdown.clone())));

    let name = &app.ctx.manifest.application.name;
    match http {
        Some((trigger, listeners)) => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            println!(
                "Serving {scheme}://{} (application {name:?})",
                listeners[0].local_addr()?
            );
            triggers::http::serve_on_workers(
                trigger,
                listeners,
                tls,
                shutdown.clone(),
                serve.drain_timeout,
            )
            .await?;
        }
        None => {
            println!("Running application {name:?} (Redis triggers only)");
            shutdown.cancelled().await;
        }
    }
    for t in [redis_task, sweeps_task].into_iter().flatten() {
        let _ = t.await;
    }
    tracker.close();
    if tokio::time::timeout(serve.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} invocation(s) still running at the drain deadline",
            tracker.len()
        );
    }
    Ok(())
}
