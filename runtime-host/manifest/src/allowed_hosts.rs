//! `allowed_outbound_hosts` rules with Spin's semantics:
//! `<scheme>://<host>[:<port>]`, where the scheme may be `*`, the host may be
//! `*`, `*.domain`, a literal, a CIDR range or `self`/`self.alt`, and the port
//! may be `*`, a number or a `start..end` range (end exclusive). A missing
//! port means the scheme's well-known port.

use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;

/// The domain under which components reach each other in-process.
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    rules: Vec<AllowedHost>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    original: String,
    scheme: Option<String>,
    host: HostRule,
    port: PortRule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    Any,
    /// Stored with the leading dot, e.g. `.example.com`.
    AnySubdomain(String),
    ToSelf,
    Literal(url::Host),
    Cidr(IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortRule {
    Any,
    Port(u16),
    Range(Range<u16>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid allowed outbound host {rule:?}: {reason}")]
pub struct AllowedHostError {
    pub rule: String,
    pub reason: String,
}

/// The port a scheme uses when none is given.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "redis" => 6379,
        "rediss" => 6380,
        "postgres" | "postgresql" => 5432,
        "mysql" => 3306,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHost {
    pub fn parse(rule: &str) -> Result<Self, AllowedHostError> {
        let fail = |reason: &str| AllowedHostError {
            rule: rule.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = rule.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(fail(
                "expected <scheme>://<host>[:<port>] ('*' may stand for any scheme, host or port; '*://*:*' allows everything)",
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') && parse_cidr(rest).is_none() {
            return Err(fail("a rule must not contain a path"));
        }
        let (host, port) = split_host_port(rest);
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(fail("the scheme must be '*' or letters only")),
        };
        let port = match port {
            None => {
                let Some(port) = scheme.as_deref().and_then(well_known_port) else {
                    return Err(fail(
                        "no port given and the scheme has no well-known port; add ':<port>' or ':*'",
                    ));
                };
                PortRule::Port(port)
            }
            Some("*") => PortRule::Any,
            Some(p) => match p.split_once("..") {
                Some((a, b)) => {
                    let start = a
                        .parse()
                        .map_err(|_| fail("port range start is not a number"))?;
                    let end = b
                        .parse()
                        .map_err(|_| fail("port range end is not a number"))?;
                    if start >= end {
                        return Err(fail("port range is empty"));
                    }
                    PortRule::Range(start..end)
                }
                None => PortRule::Port(p.parse().map_err(|_| fail("port is not a number"))?),
            },
        };
        let host = match host {
            "*" => HostRule::Any,
            "self" | "self.alt" => HostRule::ToSelf,
            h => {
                if let Some(net) = parse_cidr(h) {
                    HostRule::Cidr(net)
                } else if let Some(domain) = h.strip_prefix("*.") {
                    if domain.contains('*') {
                        return Err(fail("'*' is only allowed as the first label of a host"));
                    }
                    match url::Host::parse(domain) {
                        Ok(url::Host::Domain(d)) => HostRule::AnySubdomain(format!(".{d}")),
                        _ => return Err(fail("a wildcard host must end in a domain name")),
                    }
                } else if h.contains('*') {
                    return Err(fail("'*' is only allowed as the first label of a host"));
                } else {
                    HostRule::Literal(
                        url::Host::parse(h).map_err(|e| fail(&format!("bad host: {e}")))?,
                    )
                }
            }
        };
        Ok(Self {
            original: rule.to_string(),
            scheme,
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &url::Host, port: Option<u16>) -> bool {
        if let Some(s) = &self.scheme
            && s != scheme
        {
            return false;
        }
        let host_ok = match (&self.host, host) {
            (HostRule::Any, _) => true,
            (HostRule::AnySubdomain(suffix), url::Host::Domain(d)) => d.ends_with(suffix.as_str()),
            (HostRule::Literal(l), h) => l == h,
            (HostRule::Cidr(net), url::Host::Ipv4(ip)) => net.contains(&IpAddr::V4(*ip)),
            (HostRule::Cidr(net), url::Host::Ipv6(ip)) => net.contains(&IpAddr::V6(*ip)),
            _ => false,
        };
        if !host_ok {
            return false;
        }
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return matches!(self.port, PortRule::Any);
        };
        match &self.port {
            PortRule::Any => true,
            PortRule::Port(p) => *p == port,
            PortRule::Range(r) => r.contains(&port),
        }
    }

    /// The component id this rule lets a component call in-process, or `*`.
    pub fn service_chaining_target(&self) -> Option<&str> {
        match &self.host {
            HostRule::Literal(url::Host::Domain(d)) => d.strip_suffix(SERVICE_CHAINING_SUFFIX),
            HostRule::AnySubdomain(s) if s == SERVICE_CHAINING_SUFFIX => Some("*"),
            _ => None,
        }
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.original)
    }
}

/// Splits `host[:port]`, keeping bracketed IPv6 literals and bare CIDRs intact.
fn split_host_port(rest: &str) -> (&str, Option<&str>) {
    if rest.starts_with('[') {
        if let Some(end) = rest.find(']') {
            let host = &rest[..=end];
            let tail = &rest[end + 1..];
            return (host, tail.strip_prefix(':').filter(|p| !p.is_empty()));
        }
        return (rest, None);
    }
    if parse_cidr(rest).is_some() || rest.matches(':').count() > 1 {
        // A bare IPv6 address or a CIDR range with no port.
        if let Some((h, p)) = rest.rsplit_once(':')
            && parse_cidr(h).is_some()
            && (p == "*" || p.parse::<u16>().is_ok() || p.contains(".."))
            && h.contains('/')
        {
            return (h, Some(p));
        }
        return (rest, None);
    }
    match rest.rsplit_once(':') {
        Some((h, "")) => (h, None),
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    }
}

fn parse_cidr(s: &str) -> Option<IpNet> {
    if !s.contains('/') {
        return None;
    }
    s.parse::<IpNet>().ok().map(|n| n.trunc())
}

impl AllowedHosts {
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, AllowedHostError> {
        let rules = rules
            .iter()
            .map(|r| AllowedHost::parse(r.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    pub fn allow_all() -> Self {
        Self::parse(&["*://*:*"]).expect("static rule parses")
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[AllowedHost] {
        &self.rules
    }

    /// Whether a connection to `host` (a domain or IP literal, IPv6 with or
    /// without brackets) on `port` with `scheme` is allowed.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let parsed = match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => url::Host::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => url::Host::Ipv6(ip),
            Err(_) => match url::Host::parse(host) {
                Ok(h) => h,
                Err(_) => return false,
            },
        };
        let scheme = scheme.to_ascii_lowercase();
        self.rules.iter().any(|r| r.allows(&scheme, &parsed, port))
    }

    /// Whether a URL such as `redis://host:6379/0` is allowed.
    pub fn allows_url(&self, url: &str) -> bool {
        match url::Url::parse(url) {
            Ok(u) => match u.host_str() {
                Some(h) => self.allows(u.scheme(), h, u.port()),
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Whether requests to the application itself (`http://self`) are allowed.
    pub fn allows_self(&self, scheme: &str) -> bool {
        self.rules.iter().any(|r| {
            matches!(r.host, HostRule::ToSelf | HostRule::Any)
                && r.scheme.as_deref().is_none_or(|s| s == scheme)
        })
    }
}

/// If `host` is `<component>.spin.internal`, the component id.
pub fn service_chaining_component(host: &str) -> Option<&str> {
    host.strip_suffix(SERVICE_CHAINING_SUFFIX)
        .filter(|id| !id.is_empty() && !id.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(rules: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(rules).unwrap()
    }

    #[test]
    fn default_ports_by_scheme() {
        let h = hosts(&["https://example.com", "redis://cache"]);
        assert!(h.allows("https", "example.com", None));
        assert!(h.allows("https", "example.com", Some(443)));
        assert!(!h.allows("https", "example.com", Some(8443)));
        assert!(!h.allows("http", "example.com", None));
        assert!(h.allows("redis", "cache", Some(6379)));
        assert!(!h.allows("redis", "cache", Some(6380)));
    }

    #[test]
    fn wildcards() {
        let h = hosts(&["*://*.example.com:*", "http://localhost:3000..3010"]);
        assert!(h.allows("https", "api.example.com", Some(9)));
        assert!(h.allows("redis", "a.b.example.com", None));
        assert!(!h.allows("https", "example.com", None));
        assert!(h.allows("http", "localhost", Some(3009)));
        assert!(!h.allows("http", "localhost", Some(3010)));
        assert!(hosts(&["*://*:*"]).allows("postgres", "10.1.2.3", Some(1)));
    }

    #[test]
    fn ip_literals_and_cidr() {
        let h = hosts(&[
            "http://127.0.0.1:*",
            "postgres://10.0.0.0/8",
            "http://[::1]:8080",
        ]);
        assert!(h.allows("http", "127.0.0.1", Some(1234)));
        assert!(h.allows("postgres", "10.200.0.1", None));
        assert!(!h.allows("postgres", "11.0.0.1", None));
        assert!(h.allows("http", "[::1]", Some(8080)));
        assert!(h.allows("http", "::1", Some(8080)));
    }

    #[test]
    fn urls_and_self() {
        let h = hosts(&["redis://127.0.0.1:6390", "http://self"]);
        assert!(h.allows_url("redis://127.0.0.1:6390/0"));
        assert!(!h.allows_url("redis://127.0.0.1:6391"));
        assert!(h.allows_self("http"));
        assert!(!hosts(&["http://example.com"]).allows_self("http"));
        assert!(!h.allows("http", "self", None));
    }

    #[test]
    fn service_chaining() {
        let r = AllowedHost::parse("http://catalog.spin.internal").unwrap();
        assert_eq!(r.service_chaining_target(), Some("catalog"));
        let r = AllowedHost::parse("http://*.spin.internal").unwrap();
        assert_eq!(r.service_chaining_target(), Some("*"));
        assert_eq!(
            service_chaining_component("catalog.spin.internal"),
            Some("catalog")
        );
        assert_eq!(service_chaining_component("spin.internal"), None);
    }

    #[test]
    fn rejects_malformed_rules() {
        for bad in [
            "example.com",
            "*",
            "https://example.com/path",
            "foo://example.com",
            "http://ex*ample.com",
            "http://example.com:abc",
            "http://example.com:9..3",
            "1ttp://example.com",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// `*://*:*` allows everything; an empty list allows nothing.
        #[test]
        fn allow_all_and_deny_all(
            scheme in "(http|https|redis|postgres|mqtt)",
            host in "[a-z]{1,10}(\\.[a-z]{1,10}){0,3}",
            port in proptest::option::of(1u16..),
        ) {
            prop_assert!(AllowedHosts::allow_all().allows(&scheme, &host, port));
            prop_assert!(!AllowedHosts::default().allows(&scheme, &host, port));
        }

        /// A literal rule allows exactly its own scheme, host and port.
        #[test]
        fn literal_rules_are_exact(
            host in "[a-z]{1,10}\\.[a-z]{2,5}",
            other in "[a-z]{1,10}\\.[a-z]{2,5}",
            port in 1u16..,
            other_port in 1u16..,
        ) {
            let rules = AllowedHosts::parse(&[format!("https://{host}:{port}")]).unwrap();
            prop_assert!(rules.allows("https", &host, Some(port)));
            prop_assert!(!rules.allows("http", &host, Some(port)));
            prop_assert_eq!(rules.allows("https", &host, Some(other_port)), other_port == port);
            prop_assert_eq!(rules.allows("https", &other, Some(port)), other == host);
        }

        /// `*.domain` allows every subdomain and never the domain itself.
        #[test]
        fn subdomain_wildcards(label in "[a-z]{1,8}", domain in "[a-z]{1,8}\\.[a-z]{2,4}") {
            let rules = AllowedHosts::parse(&[format!("https://*.{domain}")]).unwrap();
            let sub = format!("{label}.{domain}");
            prop_assert!(rules.allows("https", &sub, None));
            prop_assert!(!rules.allows("https", &domain, None));
        }
    }
}
