//! The router component: FaDO's ingress for function invocations.
//!
//! A request names its bucket(s) in the match header (`X-FaDO-Bucket: a, b`
//! by default, a setting) and its function in the first path segment:
//!
//! 1. [`body`]: a small body is read into memory so a retry can resend it;
//!    a larger one streams to the attempt that takes it.
//! 2. [`table`]: the routes of the named buckets, from the key-value store
//!    `fado_routes` (under fado, process memory kept fresh by Redis; under
//!    Spin, Redis), else from Postgres; the deployments holding every
//!    bucket.
//! 3. [`state`]: the route's policy ranks them over the store
//!    `fado_router_state` (round-robin position, in-flight counts,
//!    latency, outlier records).
//! 4. [`attempts`]: the request goes to the first, by its base URL and
//!    path template, bodies streaming both ways inside the host; a request
//!    that never reached a deployment moves on to the next, as does an
//!    idempotent one whose connection broke, when its body was kept.
//!
//! The decisions themselves (header parsing, URLs, policies, ejection) are
//! `fado-routing`'s; this crate is the I/O around them.

mod answer;
mod attempts;
mod body;
mod forward;
mod state;
mod table;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use fado_model::{channels, route_keys, router_state};
use fado_routing::{outlier, request};
use spin_sdk::variables;
use spin_sdk::wit::wasi::keyvalue::store;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};
use wstd::http::server::Responder;

struct Router;

wasip2::http::proxy::export!(Router);

impl wasip2::exports::http::incoming_handler::Guest for Router {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        wstd::runtime::block_on(async move {
            let responder = Responder::new(out);
            if let Err(e) = serve(request, responder).await {
                eprintln!("router: {e:#}");
            }
        })
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

thread_local! {
    static STORES: RefCell<Option<(Option<Rc<store::Bucket>>, Option<Rc<store::Bucket>>)>> =
        const { RefCell::new(None) };
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
fn stores() -> (Option<Rc<store::Bucket>>, Option<Rc<store::Bucket>>) {
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
/// most once a second per instance.
fn wake_planner() {
    let now = now_ms();
    if LAST_WAKE_MS.get() + 1000 > now {
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

async fn serve(incoming: IncomingRequest, responder: Responder) -> Result<()> {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            let r = answer::error(500, "misconfigured", format!("{e:#}"));
            let _ = responder.respond(r).await;
            return Err(e);
        }
    };
    let request =
        wstd::http::request::try_from_incoming(incoming).context("reading the request")?;
    let (parts, incoming_body) = request.into_parts();
    let header_text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());

    let body = match body::read(header_text("content-length"), incoming_body, &cfg.limits).await? {
        Ok(b) => b,
        Err(answer) => return responder.respond(answer).await,
    };

    let (routes, state) = stores();
    let buckets_in = |header: &str| bucket_names(&parts.headers, header);
    let route = match table::lookup(
        routes.as_deref(),
        &cfg.pg_address,
        &cfg.match_header,
        &buckets_in,
    ) {
        Ok(r) => r,
        Err(why) => {
            let names = buckets_in(&cfg.match_header).unwrap_or_default();
            return responder.respond(answer::refusal(why, &names)).await;
        }
    };

    let key = key_of(&parts.headers, &cfg.hash_header);
    let random = [
        wasip2::random::random::get_random_u64(),
        wasip2::random::random::get_random_u64(),
    ];
    let ranked = state::rank(state.as_deref(), &route, key.as_deref(), random, now_ms());
    if ranked.order.is_empty() {
        let r = answer::refusal(table::Refusal::AllEjected, &route.buckets);
        return responder.respond(r).await;
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let job = attempts::Job {
        cfg,
        state: state.as_deref(),
        route: &route,
        ranked: &ranked,
        method: &parts.method,
        headers: &parts.headers,
        host: header_text("host"),
        scheme: parts.uri.scheme_str().unwrap_or("http"),
        invocation: request::split_path(path),
    };
    let response = attempts::run(job, body).await;
    responder.respond(response).await
}

/// The buckets the request names in `header`, or why the value is bad.
fn bucket_names(headers: &wstd::http::HeaderMap, header: &str) -> Result<Vec<String>, String> {
    // Several header lines mean the same as one comma-separated line
    // (RFC 9110, 5.3).
    let mut joined = String::new();
    for value in headers.get_all(header) {
        let text = value.to_str().map_err(|_| format!("{header}: not ASCII"))?;
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text);
    }
    if joined.is_empty() && headers.get(header).is_none() {
        return Ok(Vec::new());
    }
    request::parse_buckets(header, &joined).map_err(|e| e.to_string())
}

/// The key of hash policies: the hash header's value, else the client's
/// address as the last proxy in `X-Forwarded-For` saw it.
fn key_of(headers: &wstd::http::HeaderMap, hash_header: &str) -> Option<Vec<u8>> {
    let get = |n: &str| headers.get(n).map(|v| v.as_bytes().to_vec());
    get(hash_header).filter(|v| !v.is_empty()).or_else(|| {
        headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().as_bytes().to_vec())
            .filter(|v| !v.is_empty())
    })
}
