//! What can go wrong talking to FaDO, typed so callers can tell a refusal
//! by the API (status, code, message, field) from a network failure.

use std::path::PathBuf;

use serde::Deserialize;

/// A refusal by the API: the HTTP status and FaDO's
/// `{"error":{"code","message","field"}}` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message} ({status}{}{code})", field_prefix(.field), if .code.is_empty() { "" } else { " " })]
pub struct ApiError {
    pub status: u16,
    /// Machine-readable reason (`not_found`, `invalid`, …); empty when the
    /// answer carried no FaDO error body (e.g. a `HEAD`).
    pub code: String,
    pub message: String,
    /// The input that was refused, when one is to blame.
    pub field: Option<String>,
}

fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

#[derive(Deserialize)]
struct Body {
    error: Inner,
}

#[derive(Deserialize)]
struct Inner {
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

impl ApiError {
    /// Reads FaDO's error body; anything else (an empty body, a proxy's HTML
    /// page) keeps the status and a short excerpt so the cause stays visible.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        if let Ok(Body { error }) = serde_json::from_slice::<Body>(body) {
            return Self {
                status,
                code: error.code,
                message: error.message,
                field: error.field,
            };
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let message = if text.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_lowercase()
        } else {
            text.chars().take(200).collect()
        };
        Self {
            status,
            code: String::new(),
            message,
            field: None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Nothing answered (refused, unreachable, DNS, TLS, timeout) or the
    /// connection broke mid-way.
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    /// An answer that is not what the API documents.
    #[error("{url}: unexpected answer: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid API URL {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
}

impl Error {
    /// The API's refusal, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn connect(url: &str, e: &reqwest::Error) -> Self {
        Error::Connect {
            url: url.to_string(),
            reason: describe(e),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }
}

/// The most specific reasons in a reqwest error's chain ("connection
/// refused" rather than "error sending request for url (…)").
fn describe(e: &reqwest::Error) -> String {
    let mut reasons: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        source = s.source();
    }
    if e.is_timeout() {
        reasons.push("timed out".into());
    }
    match reasons.last() {
        // hyper's "client error (Connect)" adds nothing to the OS reason below it.
        Some(_) => reasons
            .into_iter()
            .filter(|r| !r.starts_with("client error ("))
            .collect::<Vec<_>>()
            .join(": "),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fado_error_bodies_keep_every_part() {
        let e = ApiError::from_response(
            400,
            br#"{"error":{"code":"invalid","message":"must be at most 64","field":"target_replicas"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("target_replicas"));
        assert_eq!(
            e.to_string(),
            "target_replicas: must be at most 64 (400 invalid)"
        );
        let e = ApiError::from_response(
            404,
            br#"{"error":{"code":"not_found","message":"bucket \"x\" does not exist"}}"#,
        );
        assert_eq!(e.to_string(), "bucket \"x\" does not exist (404 not_found)");
    }

    #[test]
    fn other_bodies_keep_the_status() {
        let e = ApiError::from_response(404, b"");
        assert_eq!(e.to_string(), "not found (404)");
        let e = ApiError::from_response(502, b"<html>bad gateway</html>");
        assert_eq!(e.message, "<html>bad gateway</html>");
        assert_eq!(e.code, "");
    }
}
