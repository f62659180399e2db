//! One attempt at one deployment: the upstream request, sent with the
//! deployment's timeout, and what a failure means for a retry.

use std::time::Duration;

use fado_routing::headers;
use wstd::http::error::ErrorCode;
use wstd::http::{Body, Client, HeaderMap, HeaderValue, Method, Request, Response};

/// How an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// The request never left (refused, unreachable, DNS, connect timeout,
    /// TLS handshake): any method may go elsewhere.
    NotSent(String),
    /// No answer within the deployment's timeout.
    Timeout(String),
    /// Failed after the request was (or may have been) sent.
    Sent(String),
    /// The client's body (of unknown length) ran past the router's limit
    /// while it streamed; the attempt was cut off there.
    TooLarge(u64),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NotSent(m) | Failure::Timeout(m) | Failure::Sent(m) => m,
            Failure::TooLarge(_) => "the body is too large",
        }
    }
}

/// The parts of the client's request every attempt reuses.
pub struct Outgoing {
    pub method: Method,
    pub headers: HeaderMap,
}

impl Outgoing {
    /// The client's method and headers minus hop-by-hop ones and `Host`
    /// (the upstream URL's authority replaces it), plus `Forwarded` and
    /// `X-Forwarded-*`.
    pub fn new(method: Method, incoming: &HeaderMap, client: &headers::Client<'_>) -> Self {
        let connection = incoming
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut out = HeaderMap::with_capacity(incoming.len() + 4);
        for (name, value) in incoming {
            let n = name.as_str();
            if n == "host" || headers::is_hop_by_hop(n, connection.as_deref()) {
                continue;
            }
            if matches!(
                n,
                "forwarded" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
            ) {
                continue;
            }
            out.append(name.clone(), value.clone());
        }
        let get = |n: &str| incoming.get(n).and_then(|v| v.to_str().ok());
        for (name, value) in headers::forwarded(
            client,
            get("forwarded"),
            get("x-forwarded-for"),
            get("x-forwarded-host"),
            get("x-forwarded-proto"),
        ) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.insert(name, v);
            }
        }
        Outgoing {
            method,
            headers: out,
        }
    }
}

/// Sends one attempt: answers once the upstream's response head arrived.
/// `len` is the body's length when the router holds it: it is sent as
/// `Content-Length` (an empty body then goes as no body at all, not as an
/// empty chunked one).
pub async fn send(
    out: &Outgoing,
    url: &str,
    body: Body,
    len: Option<u64>,
    timeout: Duration,
) -> Result<Response<Body>, Failure> {
    let mut request = Request::builder()
        .method(out.method.clone())
        .uri(url)
        .body(body)
        .map_err(|e| Failure::NotSent(format!("building the request to {url}: {e}")))?;
    *request.headers_mut() = out.headers.clone();
    if let Some(len) = len {
        request
            .headers_mut()
            .insert("content-length", HeaderValue::from(len));
    }
    let mut client = Client::new();
    client.set_connect_timeout(timeout.min(Duration::from_secs(5)));
    client.set_first_byte_timeout(timeout);
    client.set_between_bytes_timeout(timeout);
    client.send(request).await.map_err(|e| classify(url, &e))
}

fn classify(url: &str, e: &anyhow::Error) -> Failure {
    if let Some(crate::body::TooLarge(max)) = e.downcast_ref::<crate::body::TooLarge>() {
        return Failure::TooLarge(*max);
    }
    let message = format!("{url}: {e:#}");
    match e.downcast_ref::<ErrorCode>() {
        Some(
            ErrorCode::ConnectionRefused
            | ErrorCode::DnsTimeout
            | ErrorCode::DnsError(_)
            | ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::DestinationIpUnroutable
            | ErrorCode::ConnectionTimeout
            | ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_)
            | ErrorCode::HttpRequestDenied,
        ) => Failure::NotSent(message),
        Some(ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout) => {
            Failure::Timeout(message)
        }
        _ => Failure::Sent(message),
    }
}
