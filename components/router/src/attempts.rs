//! Sending a routed request: the ranked deployments in turn, until one
//! answers or no retry is allowed.

use std::time::Duration;

use fado_model::RouteTarget;
use fado_routing::{headers, request};
use wstd::http::{Body, HeaderMap, HeaderValue, Method, Response};

use crate::body::RequestBody;
use crate::forward::{self, Failure, Outgoing};
use crate::state::{self, Ranked};
use crate::table::Route;
use crate::{Config, answer, now_ms};

/// Everything an attempt needs besides the body.
pub struct Job<'a> {
    pub cfg: &'a Config,
    pub state: Option<&'a spin_sdk::wit::wasi::keyvalue::store::Bucket>,
    pub route: &'a Route,
    pub ranked: &'a Ranked,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub host: Option<&'a str>,
    pub scheme: &'a str,
    pub invocation: request::Invocation<'a>,
}

/// Tries the ranked deployments and returns the response for the client.
///
/// A request that never left (refused, unreachable, DNS, connect timeout,
/// TLS) goes to the next deployment; one that failed after it was sent is
/// retried only when idempotent and its body was kept. Attempts go down
/// the ranking and wrap around (with one deployment left, an idempotent
/// call whose connection broke is tried there again), skipping
/// deployments that refused the connection.
pub async fn run(job: Job<'_>, mut body: RequestBody) -> Response<Body> {
    // wasi:http does not tell a component the peer's address, so `for=` is
    // only known when an earlier proxy said it.
    let client = headers::Client {
        addr: None,
        host: job.host,
        proto: job.scheme,
    };
    let outgoing = Outgoing::new(job.method.clone(), job.headers, &client);
    let targets = &job.route.targets;
    let order = &job.ranked.order;
    let label = job.route.buckets.join(",");
    let mut last: Option<Failure> = None;
    let mut tried: Vec<&str> = Vec::new();
    let mut refused: Vec<usize> = Vec::new();
    let mut next = 0;
    for _ in 0..job.cfg.max_attempts {
        let Some(&index) = (0..order.len())
            .map(|k| &order[(next + k) % order.len()])
            .find(|i| !refused.contains(i))
        else {
            break;
        };
        next = order.iter().position(|&i| i == index).unwrap_or(0) + 1;
        let target = &targets[index];
        let url =
            match request::upstream_url(&target.base_url, &target.path_template, &job.invocation) {
                Ok(u) => u,
                Err(e) => return answer::error(400, "no_function", e.to_string()),
            };
        let Some((attempt_body, kept_len)) = body.for_attempt() else {
            break;
        };
        tried.push(&target.name);
        let started_ms = now_ms();
        let attempt = state::start(job.state, job.route.policy, target.faas_id, started_ms);
        let timeout = Duration::from_millis(target.timeout_ms.max(1) as u64);
        let clock = wstd::time::Instant::now();
        let sent = forward::send(&outgoing, &url, attempt_body, kept_len, timeout).await;
        let took = clock.elapsed().as_micros() as u64;
        let finish = |failed: bool, response_us: Option<u64>| {
            let outcome = state::Outcome {
                target,
                read: &job.ranked.reads[index],
                failed,
                response_us,
                now_ms: now_ms(),
                buckets: &label,
            };
            state::finish(
                job.state,
                attempt,
                job.route.policy,
                &outcome,
                &job.cfg.outlier,
            );
        };
        match sent {
            Ok(upstream) => {
                finish(upstream.status().is_server_error(), Some(took));
                return relay(upstream, target);
            }
            // The client's doing: not a failure of the deployment.
            Err(Failure::TooLarge(max)) => {
                finish(false, None);
                return answer::too_large(max, None);
            }
            Err(f) => {
                finish(true, None);
                if let Failure::Timeout(m) = &f {
                    return answer::error(
                        504,
                        "upstream_timeout",
                        format!(
                            "{} did not answer within {} ms: {m}",
                            target.name, target.timeout_ms
                        ),
                    );
                }
                let retry = match &f {
                    Failure::NotSent(_) => {
                        refused.push(index);
                        true
                    }
                    Failure::Sent(_) => {
                        body.is_kept() && request::may_retry(job.method.as_str(), true)
                    }
                    Failure::Timeout(_) | Failure::TooLarge(_) => false,
                };
                last = Some(f);
                if !retry || !body.is_kept() {
                    break;
                }
            }
        }
    }
    let tried = tried.join(", ");
    match last {
        Some(Failure::NotSent(m)) => answer::error(
            503,
            "upstream_unavailable",
            format!("no deployment serving {label} could be reached (tried {tried}); last: {m}"),
        ),
        Some(f) => answer::error(
            502,
            "upstream_failed",
            format!(
                "the request to a deployment serving {label} failed (tried {tried}): {}",
                f.message()
            ),
        ),
        None => answer::error(
            503,
            "no_upstream",
            format!("no deployment serving {label} is available"),
        ),
    }
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
