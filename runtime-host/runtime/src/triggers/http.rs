//! The HTTP trigger: a hyper server (HTTP/1.1 and HTTP/2, optional TLS)
//! that routes each request with Spin's route rules and runs it in a fresh
//! instance of the matched component's `wasi:http/incoming-handler`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use fado_manifest::{Route, Router, routes::WELL_KNOWN_PREFIX};
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpView};

use crate::app::App;
use crate::capabilities::outbound_http::{LocalHandler, LocalTarget};
use crate::capabilities::{ComponentIndex, StoreData};
use crate::metrics::InvocationMetrics;

pub struct HttpTrigger {
    app: Arc<App>,
    router: Router,
    /// Indexed by component; `None` for components no HTTP trigger uses.
    handlers: Vec<Option<HttpComponent>>,
    tracker: TaskTracker,
    app_name: String,
}

struct HttpComponent {
    pre: ProxyPre<StoreData>,
    metrics: InvocationMetrics,
    /// Requests one instance may serve in turn (the component's
    /// `instance_reuse`; 1: a fresh instance per request, as Spin does).
    reuse: u32,
    /// Instances that served fewer than `reuse` requests, waiting for the
    /// next one (most recently used last).
    idle: Arc<Mutex<Vec<Idle>>>,
}

/// An instance kept for a later request of its component.
struct Idle {
    store: Store<StoreData>,
    proxy: Proxy,
    served: u32,
    since: Instant,
}

/// Instances kept idle per component at most: each holds a slot of the
/// pooling allocator (`--max-instances`) that a fresh instance could use.
/// Above the concurrency a proxy sees, so a busy component does not
/// re-create instances.
const MAX_IDLE: usize = 256;

/// An idle instance unused this long is dropped, giving its memory back
/// once the load that made it has passed.
const IDLE_TTL: Duration = Duration::from_secs(10);

/// How a request reached its component.
struct Matched<'r> {
    component: ComponentIndex,
    route: &'r str,
    route_prefix: &'r str,
    path_info: String,
    params: Vec<(String, String)>,
}

impl HttpTrigger {
    pub fn new(app: Arc<App>, tracker: TaskTracker) -> Result<Arc<Self>> {
        let manifest = &app.ctx.manifest;
        let (router, _) = manifest.http_router()?;
        let mut handlers: Vec<Option<HttpComponent>> = Vec::new();
        for index in 0..app.ctx.components.len() {
            let loaded = app.component(index);
            let used = manifest
                .http_triggers
                .iter()
                .any(|t| t.component == loaded.id);
            if !used {
                handlers.push(None);
                continue;
            }
            let pre = ProxyPre::new(loaded.pre.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "component {:?} is used by an HTTP trigger but does not export \
                     wasi:http/incoming-handler@0.2.x: {e:#}",
                    loaded.id
                )
            })?;
            let reuse = manifest
                .components
                .get(&loaded.id)
                .map_or(1, |c| c.instance_reuse);
            if reuse > 1 {
                tracing::info!(component = %loaded.id, reuse, "instances serve several requests in turn");
            }
            handlers.push(Some(HttpComponent {
                pre,
                metrics: InvocationMetrics::new(&loaded.id, "http"),
                reuse,
                idle: Arc::default(),
            }));
        }
        for t in &manifest.http_triggers {
            match &t.route {
                Route::Path(p) => {
                    tracing::info!(route = %p, component = %t.component, "HTTP route")
                }
                Route::Private => {
                    tracing::info!(component = %t.component, "private HTTP component (http://{}.spin.internal)", t.component)
                }
            }
        }
        let app_name = manifest.application.name.clone();
        let trigger = Arc::new(Self {
            app: app.clone(),
            router,
            handlers,
            tracker,
            app_name,
        });
        app.capabilities
            .http
            .set_local_handler(Arc::new(LocalDispatch(Arc::downgrade(&trigger))));
        if trigger.handlers.iter().flatten().any(|h| h.reuse > 1) {
            tokio::spawn(trim_idle(Arc::downgrade(&trigger)));
        }
        Ok(trigger)
    }

    /// Accepts connections until `shutdown`, then waits up to `drain` for
    /// in-flight requests to finish.
    async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: CancellationToken,
        drain: Duration,
    ) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, scheme, "serving HTTP");
        loop {
            let (stream, client) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Usually EMFILE; back off briefly instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let trigger = self.clone();
            let https = tls.is_some();
            let svc = service_fn(move |req: Request<Incoming>| {
                let trigger = trigger.clone();
                async move { Ok::<_, Infallible>(trigger.handle(req, client, local, https).await) }
            });
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let tls = tls.clone();
            tokio::spawn(async move {
                let result = match tls {
                    None => {
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), svc))
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(s), svc))
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%client, "TLS handshake failed: {e}");
                            return;
                        }
                    },
                };
                if let Err(e) = result {
                    tracing::debug!(%client, "connection ended with error: {e}");
                }
            });
        }
        drop(listener);
        tracing::info!("draining in-flight HTTP requests");
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("HTTP connections drained"),
            _ = tokio::time::sleep(drain) => tracing::warn!("drain timeout; closing remaining connections"),
        }
        Ok(())
    }

    async fn handle(
        self: &Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
        https: bool,
    ) -> Response<WasiBody> {
        // An HTTP/1.0 request may name no host (load balancers' health
        // checks send such); as Spin does, it is taken as addressed to the
        // listening socket, since a component's request needs an authority.
        if req.uri().authority().is_none()
            && !req.headers().contains_key(header::HOST)
            && let Ok(v) = HeaderValue::try_from(local.to_string())
        {
            req.headers_mut().insert(header::HOST, v);
        }
        let path = req.uri().path().to_string();
        if let Some(r) = self.well_known(&path) {
            return r;
        }
        let Some(matched) = self.match_route(&path) else {
            return error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route matches {path}"),
            );
        };
        let req = req.map(|b| b.map_err(HttpError::from).boxed_unsync());
        let _waiting = Waiting::start();
        match self.invoke(matched, req, client, https).await {
            Ok(r) => r,
            Err(r) => r,
        }
    }

    fn well_known(&self, path: &str) -> Option<Response<WasiBody>> {
        let rest = path.strip_prefix(WELL_KNOWN_PREFIX)?;
        Some(match rest {
            "health" => text_response(StatusCode::OK, "OK"),
            "info" => json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "host": "fado",
                    "version": env!("CARGO_PKG_VERSION"),
                    "application": self.app_name,
                }),
            ),
            _ => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route matches {path}"),
            ),
        })
    }

    fn match_route(&self, path: &str) -> Option<Matched<'_>> {
        let m = self.router.route(path)?;
        let route_prefix = m.route.strip_suffix("/...").unwrap_or(m.route);
        Some(Matched {
            component: self.app.component_index(m.component)?,
            route: m.route,
            route_prefix,
            path_info: m.path_info,
            params: m.params,
        })
    }

    async fn invoke(
        self: &Arc<Self>,
        matched: Matched<'_>,
        mut req: Request<WasiBody>,
        client: SocketAddr,
        https: bool,
    ) -> Result<Response<WasiBody>, Response<WasiBody>> {
        let Some(handler) = self
            .handlers
            .get(matched.component)
            .and_then(Option::as_ref)
        else {
            let id = &self.app.component(matched.component).id;
            return Err(error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("component {id:?} has no HTTP trigger"),
            ));
        };
        add_spin_headers(&mut req, &matched, client, https);

        let started = Instant::now();
        handler.metrics.started();
        let id = self.app.component(matched.component).id.clone();
        let kept = if handler.reuse > 1 {
            handler.idle.lock().expect("idle instances lock").pop()
        } else {
            None
        };
        let (mut store, kept_proxy, served) = match kept {
            Some(Idle {
                mut store,
                proxy,
                served,
                ..
            }) => {
                self.app.arm_deadline(&mut store);
                (store, Some(proxy), served)
            }
            None => (
                self.app
                    .new_store(matched.component)
                    .map_err(|e| internal(&id, &e))?,
                None,
                0,
            ),
        };
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (request, out) = {
            let mut http = store.data_mut().http();
            let request = http.new_incoming_request(scheme, req);
            let out = http.new_response_outparam(tx);
            (request, out)
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                return Err(error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("{e:#}"),
                ));
            }
        };
        let out = out.map_err(|e| internal(&id, &anyhow::Error::from(e)))?;
        let pre = handler.pre.clone();
        let metrics = handler.metrics.clone();
        let keep = (served + 1 < handler.reuse).then(|| handler.idle.clone());
        let task_id = id.clone();
        // The guest runs on its own task so the response body can stream
        // while the handler is still writing it.
        let task = self.tracker.spawn(async move {
            let result = async {
                let proxy = match kept_proxy {
                    Some(p) => p,
                    None => pre.instantiate_async(&mut store).await?,
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await?;
                Ok::<_, wasmtime::Error>(proxy)
            }
            .await
            .map_err(anyhow::Error::from);
            metrics.finished(started.elapsed(), result.is_ok());
            match result {
                Ok(proxy) => {
                    // Only an instance whose handler returned normally is
                    // kept; one that trapped is dropped with its memory.
                    if let Some(idle) = keep {
                        let mut idle = idle.lock().expect("idle instances lock");
                        if idle.len() < MAX_IDLE {
                            idle.push(Idle {
                                store,
                                proxy,
                                served: served + 1,
                                since: Instant::now(),
                            });
                        }
                    }
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(component = %task_id, "HTTP handler failed: {e:?}");
                    Err(e)
                }
            }
        });
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => {
                tracing::error!(component = %id, "component answered with error {code:?}");
                Err(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "component_error",
                    &format!("component {id:?} failed: {code:?}"),
                ))
            }
            Err(_) => {
                // The outparam was dropped unset: the guest trapped or returned early.
                let (detail, exhausted) = match task.await {
                    Ok(Err(e)) => classify(&e),
                    Ok(Ok(())) => (
                        "the handler returned without setting a response".to_string(),
                        false,
                    ),
                    Err(e) => (format!("the handler task failed: {e}"), false),
                };
                let status = if exhausted {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                Err(error_response(
                    status,
                    "component_error",
                    &format!("component {id:?} failed: {detail}"),
                ))
            }
        }
    }

    /// Serves a request a component made to `self` or `<id>.spin.internal`.
    async fn local(
        self: Arc<Self>,
        target: LocalTarget,
        req: Request<WasiBody>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let path = req.uri().path().to_string();
        let matched = match target {
            LocalTarget::App => match self.match_route(&path) {
                Some(m) => m,
                None => {
                    return Ok(error_response(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        &format!("no route matches {path}"),
                    ));
                }
            },
            LocalTarget::Component(id) => {
                let Some(component) = self.app.component_index(&id) else {
                    return Err(HttpError::DestinationNotFound);
                };
                Matched {
                    component,
                    route: "/...",
                    route_prefix: "",
                    path_info: path,
                    params: Vec::new(),
                }
            }
        };
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(match self.invoke(matched, req, loopback, false).await {
            Ok(r) | Err(r) => r,
        })
    }
}

/// Drops instances that sat idle longer than [`IDLE_TTL`], for as long as
/// the trigger exists. The oldest are at the front of each list.
async fn trim_idle(trigger: std::sync::Weak<HttpTrigger>) {
    loop {
        tokio::time::sleep(IDLE_TTL / 2).await;
        let Some(t) = trigger.upgrade() else { return };
        for h in t.handlers.iter().flatten() {
            let stale: Vec<Idle> = {
                let mut idle = h.idle.lock().expect("idle instances lock");
                let fresh = idle.partition_point(|i| i.since.elapsed() > IDLE_TTL);
                idle.drain(..fresh).collect()
            };
            // Dropped outside the lock: freeing an instance resets its memory.
            drop(stale);
        }
    }
}

/// `count` listening sockets on `addr`, all bound with `SO_REUSEPORT` so
/// the kernel spreads new connections across them (a port of 0 picks one
/// free port for all).
pub fn listeners(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let mut out: Vec<std::net::TcpListener> = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&at.into()).with_context(|| {
            format!("cannot listen on {addr} (is another server using it? pass --listen ADDR)")
        })?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

/// Serves `trigger` on one thread per listener, each with its own
/// single-threaded runtime: a request is read, run and answered, and its
/// upstream calls made, on the thread that accepted its connection, with
/// no hand-offs between threads on the way (those wake-ups cost more CPU
/// per request than the work-stealing saved; docs/benchmarks.md,
/// "Router"). Returns once every worker has drained.
pub async fn serve_on_workers(
    trigger: Arc<HttpTrigger>,
    listeners: Vec<std::net::TcpListener>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<()> {
    let mut workers = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (trigger, tls, shutdown) = (trigger.clone(), tls.clone(), shutdown.clone());
        let worker = std::thread::Builder::new()
            .name(format!("fado-http-{i}"))
            .spawn(move || -> Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting an HTTP worker's runtime")?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    tokio::select! {
                        r = trigger.serve(listener, tls, shutdown, drain) => r,
                        () = spin_while_busy() => unreachable!("the spinner never ends"),
                    }
                })
            })
            .context("starting an HTTP worker thread")?;
        workers.push(worker);
    }
    let joined = tokio::task::spawn_blocking(move || {
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an HTTP worker panicked")))
            })
            .collect::<Result<Vec<()>>>()
    })
    .await
    .context("waiting for the HTTP workers")?;
    joined.map(drop)
}

thread_local! {
    /// Requests in progress on this worker.
    static WAITING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    static WAKE_SPINNER: std::rc::Rc<tokio::sync::Notify> = std::rc::Rc::new(tokio::sync::Notify::new());
}

/// Counts a request as in progress on this worker while it lives.
struct Waiting;

impl Waiting {
    fn start() -> Self {
        WAITING.with(|w| w.set(w.get() + 1));
        WAKE_SPINNER.with(|s| s.notify_one());
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|w| w.set(w.get().saturating_sub(1)));
    }
}

/// Longest a worker polls for I/O instead of sleeping, from the last
/// request it started.
const SPIN: Duration = Duration::from_micros(200);

/// Most requests in progress on a worker for it to spin: with more, it has
/// work enough not to sleep.
const SPIN_BELOW: u32 = 4;

/// For a short while after a request starts, while few are in progress on
/// this worker, keeps polling for I/O instead of sleeping: an upstream's
/// answer, and the client's next request, are then picked up at once, not
/// after the thread (and on a VM, its virtual CPU) wakes from idle. Go's
/// scheduler, and so Caddy, spins the same way.
async fn spin_while_busy() {
    let notify = WAKE_SPINNER.with(|s| s.clone());
    loop {
        notify.notified().await;
        let until = Instant::now() + SPIN;
        while WAITING.with(|w| w.get()) < SPIN_BELOW && Instant::now() < until {
            // Lets any other runnable thread (a database, the load) have
            // this CPU first: the spin only fills time that would idle.
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

struct LocalDispatch(std::sync::Weak<HttpTrigger>);

impl LocalHandler for LocalDispatch {
    fn handle(
        &self,
        target: LocalTarget,
        request: Request<WasiBody>,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        let trigger = self.0.upgrade();
        Box::pin(async move {
            match trigger {
                Some(t) => t.local(target, request).await,
                None => Err(HttpError::DestinationUnavailable),
            }
        })
    }
}

/// Adds the headers Spin gives components, and drops transport-only ones.
fn add_spin_headers(req: &mut Request<WasiBody>, m: &Matched<'_>, client: SocketAddr, https: bool) {
    use header::HeaderName;
    let scheme = if https { "https" } else { "http" };
    let full_url = {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        format!("{scheme}://{host}{path_and_query}")
    };
    let h = req.headers_mut();
    h.remove(header::CONNECTION);
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::try_from(value) {
            h.insert(name, v);
        }
    };
    set(HeaderName::from_static("spin-full-url"), &full_url);
    set(HeaderName::from_static("spin-path-info"), &m.path_info);
    set(HeaderName::from_static("spin-matched-route"), m.route);
    set(HeaderName::from_static("spin-base-path"), "/");
    set(HeaderName::from_static("spin-raw-component-route"), m.route);
    set(
        HeaderName::from_static("spin-component-route"),
        m.route_prefix,
    );
    set(
        HeaderName::from_static("spin-client-addr"),
        &client.to_string(),
    );
    for (name, value) in &m.params {
        if let Ok(n) = HeaderName::try_from(path_match_header(name)) {
            set(n, value);
        }
    }
}

/// The header that carries route parameter `name` (`:name`). Spin spells it
/// as the variable `SPIN_PATH_MATCH_<NAME>` and turns every underscore into
/// a dash, so `:path_segment` arrives as `spin-path-match-path-segment`.
fn path_match_header(name: &str) -> String {
    format!(
        "spin-path-match-{}",
        name.to_ascii_lowercase().replace('_', "-")
    )
}

/// Why an invocation failed, and whether it was for want of capacity (the
/// pooling allocator's instance limit) rather than the component's fault.
fn classify(e: &anyhow::Error) -> (String, bool) {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        (format!("instance pool exhausted ({e:#})"), true)
    } else if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        (format!("trap: {trap}"), false)
    } else {
        (format!("{e:#}"), false)
    }
}

fn internal(component: &str, e: &anyhow::Error) -> Response<WasiBody> {
    tracing::error!(component, "preparing an instance failed: {e:#}");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "host_error",
        &format!("preparing component {component:?} failed: {e:#}"),
    )
}

fn body(bytes: impl Into<Bytes>) -> WasiBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text_response(status: StatusCode, text: &str) -> Response<WasiBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body(text.to_string()))
        .expect("static response parts")
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<WasiBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body(value.to_string()))
        .expect("static response parts")
}

/// Host-generated errors use the same JSON shape as FaDO's API.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<WasiBody> {
    json_response(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

/// Builds a TLS acceptor from PEM files (`--tls-cert`, `--tls-key`).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert)
            .with_context(|| format!("opening TLS certificate {}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).with_context(|| format!("opening TLS key {}", key.display()))?,
    ))
    .with_context(|| format!("reading TLS key {}", key.display()))?
    .with_context(|| format!("no private key in {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::path_match_header;

    #[test]
    fn path_match_headers_use_dashes_like_spin() {
        assert_eq!(path_match_header("id"), "spin-path-match-id");
        assert_eq!(
            path_match_header("path_segment"),
            "spin-path-match-path-segment"
        );
        assert_eq!(path_match_header("User_ID"), "spin-path-match-user-id");
        assert_eq!(path_match_header("a-b"), "spin-path-match-a-b");
    }
}
