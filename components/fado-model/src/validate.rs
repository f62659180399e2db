//! Validation rules shared by the API, the CLI and tests. Each check returns
//! a [`FieldError`] naming the field, so a 400 answer or a CLI message can say
//! exactly what to fix.

use serde::Serialize;

/// A problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

pub type Check = Result<(), FieldError>;

/// Longest access key, secret key or notify token, in characters.
pub const MAX_CREDENTIAL: usize = 256;
/// Shortest notify token, in characters.
pub const MIN_NOTIFY_TOKEN: usize = 16;
/// Most replicas a bucket may ask for besides its master copy.
pub const MAX_TARGET_REPLICAS: i64 = 64;

/// A bucket's `target_replicas`.
pub fn target_replicas(field: &str, v: i64) -> Check {
    if (0..=MAX_TARGET_REPLICAS).contains(&v) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{v} is out of range (0 to {MAX_TARGET_REPLICAS})"),
        ))
    }
}

/// Names of clusters and deployments: DNS labels starting with a letter, so
/// a name never looks like a numeric id in a URL.
pub fn name(field: &str, s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{s:?} is not a valid name: use 1-63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
            ),
        ))
    }
}

/// Zone and label values: DNS labels (a leading digit is fine).
pub fn label(field: &str, s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "{s:?} is not a valid label: use 1-63 lowercase letters, digits and '-', not starting or ending with '-'"
            ),
        ))
    }
}

/// A list of labels without duplicates; returns them sorted.
pub fn labels(field: &str, values: &[String]) -> Result<Vec<String>, FieldError> {
    if values.len() > 64 {
        return Err(FieldError::new(field, "at most 64 labels"));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        label(&format!("{field}[{i}]"), v)?;
        if out.contains(v) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("{v:?} is listed twice"),
            ));
        }
        out.push(v.clone());
    }
    out.sort();
    Ok(out)
}

/// S3 bucket naming rules (general-purpose buckets).
pub fn bucket_name(field: &str, s: &str) -> Check {
    let fail = |why: &str| {
        Err(FieldError::new(
            field,
            format!("{s:?} is not a valid bucket name: {why}"),
        ))
    };
    if s.len() < 3 || s.len() > 63 {
        return fail("it must be 3 to 63 characters long");
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return fail("use only lowercase letters, digits, '.' and '-'");
    }
    let first = s.chars().next().unwrap_or('-');
    let last = s.chars().last().unwrap_or('-');
    if !(first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric()) {
        return fail("it must begin and end with a letter or digit");
    }
    if s.contains("..") || s.contains(".-") || s.contains("-.") {
        return fail("'.' must not be next to another '.' or a '-'");
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("it must not look like an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if s.starts_with(prefix) {
            return fail(&format!("the prefix {prefix:?} is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if s.ends_with(suffix) {
            return fail(&format!("the suffix {suffix:?} is reserved"));
        }
    }
    Ok(())
}

/// Object keys: 1 to 1024 bytes of UTF-8 without control characters.
pub fn object_key(field: &str, s: &str) -> Check {
    if s.is_empty() || s.len() > 1024 {
        return Err(FieldError::new(
            field,
            "an object key must be 1 to 1024 bytes long",
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            format!(
                "object keys must not contain control characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// An http or https base URL with a host and no query or fragment.
pub fn base_url(field: &str, s: &str) -> Result<String, FieldError> {
    let fail = |why: String| FieldError::new(field, format!("{s:?} is not a usable URL: {why}"));
    let u = url::Url::parse(s).map_err(|e| fail(e.to_string()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(fail("the scheme must be http or https".into()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(fail("it needs a host".into()));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(fail("it must not have a query or a fragment".into()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(fail("credentials do not belong in the URL".into()));
    }
    // The normalised form (lower-case scheme and host), minus the trailing
    // slash the path template adds back.
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// The invocation path template: empty (a Lambda function URL) or an
/// absolute path that may contain `{function}` once.
pub fn path_template(field: &str, s: &str) -> Check {
    if s.is_empty() {
        return Ok(());
    }
    if !s.starts_with('/') {
        return Err(FieldError::new(
            field,
            format!("{s:?} must be empty or start with '/'"),
        ));
    }
    if s.contains('?') || s.contains('#') || s.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(FieldError::new(
            field,
            format!("{s:?} must be a plain path (no query, fragment or spaces)"),
        ));
    }
    let stripped = s.replacen("{function}", "", 1);
    if stripped.contains('{') || stripped.contains('}') {
        return Err(FieldError::new(
            field,
            format!("{s:?}: the only placeholder is {{function}}, at most once"),
        ));
    }
    Ok(())
}

/// Per-deployment timeout in milliseconds.
pub fn timeout_ms(field: &str, v: i64) -> Check {
    if (1..=3_600_000).contains(&v) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{v} is out of range (1 to 3600000 ms)"),
        ))
    }
}

/// An S3 region name.
pub fn region(field: &str, s: &str) -> Check {
    if !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} is not a region name"),
        ))
    }
}

/// An HTTP header name (RFC 9110 token), used for the bucket match header.
pub fn header_name(field: &str, s: &str) -> Check {
    if !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("{s:?} is not a header name (letters, digits and '-')"),
        ))
    }
}

/// Non-empty text without control characters, at most `max` bytes.
/// Counted in characters, as JSON Schema's `maxLength` counts them.
pub fn text(field: &str, s: &str, max: usize) -> Check {
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        Err(FieldError::new(
            field,
            format!("must be 1 to {max} characters of text without control characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("n", "hpc-cluster").is_ok());
        assert!(name("n", "cloud-cluster-1").is_ok());
        for bad in ["", "1abc", "Abc", "a_b", "abc-", &"a".repeat(64)] {
            assert!(name("n", bad).is_err(), "{bad}");
        }
        assert!(label("z", "high-performance").is_ok());
        assert!(label("z", "eu1").is_ok());
        assert!(label("z", "-x").is_err());
    }

    #[test]
    fn label_lists_are_sorted_and_unique() {
        let v = labels("zones", &["germany".into(), "eu".into()]).unwrap();
        assert_eq!(v, ["eu", "germany"]);
        let e = labels("zones", &["a".into(), "a".into()]).unwrap_err();
        assert_eq!(e.field, "zones[1]");
    }

    #[test]
    fn bucket_names_follow_s3() {
        for ok in ["rep-policy-demo", "abc", "a.b.c", "123"] {
            assert!(bucket_name("b", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "a..b",
            "a.-b",
            "-ab",
            "ab-",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "a_b",
        ] {
            assert!(bucket_name("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_templates() {
        assert_eq!(
            base_url("u", "http://10.0.0.1:31112/").unwrap(),
            "http://10.0.0.1:31112"
        );
        assert!(base_url("u", "https://abc.lambda-url.eu-central-1.on.aws").is_ok());
        // Schemes and hosts are case-insensitive; the stored form is lower case.
        assert_eq!(
            base_url("u", "HTTP://Fn.Example.ORG:8080/base/").unwrap(),
            "http://fn.example.org:8080/base"
        );
        for bad in [
            "ftp://x",
            "http://",
            "http://x/?a=1",
            "http://u:p@x",
            "not a url",
        ] {
            assert!(base_url("u", bad).is_err(), "{bad}");
        }
        for ok in ["", "/function/{function}", "/{function}", "/static"] {
            assert!(path_template("p", ok).is_ok(), "{ok}");
        }
        for bad in [
            "function",
            "/{fn}",
            "/{function}/{function}",
            "/a?b",
            "/a b",
        ] {
            assert!(path_template("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys() {
        assert!(object_key("k", "photos/2024/ä.png").is_ok());
        assert!(object_key("k", "").is_err());
        assert!(object_key("k", "a\nb").is_err());
        assert!(object_key("k", &"x".repeat(1025)).is_err());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Fuzzing the object key rule: exactly the keys of 1 to 1024 bytes
            // without control characters pass. PROPTEST_CASES sets how many
            // (docs/reliability.md records a run).
            #[test]
            fn object_keys_pass_exactly_by_the_rule(
                key in prop_oneof![
                    proptest::arbitrary::any::<String>(),
                    "[a-z/.%+ ]{0,40}",
                    ".{1000,1030}",
                ],
            ) {
                let by_rule = !key.is_empty() && key.len() <= 1024 && !key.chars().any(char::is_control);
                prop_assert_eq!(object_key("key", &key).is_ok(), by_rule, "{:?}", key);
            }
        }
    }
}
