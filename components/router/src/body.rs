//! The client's request body: held in memory when small enough that a
//! retry can send it again, streamed to the one attempt that takes it
//! otherwise.

use anyhow::Context as _;
use wstd::http::Body;

use crate::answer;

/// Where the client's body is.
pub enum RequestBody {
    /// In memory: every attempt sends a copy.
    Kept(Vec<u8>),
    /// Streaming from the client (spliced inside the host when its length
    /// is known, counted through the component when it is not); the first
    /// attempt takes it.
    Streaming(Body),
    /// Gone with an earlier attempt: nothing is left to retry with.
    Taken,
}

impl RequestBody {
    /// The body for the next attempt, and its length when held in memory.
    pub fn for_attempt(&mut self) -> Option<(Body, Option<u64>)> {
        match std::mem::replace(self, RequestBody::Taken) {
            RequestBody::Kept(bytes) => {
                let len = bytes.len() as u64;
                *self = RequestBody::Kept(bytes.clone());
                Some((Body::from(bytes), Some(len)))
            }
            RequestBody::Streaming(b) => Some((b, None)),
            RequestBody::Taken => None,
        }
    }

    /// Whether a retry could send the body again.
    pub fn is_kept(&self) -> bool {
        matches!(self, RequestBody::Kept(_))
    }
}

/// The error a body of unknown length ends with once it passes the limit.
#[derive(Debug)]
pub struct TooLarge(pub u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the body is larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// Limits the body is read against.
pub struct Limits {
    /// The largest body accepted.
    pub max: u64,
    /// Bodies up to this size are kept for retries.
    pub keep: u64,
}

/// Reads what must be read before routing: a body with a length up to
/// `keep`, or the start of one without a length (chunked) to learn whether
/// it ends within `keep`. Answers a body over the limit (or a bad
/// `Content-Length`) with its error response.
pub async fn read(
    content_length: Option<&str>,
    body: Body,
    limits: &Limits,
) -> anyhow::Result<Result<RequestBody, wstd::http::Response<Body>>> {
    let length = match content_length.map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return Ok(Err(answer::error(
                400,
                "bad_request",
                "Content-Length is not a number",
            )));
        }
        None => None,
    };
    Ok(Ok(match length {
        Some(n) if n > limits.max => return Ok(Err(answer::too_large(limits.max, Some(n)))),
        Some(0) => RequestBody::Kept(Vec::new()),
        Some(n) if n <= limits.keep => {
            let mut b = body;
            let bytes = b.contents().await.context("reading the request body")?;
            RequestBody::Kept(bytes.to_vec())
        }
        // Larger with a known length: spliced by the host.
        Some(_) => RequestBody::Streaming(body),
        None => match read_unsized(body, limits).await? {
            Unsized::Whole(bytes) if bytes.len() as u64 > limits.max => {
                return Ok(Err(answer::too_large(limits.max, None)));
            }
            Unsized::Whole(bytes) => RequestBody::Kept(bytes),
            Unsized::Streaming(b) => RequestBody::Streaming(b),
        },
    }))
}

/// A body of unknown length after [`read_unsized`].
enum Unsized {
    Whole(Vec<u8>),
    Streaming(Body),
}

/// Reads a body that came without `Content-Length` (the host does not
/// show a component `Transfer-Encoding`) up to `keep` bytes. Most such
/// requests have no body at all, and one read tells. A longer body streams
/// on through the component, counted against `max`.
async fn read_unsized(body: Body, limits: &Limits) -> anyhow::Result<Unsized> {
    use futures_lite::StreamExt as _;
    use wstd::http::body::util::{BodyExt, BodyStream, LengthLimitError, Limited, StreamBody};
    use wstd::http::body::{Bytes, Frame};

    let mut rest = body.into_boxed_body();
    let mut head: Vec<Frame<Bytes>> = Vec::new();
    let mut size = 0u64;
    while size <= limits.keep {
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
    let max = limits.max;
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let counted = Limited::new(StreamBody::new(frames), cap).map_err(move |e| match e
        .downcast::<LengthLimitError>(
    ) {
        Ok(_) => anyhow::Error::new(TooLarge(max)),
        Err(e) => anyhow::anyhow!(e),
    });
    Ok(Unsized::Streaming(Body::from_http_body(counted)))
}
