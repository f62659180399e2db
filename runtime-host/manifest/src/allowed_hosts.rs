//! `allowed_outbound_hosts` rules with Spin's semantics:
//! `<scheme>://<host>[:<port>]`, where the scheme may be `*`, the host may be
//! `*`, `*.domain`, a literal, a CIDR range or `self`/`self.alt`, and the port
//! may be `*`, a number or a `start..end` range (end exclusive). A missing
//! port means the scheme's well-known port. A range takes a port like any
//! host (`*://127.0.0.0/24:6379`); IPv6 ranges are written without brackets
//! (`*://::1/128:80`), IPv6 addresses with them (`http://[::1]:80`).
//! `wasi:sockets` connections are checked under the schemes `tcp` and `udp`.

use std::net::{IpAddr, SocketAddr};
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
        let (host, port) = split_host_port(rest.strip_suffix('/').unwrap_or(rest)).map_err(fail)?;
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
                } else if h.contains('/') {
                    return Err(fail("a rule must not contain a path"));
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

/// Splits `host[:port]` as Spin does: the port is whatever follows the last
/// ':' unless the whole text is an address range (`::1/128` and
/// `2001:db8::/32` end in a colon-free group but carry no port), or a
/// bracketed IPv6 literal ends first. A '/' left in the port is a path.
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), &'static str> {
    if parse_cidr(rest).is_some() {
        return Ok((rest, None));
    }
    let (host, port) = if rest.starts_with('[')
        && let Some(end) = rest.find(']')
    {
        let (host, tail) = rest.split_at(end + 1);
        match tail {
            "" => (host, None),
            t => match t.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => {
                    let prefix = t
                        .strip_prefix('/')
                        .map(|r| r.split(':').next().unwrap_or(r));
                    return Err(match prefix {
                        // Spin parses ranges without brackets only.
                        Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                            "an IPv6 range is written without brackets, e.g. '*://::1/128:80'"
                        }
                        Some(_) => "a rule must not contain a path",
                        None => "expected ':<port>' after a bracketed IPv6 address",
                    });
                }
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    match port {
        Some(p) if p.contains('/') => Err("a rule must not contain a path"),
        Some("") => Ok((host, None)),
        p => Ok((host, p)),
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

    /// Whether a `wasi:sockets` connection to `addr` is allowed under
    /// `scheme` (`tcp` or `udp`, lowercase), as Spin checks it: only the
    /// address is known, so rules with host names never match (Spin does
    /// not resolve them), while `*`, IP literals and ranges do.
    pub fn allows_socket(&self, scheme: &str, addr: SocketAddr) -> bool {
        let host = match addr.ip() {
            IpAddr::V4(ip) => url::Host::Ipv4(ip),
            IpAddr::V6(ip) => url::Host::Ipv6(ip),
        };
        self.rules
            .iter()
            .any(|r| r.allows(scheme, &host, Some(addr.port())))
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
    fn cidr_ranges_with_ports() {
        let h = hosts(&[
            "*://127.0.0.0/24:7",
            "tcp://10.0.0.0/8:1000..2000",
            "*://192.168.0.0/16:*",
            "*://::1/128:80",
            "udp://2001:db8::/32:*",
            "http://fd00::/8",
            "postgres://172.16.0.0/12/",
        ]);
        let tcp = |a: &str| h.allows_socket("tcp", a.parse().unwrap());
        assert!(tcp("127.0.0.1:7"));
        assert!(tcp("127.0.0.255:7"));
        assert!(!tcp("127.0.1.1:7"));
        assert!(!tcp("127.0.0.1:8"));
        assert!(tcp("10.9.8.7:1999"));
        assert!(!tcp("10.9.8.7:2000"));
        assert!(tcp("192.168.3.4:65535"));
        assert!(tcp("[::1]:80"));
        assert!(!tcp("[::2]:80"));
        assert!(!tcp("[2001:db8::1]:53"), "the range is for udp only");
        assert!(h.allows_socket("udp", "[2001:db8:ff::1]:53".parse().unwrap()));
        assert!(h.allows("http", "[fd00::5]", None));
        assert!(!h.allows("http", "[fd00::5]", Some(8080)));
        assert!(h.allows("postgres", "172.31.0.1", None));
        // A template that renders to a range parses like a literal one.
        assert!(AllowedHost::parse("*://127.0.0.0/24:6001").is_ok());
    }

    #[test]
    fn sockets_match_addresses_never_names() {
        let h = hosts(&[
            "*://localhost:7",
            "tcp://*.example.com:*",
            "http://self",
            "tcp://127.0.0.2:7",
            "udp://[::1]:9",
        ]);
        let allows = |scheme, a: &str| h.allows_socket(scheme, a.parse().unwrap());
        assert!(!allows("tcp", "127.0.0.1:7"), "host names are not resolved");
        assert!(allows("tcp", "127.0.0.2:7"));
        assert!(
            !allows("udp", "127.0.0.2:7"),
            "a tcp rule is not a udp rule"
        );
        assert!(allows("udp", "[::1]:9"));
        assert!(!allows("tcp", "[::1]:9"));
        assert!(hosts(&["*://*:*"]).allows_socket("udp", "0.0.0.0:0".parse().unwrap()));
        assert!(!AllowedHosts::default().allows_socket("tcp", "127.0.0.1:7".parse().unwrap()));
    }

    #[test]
    fn bracketed_ranges_are_refused_with_a_hint() {
        let e = AllowedHost::parse("*://[::1]/128:80").unwrap_err();
        assert!(e.reason.contains("without brackets"), "{e}");
        assert!(AllowedHost::parse("*://::1/128:80").is_ok());
    }

    #[test]
    fn rejects_malformed_rules() {
        for bad in [
            "example.com",
            "*",
            "https://example.com/path",
            "https://example.com:8080/path",
            "https://example.com//",
            "http://127.0.0.0/24/p",
            "http://127.0.0.0/24:80/p",
            "http://[::1]/foo",
            "http://[::1]junk",
            "http://[::1]::80",
            "http://example.com:80:90",
            "http://*.127.0.0.1",
            "*://127.0.0.0/24",
            "*://::1/128",
            "*://[::1]/128:80",
            "http://10.0.0.0/33:80",
            "http://::1:80",
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

        /// `*://<range>:<port>` allows exactly the addresses in the range, on
        /// that port, for TCP and UDP alike; IPv4 and IPv6.
        #[test]
        fn ranges_with_ports(
            net in proptest::prop_oneof![
                (any::<u32>(), 0u8..=32).prop_map(|(a, len)| IpNet::V4(
                    ipnet::Ipv4Net::new(a.into(), len).unwrap()
                )),
                (any::<u128>(), 0u8..=128).prop_map(|(a, len)| IpNet::V6(
                    ipnet::Ipv6Net::new(a.into(), len).unwrap()
                )),
            ],
            probe in any::<u128>(),
            port in 1u16..,
            other_port in 1u16..,
        ) {
            let rules = AllowedHosts::parse(&[format!("*://{net}:{port}")]).unwrap();
            // One address inside the range, one anywhere in the family.
            let inside = match net.trunc() {
                IpNet::V4(n) => IpAddr::V4((u32::from(n.network()) | (probe as u32 & !u32::from(n.netmask()))).into()),
                IpNet::V6(n) => IpAddr::V6((u128::from(n.network()) | (probe & !u128::from(n.netmask()))).into()),
            };
            let anywhere = match net {
                IpNet::V4(_) => IpAddr::V4((probe as u32).into()),
                IpNet::V6(_) => IpAddr::V6(probe.into()),
            };
            for scheme in ["tcp", "udp"] {
                prop_assert!(rules.allows_socket(scheme, SocketAddr::new(inside, port)));
                prop_assert_eq!(
                    rules.allows_socket(scheme, SocketAddr::new(inside, other_port)),
                    other_port == port
                );
                prop_assert_eq!(
                    rules.allows_socket(scheme, SocketAddr::new(anywhere, port)),
                    net.contains(&anywhere)
                );
            }
            // Port wildcards and ranges go with ranges too.
            let any_port = AllowedHosts::parse(&[format!("*://{net}:*")]).unwrap();
            prop_assert!(any_port.allows_socket("tcp", SocketAddr::new(inside, other_port)));
            let (lo, hi) = (port.min(other_port), port.max(other_port));
            if lo < hi {
                let range = AllowedHosts::parse(&[format!("tcp://{net}:{lo}..{hi}")]).unwrap();
                prop_assert!(range.allows_socket("tcp", SocketAddr::new(inside, lo)));
                prop_assert!(!range.allows_socket("tcp", SocketAddr::new(inside, hi)));
                prop_assert!(!range.allows_socket("udp", SocketAddr::new(inside, lo)));
            }
        }

        /// Anything after the host and port other than one '/' is a path,
        /// whatever the host: a name, an address or a range.
        #[test]
        fn paths_are_refused(
            host in proptest::prop_oneof![
                "[a-z]{1,10}\\.[a-z]{2,5}",
                any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
                (any::<u32>(), 0u8..=32).prop_map(|(a, len)| ipnet::Ipv4Net::new(a.into(), len).unwrap().to_string()),
                any::<u128>().prop_map(|a| format!("[{}]", std::net::Ipv6Addr::from(a))),
            ],
            port in proptest::option::of(1u16..),
            segment in "[a-z][a-z0-9]{0,7}",
        ) {
            let authority = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            let parses = |tail: &str| AllowedHost::parse(&format!("https://{authority}{tail}")).is_ok();
            prop_assert!(parses(""));
            prop_assert!(parses("/"));
            let path = format!("/{segment}");
            prop_assert!(!parses(&path));
            prop_assert!(!parses("//"));
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
