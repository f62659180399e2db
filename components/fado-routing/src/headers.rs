//! Headers a proxy must not forward, and the ones it adds (RFC 9110 §7.6.1,
//! RFC 7239).

/// Headers that describe one connection, never forwarded either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` must be dropped: a hop-by-hop header, or one the
/// `Connection` header (`connection`, its value) lists.
pub fn is_hop_by_hop(name: &str, connection: Option<&str>) -> bool {
    let name = name.trim();
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || connection.is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case(name)))
}

/// The client as the router saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    /// Address of the peer that connected (no port), if known.
    pub addr: Option<&'a str>,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
    /// `http` or `https`.
    pub proto: &'a str,
}

/// The `Forwarded`, `X-Forwarded-For`, `-Host` and `-Proto` values to send
/// upstream, given what the request already carried: the router appends
/// itself to the chain (`Forwarded`, `X-Forwarded-For`) and keeps an
/// earlier proxy's host and protocol (they describe the original request).
pub fn forwarded(
    client: &Client<'_>,
    prior_forwarded: Option<&str>,
    prior_xff: Option<&str>,
    prior_host: Option<&str>,
    prior_proto: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut element = Vec::new();
    if let Some(addr) = client.addr {
        element.push(format!("for={}", node(addr)));
    }
    if let Some(host) = client.host {
        element.push(format!("host={}", quoted_if_needed(host)));
    }
    element.push(format!("proto={}", client.proto));
    let element = element.join(";");
    let chain = |prior: Option<&str>, next: String| match prior.map(str::trim) {
        Some(p) if !p.is_empty() => format!("{p}, {next}"),
        _ => next,
    };
    let mut out = vec![("forwarded", chain(prior_forwarded, element))];
    if let Some(addr) = client.addr {
        out.push(("x-forwarded-for", chain(prior_xff, addr.to_string())));
    } else if let Some(prior) = prior_xff {
        out.push(("x-forwarded-for", prior.to_string()));
    }
    let host = prior_host.or(client.host);
    if let Some(host) = host {
        out.push(("x-forwarded-host", host.to_string()));
    }
    out.push((
        "x-forwarded-proto",
        prior_proto.unwrap_or(client.proto).to_string(),
    ));
    out
}

/// An address as a `Forwarded` node: IPv6 in quoted brackets.
fn node(addr: &str) -> String {
    if addr.contains(':') {
        format!(
            "\"[{}]\"",
            addr.trim_start_matches('[').trim_end_matches(']')
        )
    } else {
        addr.to_string()
    }
}

/// A `Forwarded` value, quoted unless it is a plain token.
fn quoted_if_needed(v: &str) -> String {
    let token = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers() {
        assert!(is_hop_by_hop("Connection", None));
        assert!(is_hop_by_hop("transfer-encoding", None));
        assert!(is_hop_by_hop("X-Trace", Some("keep-alive, x-trace")));
        assert!(!is_hop_by_hop("content-length", Some("close")));
        assert!(!is_hop_by_hop("x-fado-bucket", None));
    }

    #[test]
    fn forwarded_chain() {
        let c = Client {
            addr: Some("10.0.0.7"),
            host: Some("fado.example:8080"),
            proto: "http",
        };
        let h = forwarded(&c, None, None, None, None);
        assert_eq!(
            h,
            vec![
                (
                    "forwarded",
                    "for=10.0.0.7;host=\"fado.example:8080\";proto=http".to_string()
                ),
                ("x-forwarded-for", "10.0.0.7".to_string()),
                ("x-forwarded-host", "fado.example:8080".to_string()),
                ("x-forwarded-proto", "http".to_string()),
            ]
        );
        let v6 = Client {
            addr: Some("::1"),
            host: Some("h"),
            proto: "https",
        };
        let h = forwarded(
            &v6,
            Some("for=1.2.3.4"),
            Some("1.2.3.4"),
            Some("orig"),
            Some("https"),
        );
        assert_eq!(h[0].1, "for=1.2.3.4, for=\"[::1]\";host=h;proto=https");
        assert_eq!(h[1].1, "1.2.3.4, ::1");
        assert_eq!(h[2].1, "orig");
        assert_eq!(h[3].1, "https");
    }
}
