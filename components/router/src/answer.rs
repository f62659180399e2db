//! The router's own answers: JSON error bodies in the API's shape.

use serde_json::json;
use wstd::http::{Body, HeaderValue, Response, StatusCode};

use crate::table::Refusal;

/// A JSON error answer: `{"error": {"code", "message"}}`.
pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response<Body> {
    let body = json!({"error": {"code": code, "message": message.into()}}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// The answer to a body longer than the limit: its `Content-Length`, or
/// `None` when it came without one and was cut off while streaming.
pub fn too_large(max: u64, length: Option<u64>) -> Response<Body> {
    let message = match length {
        Some(n) => format!("the body is {n} bytes; the router accepts at most {max}"),
        None => format!("the body is more than {max} bytes, the most the router accepts"),
    };
    error(413, "too_large", message)
}

/// Why the route table cannot route the request, as an answer.
pub fn refusal(why: Refusal, buckets: &[String]) -> Response<Body> {
    let names = buckets.join(", ");
    match why {
        Refusal::NoTable => error(
            503,
            "no_route_table",
            "the planner has not published a route table yet",
        ),
        Refusal::UnknownBucket(b) => error(
            404,
            "unknown_bucket",
            format!("bucket {b:?} does not exist"),
        ),
        Refusal::MissingHeader(h) => error(
            400,
            "missing_bucket_header",
            format!("the request names no bucket: send the {h} header"),
        ),
        Refusal::BadHeader(message) => error(400, "bad_bucket_header", message),
        Refusal::NoTargets => error(
            503,
            "no_upstream",
            if names.is_empty() {
                "no FaaS deployment is registered".to_string()
            } else {
                format!("no FaaS deployment holds every bucket of {names}")
            },
        ),
        Refusal::AllEjected => error(
            503,
            "no_healthy_upstream",
            format!(
                "every deployment serving {names} is ejected after failures or found down; try again shortly"
            ),
        ),
        Refusal::Unavailable(message) => error(
            503,
            "route_table_unavailable",
            format!("neither the route store nor PostgreSQL answered: {message}"),
        ),
    }
}
