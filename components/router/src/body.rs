//! The client's request body: held in memory when small enough that a
//! retry can send it again, streamed to the one attempt that takes it
//! otherwise.

use wasip2::http::types::IncomingBody;
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

use crate::answer::Answer;

/// Where the client's body is.
pub enum RequestBody {
    /// In memory: every attempt sends a copy (empty: no body at all).
    Kept(Vec<u8>),
    /// Streaming from the client; the first attempt takes it.
    Streaming(Stream),
    /// Gone with an earlier attempt: nothing is left to retry with.
    Taken,
}

/// A body streaming from the client: what was read ahead, then the rest.
pub struct Stream {
    pub head: Vec<u8>,
    /// Declared before `_body`: a stream is dropped before its body.
    pub rest: InputStream,
    _body: IncomingBody,
    /// The most bytes to pass on when the body came without a length (the
    /// host enforces a declared `Content-Length` itself).
    pub limit: Option<u64>,
}

impl RequestBody {
    /// The body for the next attempt.
    pub fn take(&mut self) -> RequestBody {
        match self {
            RequestBody::Kept(bytes) => RequestBody::Kept(bytes.clone()),
            RequestBody::Streaming(_) => std::mem::replace(self, RequestBody::Taken),
            RequestBody::Taken => RequestBody::Taken,
        }
    }

    /// Whether a retry could send the body again.
    pub fn is_kept(&self) -> bool {
        matches!(self, RequestBody::Kept(_))
    }
}

/// Limits the body is read against.
pub struct Limits {
    /// The largest body accepted.
    pub max: u64,
    /// Bodies up to this size are kept for retries.
    pub keep: u64,
}

/// Reads what must be read before routing: a body with a length up to
/// `keep`, or the start of one without a length (chunked) to learn whether
/// it ends within `keep`. A body over the limit, or a bad
/// `Content-Length`, gets its error answer.
pub fn read(
    content_length: Option<&str>,
    body: Option<IncomingBody>,
    limits: &Limits,
) -> Result<RequestBody, Answer> {
    let length = match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return Err(Answer::error(
                400,
                "bad_request",
                "Content-Length is not a number",
            ));
        }
        None => None,
    };
    if let Some(n) = length
        && n > limits.max
    {
        if let Some(stream) = body.as_ref().and_then(|b| b.stream().ok()) {
            drain(&stream, limits.max);
        }
        return Err(Answer::too_large(limits.max, Some(n)));
    }
    let Some(body) = body else {
        return Ok(RequestBody::Kept(Vec::new()));
    };
    let Ok(stream) = body.stream() else {
        return Ok(RequestBody::Kept(Vec::new()));
    };
    let keep = match length {
        Some(0) => return Ok(RequestBody::Kept(Vec::new())),
        // Larger with a known length: passed on as it comes.
        Some(n) if n > limits.keep => {
            return Ok(RequestBody::Streaming(Stream {
                head: Vec::new(),
                rest: stream,
                _body: body,
                limit: None,
            }));
        }
        Some(n) => n,
        None => limits.keep,
    };
    // Most requests without a length have no body at all: one read tells.
    let mut head = Vec::new();
    loop {
        match stream.blocking_read(keep.saturating_sub(head.len() as u64).max(1) + 1) {
            Ok(chunk) => head.extend_from_slice(&chunk),
            Err(StreamError::Closed) => {
                if head.len() as u64 > limits.max {
                    return Err(Answer::too_large(limits.max, None));
                }
                return Ok(RequestBody::Kept(head));
            }
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Answer::error(
                    400,
                    "bad_request",
                    format!("reading the request body failed: {}", e.to_debug_string()),
                ));
            }
        }
        if head.len() as u64 > keep {
            return Ok(RequestBody::Streaming(Stream {
                head,
                rest: stream,
                _body: body,
                limit: length.is_none().then_some(limits.max),
            }));
        }
    }
}

/// Reads and drops up to `up_to` more bytes of a body the router refuses,
/// so that a client still sending it has finished (or nearly) when the
/// answer comes: closing a connection with unread data resets it, and the
/// client may lose the answer. Bounded, as a body the router accepts is.
pub fn drain(stream: &InputStream, up_to: u64) {
    let mut read = 0u64;
    while read < up_to {
        match stream.blocking_read((up_to - read).min(64 << 10)) {
            Ok(chunk) => read += chunk.len() as u64,
            Err(_) => return,
        }
    }
}

/// Writes all of `data` to `out`, waiting for room as needed.
pub fn write_all(out: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let room = out.check_write()?;
        if room == 0 {
            out.subscribe().block();
            continue;
        }
        let n = data.len().min(room as usize);
        out.write(&data[..n])?;
        data = &data[n..];
    }
    Ok(())
}
