//! One attempt at one deployment, over `wasi:http` directly: the upstream
//! request (headers passed in one list, the body written or spliced inside
//! the host), the wait for its response head within the deployment's
//! timeout, and the response relayed to the client, its body spliced
//! inside the host.

use std::time::Duration;

use fado_routing::headers;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions, ResponseOutparam, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

use crate::body::{RequestBody, Stream, drain, write_all};
use crate::incoming::Incoming;

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

/// The headers every attempt sends: the client's minus hop-by-hop ones,
/// `Host` (the upstream's authority replaces it), the host's `spin-*`
/// headers (they describe this component's route, not the upstream's),
/// and the client's `Content-Length` (set per attempt); plus `Forwarded`
/// and `X-Forwarded-*`.
pub fn outgoing_headers(inc: &Incoming) -> Vec<(String, Vec<u8>)> {
    let connection = inc.header("connection");
    let mut out = Vec::with_capacity(inc.headers.len() + 4);
    for (name, value) in &inc.headers {
        let n = name.as_str();
        if n == "host"
            || n == "content-length"
            || n.starts_with("spin-")
            || headers::is_hop_by_hop(n, connection)
            || matches!(
                n,
                "forwarded" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
            )
        {
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    // wasi:http does not tell a component the peer's address, so `for=` is
    // only known when an earlier proxy said it.
    let client = headers::Client {
        addr: None,
        host: inc.header("host"),
        proto: inc.scheme,
    };
    for (name, value) in headers::forwarded(
        &client,
        inc.header("forwarded"),
        inc.header("x-forwarded-for"),
        inc.header("x-forwarded-host"),
        inc.header("x-forwarded-proto"),
    ) {
        out.push((name.to_string(), value.into_bytes()));
    }
    out
}

/// Where an attempt goes.
pub struct Target<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path: &'a str,
    pub timeout: Duration,
}

/// Sends one attempt; returns once the upstream's response head arrived.
pub fn send(
    method: &Method,
    headers: &[(String, Vec<u8>)],
    target: &Target<'_>,
    body: RequestBody,
) -> Result<IncomingResponse, Failure> {
    let not_sent = |what: &str| Failure::NotSent(format!("{what} for {}", target.authority));
    let fields = match &body {
        RequestBody::Kept(bytes) if !bytes.is_empty() => {
            let mut with_length = headers.to_vec();
            with_length.push((
                "content-length".to_string(),
                bytes.len().to_string().into_bytes(),
            ));
            Fields::from_list(&with_length)
        }
        _ => Fields::from_list(headers),
    }
    .map_err(|e| Failure::NotSent(format!("the request's headers were refused: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let scheme = match target.scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    request
        .set_method(method)
        .map_err(|()| not_sent("an invalid method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| not_sent("an invalid scheme"))?;
    request
        .set_authority(Some(target.authority))
        .map_err(|()| not_sent("an invalid authority"))?;
    request
        .set_path_with_query(Some(target.path))
        .map_err(|()| not_sent("an invalid path"))?;
    let outgoing_body = match &body {
        RequestBody::Kept(bytes) if bytes.is_empty() => None,
        RequestBody::Taken => None,
        _ => Some(request.body().map_err(|()| not_sent("the request body"))?),
    };
    let options = RequestOptions::new();
    let nanos = |d: Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64;
    let _ = options.set_connect_timeout(Some(nanos(target.timeout.min(Duration::from_secs(5)))));
    let _ = options.set_first_byte_timeout(Some(nanos(target.timeout)));
    let _ = options.set_between_bytes_timeout(Some(nanos(target.timeout)));
    let future = outgoing_handler::handle(request, Some(options)).map_err(|e| classify(&e))?;
    if let Some(outgoing_body) = outgoing_body {
        match body {
            RequestBody::Kept(bytes) => {
                if let Ok(out) = outgoing_body.write() {
                    let written = write_all(&out, &bytes).and_then(|()| out.flush());
                    drop(out);
                    if written.is_ok() {
                        let _ = OutgoingBody::finish(outgoing_body, None);
                    }
                }
            }
            RequestBody::Streaming(stream) => {
                if let Some(f) = pump(stream, outgoing_body, &future)? {
                    return Err(f);
                }
            }
            RequestBody::Taken => {}
        }
    }
    wait(&future)
}

/// Streams the client's body to the upstream, until it ends or the
/// upstream answers early (the rest is then not sent). `Some`: the body
/// passed its limit.
fn pump(
    stream: Stream,
    outgoing_body: OutgoingBody,
    response: &FutureIncomingResponse,
) -> Result<Option<Failure>, Failure> {
    let Ok(out) = outgoing_body.write() else {
        return Ok(None);
    };
    let mut sent = stream.head.len() as u64;
    if let Some(limit) = stream.limit
        && sent > limit
    {
        drain(&stream.rest, limit);
        return Ok(Some(Failure::TooLarge(limit)));
    }
    if write_all(&out, &stream.head).is_err() {
        return Ok(None);
    }
    let answered = response.subscribe();
    loop {
        let room = match out.check_write() {
            Ok(n) => n,
            // The upstream stopped reading: its answer tells why.
            Err(_) => return Ok(None),
        };
        if room == 0 {
            let ready = out.subscribe();
            if wasip2::io::poll::poll(&[&ready, &answered]).contains(&1) {
                return Ok(None);
            }
            continue;
        }
        match out.splice(&stream.rest, room) {
            Ok(0) => {
                let readable = stream.rest.subscribe();
                if wasip2::io::poll::poll(&[&readable, &answered]).contains(&1) {
                    return Ok(None);
                }
            }
            Ok(n) => {
                sent += n;
                if let Some(limit) = stream.limit
                    && sent > limit
                {
                    // Dropping the unfinished body breaks the upstream
                    // request off.
                    drain(&stream.rest, limit);
                    return Ok(Some(Failure::TooLarge(limit)));
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Failure::Sent(format!(
                    "passing the request body on failed: {}",
                    e.to_debug_string()
                )));
            }
        }
    }
    let _ = out.flush();
    drop(out);
    let _ = OutgoingBody::finish(outgoing_body, None);
    Ok(None)
}

/// Waits for the response head.
fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, Failure> {
    loop {
        // The head is never there yet when asked first: wait, then look.
        future.subscribe().block();
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(e))) => return Err(classify(&e)),
            Some(Err(())) => return Err(Failure::Sent("the response was already taken".into())),
            None => {}
        }
    }
}

fn classify(e: &ErrorCode) -> Failure {
    let message = format!("{e:?}");
    match e {
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
        | ErrorCode::HttpRequestDenied => Failure::NotSent(message),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            Failure::Timeout(message)
        }
        _ => Failure::Sent(message),
    }
}

/// Relays the upstream's response to the client: hop-by-hop headers
/// dropped, the serving deployment named in `X-FaDO-Upstream`, the body
/// spliced inside the host. What of the body has already arrived is
/// passed on before the response is handed to the host, so a small
/// response leaves in one write, head and body together.
pub fn relay(upstream: IncomingResponse, deployment: &str, out: ResponseOutparam) {
    let status = upstream.status();
    let mut entries = {
        let fields = upstream.headers();
        fields.entries()
    };
    let connection = entries
        .iter()
        .find(|(n, _)| n == "connection")
        .and_then(|(_, v)| String::from_utf8(v.clone()).ok());
    entries.retain(|(n, _)| !headers::is_hop_by_hop(n, connection.as_deref()));
    // Trailers come only where announced, or with gRPC.
    let trailers_expected = entries.iter().any(|(n, v)| {
        n == "trailer" || (n == "content-type" && v.starts_with(b"application/grpc"))
    });
    entries.push((
        "x-fado-upstream".to_string(),
        deployment.as_bytes().to_vec(),
    ));
    let fields = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(client_body) = response.body() else {
        return;
    };
    let Ok(upstream_body) = upstream.consume() else {
        ResponseOutparam::set(out, Ok(response));
        let _ = OutgoingBody::finish(client_body, None);
        return;
    };
    let (Ok(input), Ok(output)) = (upstream_body.stream(), client_body.write()) else {
        ResponseOutparam::set(out, Ok(response));
        return;
    };
    // The head goes out with what of the body is already here, or, when
    // that is all of it, once the body is finished.
    let mut head = Some((out, response));
    let mut copy = splice_ready(&input, &output);
    if let Copy::Partial = copy {
        if let Some((out, response)) = head.take() {
            ResponseOutparam::set(out, Ok(response));
        }
        copy = if copy_rest(&input, &output) {
            Copy::Done
        } else {
            Copy::Failed
        };
    }
    drop((input, output));
    if let Copy::Done = copy {
        let trailers = trailers(upstream_body, trailers_expected);
        let _ = OutgoingBody::finish(client_body, trailers);
    }
    // Failed: the body is dropped unfinished, and the client sees the
    // response cut off, as the upstream's was.
    if let Some((out, response)) = head {
        ResponseOutparam::set(out, Ok(response));
    }
}

/// How far a copy got.
enum Copy {
    Partial,
    Done,
    Failed,
}

/// Splices what of the upstream body has already arrived, without waiting.
fn splice_ready(input: &InputStream, output: &OutputStream) -> Copy {
    loop {
        match output.splice(input, 1 << 20) {
            Ok(0) => return Copy::Partial,
            Ok(_) => {}
            Err(StreamError::Closed) => return Copy::Done,
            Err(StreamError::LastOperationFailed(_)) => return Copy::Failed,
        }
    }
}

/// Splices the rest of the upstream body to the client; false when either
/// side failed.
fn copy_rest(input: &InputStream, output: &OutputStream) -> bool {
    loop {
        match output.blocking_splice(input, 1 << 20) {
            Ok(_) => {}
            Err(StreamError::Closed) => return true,
            Err(StreamError::LastOperationFailed(_)) => return false,
        }
    }
}

/// The upstream body's trailers, once it ended (`expected`: the response
/// said it would send some; otherwise the body is just let go).
fn trailers(body: IncomingBody, expected: bool) -> Option<Fields> {
    if !expected {
        return None;
    }
    let future = IncomingBody::finish(body);
    loop {
        match future.get() {
            Some(Ok(Ok(t))) => return t,
            Some(_) => return None,
            None => future.subscribe().block(),
        }
    }
}
