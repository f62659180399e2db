//! The router's own state in the key-value store `fado_router_state`
//! (process-local under fado, Redis under Spin): the inputs of ranking
//! (outlier records, latency, in-flight counts, the round-robin counter),
//! each attempt's start and outcome, and the metrics `/api/metrics` shows.
//! Keys and encodings are `fado_model::router_state` and
//! `fado_routing::state`; the decisions are `fado_routing`'s.

use fado_model::router_metrics::LATENCY_BUCKETS;
use fado_model::router_state::{self as keys, METRICS_PREFIX};
use fado_model::{RouteTarget, SelectionPolicy};
use fado_routing::select::{self, Draw};
use fado_routing::state::{self as codec, Read};
use fado_routing::{latency, outlier};
use spin_sdk::wit::wasi::keyvalue::atomics;
use spin_sdk::wit::wasi::keyvalue::store::Bucket;

use crate::table::Route;

/// A request's view of its route's deployments.
pub struct Ranked {
    /// Indexes into the route's targets, best first.
    pub order: Vec<usize>,
    /// What was read per target (the outcome updates start from it).
    pub reads: Vec<Read>,
}

/// Reads the state the route's policy needs and ranks its deployments.
/// State that cannot be read counts as absent: balancing degrades, the
/// request is still served.
pub fn rank(
    state: Option<&Bucket>,
    route: &Route,
    key: Option<&[u8]>,
    random: [u64; 2],
    now_ms: u64,
) -> Ranked {
    let targets: Vec<&RouteTarget> = route.targets.iter().collect();
    let policy = route.policy;
    let values = match state {
        Some(s) => {
            let wanted = codec::keys_to_read(policy, &targets, now_ms);
            fado_store::keyvalue::get_each(s, &wanted)
                .map(|kv| kv.into_iter().map(|(_, v)| v).collect())
                .unwrap_or_else(|e| {
                    eprintln!("router: reading its state failed: {e:?}");
                    Vec::new()
                })
        }
        None => Vec::new(),
    };
    let reads = codec::reads(policy, targets.len(), &values);
    let counter = match state {
        Some(s) if codec::uses_counter(policy, key.is_some()) => {
            atomics::increment(s, &keys::round_robin(&route.name), 1)
                .map_or(random[1], |n| n as u64)
        }
        _ => random[1],
    };
    let peers = codec::peers(&targets, &reads, now_ms);
    let draw = Draw {
        counter: counter.wrapping_sub(1),
        random,
        key: key.map(<[u8]>::to_vec),
    };
    Ranked {
        order: select::rank(policy, &peers, &draw),
        reads,
    }
}

/// An attempt counted in flight, to be closed by [`finish`].
pub struct Attempt {
    faas_id: i64,
    window: u64,
}

/// Counts an attempt at `faas_id` in flight (for policies that weigh it).
pub fn start(
    state: Option<&Bucket>,
    policy: SelectionPolicy,
    faas_id: i64,
    now_ms: u64,
) -> Option<Attempt> {
    let s = state.filter(|_| codec::weighs_in_flight(policy))?;
    let window = codec::window(now_ms);
    atomics::increment(s, &keys::in_flight(faas_id, window), 1).ok()?;
    Some(Attempt { faas_id, window })
}

/// What an attempt came to.
pub struct Outcome<'a> {
    pub target: &'a RouteTarget,
    /// What ranking read for this target.
    pub read: &'a Read,
    pub failed: bool,
    /// Time to the response head, when one came.
    pub response_us: Option<u64>,
    pub now_ms: u64,
    /// The request's buckets, comma-separated (the metrics' label).
    pub buckets: &'a str,
}

/// Closes an attempt: its in-flight count, the deployment's outlier record
/// and latency, the metrics.
pub fn finish(
    state: Option<&Bucket>,
    attempt: Option<Attempt>,
    policy: SelectionPolicy,
    o: &Outcome<'_>,
    cfg: &outlier::Config,
) {
    let Some(s) = state else { return };
    if let Some(a) = attempt {
        let _ = atomics::increment(s, &keys::in_flight(a.faas_id, a.window), -1);
    }
    let id = o.target.faas_id;
    if policy == SelectionPolicy::LeastLatency
        && let Some(us) = o.response_us
    {
        let next = latency::observe(o.read.latency, us as f64, o.now_ms);
        let _ = s.set(&keys::latency(id), &codec::encode_latency(&next));
    }
    // A success changes an outlier record only when it holds failures.
    let ejected = if o.failed || o.read.outlier.consecutive > 0 {
        record_outlier(s, id, o.failed, o.now_ms, cfg)
    } else {
        false
    };
    metrics(s, o, ejected);
}

/// Updates the outlier record by compare-and-swap (routers in other
/// processes may share it under Spin); returns whether this outcome
/// ejected the deployment.
fn record_outlier(
    s: &Bucket,
    faas_id: i64,
    failed: bool,
    now_ms: u64,
    cfg: &outlier::Config,
) -> bool {
    let key = keys::outlier(faas_id);
    for _ in 0..4 {
        let Ok(cas) = atomics::Cas::new(s, &key) else {
            return false;
        };
        let now = cas
            .current()
            .ok()
            .flatten()
            .and_then(|v| codec::decode_outlier(&v))
            .unwrap_or_default();
        let (next, event) = outlier::record(now, failed, now_ms, cfg);
        if next == now {
            return false;
        }
        match atomics::swap(cas, &codec::encode_outlier(&next)) {
            Ok(()) => return matches!(event, outlier::Event::Ejected { .. }),
            Err(atomics::CasError::CasFailed(_)) => continue,
            Err(atomics::CasError::StoreError(e)) => {
                eprintln!("router: recording an outcome at deployment {faas_id}: {e:?}");
                return false;
            }
        }
    }
    false
}

fn histogram_bucket(us: u64) -> String {
    let s = us as f64 / 1e6;
    LATENCY_BUCKETS
        .iter()
        .find(|&&b| s <= b)
        .map_or("+Inf".to_string(), |b| b.to_string())
}

fn metrics(s: &Bucket, o: &Outcome<'_>, ejected: bool) {
    let label = format!("{}|{}", o.buckets, o.target.name);
    let count = |name: String, n: i64| {
        let _ = atomics::increment(s, &format!("{METRICS_PREFIX}{name}"), n);
    };
    count(format!("requests|{label}"), 1);
    if o.failed {
        count(format!("errors|{label}"), 1);
    }
    if let Some(us) = o.response_us {
        count(format!("latency|{label}|{}", histogram_bucket(us)), 1);
        count(format!("latency_sum_us|{label}"), us as i64);
    }
    if ejected {
        count(format!("ejections|{}", o.target.name), 1);
    }
}
