//! Prometheus metrics on a separate admin listener. Handles are registered
//! once per (component, trigger) at start-up, so recording an invocation is
//! a few atomic operations with no label lookup.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Latency buckets in seconds: 100 µs to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Installs the process-wide Prometheus recorder. Call once, before any
/// metric handle is created.
pub fn install() -> Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .context("configuring histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Metric handles for one component under one trigger type.
#[derive(Clone)]
pub struct InvocationMetrics {
    invocations: Counter,
    errors: Counter,
    duration: Histogram,
}

impl InvocationMetrics {
    pub fn new(component: &str, trigger: &'static str) -> Self {
        let labels = [
            ("component", component.to_string()),
            ("trigger", trigger.to_string()),
        ];
        metrics::describe_counter!(
            "fado_component_invocations_total",
            "Invocations started, per component and trigger"
        );
        metrics::describe_counter!(
            "fado_component_errors_total",
            "Invocations that trapped or failed, per component and trigger"
        );
        metrics::describe_histogram!(
            "fado_component_duration_seconds",
            metrics::Unit::Seconds,
            "Time from instantiation to the handler's return, per component and trigger"
        );
        Self {
            invocations: metrics::counter!("fado_component_invocations_total", &labels),
            errors: metrics::counter!("fado_component_errors_total", &labels),
            duration: metrics::histogram!("fado_component_duration_seconds", &labels),
        }
    }

    pub fn started(&self) {
        self.invocations.increment(1);
    }

    pub fn finished(&self, elapsed: Duration, ok: bool) {
        self.duration.record(elapsed.as_secs_f64());
        if !ok {
            self.errors.increment(1);
        }
    }
}

/// Serves `/metrics` (Prometheus text format) and `/healthz`.
pub async fn serve_admin(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: CancellationToken,
) -> Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "admin listener (GET /metrics, /healthz)");
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return Ok(()),
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    let (status, ctype, body) = match req.uri().path() {
                        "/metrics" => (200, "text/plain; version=0.0.4", handle.render()),
                        "/healthz" => (200, "text/plain", "ok\n".to_string()),
                        _ => (404, "text/plain", "not found\n".to_string()),
                    };
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", ctype)
                            .body(Full::new(Bytes::from(body)))
                            .expect("static response parts"),
                    )
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
