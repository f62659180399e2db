//! Sending a routed request: the ranked deployments in turn, until one
//! answers or no retry is allowed.

use std::time::Duration;

use fado_routing::request;
use wasip2::http::types::IncomingResponse;

use crate::answer::Answer;
use crate::body::RequestBody;
use crate::forward::{self, Failure};
use crate::incoming::Incoming;
use crate::state::{self, Ranked};
use crate::table::Route;
use crate::{Config, now_ms};

/// Everything an attempt needs besides the body.
pub struct Job<'a> {
    pub cfg: &'a Config,
    pub state: Option<&'a spin_sdk::wit::wasi::keyvalue::store::Bucket>,
    pub route: &'a Route,
    pub ranked: &'a Ranked,
    pub incoming: &'a Incoming,
}

/// What the client gets.
pub enum Outcome {
    /// A deployment answered (by name).
    Relay(IncomingResponse, String),
    Answer(Answer),
}

/// Tries the ranked deployments.
///
/// A request that never left (refused, unreachable, DNS, connect timeout,
/// TLS) goes to the next deployment; one that failed after it was sent is
/// retried only when idempotent and its body was kept. Attempts go down
/// the ranking and wrap around (with one deployment left, an idempotent
/// call whose connection broke is tried there again), skipping
/// deployments that refused the connection.
pub fn run(job: Job<'_>, mut body: RequestBody) -> Outcome {
    let headers = forward::outgoing_headers(job.incoming);
    let invocation = request::split_path(&job.incoming.path);
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
        let url = match request::upstream_url(&target.base_url, &target.path_template, &invocation)
        {
            Ok(u) => u,
            Err(e) => return Outcome::Answer(Answer::error(400, "no_function", e.to_string())),
        };
        let Some((scheme, authority, path)) = request::split_url(&url) else {
            return Outcome::Answer(Answer::error(
                502,
                "bad_upstream_url",
                format!("{} has an unusable base URL: {url:?}", target.name),
            ));
        };
        let attempt_body = body.take();
        if matches!(attempt_body, RequestBody::Taken) {
            break;
        }
        tried.push(&target.name);
        let attempt = state::start(job.state, job.route.policy, target.faas_id, now_ms());
        let timeout = Duration::from_millis(target.timeout_ms.max(1) as u64);
        let clock = std::time::Instant::now();
        let sent = forward::send(
            &job.incoming.method,
            &headers,
            &forward::Target {
                scheme,
                authority,
                path: &path,
                timeout,
            },
            attempt_body,
        );
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
                finish(upstream.status() >= 500, Some(took));
                return Outcome::Relay(upstream, target.name.clone());
            }
            // The client's doing: not a failure of the deployment.
            Err(Failure::TooLarge(max)) => {
                finish(false, None);
                return Outcome::Answer(Answer::too_large(max, None));
            }
            Err(f) => {
                finish(true, None);
                if let Failure::Timeout(m) = &f {
                    return Outcome::Answer(Answer::error(
                        504,
                        "upstream_timeout",
                        format!(
                            "{} did not answer within {} ms: {m}",
                            target.name, target.timeout_ms
                        ),
                    ));
                }
                let retry = match &f {
                    Failure::NotSent(_) => {
                        refused.push(index);
                        true
                    }
                    Failure::Sent(_) => {
                        body.is_kept() && request::may_retry(job.incoming.method_str(), true)
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
    Outcome::Answer(match last {
        Some(Failure::NotSent(m)) => Answer::error(
            503,
            "upstream_unavailable",
            format!("no deployment serving {label} could be reached (tried {tried}); last: {m}"),
        ),
        Some(f) => Answer::error(
            502,
            "upstream_failed",
            format!(
                "the request to a deployment serving {label} failed (tried {tried}): {}",
                f.message()
            ),
        ),
        None => Answer::error(
            503,
            "no_upstream",
            format!("no deployment serving {label} is available"),
        ),
    })
}
