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

/// The error a body cut off by [`read_unsized`]'s count ends with.
#[derive(Debug)]
struct TooLarge(u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the body is larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLarge {}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NotSent(m) | Failure::Timeout(m) | Failure::Sent(m) => m,
            Failure::TooLarge(_) => "the body is too large",
        }
    }
}

/// A request body of unknown length, after [`read_unsized`].
pub enum Unsized {
    /// It ended within the retry buffer: kept whole, so a retry can send
    /// it again.
    Whole(Vec<u8>),
    /// Longer: what was read so far and the rest, streamed on and cut off
    /// with [`Failure::TooLarge`] once past the limit.
    Streaming(Body),
}

/// Reads a body that came without `Content-Length` (chunked; the host does
/// not show a component `Transfer-Encoding`) up to `keep` bytes. Most such
/// requests have no body at all, and one read tells. A longer body streams
/// on through the component, counted against `max`: only bodies without a
/// length pay for that, the others are spliced inside the host.
pub async fn read_unsized(body: Body, keep: u64, max: u64) -> anyhow::Result<Unsized> {
    use anyhow::Context as _;
    use futures_lite::StreamExt as _;
    use wstd::http::body::util::{BodyExt, BodyStream, LengthLimitError, Limited, StreamBody};
    use wstd::http::body::{Bytes, Frame};

    let mut rest = body.into_boxed_body();
    let mut head: Vec<Frame<Bytes>> = Vec::new();
    let mut size = 0u64;
    while size <= keep {
        match rest.frame().await {
            None => {
                let mut whole = Vec::with_capacity(size as usize);
                for frame in head {
                    if let Ok(data) = frame.into_data() {
                        whole.extend_from_slice(&data);
                    }
                }
                return Ok(Unsized::Whole(whole));
            }
            Some(frame) => {
                let frame = frame.context("reading the request body")?;
                size += frame.data_ref().map_or(0, |d| d.len() as u64);
                head.push(frame);
            }
        }
    }
    let frames = futures_lite::stream::iter(head.into_iter().map(Ok)).chain(BodyStream::new(rest));
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let counted = Limited::new(StreamBody::new(frames), cap).map_err(move |e| match e
        .downcast::<LengthLimitError>(
    ) {
        Ok(_) => anyhow::Error::new(TooLarge(max)),
        Err(e) => anyhow::anyhow!(e),
    });
    Ok(Unsized::Streaming(Body::from_http_body(counted)))
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
    if let Some(TooLarge(max)) = e.downcast_ref::<TooLarge>() {
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
