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
