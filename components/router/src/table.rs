//! Where a request goes: one Redis round trip (`route.lua`) looks up the
//! route table the planner published, ranks the deployments and counts the
//! request in flight; `done.lua` closes it. When Redis cannot be reached the
//! router reads the newest route table Postgres holds and ranks locally
//! (no shared counters: selection is per instance then).

use anyhow::{Context, Result, anyhow, bail};
use fado_model::{BucketRoute, RouteTable};
use fado_routing::select::{self, Draw, Peer};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

use fado_model::route_keys::{
    ANY as ANY_ROUTE, EXPRESS as EXPRESS_KEY, META as META_KEY, ROUTES as ROUTES_KEY,
};
use fado_model::router_metrics::{KEY as METRICS_KEY, LATENCY_BUCKETS};

const ROUTE_LUA: &str = include_str!("route.lua");
const DONE_LUA: &str = include_str!("done.lua");
const COUNTERS_KEY: &str = "fado:rr";

/// What a request asks the table.
pub struct Ask<'a> {
    /// Bucket names; empty when the request lacks the match header.
    pub buckets: &'a [String],
    /// The match header the router read the buckets from.
    pub header: &'a str,
    pub key: Option<&'a [u8]>,
    pub now_ms: u64,
    pub random: [u64; 2],
    pub request_id: &'a str,
    pub lease_ms: u64,
}

/// Where to send a request: the route and its deployments, best first.
#[derive(Debug)]
pub struct Decision {
    pub route: BucketRoute,
    pub order: Vec<i64>,
    /// Whether the in-flight count lives in Redis (false: Postgres fallback).
    pub shared: bool,
}

/// Why the table cannot route a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The planner has published no table yet.
    NoTable,
    UnknownBucket(String),
    /// The table matches requests on another header than the one read.
    MatchHeader(String),
    /// The request lacks the match header (named) and the settings say
    /// such requests are refused.
    MissingHeader(String),
    /// No deployment holds every named bucket.
    NoTargets,
    /// Every deployment that could serve it is ejected.
    AllEjected,
}

pub enum Outcome {
    Route(Decision),
    Refused(Refusal),
}

fn bin(s: impl Into<Vec<u8>>) -> RedisParameter {
    RedisParameter::Binary(s.into())
}

fn redis_err(e: spin_sdk::redis::Error) -> anyhow::Error {
    anyhow!("Redis: {e:?}")
}

/// Runs `script` by its SHA-1 (cached by Redis), loading it on NOSCRIPT.
fn eval(
    conn: &Connection,
    script: &str,
    sha: &str,
    args: Vec<RedisParameter>,
) -> Result<Vec<RedisResult>> {
    let mut call = Vec::with_capacity(args.len() + 1);
    call.push(bin(sha));
    call.extend(args);
    match conn.execute("EVALSHA", &call) {
        Ok(r) => Ok(r),
        // The server says NOSCRIPT; clients spell it differently.
        Err(e) if format!("{e:?}").to_ascii_uppercase().contains("NOSCRIPT") => {
            call[0] = bin(script);
            conn.execute("EVAL", &call).map_err(redis_err)
        }
        Err(e) => Err(redis_err(e)),
    }
}

// ROUTE_SHA and DONE_SHA (build.rs).
include!(concat!(env!("OUT_DIR"), "/script_sha.rs"));

fn text(r: Option<&RedisResult>) -> Option<String> {
    match r? {
        RedisResult::Binary(b) => String::from_utf8(b.clone()).ok(),
        RedisResult::Status(s) => Some(s.clone()),
        RedisResult::Int64(i) => Some(i.to_string()),
        RedisResult::Nil => None,
    }
}

/// The Redis round trip before forwarding.
pub fn route(conn: &Connection, ask: &Ask<'_>) -> Result<Outcome> {
    let mut args = vec![
        RedisParameter::Int64(4),
        bin(ROUTES_KEY),
        bin(META_KEY),
        bin(COUNTERS_KEY),
        bin(EXPRESS_KEY),
        bin(ask.now_ms.to_string()),
        bin((ask.random[0] >> 12).to_string()),
        bin((ask.random[1] >> 12).to_string()),
        bin(ask.key.unwrap_or_default().to_vec()),
        bin(ask.request_id),
        bin(ask.lease_ms.to_string()),
        bin(ask.header.to_ascii_lowercase()),
    ];
    args.extend(ask.buckets.iter().map(|b| bin(b.as_str())));
    let reply = eval(conn, ROUTE_LUA, ROUTE_SHA, args)?;
    let ok = matches!(reply.first(), Some(RedisResult::Int64(1)));
    if !ok {
        let reason = text(reply.get(1)).unwrap_or_default();
        let detail = text(reply.get(2)).unwrap_or_default();
        return Ok(Outcome::Refused(match reason.as_str() {
            "no_table" => Refusal::NoTable,
            "unknown_bucket" => Refusal::UnknownBucket(detail),
            "match_header" => Refusal::MatchHeader(detail),
            "missing_header" => Refusal::MissingHeader(detail),
            "no_targets" => Refusal::NoTargets,
            "all_ejected" => Refusal::AllEjected,
            other => bail!("route.lua answered {other:?} {detail:?}"),
        }));
    }
    let route: BucketRoute =
        serde_json::from_str(&text(reply.get(3)).context("route.lua: no route")?)
            .context("route.lua: the route is not a route table entry")?;
    let order = reply[4..]
        .iter()
        .map(|r| {
            text(Some(r))
                .and_then(|s| s.parse().ok())
                .context("route.lua: a deployment id is not a number")
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(Outcome::Route(Decision {
        route,
        order,
        shared: true,
    }))
}

/// Counts the request in flight at `faas_id` (a retry moving on).
pub fn begin(
    conn: &Connection,
    faas_id: i64,
    request_id: &str,
    now_ms: u64,
    lease_ms: u64,
) -> Result<()> {
    conn.execute(
        "ZADD",
        &[
            bin(format!("fado:up:{faas_id}:inflight")),
            bin((now_ms + lease_ms).to_string()),
            bin(request_id),
        ],
    )
    .map_err(redis_err)?;
    Ok(())
}

/// What one attempt at a deployment came to.
pub struct Done<'a> {
    pub faas_id: i64,
    pub request_id: &'a str,
    pub failed: bool,
    pub response_us: Option<u64>,
    pub now_ms: u64,
    /// `buckets|deployment`, the metrics' labels.
    pub label: &'a str,
    pub name: &'a str,
}

fn histogram_bucket(us: Option<u64>) -> String {
    let s = us.unwrap_or(0) as f64 / 1e6;
    LATENCY_BUCKETS
        .iter()
        .find(|&&b| s <= b)
        .map_or("+Inf".to_string(), |b| b.to_string())
}

/// The Redis round trip after an attempt. Returns when the deployment was
/// ejected until, if this outcome ejected it.
pub fn done(
    conn: &Connection,
    d: &Done<'_>,
    cfg: &fado_routing::outlier::Config,
) -> Result<Option<u64>> {
    let args = vec![
        RedisParameter::Int64(1),
        bin(METRICS_KEY),
        bin(d.faas_id.to_string()),
        bin(d.request_id),
        bin(if d.failed { "1" } else { "0" }),
        bin(d.response_us.map(|u| u.to_string()).unwrap_or_default()),
        bin(d.now_ms.to_string()),
        bin(cfg.consecutive_failures.to_string()),
        bin(cfg.base_ejection_ms.to_string()),
        bin(cfg.max_ejection_ms.to_string()),
        bin(fado_routing::latency::DECAY_MS.to_string()),
        bin(d.label),
        bin(histogram_bucket(d.response_us)),
        bin(d.name),
    ];
    let reply = eval(conn, DONE_LUA, DONE_SHA, args)?;
    Ok(match reply.first() {
        Some(RedisResult::Int64(t)) if *t > 0 => Some(*t as u64),
        _ => None,
    })
}

/// The Postgres fallback: the newest published table, ranked locally.
pub fn route_from_postgres(pg_address: &str, ask: &Ask<'_>) -> Result<Outcome> {
    let db = fado_store::Db::open(pg_address).context("opening PostgreSQL")?;
    let rows = db
        .query(
            "SELECT routes FROM route_tables ORDER BY version DESC LIMIT 1",
            &[],
        )
        .context("reading the route table")?;
    let Some(row) = rows.first() else {
        return Ok(Outcome::Refused(Refusal::NoTable));
    };
    let table: RouteTable = serde_json::from_value(row.json("routes").context("route table")?)
        .context("decoding the stored route table")?;
    if !table.match_header.eq_ignore_ascii_case(ask.header) {
        return Ok(Outcome::Refused(Refusal::MatchHeader(table.match_header)));
    }
    let any = BucketRoute {
        bucket: ANY_ROUTE.to_string(),
        policy: table.default_policy,
        overridden: false,
        targets: table.any.clone(),
    };
    let mut routes = Vec::new();
    if ask.buckets.is_empty() {
        if table.missing_header != fado_model::MissingHeader::Any {
            return Ok(Outcome::Refused(Refusal::MissingHeader(table.match_header)));
        }
        routes.push(&any);
    }
    for b in ask.buckets {
        match table.routes.iter().find(|r| &r.bucket == b) {
            Some(r) => routes.push(r),
            None => return Ok(Outcome::Refused(Refusal::UnknownBucket(b.clone()))),
        }
    }
    let (targets, policy) = fado_routing::request::common_targets(&routes);
    if targets.is_empty() {
        return Ok(Outcome::Refused(Refusal::NoTargets));
    }
    let peers: Vec<Peer> = targets
        .iter()
        .map(|t| Peer {
            faas_id: t.faas_id,
            in_flight: 0,
            latency_us: 0.0,
            available: t.health != fado_model::Health::Unhealthy,
        })
        .collect();
    let draw = Draw {
        counter: ask.random[1],
        random: ask.random,
        key: ask.key.map(<[u8]>::to_vec),
    };
    let policy = policy.unwrap_or(table.default_policy);
    let order = select::rank(policy, &peers, &draw)
        .into_iter()
        .map(|i| peers[i].faas_id)
        .collect();
    let mut route = routes[0].clone();
    route.policy = policy;
    Ok(Outcome::Route(Decision {
        route,
        order,
        shared: false,
    }))
}
