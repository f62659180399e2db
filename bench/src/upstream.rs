//! A minimal HTTP/1.1 upstream for the outbound-call and router experiments.
//!
//! Why in-process hyper rather than a second `fado serve`: the upstream's own
//! cost then is a few microseconds, so "fetch − hello" measures the outbound
//! call through fado, not another wasm instantiation. It runs on its own
//! single-threaded runtime, apart from the load generator's.
//!
//! For the policy experiment an upstream can stand in for a platform of
//! limited capacity: `workers` requests are served at once, each taking
//! `service`, and the rest queue (as on a FaaS platform with a fixed number
//! of replicas). Every answer names the upstream in `x-served-by`, so a
//! client behind a proxy sees where its request went.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{Semaphore, oneshot};

pub const BODY: &str = "upstream ok\n";
/// The response header naming the upstream that answered.
pub const SERVED_BY: &str = "x-served-by";

/// How an upstream behaves.
#[derive(Debug, Clone)]
pub struct UpstreamSpec {
    pub name: String,
    /// Time each request takes once a worker has it (zero: answer at once).
    pub service: Duration,
    /// Requests served at once; `None`: no limit.
    pub workers: Option<usize>,
}

/// Stops the server when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// An upstream that answers at once, named `upstream`.
    pub fn start() -> Result<Upstream> {
        Self::start_with(UpstreamSpec {
            name: "upstream".into(),
            service: Duration::ZERO,
            workers: None,
        })
    }

    pub fn start_with(spec: UpstreamSpec) -> Result<Upstream> {
        let name = hyper::header::HeaderValue::from_str(&spec.name)
            .with_context(|| format!("upstream name {:?}", spec.name))?;
        let workers = spec.workers.map(|n| Arc::new(Semaphore::new(n.max(1))));
        let service = spec.service;
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding the upstream")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("creating the upstream runtime")?;
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("upstream".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        let stream = tokio::select! {
                            _ = &mut stopped => return,
                            accepted = listener.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                        };
                        let _ = stream.set_nodelay(true);
                        let (name, workers) = (name.clone(), workers.clone());
                        tokio::spawn(async move {
                            let service = service_fn(move |_req| {
                                let (name, workers) = (name.clone(), workers.clone());
                                async move {
                                    if !service.is_zero() {
                                        let _permit = match &workers {
                                            Some(w) => w.clone().acquire_owned().await.ok(),
                                            None => None,
                                        };
                                        tokio::time::sleep(service).await;
                                    }
                                    let mut response = Response::new(Full::new(
                                        Bytes::from_static(BODY.as_bytes()),
                                    ));
                                    response.headers_mut().insert(SERVED_BY, name);
                                    Ok::<_, hyper::Error>(response)
                                }
                            });
                            // A client closing mid-request is normal under load.
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                })
            })
            .context("spawning the upstream thread")?;
        Ok(Upstream {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
