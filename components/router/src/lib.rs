//! The router component: FaDO's ingress for function invocations.
//!
//! A request names its bucket(s) in the match header (`X-FaDO-Bucket: a, b`
//! by default, a setting) and its function in the first path segment:
//!
//! 1. [`incoming`], [`body`]: the request is read once; a small body is
//!    kept in memory so a retry can resend it, a larger one streams to the
//!    attempt that takes it.
//! 2. [`table`]: the routes of the named buckets, from the key-value store
//!    `fado_routes` (under fado, process memory kept fresh by Redis; under
//!    Spin, Redis), else from Postgres; the deployments holding every
//!    bucket.
//! 3. [`state`]: the route's policy ranks them over the store
//!    `fado_router_state` (round-robin position, in-flight counts,
//!    latency, outlier records).
//! 4. [`attempts`], [`forward`]: the request goes to the first, by its base
//!    URL and path template, bodies spliced inside the host both ways; a
//!    request that never reached a deployment moves on to the next, as
//!    does an idempotent one whose connection broke, when its body was
//!    kept.
//!
//! The code calls `wasi:http` directly, synchronously (an instance serves
//! one request at a time): every host call is on the hot path, and an
//! async HTTP layer over it made more of them.
//!
//! The decisions themselves (header parsing, URLs, policies, ejection) are
//! `fado-routing`'s; this crate is the I/O around them.

mod answer;
mod attempts;
mod body;
mod forward;
mod incoming;
mod state;
mod table;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;

use anyhow::Result;
use fado_model::{channels, route_keys, router_state};
use fado_routing::outlier;
use spin_sdk::variables;
use spin_sdk::wit::wasi::keyvalue::store;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use answer::Answer;
use incoming::Incoming;

struct Router;

wasip2::http::proxy::export!(Router);

impl wasip2::exports::http::incoming_handler::Guest for Router {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        serve(request, out);
    }
}

/// The router's configuration (Spin variables).
pub struct Config {
    pg_address: String,
    redis_address: String,
    /// The header bucket names are read from, until the route table says
    /// otherwise (the `match_header` setting).
    match_header: String,
    hash_header: String,
    limits: body::Limits,
    max_attempts: usize,
    outlier: outlier::Config,
}

fn var(name: &str) -> Result<String> {
    variables::get(name).map_err(|e| anyhow::anyhow!("variable {name}: {e:?}"))
}

fn number<T: std::str::FromStr>(name: &str) -> Result<T> {
    let v = var(name)?;
    v.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("variable {name}: {v:?} is not a whole number"))
}

impl Config {
    fn load() -> Result<Self> {
        Ok(Config {
            pg_address: var("pg_address")?,
            redis_address: var("redis_address")?,
            match_header: var("match_header")?.to_ascii_lowercase(),
            hash_header: var("router_hash_header")?.to_ascii_lowercase(),
            limits: body::Limits {
                max: number::<u64>("router_max_body_mib")? << 20,
                keep: number::<u64>("router_retry_buffer_kib")? << 10,
            },
            max_attempts: number::<usize>("router_max_attempts")?.max(1),
            outlier: outlier::Config {
                consecutive_failures: number("router_eject_after_failures")?,
                base_ejection_ms: number("router_eject_base_ms")?,
                max_ejection_ms: number("router_eject_max_ms")?,
            },
        })
    }
}

// An instance the host reuses (`instance_reuse` in spin.toml) keeps its
// configuration and open stores: variables are fixed for the app's life.
// A fresh instance (Spin, or no reuse) loads them once, as before.
static CONFIG: OnceLock<Config> = OnceLock::new();

/// The route store and the state store, each `None` if it cannot be opened.
type Stores = (Option<Rc<store::Bucket>>, Option<Rc<store::Bucket>>);

thread_local! {
    static STORES: RefCell<Option<Stores>> = const { RefCell::new(None) };
    static LAST_WAKE_MS: Cell<u64> = const { Cell::new(0) };
}

fn config() -> Result<&'static Config> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let c = Config::load()?;
    Ok(CONFIG.get_or_init(|| c))
}

/// The route store and the state store, opened once per instance. A store
/// that cannot be opened is `None`: routes then come from Postgres, and
/// balancing is per request.
fn stores() -> Stores {
    STORES.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let open = |label: &str| match store::open(label) {
                    Ok(b) => Some(Rc::new(b)),
                    Err(e) => {
                        eprintln!("router: cannot open key-value store {label:?}: {e:?}");
                        None
                    }
                };
                (open(route_keys::STORE), open(router_state::STORE))
            })
            .clone()
    })
}

fn now_ms() -> u64 {
    let t = wasip2::clocks::wall_clock::now();
    t.seconds * 1000 + u64::from(t.nanoseconds / 1_000_000)
}

/// Asks the planner to publish the route table (the store held none), at
/// most every 200 ms per instance while the table stays missing: after a
/// Redis restart the first wake-ups can be lost (the host's connection
/// fails its first command while it reconnects, and a message published
/// before the planner has subscribed again reaches nobody).
fn wake_planner() {
    let now = now_ms();
    if LAST_WAKE_MS.get() + 200 > now {
        return;
    }
    LAST_WAKE_MS.set(now);
    let Ok(cfg) = config() else { return };
    let woke = spin_sdk::redis::Connection::open(&cfg.redis_address)
        .and_then(|c| c.publish(channels::PLANNER, b"routes-missing".as_ref()));
    if let Err(e) = woke {
        eprintln!("router: could not wake the planner: {e:?}");
    }
}

fn serve(request: IncomingRequest, out: ResponseOutparam) {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("router: {e:#}");
            return Answer::error(500, "misconfigured", format!("{e:#}")).send(out);
        }
    };
    let mut incoming = Incoming::read(request);
    let client_body = incoming.body.take();
    let body = match body::read(incoming.header("content-length"), client_body, &cfg.limits) {
        Ok(b) => b,
        Err(answer) => return answer.send(out),
    };

    let (routes, state) = stores();
    let buckets_in = |header: &str| bucket_names(&incoming, header);
    let route = match table::lookup(
        routes.as_deref(),
        &cfg.pg_address,
        &cfg.match_header,
        &buckets_in,
    ) {
        Ok(r) => r,
        Err(why) => {
            let names = buckets_in(&cfg.match_header).unwrap_or_default();
            return Answer::refusal(why, &names).send(out);
        }
    };

    let key = key_of(&incoming, &cfg.hash_header);
    let random = [
        wasip2::random::random::get_random_u64(),
        wasip2::random::random::get_random_u64(),
    ];
    let ranked = state::rank(state.as_deref(), &route, key.as_deref(), random, now_ms());
    if ranked.order.is_empty() {
        return Answer::refusal(table::Refusal::AllEjected, &route.buckets).send(out);
    }
    let job = attempts::Job {
        cfg,
        state: state.as_deref(),
        route: &route,
        ranked: &ranked,
        incoming: &incoming,
    };
    match attempts::run(job, body) {
        attempts::Outcome::Relay(upstream, name) => forward::relay(upstream, &name, out),
        attempts::Outcome::Answer(a) => a.send(out),
    }
}

/// The buckets the request names in `header`, or why the value is bad.
fn bucket_names(incoming: &Incoming, header: &str) -> Result<Vec<String>, String> {
    // Several header lines mean the same as one comma-separated line
    // (RFC 9110, 5.3).
    let mut joined: Option<String> = None;
    for value in incoming.header_values(header) {
        let text = std::str::from_utf8(value).map_err(|_| format!("{header}: not UTF-8"))?;
        match &mut joined {
            Some(j) => {
                j.push(',');
                j.push_str(text);
            }
            None => joined = Some(text.to_string()),
        }
    }
    match joined {
        None => Ok(Vec::new()),
        Some(j) => fado_routing::request::parse_buckets(header, &j).map_err(|e| e.to_string()),
    }
}

/// The key of hash policies: the hash header's value, else the client's
/// address as the last proxy in `X-Forwarded-For` saw it.
fn key_of(incoming: &Incoming, hash_header: &str) -> Option<Vec<u8>> {
    incoming
        .header_values(hash_header)
        .next()
        .filter(|v| !v.is_empty())
        .map(<[u8]>::to_vec)
        .or_else(|| {
            incoming
                .header("x-forwarded-for")
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().as_bytes().to_vec())
                .filter(|v| !v.is_empty())
        })
}
