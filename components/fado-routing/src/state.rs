//! The router's per-deployment state as it is kept in the key-value store
//! `fado_router_state` (keys in `fado_model::router_state`): which keys a
//! request reads for its policy, how the values are written, and how they
//! become the [`Peer`]s that [`crate::select::rank`] orders.
//!
//! Values are short decimal text, so they read the same in Redis (under
//! Spin) as in fado's process-local store:
//! - in-flight counts: one counter per deployment and lease window;
//! - outlier records: `consecutive ejections ejected_until_ms`;
//! - latency: `latency_us at_ms` (peak-EWMA).

use fado_model::router_state::{self as keys, LEASE_WINDOW_MS};
use fado_model::{Health, RouteTarget, SelectionPolicy};

use crate::latency::PeakEwma;
use crate::outlier;
use crate::select::Peer;

/// The lease window a request starting at `now_ms` is counted in.
pub fn window(now_ms: u64) -> u64 {
    now_ms / LEASE_WINDOW_MS
}

/// Whether `policy` weighs requests in flight.
pub fn weighs_in_flight(policy: SelectionPolicy) -> bool {
    matches!(
        policy,
        SelectionPolicy::LeastConn | SelectionPolicy::P2c | SelectionPolicy::LeastLatency
    )
}

/// Whether `policy` needs the route's round-robin counter: as its order
/// (`round_robin`, and the hash policies without a key). The load-aware
/// policies break ties with a random draw instead, as Caddy does, which
/// saves a write per request.
pub fn uses_counter(policy: SelectionPolicy, has_key: bool) -> bool {
    match policy {
        SelectionPolicy::RoundRobin => true,
        SelectionPolicy::IpHash | SelectionPolicy::HeaderHash => !has_key,
        _ => false,
    }
}

/// The keys to read for ranking `targets` under `policy` at `now_ms`, in
/// the order [`peers`] expects their values: per target its outlier
/// record, then (for `least_latency`) its latency, then (for policies that
/// weigh them) its in-flight counts of this and the previous window.
pub fn keys_to_read(policy: SelectionPolicy, targets: &[&RouteTarget], now_ms: u64) -> Vec<String> {
    let w = window(now_ms);
    let mut out = Vec::with_capacity(targets.len() * 4);
    for t in targets {
        out.push(keys::outlier(t.faas_id));
        if policy == SelectionPolicy::LeastLatency {
            out.push(keys::latency(t.faas_id));
        }
        if weighs_in_flight(policy) {
            out.push(keys::in_flight(t.faas_id, w));
            out.push(keys::in_flight(t.faas_id, w.saturating_sub(1)));
        }
    }
    out
}

/// What was read for one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    pub outlier: outlier::State,
    pub latency: Option<PeakEwma>,
    pub in_flight: u64,
}

/// The values read for [`keys_to_read`]'s keys, per target. Unreadable
/// values count as absent: state is advisory, a request is never refused
/// for it.
pub fn reads(policy: SelectionPolicy, count: usize, values: &[Option<Vec<u8>>]) -> Vec<Read> {
    let mut it = values.iter();
    let mut next = || it.next().and_then(|v| v.as_deref());
    (0..count)
        .map(|_| {
            let outlier = next().and_then(decode_outlier).unwrap_or_default();
            let latency = if policy == SelectionPolicy::LeastLatency {
                next().and_then(decode_latency)
            } else {
                None
            };
            let in_flight = if weighs_in_flight(policy) {
                let a = next().and_then(decode_count).unwrap_or(0);
                let b = next().and_then(decode_count).unwrap_or(0);
                // A count below zero: a decrement landed in the window
                // after its increment's (a request spanning a boundary
                // decrements the window it began in, so this is a leak
                // being evened out); it means nothing in flight.
                (a + b).max(0) as u64
            } else {
                0
            };
            Read {
                outlier,
                latency,
                in_flight,
            }
        })
        .collect()
}

/// The peers [`crate::select::rank`] orders: a deployment is available when
/// outlier detection has not ejected it and health probes have not found
/// it down.
pub fn peers(targets: &[&RouteTarget], reads: &[Read], now_ms: u64) -> Vec<Peer> {
    targets
        .iter()
        .zip(reads)
        .map(|(t, r)| Peer {
            faas_id: t.faas_id,
            in_flight: r.in_flight,
            latency_us: r.latency.map_or(0.0, |l| l.latency_us),
            available: t.health != Health::Unhealthy && r.outlier.available(now_ms),
        })
        .collect()
}

pub fn encode_outlier(s: &outlier::State) -> Vec<u8> {
    format!("{} {} {}", s.consecutive, s.ejections, s.ejected_until_ms).into_bytes()
}

pub fn decode_outlier(b: &[u8]) -> Option<outlier::State> {
    let text = std::str::from_utf8(b).ok()?;
    let mut parts = text.split(' ');
    let state = outlier::State {
        consecutive: parts.next()?.parse().ok()?,
        ejections: parts.next()?.parse().ok()?,
        ejected_until_ms: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(state)
}

pub fn encode_latency(l: &PeakEwma) -> Vec<u8> {
    format!("{:.0} {}", l.latency_us, l.at_ms).into_bytes()
}

pub fn decode_latency(b: &[u8]) -> Option<PeakEwma> {
    let text = std::str::from_utf8(b).ok()?;
    let (latency, at) = text.split_once(' ')?;
    Some(PeakEwma {
        latency_us: latency.parse().ok()?,
        at_ms: at.parse().ok()?,
    })
}

pub fn decode_count(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target(id: i64, health: Health) -> RouteTarget {
        RouteTarget {
            faas_id: id,
            name: format!("f{id}"),
            cluster: "c".into(),
            base_url: "http://x".into(),
            path_template: String::new(),
            timeout_ms: 1000,
            health,
        }
    }

    #[test]
    fn keys_follow_the_policy() {
        let (a, b) = (target(1, Health::Healthy), target(2, Health::Healthy));
        let t = [&a, &b];
        assert_eq!(
            keys_to_read(SelectionPolicy::RoundRobin, &t, 0),
            ["outlier:1", "outlier:2"]
        );
        let now = 3 * LEASE_WINDOW_MS + 5;
        assert_eq!(
            keys_to_read(SelectionPolicy::LeastConn, &t, now),
            [
                "outlier:1",
                "inflight:1:3",
                "inflight:1:2",
                "outlier:2",
                "inflight:2:3",
                "inflight:2:2"
            ]
        );
        assert_eq!(keys_to_read(SelectionPolicy::LeastLatency, &t, 0).len(), 8);
    }

    #[test]
    fn reads_become_peers() {
        let (a, b) = (target(1, Health::Healthy), target(2, Health::Unhealthy));
        let values = vec![
            Some(b"0 1 500".to_vec()),
            Some(b"1200 7".to_vec()),
            Some(b"2".to_vec()),
            Some(b"1".to_vec()),
            None,
            None,
            Some(b"-1".to_vec()),
            None,
        ];
        let r = reads(SelectionPolicy::LeastLatency, 2, &values);
        assert_eq!(r[0].in_flight, 3);
        assert_eq!(r[0].latency.unwrap().latency_us, 1200.0);
        assert_eq!(r[1].in_flight, 0, "negative counts mean none");
        let p = peers(&[&a, &b], &r, 100);
        assert!(!p[0].available, "ejected until 500");
        assert!(!p[1].available, "probed down");
        assert!(peers(&[&a, &b], &r, 500)[0].available);
    }

    #[test]
    fn bad_values_are_ignored() {
        let values = vec![
            Some(b"x y z".to_vec()),
            Some(b"".to_vec()),
            Some(b"NaN".to_vec()),
        ];
        let r = reads(SelectionPolicy::LeastConn, 1, &values);
        assert_eq!(r[0], Read::default());
        assert_eq!(decode_outlier(b"1 2 3 4"), None);
    }

    proptest! {
        #[test]
        fn records_round_trip(c in 0u32..1000, e in 0u32..1000, u in any::<u64>(), l in 0u64..10_000_000_000, at in any::<u64>()) {
            let s = outlier::State { consecutive: c, ejections: e, ejected_until_ms: u };
            prop_assert_eq!(decode_outlier(&encode_outlier(&s)), Some(s));
            let p = PeakEwma { latency_us: l as f64, at_ms: at };
            prop_assert_eq!(decode_latency(&encode_latency(&p)), Some(p));
        }
    }
}
