//! `wasi:http` (types, outgoing-handler): outbound requests through one
//! keep-alive connection pool for the whole process (HTTP/1.1 and HTTP/2,
//! http and https mixed, rustls with the system's roots), checked against
//! `allowed_outbound_hosts` the way Spin checks them. Requests to
//! `http://self` (or `self.alt`) and `http://<component>.spin.internal` are
//! served in-process by the HTTP trigger without touching the network.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use fado_manifest::AllowedHosts;
use fado_manifest::allowed_hosts::service_chaining_component;
use futures::future::BoxFuture;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;

/// Where an in-process request goes.
#[derive(Debug, Clone)]
pub enum LocalTarget {
    /// `http://self`: routed like an inbound request.
    App,
    /// `http://<id>.spin.internal`: straight to a component, private routes included.
    Component(String),
}

/// Implemented by the HTTP trigger to serve in-process requests.
pub trait LocalHandler: Send + Sync {
    fn handle(
        &self,
        target: LocalTarget,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Result<http::Response<WasiBody>, Error>>;
}

/// The outbound HTTP client: keep-alive connection pools, one per thread
/// that makes requests (each HTTP worker thread serves its requests'
/// upstream calls from its own pool, so a pooled connection's task runs
/// on the thread that uses it), sharing one TLS configuration.
#[derive(Clone)]
pub struct HttpClient {
    settings: Arc<ClientSettings>,
}

struct ClientSettings {
    tls: rustls::ClientConfig,
    pooled: bool,
}

type PooledClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, WasiBody>;

thread_local! {
    /// This thread's pools, by the settings they were made from.
    static POOLS: std::cell::RefCell<Vec<(usize, PooledClient)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl HttpClient {
    /// `pooled = false` opens a connection per request (for comparison runs).
    pub fn new(pooled: bool) -> Self {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(native_roots())
        .with_no_client_auth();
        Self {
            settings: Arc::new(ClientSettings { tls, pooled }),
        }
    }

    /// This thread's client.
    fn client(&self) -> PooledClient {
        let id = Arc::as_ptr(&self.settings) as usize;
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, c)) = pools.iter().find(|(k, _)| *k == id) {
                return c.clone();
            }
            let c = self.build();
            pools.push((id, c.clone()));
            c
        })
    }

    fn build(&self) -> PooledClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(self.settings.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(if self.settings.pooled { usize::MAX } else { 0 });
        builder.build(https)
    }

    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let connect = options.and_then(|o| o.connect_timeout);
        let first_byte = options.and_then(|o| o.first_byte_timeout);
        let between = options.and_then(|o| o.between_bytes_timeout);
        let limit = match (connect, first_byte) {
            (None, None) => DEFAULT_RESPONSE_TIMEOUT,
            (c, f) => c.unwrap_or_default() + f.unwrap_or(DEFAULT_RESPONSE_TIMEOUT),
        };
        let response = match tokio::time::timeout(limit, self.client().request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(client_error(&e)),
            Err(_) => return Err(Error::ConnectionReadTimeout),
        };
        Ok(response.map(|body| {
            let body = body.map_err(Error::from);
            match between {
                Some(t) => TimeoutBody::new(body, t).boxed_unsync(),
                None => body.boxed_unsync(),
            }
        }))
    }
}

const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(600);

fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("loading system root certificates: {e}");
    }
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    roots
}

fn client_error(e: &hyper_util::client::legacy::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Error::ConnectionTerminated
                }
                _ if e.is_connect() => Error::DestinationUnavailable,
                _ => Error::HttpProtocolError,
            };
        }
        source = s.source();
    }
    if e.is_connect() {
        // hyper-util reports DNS failures as connect errors without an io source.
        let text = e.to_string();
        if text.contains("dns") {
            return Error::DnsError {
                rcode: Some(text),
                info_code: None,
            };
        }
        return Error::DestinationUnavailable;
    }
    tracing::debug!("outbound HTTP failed: {e:?}");
    Error::HttpProtocolError
}

/// Fails the body when no data arrives for `timeout`.
struct TimeoutBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl<B> TimeoutBody<B> {
    fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl<B: Body<Data = Bytes, Error = Error> + Unpin> Body for TimeoutBody<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                let deadline = tokio::time::Instant::now() + self.timeout;
                self.sleep.as_mut().reset(deadline);
                Poll::Ready(r)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

pub struct OutboundHttp {
    client: HttpClient,
    components: Vec<(Arc<str>, Arc<AllowedHosts>)>,
    local: Arc<OnceLock<Arc<dyn LocalHandler>>>,
}

impl OutboundHttp {
    /// Connects in-process requests to the HTTP trigger once it exists.
    pub fn set_local_handler(&self, handler: Arc<dyn LocalHandler>) {
        let _ = self.local.set(handler);
    }
}

pub struct InstanceHttp {
    ctx: WasiHttpCtx,
    hooks: OutboundHooks,
}

pub struct OutboundHooks {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    client: HttpClient,
    local: Arc<OnceLock<Arc<dyn LocalHandler>>>,
}

impl WasiHttpView for StoreData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

impl Capability for OutboundHttp {
    type InstanceState = InstanceHttp;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        _get: fn(&mut StoreData) -> &mut InstanceHttp,
    ) -> Result<()> {
        // wasmtime-wasi-http reaches its state through `WasiHttpView`.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker).map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        Ok(Self {
            client: HttpClient::new(app.options.outbound_http_pooling),
            components: app
                .components
                .iter()
                .map(|c| (Arc::from(c.id.as_str()), c.allowed_hosts.clone()))
                .collect(),
            local: Arc::new(OnceLock::new()),
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceHttp> {
        let (id, allowed) = &self.components[component];
        Ok(InstanceHttp {
            ctx: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                component: id.clone(),
                allowed: allowed.clone(),
                client: self.client.clone(),
                local: self.local.clone(),
            },
        })
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

fn finished(
    response: impl Future<Output = Result<http::Response<WasiBody>, Error>> + Send + 'static,
) -> SendFuture {
    Box::new(async move {
        let r = response.await?;
        Ok((
            r,
            Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
        ))
    })
}

impl OutboundHooks {
    fn deny(&self, url: &http::Uri) -> SendFuture {
        tracing::info!(component = %self.component, %url, "outbound HTTP denied: not in allowed_outbound_hosts");
        Box::new(async { Err(Error::HttpRequestDenied) })
    }

    fn local(&self, target: LocalTarget, request: http::Request<WasiBody>) -> SendFuture {
        match self.local.get() {
            Some(h) => finished(h.handle(target, request)),
            None => Box::new(async { Err(Error::DestinationUnavailable) }),
        }
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16();

        if host == "self" || host == "self.alt" {
            if !self.allowed.allows_self(&scheme) {
                return self.deny(&uri);
            }
            return self.local(LocalTarget::App, request);
        }
        if !self.allowed.allows(&scheme, &host, port) {
            return self.deny(&uri);
        }
        if let Some(id) = service_chaining_component(&host) {
            return self.local(LocalTarget::Component(id.to_string()), request);
        }
        let client = self.client.clone();
        finished(async move { client.send(request, options).await })
    }
}
