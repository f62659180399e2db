//! Reading S3 event notifications: the `Records` JSON that AWS S3 and MinIO
//! send. Pure (no I/O), and all-or-nothing: the first malformed record
//! fails the whole body, naming its field (`Records[2].s3.object.key`).

use fado_model::validate;
use fado_store::objects::Change;
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// What one record asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An object of `bucket` was written or removed.
    Change { bucket: String, change: Change },
    /// An event FaDO does not act on (reads, restores, tagging, …).
    Other,
}

/// Parses a notification body into its records, in order. The AWS test
/// event (`{"Event":"s3:TestEvent",…}`, no records) reads as none.
pub fn parse(body: &[u8]) -> ApiResult<Vec<Event>> {
    let top: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    let top = object(&top, "body")?;
    match top.get("Records") {
        Some(Value::Array(records)) => records
            .iter()
            .enumerate()
            .map(|(i, r)| record(r, &format!("Records[{i}]")))
            .collect(),
        Some(Value::Null) | None
            if top.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") =>
        {
            Ok(Vec::new())
        }
        Some(Value::Null) | None => Err(ApiError::invalid(
            "Records",
            "is required: an S3 event notification carries a Records array",
        )),
        Some(_) => Err(ApiError::invalid("Records", "must be an array")),
    }
}

fn record(v: &Value, path: &str) -> ApiResult<Event> {
    let r = object(v, path)?;
    let name_path = format!("{path}.eventName");
    let name = string(required(r, &name_path, "eventName")?, &name_path)?;
    // AWS writes `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`.
    let name = name.strip_prefix("s3:").unwrap_or(name);
    let created = if name.starts_with("ObjectCreated:") {
        true
    } else if name.starts_with("ObjectRemoved:") {
        false
    } else {
        return Ok(Event::Other);
    };

    let s3_path = format!("{path}.s3");
    let s3 = object(required(r, &s3_path, "s3")?, &s3_path)?;
    let bucket_path = format!("{s3_path}.bucket");
    let bucket = object(required(s3, &bucket_path, "bucket")?, &bucket_path)?;
    let bucket_name_path = format!("{bucket_path}.name");
    let bucket_name = string(
        required(bucket, &bucket_name_path, "name")?,
        &bucket_name_path,
    )?;
    validate::bucket_name(&bucket_name_path, bucket_name)?;

    let object_path = format!("{s3_path}.object");
    let obj = object(required(s3, &object_path, "object")?, &object_path)?;
    let key_path = format!("{object_path}.key");
    let encoded = string(required(obj, &key_path, "key")?, &key_path)?;
    let key = decode_key(encoded).ok_or_else(|| {
        ApiError::invalid(
            &key_path,
            "is not URL-encoded correctly (a '%' must start a %XX escape of UTF-8)",
        )
    })?;
    validate::object_key(&key_path, &key)?;

    let change = if created {
        let size_path = format!("{object_path}.size");
        let size = required(obj, &size_path, "size")?
            .as_i64()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                ApiError::invalid(&size_path, "must be a non-negative whole number of bytes")
            })?;
        let etag_path = format!("{object_path}.eTag");
        let etag = match obj.get("eTag").filter(|v| !v.is_null()) {
            Some(v) => fado_sync::normalize_etag(string(v, &etag_path)?),
            None => String::new(),
        };
        if !etag.is_empty() {
            validate::text(&etag_path, &etag, 1024)?;
        }
        let type_path = format!("{object_path}.contentType");
        let content_type = match obj.get("contentType").filter(|v| !v.is_null()) {
            Some(v) => {
                let t = string(v, &type_path)?;
                validate::text(&type_path, t, 256)?;
                Some(t.to_string())
            }
            None => None,
        };
        Change::Put {
            key,
            size,
            etag,
            content_type,
        }
    } else {
        Change::Delete { key }
    };
    Ok(Event::Change {
        bucket: bucket_name.to_string(),
        change,
    })
}

fn object<'a>(v: &'a Value, path: &str) -> ApiResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ApiError::invalid(path, "must be a JSON object"))
}

/// `parent[name]`; absent and `null` are both missing.
fn required<'a>(parent: &'a Map<String, Value>, path: &str, name: &str) -> ApiResult<&'a Value> {
    parent
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ApiError::invalid(path, "is required"))
}

fn string<'a>(v: &'a Value, path: &str) -> ApiResult<&'a str> {
    v.as_str()
        .ok_or_else(|| ApiError::invalid(path, "must be a string"))
}

/// Decodes an event's object key. S3 and MinIO URL-encode keys the way
/// HTML forms do: `%XX` escapes of UTF-8 bytes, and `+` for a space.
/// `None` for a broken escape or bytes that are not UTF-8.
pub fn decode_key(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                out.push((hex_digit(hex[0])? << 4) | hex_digit(hex[1])?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(key: &str, size: i64, etag: &str) -> Event {
        Event::Change {
            bucket: "images".into(),
            change: Change::Put {
                key: key.into(),
                size,
                etag: etag.into(),
                content_type: None,
            },
        }
    }

    fn field_of(body: Value) -> String {
        let e = parse(body.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.status, 400, "{e:?}");
        e.field.unwrap()
    }

    #[test]
    fn keys_decode_the_form_way() {
        assert_eq!(decode_key("a+b%2Fc%20d").as_deref(), Some("a b/c d"));
        assert_eq!(decode_key("caf%C3%A9+%E2%9C%93").as_deref(), Some("café ✓"));
        assert_eq!(
            decode_key("plain/key.txt").as_deref(),
            Some("plain/key.txt")
        );
        assert_eq!(decode_key("%2B").as_deref(), Some("+"));
        for bad in ["%", "%2", "%zz", "%+f", "%C3"] {
            assert_eq!(decode_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn aws_and_minio_records_read_alike() {
        let body = json!({
            "EventName": "s3:ObjectCreated:Put", "Key": "images/a b",
            "Records": [
                {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "images"},
                 "object": {"key": "a+b", "size": 5, "eTag": "\"abc\""}}},
                {"eventName": "ObjectCreated:CompleteMultipartUpload", "s3": {"bucket": {"name": "images"},
                 "object": {"key": "big", "size": 0}}},
                {"eventName": "ObjectRemoved:DeleteMarkerCreated", "s3": {"bucket": {"name": "images"},
                 "object": {"key": "gone"}}},
                {"eventName": "s3:ObjectAccessed:Get"},
            ]
        });
        let events = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            events,
            [
                put("a b", 5, "abc"),
                put("big", 0, ""),
                Event::Change {
                    bucket: "images".into(),
                    change: Change::Delete { key: "gone".into() }
                },
                Event::Other,
            ]
        );
    }

    #[test]
    fn the_test_event_has_no_records() {
        let body = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "images"});
        assert_eq!(parse(body.to_string().as_bytes()).unwrap(), []);
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let e = parse(b"not json").unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("invalid_json", Some("body")));
        assert_eq!(field_of(json!([1])), "body");
        assert_eq!(field_of(json!({"Event": "x"})), "Records");
        assert_eq!(field_of(json!({"Records": {}})), "Records");
        let good = json!({"eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "images"}, "object": {"key": "k", "size": 1}}});
        let cases = [
            (
                json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "images"},
                "object": {"size": 1}}}),
                "Records[1].s3.object.key",
            ),
            (
                json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "images"},
                "object": {"key": "k", "size": -1}}}),
                "Records[1].s3.object.size",
            ),
            (
                json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "images"},
                "object": {"key": "k", "size": 1.5}}}),
                "Records[1].s3.object.size",
            ),
            (
                json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "Bad_Name"},
                "object": {"key": "k", "size": 1}}}),
                "Records[1].s3.bucket.name",
            ),
            (
                json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "images"},
                "object": {"key": "k", "size": 1, "eTag": 7}}}),
                "Records[1].s3.object.eTag",
            ),
            (
                json!({"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "images"},
                "object": {"key": "%zz"}}}),
                "Records[1].s3.object.key",
            ),
            (json!({"eventName": 3}), "Records[1].eventName"),
            (
                json!({"eventName": "ObjectRemoved:Delete"}),
                "Records[1].s3",
            ),
            (json!("x"), "Records[1]"),
        ];
        for (bad, field) in cases {
            assert_eq!(field_of(json!({"Records": [good, bad]})), field);
        }
    }

    /// A notification the parser must read: AWS and MinIO shapes.
    const SEED: &str = r#"{"EventName":"s3:ObjectCreated:Put","Records":[{"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"images"},"object":{"key":"a+b%2Fc","size":5,"eTag":"\"abc\""}}},{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"images"},"object":{"key":"gone"}}}]}"#;

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Fuzzing: any body, arbitrary bytes or a mutated real notification,
            // is an answer (events or a 400 naming a field), never a panic.
            // PROPTEST_CASES sets how many (docs/reliability.md records a run).
            #[test]
            fn any_body_parses_or_is_refused(
                bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
                edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::char::any(), 0..3u8), 0..6),
                raw in proptest::bool::ANY,
            ) {
                let body = if raw {
                    bytes
                } else {
                    let mut text: Vec<char> = SEED.chars().collect();
                    for (at, c, op) in edits {
                        let at = at % (text.len() + 1);
                        match op {
                            0 => text.insert(at, c),
                            1 if at < text.len() => { text.remove(at); }
                            _ if at < text.len() => text[at] = c,
                            _ => {}
                        }
                    }
                    text.into_iter().collect::<String>().into_bytes()
                };
                if let Err(e) = parse(&body) {
                    prop_assert_eq!(e.status, 400);
                    prop_assert!(e.field.is_some());
                }
            }
        }
    }
}
