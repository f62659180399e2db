//! What went wrong talking to storage, as a type callers match on (never
//! its text), with a short message fit for an API answer. The SDK's full
//! account of a failure goes to the log where the error is made.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// The service answered with an S3 error.
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, timeout, TLS or name lookup.
    Unreachable(String),
    /// Something answered, but not like S3.
    NotS3(String),
    /// The request could not be built or sent for another reason.
    Other(String),
}

/// One failed storage operation: what was being done, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub what: String,
    pub kind: S3ErrorKind,
}

impl S3Error {
    /// The S3 error code the service answered, if it answered one.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            S3ErrorKind::Service { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    pub fn from_sdk<E>(what: &str, e: &SdkError<E, HttpResponse>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        eprintln!("storage: {what}: {}", DisplayErrorContext(e));
        let kind = match e {
            SdkError::ServiceError(s) => {
                let code = s.err().code().unwrap_or_default().to_string();
                S3ErrorKind::Service {
                    status: s.raw().status().as_u16(),
                    message: s.err().message().unwrap_or_default().to_string(),
                    code,
                }
            }
            SdkError::TimeoutError(_) => S3ErrorKind::Unreachable("timed out".into()),
            SdkError::DispatchFailure(_) => S3ErrorKind::Unreachable(innermost(e)),
            SdkError::ResponseError(_) => S3ErrorKind::NotS3(innermost(e)),
            _ => S3ErrorKind::Other(innermost(e)),
        };
        Self {
            what: what.to_string(),
            kind,
        }
    }
}

/// The deepest cause: the SDK's outer layers only say which layer failed.
fn innermost(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.what)?;
        match &self.kind {
            S3ErrorKind::Service {
                status,
                code,
                message,
            } => {
                write!(f, "the storage answered {status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, " ({message})")?;
                }
                Ok(())
            }
            S3ErrorKind::Unreachable(why) => write!(f, "the storage cannot be reached ({why})"),
            S3ErrorKind::NotS3(why) => write!(f, "the storage's answer is not S3 ({why})"),
            S3ErrorKind::Other(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for S3Error {}

/// The storage error behind `e`, through any context added since.
pub fn s3_error_of(e: &anyhow::Error) -> Option<&S3Error> {
    e.chain().find_map(|c| c.downcast_ref::<S3Error>())
}

/// Whether `e` is the service answering `code`.
pub fn has_code(e: &anyhow::Error, code: &str) -> bool {
    s3_error_of(e).and_then(S3Error::code) == Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_through_context_and_never_in_text() {
        let typed = S3Error {
            what: "reading b/k".into(),
            kind: S3ErrorKind::Service {
                status: 404,
                code: "NoSuchBucket".into(),
                message: "The specified bucket does not exist".into(),
            },
        };
        let e = anyhow::Error::new(typed.clone()).context("copying");
        assert!(has_code(&e, "NoSuchBucket"));
        assert!(!has_code(&e, "NoSuchKey"));
        assert_eq!(s3_error_of(&e), Some(&typed));
        let text_only = anyhow::anyhow!("NoSuchBucket mentioned in a message");
        assert!(!has_code(&text_only, "NoSuchBucket"));
        assert_eq!(
            typed.to_string(),
            "reading b/k: the storage answered 404 NoSuchBucket (The specified bucket does not exist)"
        );
    }
}
