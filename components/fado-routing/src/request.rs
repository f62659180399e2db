//! What an invocation asks for: its buckets, its function, and where it goes.

use fado_model::{BucketRoute, RouteTarget, SelectionPolicy};

/// Why a request cannot be routed, by what the client should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The match header is present but names no valid bucket list.
    BadBucketHeader { header: String, reason: String },
    /// The path names no function (`/` or empty) while the deployment's
    /// path template needs one.
    NoFunction,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::BadBucketHeader { header, reason } => write!(f, "{header}: {reason}"),
            RequestError::NoFunction => {
                f.write_str("the path names no function: call /{function}/...")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Most buckets one request may name.
pub const MAX_BUCKETS: usize = 16;

/// The buckets named by the match header's value: a comma-separated list
/// (`a, b`), trimmed, duplicates dropped, order kept.
pub fn parse_buckets(header: &str, value: &str) -> Result<Vec<String>, RequestError> {
    let bad = |reason: String| RequestError::BadBucketHeader {
        header: header.to_string(),
        reason,
    };
    let mut buckets: Vec<String> = Vec::new();
    for part in value.split(',') {
        let name = part.trim();
        if name.is_empty() {
            return Err(bad(format!("{value:?} holds an empty bucket name")));
        }
        fado_model::validate::bucket_name(header, name).map_err(|e| bad(e.message))?;
        if !buckets.iter().any(|b| b == name) {
            buckets.push(name.to_string());
        }
    }
    if buckets.len() > MAX_BUCKETS {
        return Err(bad(format!(
            "names {} buckets; at most {MAX_BUCKETS} are allowed",
            buckets.len()
        )));
    }
    Ok(buckets)
}

/// The deployments that can serve a request needing every bucket of
/// `routes`: those in all of them, in the first route's order. The policy
/// is the first bucket's (a bucket's route override decides for requests
/// that name it first).
pub fn common_targets<'a>(
    routes: &[&'a BucketRoute],
) -> (Vec<&'a RouteTarget>, Option<SelectionPolicy>) {
    let Some((first, rest)) = routes.split_first() else {
        return (Vec::new(), None);
    };
    let targets = first
        .targets
        .iter()
        .filter(|t| {
            rest.iter()
                .all(|r| r.targets.iter().any(|o| o.faas_id == t.faas_id))
        })
        .collect();
    (targets, Some(first.policy))
}

/// An ingress path split into the function it calls and the rest:
/// `/resize/v1/run?x=1` → function `resize`, rest `/v1/run`, query `x=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invocation<'a> {
    pub function: &'a str,
    /// The path after the function's segment: empty or starting with `/`.
    pub rest: &'a str,
    pub query: Option<&'a str>,
}

pub fn split_path(path_and_query: &str) -> Invocation<'_> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (function, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    Invocation {
        function,
        rest,
        query,
    }
}

/// The URL a deployment serves `inv` at: its base URL, its path template
/// with `{function}` filled in, the rest of the path and the query. A
/// template without `{function}` (a Lambda function URL, a fixed path)
/// drops the function's segment: the deployment *is* the function.
pub fn upstream_url(
    base_url: &str,
    path_template: &str,
    inv: &Invocation<'_>,
) -> Result<String, RequestError> {
    let base = base_url.trim_end_matches('/');
    let mut url = String::with_capacity(
        base.len() + path_template.len() + inv.function.len() + inv.rest.len() + 2,
    );
    url.push_str(base);
    match path_template.split_once("{function}") {
        Some((before, after)) => {
            if inv.function.is_empty() {
                return Err(RequestError::NoFunction);
            }
            url.push_str(before);
            url.push_str(inv.function);
            url.push_str(after);
        }
        None => url.push_str(path_template),
    }
    if url.ends_with('/') && inv.rest.starts_with('/') {
        url.pop();
    }
    url.push_str(inv.rest);
    if url.len() == base.len() {
        url.push('/');
    }
    if let Some(q) = inv.query {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// An absolute URL's parts as `wasi:http` takes them: scheme, authority,
/// path with query (starting with `/`). `None` for a URL without
/// `scheme://` or without an authority.
pub fn split_url(url: &str) -> Option<(&str, &str, std::borrow::Cow<'_, str>)> {
    let (scheme, rest) = url.split_once("://")?;
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(cut);
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    let path = if path.starts_with('/') {
        path.into()
    } else {
        format!("/{path}").into()
    };
    Some((scheme, authority, path))
}

/// Whether a failed attempt may be tried on another deployment: always when
/// the request never left (connection refused, reset before sending), and
/// after it was sent only for idempotent methods (RFC 9110 §9.2.2).
pub fn may_retry(method: &str, sent: bool) -> bool {
    !sent
        || matches!(
            method.to_ascii_uppercase().as_str(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use fado_model::Health;

    #[test]
    fn urls_split_into_what_wasi_http_takes() {
        assert_eq!(
            split_url("https://k.example:8443/f/x?q=1"),
            Some(("https", "k.example:8443", "/f/x?q=1".into()))
        );
        assert_eq!(
            split_url("http://gw:8080"),
            Some(("http", "gw:8080", "/".into()))
        );
        assert_eq!(
            split_url("http://gw?x=1"),
            Some(("http", "gw", "/?x=1".into()))
        );
        assert_eq!(split_url("gw:8080/f"), None);
        assert_eq!(split_url("http:///f"), None);
    }

    #[test]
    fn bucket_lists() {
        assert_eq!(
            parse_buckets("X-FaDO-Bucket", "images").unwrap(),
            ["images"]
        );
        assert_eq!(
            parse_buckets("X-FaDO-Bucket", " a-1 ,b-2,a-1").unwrap(),
            ["a-1", "b-2"]
        );
        for bad in ["", "a,,b", "a,", "UPPER", "a b", " , x"] {
            let e = parse_buckets("X-FaDO-Bucket", bad).unwrap_err();
            assert!(e.to_string().starts_with("X-FaDO-Bucket: "), "{bad:?}: {e}");
        }
        let many: Vec<String> = (0..=MAX_BUCKETS).map(|i| format!("b{i:03}")).collect();
        assert!(parse_buckets("h", &many.join(",")).is_err());
    }

    #[test]
    fn paths() {
        let inv = split_path("/resize/v1/run?x=1&y");
        assert_eq!(
            inv,
            Invocation {
                function: "resize",
                rest: "/v1/run",
                query: Some("x=1&y")
            }
        );
        assert_eq!(split_path("/f").rest, "");
        assert_eq!(split_path("/f/").rest, "/");
        assert_eq!(split_path("/").function, "");
        assert_eq!(split_path("").function, "");
    }

    #[test]
    fn upstream_urls() {
        let url = |base, tpl, path| upstream_url(base, tpl, &split_path(path));
        // OpenFaaS, Spin/Knative, Lambda function URL, a fixed path.
        assert_eq!(
            url("http://gw:8080", "/function/{function}", "/resize/a?x=1").unwrap(),
            "http://gw:8080/function/resize/a?x=1"
        );
        assert_eq!(
            url("https://k.example/", "/{function}", "/resize").unwrap(),
            "https://k.example/resize"
        );
        assert_eq!(
            url(
                "https://abc.lambda-url.eu-west-1.on.aws",
                "",
                "/resize/a/b?q"
            )
            .unwrap(),
            "https://abc.lambda-url.eu-west-1.on.aws/a/b?q"
        );
        assert_eq!(
            url("https://abc.lambda-url.eu-west-1.on.aws", "", "/resize").unwrap(),
            "https://abc.lambda-url.eu-west-1.on.aws/"
        );
        assert_eq!(
            url("http://h", "/static/", "/f/x").unwrap(),
            "http://h/static/x"
        );
        assert_eq!(
            url("http://h", "/{function}", "/").unwrap_err(),
            RequestError::NoFunction
        );
        assert_eq!(url("http://h", "", "/").unwrap(), "http://h/");
    }

    #[test]
    fn retries() {
        assert!(may_retry("POST", false));
        assert!(!may_retry("POST", true));
        assert!(!may_retry("PATCH", true));
        assert!(may_retry("get", true));
        assert!(may_retry("PUT", true));
    }

    fn target(id: i64) -> RouteTarget {
        RouteTarget {
            faas_id: id,
            name: format!("f{id}"),
            cluster: "c".into(),
            base_url: "http://h".into(),
            path_template: "/{function}".into(),
            timeout_ms: 1000,
            health: Health::Unknown,
        }
    }

    fn route(bucket: &str, policy: SelectionPolicy, ids: &[i64]) -> BucketRoute {
        BucketRoute {
            bucket: bucket.into(),
            policy,
            overridden: false,
            targets: ids.iter().map(|&i| target(i)).collect(),
        }
    }

    #[test]
    fn several_buckets_need_deployments_holding_all() {
        let a = route("a", SelectionPolicy::LeastConn, &[3, 1, 2]);
        let b = route("b", SelectionPolicy::RoundRobin, &[2, 3, 4]);
        let (t, p) = common_targets(&[&a, &b]);
        assert_eq!(t.iter().map(|t| t.faas_id).collect::<Vec<_>>(), [3, 2]);
        assert_eq!(p, Some(SelectionPolicy::LeastConn));
        let c = route("c", SelectionPolicy::First, &[9]);
        assert!(common_targets(&[&a, &c]).0.is_empty());
        assert_eq!(common_targets(&[]), (vec![], None));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Fuzzing the bucket header: any value is a list of distinct valid
            // bucket names (at most MAX_BUCKETS) or a refusal, never a panic.
            // PROPTEST_CASES sets how many (docs/reliability.md records a run).
            #[test]
            fn any_bucket_header_is_a_valid_list_or_refused(
                value in prop_oneof![
                    proptest::arbitrary::any::<String>(),
                    "[ ,a-z0-9.\\-]{0,80}",
                    proptest::collection::vec("[a-z0-9][a-z0-9.-]{1,8}[a-z0-9]", 0..20)
                        .prop_map(|v| v.join(" , ")),
                ],
            ) {
                if let Ok(buckets) = parse_buckets("X-FaDO-Bucket", &value) {
                    prop_assert!(!buckets.is_empty() && buckets.len() <= MAX_BUCKETS);
                    for (i, b) in buckets.iter().enumerate() {
                        prop_assert!(fado_model::validate::bucket_name("b", b).is_ok(), "{b:?}");
                        prop_assert!(!buckets[..i].contains(b), "{b:?} twice");
                    }
                }
            }
        }
    }
}
