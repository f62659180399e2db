//! The router's own answers: JSON error bodies in the API's shape,
//! `{"error": {"code", "message"}}`.

use serde_json::json;
use wasip2::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

use crate::table::Refusal;

/// An answer the router makes itself.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Answer {
            status,
            body: json!({"error": {"code": code, "message": message.into()}}).to_string(),
        }
    }

    /// The answer to a body longer than the limit: its `Content-Length`, or
    /// `None` when it came without one and was cut off while streaming.
    pub fn too_large(max: u64, length: Option<u64>) -> Self {
        let message = match length {
            Some(n) => format!("the body is {n} bytes; the router accepts at most {max}"),
            None => format!("the body is more than {max} bytes, the most the router accepts"),
        };
        Answer::error(413, "too_large", message)
    }

    /// Why the route table cannot route the request.
    pub fn refusal(why: Refusal, buckets: &[String]) -> Self {
        let names = buckets.join(", ");
        match why {
            Refusal::NoTable => Answer::error(
                503,
                "no_route_table",
                "the planner has not published a route table yet",
            ),
            Refusal::UnknownBucket(b) => Answer::error(
                404,
                "unknown_bucket",
                format!("bucket {b:?} does not exist"),
            ),
            Refusal::MissingHeader(h) => Answer::error(
                400,
                "missing_bucket_header",
                format!("the request names no bucket: send the {h} header"),
            ),
            Refusal::BadHeader(message) => Answer::error(400, "bad_bucket_header", message),
            Refusal::NoTargets => Answer::error(
                503,
                "no_upstream",
                if names.is_empty() {
                    "no FaaS deployment is registered".to_string()
                } else {
                    format!("no FaaS deployment holds every bucket of {names}")
                },
            ),
            Refusal::AllEjected => Answer::error(
                503,
                "no_healthy_upstream",
                format!(
                    "every deployment serving {names} is ejected after failures or found down; try again shortly"
                ),
            ),
            Refusal::Unavailable(message) => Answer::error(
                503,
                "route_table_unavailable",
                format!("neither the route store nor PostgreSQL answered: {message}"),
            ),
        }
    }

    /// Sends the answer to the client.
    pub fn send(self, out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"application/json".to_vec()),
            (
                "content-length".to_string(),
                self.body.len().to_string().into_bytes(),
            ),
        ])
        .unwrap_or_else(|_| Fields::new());
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(self.status);
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = crate::body::write_all(&stream, self.body.as_bytes());
            let _ = stream.blocking_flush();
        }
        let _ = OutgoingBody::finish(body, None);
    }
}
