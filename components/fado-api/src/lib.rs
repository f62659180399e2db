//! What FaDO's HTTP components (catalog, objects, notify) share: every
//! failure answers with an HTTP status and
//! `{"error":{"code":…,"message":…,"field":…}}`, and `/api` requests carry
//! the admin token.

pub mod cursor;

use fado_model::FieldError;
use fado_store::{StoreError, sqlstate};
use subtle::ConstantTimeEq;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// The methods the resource allows, sent as `Allow` with a 405 (RFC
    /// 9110 requires it there).
    pub allow: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error code of a request that lost to a concurrent transaction
/// (deadlock or serialization failure): nothing was changed, and the same
/// request may be sent again.
pub const RETRY_CODE: &str = "retry";

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            allow: None,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(400, "invalid", message)
        }
    }

    /// A body that is not the one JSON value it must be.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self {
            field: Some("body".into()),
            ..Self::new(400, "invalid_json", message)
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(404, "not_found", format!("{what} does not exist"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// A well-formed value the platform's current state does not allow
    /// (e.g. zones that exclude the master storage's): 409 naming the field,
    /// since the same request may succeed once the state changes.
    pub fn conflict_at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::conflict(message)
        }
    }

    /// A body field naming a resource that does not exist: 409 naming the
    /// field (not 404, which says the resource in the path is missing).
    pub fn missing_at(field: impl Into<String>, what: impl std::fmt::Display) -> Self {
        Self::conflict_at(field, format!("{what} does not exist"))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "unauthorized",
            "this endpoint needs the admin token: send `Authorization: Bearer <token>`",
        )
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self {
            allow: Some(allowed.join(", ")),
            ..Self::new(
                405,
                "method_not_allowed",
                format!("use one of: {}", allowed.join(", ")),
            )
        }
    }

    /// The headers this error's response carries besides its content type:
    /// the auth challenge with a 401, the allowed methods with a 405.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if self.status == 401 {
            h.push(("www-authenticate", "Bearer realm=\"fado\"".to_string()));
        }
        if let Some(a) = &self.allow {
            h.push(("allow", a.clone()));
        }
        h
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(fado_model::api::ErrorBody {
            error: fado_model::api::ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
            },
        })
        .expect("an error body serializes")
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<fado_store::storage::EndpointError> for ApiError {
    fn from(e: fado_store::storage::EndpointError) -> Self {
        match e {
            fado_store::storage::EndpointError::Store(e) => e.into(),
            fado_store::storage::EndpointError::Secret(e) => {
                ApiError::new(500, "internal", e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    /// Answers say what failed and what to do; the database's own words
    /// (which name its processes, tables and values) go to the log only.
    fn from(e: StoreError) -> Self {
        let unavailable = || {
            eprintln!("database unavailable: {e}");
            ApiError::new(
                503,
                "database_unavailable",
                "the database cannot be reached; nothing was changed, retry shortly",
            )
        };
        match &e {
            StoreError::Connect(_) | StoreError::Session(_) => unavailable(),
            StoreError::Db { code, .. } if connection_lost(code) => unavailable(),
            // The schema does not match this build: nothing can be served
            // safely until an operator fixes it (see `fado db status`).
            StoreError::Migration(_) => ApiError::new(503, "schema_mismatch", e.to_string()),
            StoreError::Db { .. } if e.is(sqlstate::UNIQUE_VIOLATION) => {
                ApiError::conflict(unique_message(&e))
            }
            StoreError::Db { .. } if e.is(sqlstate::FOREIGN_KEY_VIOLATION) => {
                ApiError::conflict(format!(
                    "the change conflicts with a reference ({})",
                    e.constraint().unwrap_or("a foreign key")
                ))
            }
            StoreError::Db { .. } if e.is(sqlstate::CHECK_VIOLATION) => ApiError::new(
                400,
                "invalid",
                format!(
                    "the database refused a value ({})",
                    e.constraint().unwrap_or("a check constraint")
                ),
            ),
            StoreError::Db { .. }
                if e.is(sqlstate::SERIALIZATION_FAILURE) || e.is(sqlstate::DEADLOCK_DETECTED) =>
            {
                ApiError::new(
                    503,
                    RETRY_CODE,
                    "a concurrent change to the same resources won; retry the request",
                )
            }
            _ => {
                let incident = incident_id();
                eprintln!("database error (incident {incident}): {e}");
                ApiError::new(
                    500,
                    "internal",
                    format!(
                        "the database could not complete the request (incident {incident}); \
                         the orchestrator's log has the detail under that id"
                    ),
                )
            }
        }
    }
}

/// SQLSTATEs of a session the server ended or could not serve: class 08
/// (connection exception) and the shutdown codes of class 57.
fn connection_lost(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// An id to find a failure's log line by, from the clock (unique enough
/// for one operator reading one log).
fn incident_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:012x}", nanos & 0xffff_ffff_ffff)
}

/// Names the duplicate from the constraint that caught it.
fn unique_message(e: &StoreError) -> String {
    match e.constraint() {
        Some(c) if c.ends_with("_name_key") => {
            let table = c.trim_end_matches("_name_key").replace('_', " ");
            format!(
                "a {} with that name already exists",
                table.trim_end_matches('s')
            )
        }
        Some(c) => format!("that already exists ({c})"),
        None => "that already exists".to_string(),
    }
}

/// Checks an `Authorization` header against the admin token, in constant
/// time. A token shorter than 16 characters is a misconfiguration.
pub fn authorize(auth: Option<&str>, expected: &str) -> ApiResult<()> {
    if expected.len() < 16 {
        return Err(ApiError::new(
            500,
            "misconfigured",
            "the admin token must be at least 16 characters",
        ));
    }
    let given = auth
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .unwrap_or("")
        .trim();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

/// Reads a whole request body of at most `max` bytes (413 beyond): for the
/// small JSON bodies of the API, never for objects.
pub async fn read_body(req: spin_sdk::http::IncomingRequest, max: usize) -> ApiResult<Vec<u8>> {
    use futures::StreamExt;
    let mut stream = req.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(400, "bad_request", format!("reading the body: {e:?}")))?;
        body.extend_from_slice(&chunk);
        if body.len() > max {
            return Err(ApiError::new(
                413,
                "too_large",
                format!("the body exceeds {max} bytes"),
            ));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = "0123456789abcdef-token";
        assert!(authorize(Some(&format!("Bearer {token}")), token).is_ok());
        assert!(authorize(Some(&format!("bearer {token} ")), token).is_ok());
        for bad in [
            None,
            Some("Bearer"),
            Some("Basic x"),
            Some("Bearer 0123456789abcdef-tokeN"),
        ] {
            assert_eq!(authorize(bad, token).unwrap_err().status, 401);
        }
        assert_eq!(
            authorize(Some("Bearer short"), "short").unwrap_err().status,
            500
        );
    }

    #[test]
    fn error_bodies_name_the_field() {
        let e = ApiError::invalid("key", "is empty");
        assert_eq!(
            e.body(),
            json!({"error": {"code": "invalid", "message": "is empty", "field": "key"}})
        );
    }
}
