//! The router component: FaDO's ingress for function invocations.
//!
//! A request names its bucket(s) in the match header (`X-FaDO-Bucket: a, b`
//! by default, a setting) and its function in the first path segment. One
//! Redis round trip (`route.lua`) finds the deployments that hold every
//! named bucket, ranks them by the route's selection policy and counts the
//! request in flight at the first; the request then goes to that
//! deployment's base URL and path template, bodies streaming both ways
//! inside the host (`wasi:io` splice). A request that never reached a
//! deployment is tried at the next one, as is an idempotent request whose
//! connection failed after sending, when its body was small enough to keep
//! (`router_retry_buffer_kib`). After the response, `done.lua` records the
//! outcome: in-flight count, peak-EWMA latency, outlier detection
//! (consecutive failures eject a deployment for a growing period), metrics.
//! When Redis is unreachable, the newest route table in Postgres serves.
//!
//! The decisions themselves (header parsing, URLs, policies, ejection) are
//! `fado-routing`'s; this crate is the I/O around them.

mod forward;
mod table;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use fado_model::RouteTarget;
use fado_routing::{headers, outlier, request};
use forward::{Failure, Outgoing, Unsized};
use serde_json::json;
use spin_sdk::redis::Connection;
use spin_sdk::variables;
use table::{Ask, Decision, Outcome, Refusal};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};
use wstd::http::server::Responder;
use wstd::http::{Body, HeaderValue, Response, StatusCode};

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
struct Config {
    redis_address: String,
    pg_address: String,
    /// The header bucket names are read from, until the route table says
    /// otherwise (the `match_header` setting).
    match_header: String,
    hash_header: String,
    max_body: u64,
    retry_buffer: u64,
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
            redis_address: var("redis_address")?,
            pg_address: var("pg_address")?,
            match_header: var("match_header")?.to_ascii_lowercase(),
            hash_header: var("router_hash_header")?.to_ascii_lowercase(),
            max_body: number::<u64>("router_max_body_mib")? << 20,
            retry_buffer: number::<u64>("router_retry_buffer_kib")? << 10,
            max_attempts: number::<usize>("router_max_attempts")?.max(1),
            outlier: outlier::Config {
                consecutive_failures: number("router_eject_after_failures")?,
                base_ejection_ms: number("router_eject_base_ms")?,
                max_ejection_ms: number("router_eject_max_ms")?,
            },
        })
    }
}

/// A JSON error answer, in the shape the API uses.
fn error(status: u16, code: &str, message: impl Into<String>) -> Response<Body> {
    let body = json!({"error": {"code": code, "message": message.into()}}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn now_ms() -> u64 {
    let t = wasip2::clocks::wall_clock::now();
    t.seconds * 1000 + u64::from(t.nanoseconds / 1_000_000)
}

// An instance the host reuses (`instance_reuse` in spin.toml) keeps its
// configuration and its Redis connection: variables are fixed for the
// app's life, and the host's connection reconnects by itself. A fresh
// instance (Spin, or no reuse) loads both once, as before.
static CONFIG: OnceLock<Config> = OnceLock::new();

thread_local! {
    static REDIS: RefCell<Option<Rc<Connection>>> = const { RefCell::new(None) };
}

fn config() -> Result<&'static Config> {
    if let Some(c) = CONFIG.get() {
        return Ok(c);
    }
    let c = Config::load()?;
    Ok(CONFIG.get_or_init(|| c))
}

/// The Redis connection, opened on first use; `None` when it cannot be
/// opened (the router then routes from PostgreSQL, and tries again on the
/// next request).
fn redis(address: &str) -> Option<Rc<Connection>> {
    REDIS.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.is_none() {
            *cached = Connection::open(address).ok().map(Rc::new);
        }
        cached.clone()
    })
}

async fn serve(incoming: IncomingRequest, responder: Responder) -> Result<()> {
    let cfg = match config() {
        Ok(c) => c,
        Err(e) => {
            let _ = responder
                .respond(error(500, "misconfigured", format!("{e:#}")))
                .await;
            return Err(e);
        }
    };
    let request =
        wstd::http::request::try_from_incoming(incoming).context("reading the request")?;
    let (parts, body) = request.into_parts();
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // Size limit and whether the body can be kept for a retry.
    let length = match header_text("content-length").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            let r = error(400, "bad_request", "Content-Length is not a number");
            return responder.respond(r).await;
        }
        None => None,
    };
    if let Some(n) = length
        && n > cfg.max_body
    {
        return responder.respond(too_large(cfg.max_body, Some(n))).await;
    }
    let mut body = Some(body);
    // A body small enough is kept in memory, so a retry can send it again.
    let mut kept: Option<Vec<u8>> = None;
    match length {
        Some(0) => kept = Some(Vec::new()),
        Some(n) if n <= cfg.retry_buffer => {
            let mut b = body.take().expect("body present");
            let bytes = b.contents().await.context("reading the request body")?;
            kept = Some(bytes.to_vec());
        }
        // Larger with a known length (checked above): spliced by the host.
        Some(_) => {}
        None => {
            let b = body.take().expect("body present");
            match forward::read_unsized(b, cfg.retry_buffer, cfg.max_body).await? {
                Unsized::Whole(bytes) if bytes.len() as u64 > cfg.max_body => {
                    let r = too_large(cfg.max_body, None);
                    return responder.respond(r).await;
                }
                Unsized::Whole(bytes) => kept = Some(bytes),
                Unsized::Streaming(b) => body = Some(b),
            }
        }
    }

    // The route.
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut match_header = cfg.match_header.clone();
    let mut buckets = match bucket_names(&parts.headers, &match_header) {
        Ok(b) => b,
        Err(r) => return responder.respond(*r).await,
    };
    let key = key_of(&parts.headers, &cfg.hash_header);
    let request_id = format!("{:016x}", wasip2::random::random::get_random_u64());
    let lease_ms = 60_000;
    let redis = redis(&cfg.redis_address);
    let mut attempt_route = 0;
    let decision = loop {
        attempt_route += 1;
        let ask = Ask {
            buckets: &buckets,
            header: &match_header,
            key: key.as_deref(),
            now_ms: now_ms(),
            random: [
                wasip2::random::random::get_random_u64(),
                wasip2::random::random::get_random_u64(),
            ],
            request_id: &request_id,
            lease_ms,
        };
        let outcome = match redis.as_deref() {
            Some(conn) => match table::route(conn, &ask) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("router: Redis failed ({e:#}); routing from PostgreSQL");
                    table::route_from_postgres(&cfg.pg_address, &ask)?
                }
            },
            None => table::route_from_postgres(&cfg.pg_address, &ask)?,
        };
        match outcome {
            Outcome::Route(d) => break d,
            Outcome::Refused(Refusal::MatchHeader(h)) if attempt_route == 1 => {
                match_header = h.to_ascii_lowercase();
                buckets = match bucket_names(&parts.headers, &match_header) {
                    Ok(b) => b,
                    Err(r) => return responder.respond(*r).await,
                };
            }
            Outcome::Refused(why) => {
                let r = refusal(why, &buckets, &match_header);
                return responder.respond(r).await;
            }
        }
    };

    // The attempts. wasi:http does not tell a component the peer's
    // address, so `for=` is only known when an earlier proxy said it.
    let host = header_text("host");
    let client = headers::Client {
        addr: None,
        host: host.as_deref(),
        proto: parts.uri.scheme_str().unwrap_or("http"),
    };
    let outgoing = Outgoing::new(parts.method.clone(), &parts.headers, &client);
    let inv = request::split_path(&path);
    let Decision {
        route,
        order,
        shared,
    } = decision;
    let label_buckets = buckets.join(",");
    let outcomes = Outcomes {
        redis: redis.as_deref().filter(|_| shared),
        cfg,
        request_id: &request_id,
        buckets: &label_buckets,
    };
    let mut last: Option<Failure> = None;
    let mut tried: Vec<&str> = Vec::new();
    // Attempts go down the ranking and wrap around: with one deployment
    // left, an idempotent call whose connection broke is tried there again.
    // A deployment that refused the connection is not tried again.
    let mut refused: Vec<i64> = Vec::new();
    let mut next = 0;
    for n in 0..cfg.max_attempts {
        let Some(faas_id) = (0..order.len())
            .map(|k| &order[(next + k) % order.len()])
            .find(|id| !refused.contains(id))
        else {
            break;
        };
        next = order.iter().position(|id| id == faas_id).unwrap_or(0) + 1;
        let Some(target) = route.targets.iter().find(|t| t.faas_id == *faas_id) else {
            refused.push(*faas_id);
            continue;
        };
        if n > 0
            && shared
            && let Some(conn) = redis.as_deref()
        {
            let _ = table::begin(conn, *faas_id, &request_id, now_ms(), lease_ms);
        }
        let url = match request::upstream_url(&target.base_url, &target.path_template, &inv) {
            Ok(u) => u,
            Err(e) => {
                outcomes.record(target, false, None);
                return responder
                    .respond(error(400, "no_function", e.to_string()))
                    .await;
            }
        };
        let attempt_body = match (&kept, body.take()) {
            (Some(k), _) => Body::from(k.clone()),
            (None, Some(b)) => b,
            // The streamed body went with an earlier attempt.
            (None, None) => break,
        };
        tried.push(&target.name);
        let timeout = Duration::from_millis(target.timeout_ms.max(1) as u64);
        let started = wstd::time::Instant::now();
        let kept_len = kept.as_ref().map(|k| k.len() as u64);
        match forward::send(&outgoing, &url, attempt_body, kept_len, timeout).await {
            Ok(upstream) => {
                let took = started.elapsed().as_micros() as u64;
                let failed = upstream.status().is_server_error();
                let response = relay(upstream, target);
                let sent = responder.respond(response).await;
                outcomes.record(target, failed, Some(took));
                return sent;
            }
            Err(Failure::TooLarge(max)) => {
                // The client's doing: counted as a request that did not
                // fail at the deployment.
                outcomes.record(target, false, None);
                return responder.respond(too_large(max, None)).await;
            }
            Err(f) => {
                outcomes.record(target, true, None);
                if matches!(f, Failure::NotSent(_)) {
                    refused.push(target.faas_id);
                }
                let retry = match &f {
                    Failure::NotSent(_) => true,
                    Failure::Sent(_) => {
                        kept.is_some() && request::may_retry(parts.method.as_str(), true)
                    }
                    Failure::Timeout(_) | Failure::TooLarge(_) => false,
                };
                if let Failure::Timeout(m) = &f {
                    let r = error(
                        504,
                        "upstream_timeout",
                        format!(
                            "{} did not answer within {} ms: {m}",
                            target.name, target.timeout_ms
                        ),
                    );
                    return responder.respond(r).await;
                }
                last = Some(f);
                if !retry || kept.is_none() {
                    break;
                }
            }
        }
    }
    let r = match last {
        Some(Failure::NotSent(m)) => error(
            503,
            "upstream_unavailable",
            format!(
                "no deployment serving {label_buckets} could be reached (tried {}); last: {m}",
                tried.join(", ")
            ),
        ),
        Some(f) => error(
            502,
            "upstream_failed",
            format!(
                "the request to a deployment serving {label_buckets} failed (tried {}): {}",
                tried.join(", "),
                f.message()
            ),
        ),
        None => error(
            503,
            "no_upstream",
            format!("no deployment serving {label_buckets} is available"),
        ),
    };
    responder.respond(r).await
}

/// The answer to a body longer than the limit: its `Content-Length`, or
/// `None` when it came without one and was cut off while streaming.
fn too_large(max: u64, length: Option<u64>) -> Response<Body> {
    let message = match length {
        Some(n) => format!("the body is {n} bytes; the router accepts at most {max}"),
        None => format!("the body is more than {max} bytes, the most the router accepts"),
    };
    error(413, "too_large", message)
}

/// The upstream's response for the client: hop-by-hop headers dropped, the
/// serving deployment named.
fn relay(upstream: Response<Body>, target: &RouteTarget) -> Response<Body> {
    let (mut parts, body) = upstream.into_parts();
    let connection = parts
        .headers
        .get("connection")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let drop: Vec<_> = parts
        .headers
        .keys()
        .filter(|n| headers::is_hop_by_hop(n.as_str(), connection.as_deref()))
        .cloned()
        .collect();
    for n in drop {
        parts.headers.remove(n);
    }
    if let Ok(v) = HeaderValue::from_str(&target.name) {
        parts.headers.insert("x-fado-upstream", v);
    }
    Response::from_parts(parts, body)
}

/// Where attempts' outcomes go (`done.lua`), when routing went through Redis.
struct Outcomes<'a> {
    redis: Option<&'a Connection>,
    cfg: &'a Config,
    request_id: &'a str,
    /// The request's buckets, for the metrics.
    buckets: &'a str,
}

impl Outcomes<'_> {
    fn record(&self, target: &RouteTarget, failed: bool, response_us: Option<u64>) {
        let Some(conn) = self.redis else {
            return;
        };
        let label = format!("{}|{}", self.buckets, target.name);
        let done = table::Done {
            faas_id: target.faas_id,
            request_id: self.request_id,
            failed,
            response_us,
            now_ms: now_ms(),
            label: &label,
            name: &target.name,
        };
        if let Err(e) = table::done(conn, &done, &self.cfg.outlier) {
            eprintln!("router: recording the outcome at {}: {e:#}", target.name);
        }
    }
}

/// The buckets the request names, or the 400 answer for a bad header.
fn bucket_names(
    headers: &wstd::http::HeaderMap,
    name: &str,
) -> Result<Vec<String>, Box<Response<Body>>> {
    let Some(value) = headers.get(name) else {
        return Ok(Vec::new());
    };
    let text = value.to_str().map_err(|_| {
        Box::new(error(
            400,
            "bad_bucket_header",
            format!("{name}: not ASCII"),
        ))
    })?;
    request::parse_buckets(name, text)
        .map_err(|e| Box::new(error(400, "bad_bucket_header", e.to_string())))
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

fn refusal(why: Refusal, buckets: &[String], header: &str) -> Response<Body> {
    let names = buckets.join(", ");
    match why {
        Refusal::NoTable => error(
            503,
            "no_route_table",
            "the planner has not published a route table yet",
        ),
        Refusal::UnknownBucket(b) => error(
            404,
            "unknown_bucket",
            format!("bucket {b:?} does not exist"),
        ),
        Refusal::MatchHeader(h) => error(
            500,
            "misconfigured",
            format!("the route table matches on {h:?}, not {header:?}"),
        ),
        Refusal::MissingHeader(h) => error(
            400,
            "missing_bucket_header",
            format!("the request names no bucket: send the {h} header"),
        ),
        Refusal::NoTargets => error(
            503,
            "no_upstream",
            if names.is_empty() {
                "no FaaS deployment is registered".to_string()
            } else {
                format!("no FaaS deployment holds every bucket of {names}")
            },
        ),
        Refusal::AllEjected => error(
            503,
            "no_healthy_upstream",
            format!(
                "every deployment serving {names} is ejected after failures; try again shortly"
            ),
        ),
    }
}
