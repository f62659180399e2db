//! Which deployments may serve a request: the routes of the buckets it
//! names, read from the key-value store `fado_routes` (under fado served
//! from process memory; under Spin, Redis), else from the newest table
//! Postgres holds.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use fado_model::route_keys::{self, ANY, META};
use fado_model::{
    BucketRoute, MissingHeader, PublishedRoute, RouteMeta, RouteTarget, SelectionPolicy,
};
use fado_routing::request;
use spin_sdk::wit::wasi::keyvalue::store;

/// Why the table cannot route a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The planner has published no table yet.
    NoTable,
    UnknownBucket(String),
    /// The request lacks the match header (named) and the settings say
    /// such requests are refused.
    MissingHeader(String),
    /// The match header's value is not a list of bucket names.
    BadHeader(String),
    /// No deployment holds every named bucket.
    NoTargets,
    /// Every deployment that could serve it is ejected or down.
    AllEjected,
    /// Neither the store nor Postgres could be read.
    Unavailable(String),
}

/// The route a request takes.
#[derive(Debug)]
pub struct Route {
    /// The buckets named (empty: the route over every deployment).
    pub buckets: Vec<String>,
    /// The route whose policy applies (the first bucket's), by name: its
    /// round-robin counter is keyed by it.
    pub name: String,
    pub policy: SelectionPolicy,
    /// The deployments holding every named bucket, in the first route's
    /// order.
    pub targets: Vec<RouteTarget>,
}

// Parsed values by key, reused while the bytes are the same: an instance
// the host reuses parses a route once, not per request.
/// Per key: the bytes last read and what they parsed to.
type ParsedCache = HashMap<String, (Vec<u8>, Rc<Parsed>)>;

thread_local! {
    static PARSED: RefCell<ParsedCache> = RefCell::new(HashMap::new());
}
const MAX_PARSED: usize = 1024;

enum Parsed {
    Meta(RouteMeta),
    Route(BucketRoute),
}

fn parse(key: &str, bytes: Vec<u8>) -> Option<Rc<Parsed>> {
    PARSED.with(|cell| {
        let mut cache = cell.borrow_mut();
        if let Some((held, parsed)) = cache.get(key)
            && *held == bytes
        {
            return Some(parsed.clone());
        }
        let parsed = Rc::new(if key == META {
            Parsed::Meta(serde_json::from_slice(&bytes).ok()?)
        } else {
            let p: PublishedRoute = serde_json::from_slice(&bytes).ok()?;
            Parsed::Route(p.route)
        });
        if cache.len() >= MAX_PARSED {
            cache.clear();
        }
        cache.insert(key.to_string(), (bytes, parsed.clone()));
        Some(parsed)
    })
}

/// What the store holds for a request: the settings and each asked route.
struct Found {
    meta: RouteMeta,
    routes: Vec<Option<BucketRoute>>,
}

/// Reads the settings and the routes of `names` (`*` for the route over
/// every deployment). `Ok(None)`: no table is published in the store.
fn read_store(bucket: &store::Bucket, names: &[String]) -> Result<Option<Found>, String> {
    let mut keys = Vec::with_capacity(names.len() + 1);
    keys.push(META.to_string());
    keys.extend(names.iter().map(|n| route_keys::route(n)));
    let values = fado_store::keyvalue::get_each(bucket, &keys).map_err(|e| format!("{e:?}"))?;
    let mut values = values.into_iter();
    let Some(meta) = values.next().and_then(|(_, v)| v) else {
        return Ok(None);
    };
    let meta = match parse(META, meta).as_deref() {
        Some(Parsed::Meta(m)) => m.clone(),
        _ => return Err(format!("{META} holds no route settings")),
    };
    let mut routes = Vec::with_capacity(names.len());
    for (key, value) in values {
        routes.push(match value {
            None => None,
            Some(v) => match parse(&key, v).as_deref() {
                Some(Parsed::Route(r)) => Some(r.clone()),
                _ => return Err(format!("{key} holds no route")),
            },
        });
    }
    Ok(Some(Found { meta, routes }))
}

/// Reads what Postgres's newest table says about `names`.
fn read_postgres(pg_address: &str, names: &[String]) -> Result<Option<Found>, String> {
    let db = fado_store::Db::open(pg_address).map_err(|e| e.to_string())?;
    let Some(stored) = fado_store::routes::newest(&db, names).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let routes = names
        .iter()
        .map(|n| {
            if n == ANY {
                Some(BucketRoute {
                    bucket: ANY.to_string(),
                    policy: stored.meta.default_policy,
                    overridden: false,
                    targets: stored.any.clone(),
                })
            } else {
                stored.routes.iter().find(|r| &r.bucket == n).cloned()
            }
        })
        .collect();
    Ok(Some(Found {
        meta: stored.meta,
        routes,
    }))
}

/// The bucket names in `header` of the request, or why they are unusable.
pub type HeaderReader<'a> = &'a dyn Fn(&str) -> Result<Vec<String>, String>;

/// Finds the route of a request whose buckets `buckets_in` reads from the
/// header it is given: first `match_header` (the router's variable), then,
/// if the published settings name another header, that one.
pub fn lookup(
    store: Option<&store::Bucket>,
    pg_address: &str,
    match_header: &str,
    buckets_in: HeaderReader<'_>,
) -> Result<Route, Refusal> {
    let mut header = match_header.to_ascii_lowercase();
    for _ in 0..2 {
        let buckets = buckets_in(&header).map_err(Refusal::BadHeader)?;
        let names: Vec<String> = if buckets.is_empty() {
            vec![ANY.to_string()]
        } else {
            buckets.clone()
        };
        let found = find(store, pg_address, &names)?;
        if !found.meta.match_header.eq_ignore_ascii_case(&header) {
            header = found.meta.match_header.to_ascii_lowercase();
            continue;
        }
        return decide(found, buckets, &header);
    }
    Err(Refusal::BadHeader(format!(
        "the route table's match header changed while this request was routed; retry ({header})"
    )))
}

/// The settings and routes of `names`: from the store, else from Postgres.
fn find(
    store: Option<&store::Bucket>,
    pg_address: &str,
    names: &[String],
) -> Result<Found, Refusal> {
    if let Some(b) = store {
        match read_store(b, names) {
            Ok(Some(f)) => return Ok(f),
            // Reachable but empty (a Redis that restarted, a first start):
            // the planner republishes when woken.
            Ok(None) => crate::wake_planner(),
            Err(e) => eprintln!("router: the route store failed ({e}); routing from PostgreSQL"),
        }
    }
    match read_postgres(pg_address, names) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(Refusal::NoTable),
        Err(e) => Err(Refusal::Unavailable(e)),
    }
}

fn decide(found: Found, buckets: Vec<String>, header: &str) -> Result<Route, Refusal> {
    if buckets.is_empty() && found.meta.missing_header != MissingHeader::Any {
        return Err(Refusal::MissingHeader(header.to_string()));
    }
    let mut routes = Vec::with_capacity(found.routes.len());
    for (i, r) in found.routes.into_iter().enumerate() {
        match r {
            Some(r) => routes.push(r),
            None if buckets.is_empty() => return Err(Refusal::NoTable),
            None => return Err(Refusal::UnknownBucket(buckets[i].clone())),
        }
    }
    let refs: Vec<&BucketRoute> = routes.iter().collect();
    let (targets, policy) = request::common_targets(&refs);
    if targets.is_empty() {
        return Err(Refusal::NoTargets);
    }
    let targets = targets.into_iter().cloned().collect();
    Ok(Route {
        name: routes[0].bucket.clone(),
        policy: policy.unwrap_or(found.meta.default_policy),
        targets,
        buckets,
    })
}
