//! The parameters of one call: from the query string
//! (`?bucket=B&key=K&width=W&height=H&store=false`) and/or a JSON body
//! (`{"bucket","key","width","height","store"}`). A field may come from
//! either place, not both, so a call never means two things at once.

use fado_model::FieldError;
use fado_model::validate::{bucket_name, object_key};
use serde_json::{Map, Value};

use crate::make::Bounds;

/// The bounding box when the call names neither width nor height.
pub const DEFAULT_BOX: u32 = 128;
/// The largest width or height a call may ask for.
pub const MAX_BOX: u32 = 4096;

const FIELDS: [&str; 5] = ["bucket", "key", "width", "height", "store"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThumbnailRequest {
    pub bucket: String,
    pub key: String,
    pub bounds: Bounds,
    /// Write the thumbnail to the bucket (`true`) or answer with its bytes.
    pub store: bool,
}

/// Where a thumbnail of `key` is written.
pub fn thumbnail_key(key: &str) -> String {
    format!("thumbnails/{key}.png")
}

/// One field's raw value, as the query or the body gave it.
enum Raw {
    Query(String),
    Json(Value),
}

impl ThumbnailRequest {
    /// Parses a call from its query string (without `?`) and body (empty, or
    /// a JSON object).
    pub fn parse(query: &str, body: &[u8]) -> Result<Self, FieldError> {
        let mut raw: Vec<(&'static str, Raw)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            // Other query parameters are the caller's business (cache busters…).
            let Some(field) = FIELDS.iter().find(|f| **f == name) else {
                continue;
            };
            if raw.iter().any(|(f, _)| f == field) {
                return Err(FieldError::new(*field, "is given twice in the query"));
            }
            raw.push((field, Raw::Query(value.into_owned())));
        }
        for (name, value) in json_fields(body)? {
            let Some(field) = FIELDS.iter().find(|f| **f == name) else {
                return Err(FieldError::new(
                    name,
                    format!("is not a parameter (use {})", FIELDS.join(", ")),
                ));
            };
            if raw.iter().any(|(f, _)| f == field) {
                return Err(FieldError::new(
                    *field,
                    "is given both in the query and in the body",
                ));
            }
            raw.push((field, Raw::Json(value)));
        }
        let mut take = |field: &str| {
            raw.iter()
                .position(|(f, _)| *f == field)
                .map(|i| raw.swap_remove(i).1)
        };

        let bucket = text("bucket", take("bucket"))?;
        bucket_name("bucket", &bucket)?;
        let key = text("key", take("key"))?;
        object_key("key", &key)?;
        let width = pixels("width", take("width"))?;
        let height = pixels("height", take("height"))?;
        let store = flag("store", take("store"))?.unwrap_or(true);
        if store {
            object_key("key", &thumbnail_key(&key)).map_err(|_| {
                FieldError::new(
                    "key",
                    format!(
                        "is too long to name its thumbnail {:?} (at most 1024 bytes)",
                        thumbnail_key("…")
                    ),
                )
            })?;
        }
        // One side given: the other is bounded only by the largest size.
        let bounds = match (width, height) {
            (None, None) => Bounds::square(DEFAULT_BOX),
            (Some(w), None) => Bounds::new(w, MAX_BOX),
            (None, Some(h)) => Bounds::new(MAX_BOX, h),
            (Some(w), Some(h)) => Bounds::new(w, h),
        };
        Ok(Self {
            bucket,
            key,
            bounds,
            store,
        })
    }
}

fn json_fields(body: &[u8]) -> Result<Map<String, Value>, FieldError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(FieldError::new(
            "body",
            "must be a JSON object like {\"bucket\": \"images\", \"key\": \"photo.jpg\"}",
        )),
        Err(e) => Err(FieldError::new("body", format!("is not valid JSON: {e}"))),
    }
}

fn text(field: &str, raw: Option<Raw>) -> Result<String, FieldError> {
    match raw {
        None => Err(FieldError::new(field, "is required")),
        Some(Raw::Query(s)) => Ok(s),
        Some(Raw::Json(Value::String(s))) => Ok(s),
        Some(Raw::Json(_)) => Err(FieldError::new(field, "must be a string")),
    }
}

fn pixels(field: &str, raw: Option<Raw>) -> Result<Option<u32>, FieldError> {
    let fail = || {
        FieldError::new(
            field,
            format!("must be a whole number of pixels from 1 to {MAX_BOX}"),
        )
    };
    let n = match raw {
        None => return Ok(None),
        Some(Raw::Query(s)) => s.trim().parse::<u64>().map_err(|_| fail())?,
        Some(Raw::Json(v)) => v.as_u64().ok_or_else(fail)?,
    };
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_BOX).contains(&n) => Ok(Some(n)),
        _ => Err(fail()),
    }
}

fn flag(field: &str, raw: Option<Raw>) -> Result<Option<bool>, FieldError> {
    let fail = || FieldError::new(field, "must be true or false");
    match raw {
        None => Ok(None),
        Some(Raw::Query(s)) => match s.trim() {
            "true" | "1" | "" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(fail()),
        },
        Some(Raw::Json(Value::Bool(b))) => Ok(Some(b)),
        Some(Raw::Json(_)) => Err(fail()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(query: &str, body: &str) -> String {
        ThumbnailRequest::parse(query, body.as_bytes())
            .unwrap_err()
            .field
    }

    #[test]
    fn query_parameters_with_defaults() {
        let r = ThumbnailRequest::parse("bucket=photos&key=2026%2Fa%20b.jpg", b"").unwrap();
        assert_eq!(r.bucket, "photos");
        assert_eq!(r.key, "2026/a b.jpg");
        assert_eq!(r.bounds, Bounds::square(DEFAULT_BOX));
        assert!(r.store);
        assert_eq!(thumbnail_key(&r.key), "thumbnails/2026/a b.jpg.png");
    }

    #[test]
    fn one_side_leaves_the_other_to_the_largest_size() {
        let r = ThumbnailRequest::parse("bucket=photos&key=a&width=300", b"").unwrap();
        assert_eq!(r.bounds, Bounds::new(300, MAX_BOX));
        let r = ThumbnailRequest::parse("bucket=photos&key=a&height=20&store=false", b"").unwrap();
        assert_eq!(r.bounds, Bounds::new(MAX_BOX, 20));
        assert!(!r.store);
    }

    #[test]
    fn json_body_and_query_combine() {
        let r = ThumbnailRequest::parse(
            "store=0",
            br#"{"bucket": "photos", "key": "x.png", "width": 64, "height": 32}"#,
        )
        .unwrap();
        assert_eq!(
            (r.bucket.as_str(), r.key.as_str(), r.bounds, r.store),
            ("photos", "x.png", Bounds::new(64, 32), false)
        );
        let r =
            ThumbnailRequest::parse("", br#"{"bucket":"photos","key":"k","store":false}"#).unwrap();
        assert!(!r.store);
    }

    #[test]
    fn bad_input_names_its_field() {
        assert_eq!(field_of("key=a", ""), "bucket");
        assert_eq!(field_of("bucket=Bad_Bucket&key=a", ""), "bucket");
        assert_eq!(field_of("bucket=photos", ""), "key");
        assert_eq!(field_of("bucket=photos&key=", ""), "key");
        assert_eq!(field_of("bucket=photos&key=a&width=0", ""), "width");
        assert_eq!(field_of("bucket=photos&key=a&width=4097", ""), "width");
        assert_eq!(field_of("bucket=photos&key=a&height=x", ""), "height");
        assert_eq!(field_of("bucket=photos&key=a&store=maybe", ""), "store");
        assert_eq!(field_of("bucket=photos&bucket=other&key=a", ""), "bucket");
        assert_eq!(field_of("bucket=photos", r#"{"key": 5}"#), "key");
        assert_eq!(
            field_of("bucket=photos", r#"{"bucket": "x", "key": "a"}"#),
            "bucket"
        );
        assert_eq!(
            field_of("", r#"{"bucket": "photos", "key": "a", "size": 3}"#),
            "size"
        );
        assert_eq!(field_of("", "[1]"), "body");
        assert_eq!(field_of("", "{"), "body");
        assert_eq!(
            field_of("", r#"{"bucket": "photos", "key": "a", "width": -1}"#),
            "width"
        );
    }

    #[test]
    fn a_key_too_long_for_its_thumbnail_is_refused_only_when_storing() {
        let key = "k".repeat(1020);
        let q = format!("bucket=photos&key={key}");
        assert_eq!(field_of(&q, ""), "key");
        assert!(ThumbnailRequest::parse(&format!("{q}&store=false"), b"").is_ok());
    }
}
