//! Selection policies: in what order a request tries a route's deployments.
//!
//! [`rank`] returns the available deployments in preference order: the
//! first is the one called, the others are where a retry goes. Every input
//! that varies per request (the shared round-robin counter, random draws,
//! the hash key, the clock) is passed in, so the same inputs give the same
//! order here and in the router's Redis script.

use fado_model::SelectionPolicy;
use sha1::{Digest, Sha1};

/// One deployment of a route, as the router sees it right now.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    pub faas_id: i64,
    /// Requests in flight to it, across every router instance.
    pub in_flight: u64,
    /// Peak-EWMA response time in microseconds (0: nothing observed yet).
    pub latency_us: f64,
    /// False while outlier detection has it ejected.
    pub available: bool,
}

/// What varies per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draw {
    /// The route's shared counter, incremented once per request.
    pub counter: u64,
    /// Two uniformly random numbers.
    pub random: [u64; 2],
    /// The client address (`ip_hash`) or the hash header's value
    /// (`header_hash`); without one, hash policies act as `round_robin`.
    pub key: Option<Vec<u8>>,
}

/// Indices into `peers` of the available ones, best first.
pub fn rank(policy: SelectionPolicy, peers: &[Peer], draw: &Draw) -> Vec<usize> {
    let live: Vec<usize> = (0..peers.len()).filter(|&i| peers[i].available).collect();
    let n = live.len();
    if n == 0 {
        return live;
    }
    // The round-robin rotation: also the tie-break of the load-aware
    // policies, so equal peers share the load instead of the first taking it.
    let start = (draw.counter % n as u64) as usize;
    let rotation = |k: usize| live[(start + k) % n];
    let rotated: Vec<usize> = (0..n).map(rotation).collect();
    match policy {
        SelectionPolicy::First => live,
        SelectionPolicy::RoundRobin => rotated,
        SelectionPolicy::Random => {
            let from = (draw.random[0] % n as u64) as usize;
            (0..n).map(|k| live[(from + k) % n]).collect()
        }
        SelectionPolicy::LeastConn => by_key(rotated, |i| peers[i].in_flight as f64),
        SelectionPolicy::LeastLatency => by_key(rotated, |i| cost(&peers[i])),
        SelectionPolicy::P2c => {
            let least = by_key(rotated, |i| peers[i].in_flight as f64);
            if n == 1 {
                return least;
            }
            // Two distinct random candidates; the less loaded one wins
            // (ties: the first drawn). The rest follow least_conn.
            let a = (draw.random[0] % n as u64) as usize;
            let mut b = (draw.random[1] % (n as u64 - 1)) as usize;
            if b >= a {
                b += 1;
            }
            let (a, b) = (live[a], live[b]);
            let pick = if peers[b].in_flight < peers[a].in_flight {
                b
            } else {
                a
            };
            std::iter::once(pick)
                .chain(least.into_iter().filter(|&i| i != pick))
                .collect()
        }
        SelectionPolicy::IpHash | SelectionPolicy::HeaderHash => match &draw.key {
            Some(key) => {
                let mut order = live;
                // Highest score first; equal scores (never in practice) by id.
                order.sort_by_key(|&i| {
                    (
                        std::cmp::Reverse(rendezvous_score(key, peers[i].faas_id)),
                        peers[i].faas_id,
                    )
                });
                order
            }
            None => rotated,
        },
    }
}

/// Stable sort by `key`, lowest first: equal keys keep the rotation's order.
fn by_key(mut order: Vec<usize>, key: impl Fn(usize) -> f64) -> Vec<usize> {
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    order
}

/// The expected wait at a peer under `least_latency`: its peak-EWMA
/// response time times the requests it would then have in flight (the
/// Finagle/linkerd cost). A peer never measured costs 0, so it gets tried.
pub fn cost(p: &Peer) -> f64 {
    p.latency_us * (p.in_flight as f64 + 1.0)
}

/// Rendezvous (highest random weight) score of `key` at deployment
/// `faas_id`: the first 52 bits of SHA-1(`key` ‖ `|` ‖ decimal id). 52
/// bits, so the router's Lua script (`redis.sha1hex`, numbers as doubles)
/// computes the same value. Removing a deployment moves only the keys it
/// held; adding one takes about 1/n of the keys.
pub fn rendezvous_score(key: &[u8], faas_id: i64) -> u64 {
    let mut h = Sha1::new();
    h.update(key);
    h.update(b"|");
    h.update(faas_id.to_string().as_bytes());
    let digest = h.finalize();
    let top = u64::from_be_bytes(digest[..8].try_into().expect("SHA-1 has 20 bytes"));
    top >> 12
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn peer(id: i64, in_flight: u64, latency_us: f64) -> Peer {
        Peer {
            faas_id: id,
            in_flight,
            latency_us,
            available: true,
        }
    }

    fn ids(peers: &[Peer], order: &[usize]) -> Vec<i64> {
        order.iter().map(|&i| peers[i].faas_id).collect()
    }

    fn draw(counter: u64) -> Draw {
        Draw {
            counter,
            ..Draw::default()
        }
    }

    #[test]
    fn round_robin_cycles_exactly() {
        let peers = [peer(1, 0, 0.0), peer(2, 0, 0.0), peer(3, 0, 0.0)];
        let firsts: Vec<i64> = (0..6)
            .map(|c| ids(&peers, &rank(SelectionPolicy::RoundRobin, &peers, &draw(c)))[0])
            .collect();
        assert_eq!(firsts, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn ejected_peers_are_skipped_and_none_left_is_empty() {
        let mut peers = vec![peer(1, 0, 0.0), peer(2, 0, 0.0), peer(3, 0, 0.0)];
        peers[1].available = false;
        for policy in SelectionPolicy::ALL {
            for c in 0..4 {
                let order = ids(&peers, &rank(*policy, &peers, &draw(c)));
                assert!(!order.contains(&2), "{policy}: {order:?}");
                assert_eq!(order.len(), 2);
            }
        }
        for p in &mut peers {
            p.available = false;
        }
        for policy in SelectionPolicy::ALL {
            assert!(rank(*policy, &peers, &draw(0)).is_empty());
        }
    }

    #[test]
    fn least_conn_prefers_the_idle_peer_and_shares_ties() {
        let peers = [peer(1, 5, 0.0), peer(2, 0, 0.0), peer(3, 2, 0.0)];
        let order = ids(&peers, &rank(SelectionPolicy::LeastConn, &peers, &draw(7)));
        assert_eq!(order, [2, 3, 1]);
        let tied = [peer(1, 1, 0.0), peer(2, 1, 0.0)];
        let firsts: BTreeSet<i64> = (0..2)
            .map(|c| ids(&tied, &rank(SelectionPolicy::LeastConn, &tied, &draw(c)))[0])
            .collect();
        assert_eq!(firsts.len(), 2, "ties alternate");
    }

    #[test]
    fn least_latency_weighs_latency_by_load() {
        // 10 ms idle vs 2 ms with 3 in flight (cost 8 ms): the second.
        let peers = [peer(1, 0, 10_000.0), peer(2, 3, 2_000.0)];
        assert_eq!(
            ids(
                &peers,
                &rank(SelectionPolicy::LeastLatency, &peers, &draw(0))
            )[0],
            2
        );
        // Never measured: tried first.
        let peers = [peer(1, 0, 1_000.0), peer(2, 0, 0.0)];
        assert_eq!(
            ids(
                &peers,
                &rank(SelectionPolicy::LeastLatency, &peers, &draw(0))
            )[0],
            2
        );
    }

    #[test]
    fn p2c_takes_the_less_loaded_of_two_draws() {
        let peers = [peer(1, 9, 0.0), peer(2, 0, 0.0), peer(3, 4, 0.0)];
        let d = |a, b| Draw {
            random: [a, b],
            ..Draw::default()
        };
        // Draws 0 and (1 → index 2): peers 1 and 3; 3 is less loaded.
        assert_eq!(
            ids(&peers, &rank(SelectionPolicy::P2c, &peers, &d(0, 1)))[0],
            3
        );
        // Draws 0 and 0 → index 1: peers 1 and 2.
        assert_eq!(
            ids(&peers, &rank(SelectionPolicy::P2c, &peers, &d(0, 0)))[0],
            2
        );
    }

    #[test]
    fn known_rendezvous_scores() {
        // Computed independently (Python: int(sha1(b"10.0.0.1|1").hexdigest()[:13], 16));
        // the router's Lua script must give the same numbers.
        assert_eq!(rendezvous_score(b"10.0.0.1", 1), 212_785_335_561_199);
        assert_eq!(rendezvous_score(b"10.0.0.1", 2), 2_273_504_142_226_291);
        assert_eq!(rendezvous_score(b"user-42", 7), 1_422_314_138_471_576);
    }

    fn peers_strategy() -> impl Strategy<Value = Vec<Peer>> {
        prop::collection::btree_set(1i64..1000, 1..8).prop_flat_map(|ids| {
            let n = ids.len();
            (
                Just(ids),
                prop::collection::vec((0u64..20, 0.0f64..50_000.0, prop::bool::weighted(0.8)), n),
            )
                .prop_map(|(ids, states)| {
                    ids.into_iter()
                        .zip(states)
                        .map(|(id, (in_flight, latency_us, available))| Peer {
                            faas_id: id,
                            in_flight,
                            latency_us,
                            available,
                        })
                        .collect()
                })
        })
    }

    fn policy_strategy() -> impl Strategy<Value = SelectionPolicy> {
        prop::sample::select(SelectionPolicy::ALL.to_vec())
    }

    proptest! {
        /// Every policy orders exactly the available peers, each once.
        #[test]
        fn rank_is_a_permutation_of_the_available(
            peers in peers_strategy(),
            policy in policy_strategy(),
            counter: u64,
            random: [u64; 2],
            key in prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        ) {
            let order = rank(policy, &peers, &Draw { counter, random, key });
            let mut got = order.clone();
            got.sort_unstable();
            let want: Vec<usize> = (0..peers.len()).filter(|&i| peers[i].available).collect();
            prop_assert_eq!(got, want);
        }

        /// least_conn's first choice has the fewest requests in flight.
        #[test]
        fn least_conn_picks_a_minimum(peers in peers_strategy(), counter: u64) {
            let order = rank(SelectionPolicy::LeastConn, &peers, &draw(counter));
            if let Some(&first) = order.first() {
                let min = peers.iter().filter(|p| p.available).map(|p| p.in_flight).min().unwrap();
                prop_assert_eq!(peers[first].in_flight, min);
            }
        }

        /// p2c never picks the single most loaded peer when others exist.
        #[test]
        fn p2c_avoids_the_unique_maximum(peers in peers_strategy(), random: [u64; 2]) {
            let live: Vec<&Peer> = peers.iter().filter(|p| p.available).collect();
            let max = live.iter().map(|p| p.in_flight).max();
            let at_max = live.iter().filter(|p| Some(p.in_flight) == max).count();
            let order = rank(SelectionPolicy::P2c, &peers, &Draw { random, ..Draw::default() });
            if live.len() >= 2 && at_max == 1 {
                prop_assert_ne!(Some(peers[order[0]].in_flight), max);
            }
        }

        /// Hash policies are sticky: the same key gets the same peer, and
        /// removing a peer moves only the keys that were on it.
        #[test]
        fn rendezvous_is_sticky_and_moves_few_keys(
            peers in peers_strategy(),
            keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..12), 1..40),
            gone in any::<prop::sample::Index>(),
        ) {
            let mut peers = peers;
            for p in &mut peers { p.available = true; }
            let pick = |peers: &[Peer], key: &[u8], counter| {
                let d = Draw { counter, key: Some(key.to_vec()), ..Draw::default() };
                rank(SelectionPolicy::HeaderHash, peers, &d).first().map(|&i| peers[i].faas_id)
            };
            let removed = peers[gone.index(peers.len())].faas_id;
            let fewer: Vec<Peer> = peers.iter().filter(|p| p.faas_id != removed).cloned().collect();
            for key in &keys {
                let before = pick(&peers, key, 0);
                prop_assert_eq!(before, pick(&peers, key, 12345));
                if before != Some(removed) {
                    prop_assert_eq!(before, pick(&fewer, key, 0));
                }
            }
        }
    }
}
