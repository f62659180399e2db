//! HTTP route matching with Spin's route syntax: exact paths, `:name`
//! single-segment parameters and a trailing `/...` wildcard. When several
//! routes match, the most specific wins (exact segments beat parameters,
//! which beat wildcards; longer matches beat shorter ones), as ranked by
//! `routefinder`, the same crate Spin uses.

use std::collections::HashMap;

/// Routes under this prefix are answered by the host itself.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<RouteEntry>,
}

#[derive(Debug, Clone)]
struct RouteEntry {
    component: String,
    /// The route as written in the manifest, made absolute.
    route: String,
    wildcard: bool,
}

/// A request path matched to a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r> {
    pub component: &'r str,
    /// The matched route as written, e.g. `/api/...` (`spin-matched-route`).
    pub route: &'r str,
    /// The path after the route's fixed part (`spin-path-info`).
    pub path_info: String,
    /// `:name` captures (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

impl RouteMatch<'_> {
    /// The route without its trailing wildcard (`spin-component-route`).
    pub fn route_prefix(&self) -> &str {
        self.route.strip_suffix("/...").unwrap_or(self.route)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid route {route:?}: {reason}")]
pub struct RouteError {
    pub route: String,
    pub reason: String,
}

impl Router {
    /// Builds a router from `(route, component)` pairs in manifest order.
    /// Returns warnings for duplicated routes (the later one wins, as in Spin).
    pub fn build<'a>(
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(Self, Vec<String>), RouteError> {
        let mut by_route: indexmap::IndexMap<String, RouteEntry> = indexmap::IndexMap::new();
        let mut warnings = Vec::new();
        for (route, component) in routes {
            let route = normalize(route);
            validate(&route)?;
            let entry = RouteEntry {
                component: component.to_string(),
                wildcard: route.ends_with("/..."),
                route: route.clone(),
            };
            if let Some(old) = by_route.insert(route.clone(), entry) {
                warnings.push(format!(
                    "route {route:?} is declared for both {:?} and {component:?}; {component:?} handles it",
                    old.component
                ));
            }
        }
        let mut inner = routefinder::Router::new();
        for entry in by_route.into_values() {
            let spec = match entry.route.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => entry.route.clone(),
            };
            inner
                .add(spec.as_str(), entry)
                .map_err(|reason| RouteError {
                    route: spec.clone(),
                    reason,
                })?;
        }
        Ok((Self { inner }, warnings))
    }

    pub fn route<'r>(&'r self, path: &str) -> Option<RouteMatch<'r>> {
        let m = self.inner.best_match(path)?;
        let entry = m.handler();
        let captures = m.captures();
        let params: Vec<(String, String)> = captures
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let path_info = if entry.wildcard {
            let rest = captures.wildcard().unwrap_or_default();
            // routefinder drops the slashes around the wildcard part; Spin keeps them.
            match (rest.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{rest}"),
                (false, true) => format!("/{rest}/"),
            }
        } else {
            String::new()
        };
        Some(RouteMatch {
            component: &entry.component,
            route: &entry.route,
            path_info,
            params,
        })
    }

    /// Routes and their components, for logging at start-up.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .iter()
            .map(|(_, e)| (e.route.as_str(), e.component.as_str()))
    }
}

/// Makes a route absolute and drops one trailing slash, as Spin does.
pub fn normalize(route: &str) -> String {
    let route = route.trim();
    let mut r = if route.starts_with('/') {
        route.to_string()
    } else {
        format!("/{route}")
    };
    if r.len() > 1 && r.ends_with('/') {
        r.pop();
    }
    if r == "/" {
        // Spin treats "/" as the exact root route.
        return r;
    }
    r
}

fn validate(route: &str) -> Result<(), RouteError> {
    let fail = |reason: &str| RouteError {
        route: route.to_string(),
        reason: reason.to_string(),
    };
    let body = route.strip_suffix("/...").unwrap_or(route);
    if body.contains("...") {
        return Err(fail("'...' is only allowed as the last segment"));
    }
    if body.contains('*') {
        return Err(fail("use '/...' for a trailing wildcard, not '*'"));
    }
    let mut seen = HashMap::new();
    for seg in body.split('/').filter(|s| !s.is_empty()) {
        if let Some(name) = seg.strip_prefix(':') {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(fail(
                    "a ':name' parameter needs a name of letters, digits or '_'",
                ));
            }
            if seen.insert(name.to_string(), ()).is_some() {
                return Err(fail(&format!("parameter ':{name}' appears twice")));
            }
        } else if seg.contains(':') {
            return Err(fail("':' may only start a segment"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied()).unwrap().0
    }

    #[test]
    fn exact_beats_parameter_beats_wildcard() {
        let r = router(&[
            ("/...", "catch-all"),
            ("/users/:id", "user"),
            ("/users/me", "me"),
            ("/users/...", "users"),
        ]);
        assert_eq!(r.route("/users/me").unwrap().component, "me");
        let m = r.route("/users/42").unwrap();
        assert_eq!(m.component, "user");
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
        assert_eq!(r.route("/users/42/posts").unwrap().component, "users");
        assert_eq!(r.route("/other").unwrap().component, "catch-all");
        assert_eq!(r.route("/").unwrap().component, "catch-all");
    }

    #[test]
    fn exact_routes_do_not_match_children() {
        let r = router(&[("/cart", "cart")]);
        assert!(r.route("/cart").is_some());
        assert!(r.route("/cart/checkout").is_none());
        assert!(r.route("/").is_none());
    }

    #[test]
    fn wildcard_path_info_keeps_slashes() {
        let r = router(&[("/api/...", "api")]);
        let m = r.route("/api").unwrap();
        assert_eq!((m.path_info.as_str(), m.route_prefix()), ("", "/api"));
        assert_eq!(r.route("/api/").unwrap().path_info, "/");
        assert_eq!(r.route("/api/a/b").unwrap().path_info, "/a/b");
        assert_eq!(r.route("/api/a/b/").unwrap().path_info, "/a/b/");
        assert!(r.route("/apix").is_none());
    }

    #[test]
    fn longer_wildcard_wins() {
        let r = router(&[("/...", "root"), ("/api/...", "api"), ("/api/v1/...", "v1")]);
        assert_eq!(r.route("/api/v1/x").unwrap().component, "v1");
        assert_eq!(r.route("/api/v2/x").unwrap().component, "api");
    }

    #[test]
    fn duplicates_warn_and_last_wins() {
        let (r, warnings) = Router::build([("/a", "one"), ("/a", "two")]).unwrap();
        assert_eq!(warnings.len(), 1);
        assert_eq!(r.route("/a").unwrap().component, "two");
    }

    #[test]
    fn invalid_routes() {
        assert!(Router::build([("/a/.../b", "x")]).is_err());
        assert!(Router::build([("/a/*", "x")]).is_err());
        assert!(Router::build([("/:a/:a", "x")]).is_err());
        assert!(Router::build([("/a:b", "x")]).is_err());
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize("foo/"), "/foo");
        assert_eq!(normalize("/"), "/");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        // Dots only inside a segment: "." and ".." are resolved by clients
        // before a request is sent, and "..." is route syntax.
        "[a-z0-9_-]([a-z0-9_-]|\\.[a-z0-9_-]){0,4}"
    }

    proptest! {
        /// A wildcard route's fixed part plus `spin-path-info` is the request path.
        #[test]
        fn wildcard_prefix_plus_path_info_is_the_path(
            prefix in prop::collection::vec(segment(), 1..4),
            rest in prop::collection::vec(segment(), 0..5),
            trailing_slash in any::<bool>(),
        ) {
            let prefix = format!("/{}", prefix.join("/"));
            let route = format!("{prefix}/...");
            let (router, _) = Router::build([(route.as_str(), "c")]).unwrap();
            let mut path = prefix.clone();
            for s in &rest {
                path.push('/');
                path.push_str(s);
            }
            if trailing_slash {
                path.push('/');
            }
            let m = router.route(&path).expect("a wildcard matches everything under its prefix");
            prop_assert_eq!(m.route_prefix(), prefix.as_str());
            prop_assert_eq!(format!("{}{}", m.route_prefix(), m.path_info), path);
        }

        /// An exact route never beats a more specific exact route, and
        /// never matches a different path.
        #[test]
        fn exact_routes_match_only_themselves(
            a in prop::collection::vec(segment(), 1..4),
            b in prop::collection::vec(segment(), 1..4),
        ) {
            let (pa, pb) = (format!("/{}", a.join("/")), format!("/{}", b.join("/")));
            prop_assume!(pa != pb);
            let (router, _) = Router::build([(pa.as_str(), "a"), (pb.as_str(), "b")]).unwrap();
            prop_assert_eq!(router.route(&pa).map(|m| m.component), Some("a"));
            prop_assert_eq!(router.route(&pb).map(|m| m.component), Some("b"));
            let other = format!("{pa}/x");
            prop_assert!(router.route(&other).is_none_or(|m| m.component != "a"));
        }
    }
}
