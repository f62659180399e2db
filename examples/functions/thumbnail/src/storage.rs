//! Which storages a call reads from, in order: the cluster's own, then the
//! fallbacks (other clusters' storage) for buckets the own one lacks.

use fado_model::FieldError;
use fado_model::validate::base_url;

/// One S3 endpoint the function may read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The endpoint URL, as configured (no trailing slash).
    pub endpoint: String,
    /// The cluster's own storage (not a fallback).
    pub local: bool,
}

/// The own endpoint (variable `s3_endpoint`) followed by the fallbacks
/// (`s3_fallback_endpoints`, comma-separated, empty entries skipped) in the
/// order given; an endpoint listed twice, or the own one listed as a
/// fallback, is read once.
pub fn read_order(own: &str, fallbacks: &str) -> Result<Vec<Storage>, FieldError> {
    let own = endpoint("s3_endpoint", own)?;
    let mut out = vec![Storage {
        endpoint: own,
        local: true,
    }];
    for (i, raw) in fallbacks
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let e = endpoint(&format!("s3_fallback_endpoints[{i}]"), raw)?;
        if !out.iter().any(|s| s.endpoint == e) {
            out.push(Storage {
                endpoint: e,
                local: false,
            });
        }
    }
    Ok(out)
}

/// The URL of `bucket/key` in FaDO's object API at `api` (a base URL):
/// `{api}/api/buckets/{bucket}/objects/{key}`, percent-encoded, with the
/// key's slashes kept as path separators.
pub fn object_api_url(api: &str, bucket: &str, key: &str) -> String {
    format!(
        "{}/api/buckets/{}/objects/{}",
        api.trim_end_matches('/'),
        encode_path(bucket),
        encode_path(key)
    )
}

fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn endpoint(field: &str, raw: &str) -> Result<String, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldError::new(
            field,
            "is empty: set it to the S3 endpoint URL",
        ));
    }
    base_url(field, raw)?;
    Ok(raw.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_storage_first_then_fallbacks_in_order() {
        let order = read_order(
            "http://10.0.0.1:3900/",
            " http://10.0.0.2:3900 ,,http://10.0.0.1:3900, https://s3.example.org,http://10.0.0.2:3900",
        )
        .unwrap();
        let endpoints: Vec<(&str, bool)> = order
            .iter()
            .map(|s| (s.endpoint.as_str(), s.local))
            .collect();
        assert_eq!(
            endpoints,
            [
                ("http://10.0.0.1:3900", true),
                ("http://10.0.0.2:3900", false),
                ("https://s3.example.org", false),
            ]
        );
        assert_eq!(read_order("http://a:1", "").unwrap().len(), 1);
    }

    #[test]
    fn object_api_urls_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            object_api_url(
                "http://fado:3000/",
                "photos",
                "thumbnails/2026/a b+ü?.png.png"
            ),
            "http://fado:3000/api/buckets/photos/objects/thumbnails/2026/a%20b%2B%C3%BC%3F.png.png"
        );
    }

    #[test]
    fn bad_endpoints_name_the_variable() {
        assert_eq!(read_order("", "").unwrap_err().field, "s3_endpoint");
        assert_eq!(read_order("ftp://a", "").unwrap_err().field, "s3_endpoint");
        assert_eq!(
            read_order("http://a:1", "http://b:2,not a url")
                .unwrap_err()
                .field,
            "s3_fallback_endpoints[1]"
        );
    }
}
