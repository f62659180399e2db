//! `GET /api/metrics`: replication and routing metrics in the Prometheus
//! text format. Replication counters come from the Redis hash the
//! replicator increments, the router's from its state store
//! `fado_router_state` (under fado per process, like the routing it
//! counts); gauges are read from the catalog when scraped.

use std::fmt::Write;

use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

use fado_model::{router_metrics, router_state};
use spin_sdk::wit::wasi::keyvalue::store;

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn render(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let counters: Vec<(String, i64)> = hash(
        &ctx.redis_address,
        fado_model::REPLICATION_METRICS_KEY.as_bytes(),
    )?
    .into_iter()
    .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
    .collect();
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP fado_{name} {help}\n# TYPE fado_{name} counter");
        let mut lines: Vec<_> = counters
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .collect();
        lines.sort();
        if lines.is_empty() && !name.ends_with("jobs_total") {
            let _ = writeln!(out, "fado_{name} 0");
        }
        for (k, v) in lines {
            let _ = writeln!(out, "fado_{k} {v}");
        }
    };
    counter(
        &mut out,
        "replicated_bytes_total",
        "Object bytes written to replicas by replication jobs.",
    );
    counter(
        &mut out,
        "jobs_total",
        "Replication job attempts by kind and outcome (done, retry, dead).",
    );

    let _ = writeln!(
        out,
        "# HELP fado_jobs Replication jobs waiting, running or dead, by kind.\n# TYPE fado_jobs gauge"
    );
    for (kind, state, n) in fado_store::summary::job_gauges(&ctx.db)? {
        let _ = writeln!(out, "fado_jobs{{kind=\"{kind}\",state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP fado_storage_healthy Whether the last health checks found the storage deployment up (unknown counts as up).\n# TYPE fado_storage_healthy gauge"
    );
    for (name, health) in fado_store::summary::storage_health(&ctx.db)? {
        let up = health != fado_model::Health::Unhealthy;
        let _ = writeln!(
            out,
            "fado_storage_healthy{{storage=\"{name}\"}} {}",
            u8::from(up)
        );
    }
    router(&mut out, &router_counters()?);
    Reply::text("text/plain; version=0.0.4", out)
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The router's counters: every `m:…` key of its state store, prefix
/// dropped.
fn router_counters() -> ApiResult<Vec<(String, String)>> {
    let unavailable = |e: store::Error| {
        ApiError::new(
            503,
            "router_state_unavailable",
            format!("the router's state store cannot be read: {e:?}"),
        )
    };
    let state = store::open(router_state::STORE).map_err(unavailable)?;
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = state.list_keys(cursor.as_deref()).map_err(unavailable)?;
        keys.extend(
            page.keys
                .into_iter()
                .filter(|k| k.starts_with(router_state::METRICS_PREFIX)),
        );
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        for (k, v) in fado_store::keyvalue::get_each(&state, chunk).map_err(unavailable)? {
            if let Some(v) = v {
                let name = k[router_state::METRICS_PREFIX.len()..].to_string();
                out.push((name, String::from_utf8_lossy(&v).into_owned()));
            }
        }
    }
    Ok(out)
}

/// The router's metrics: fields `requests|B|U`, `errors|B|U`,
/// `latency|B|U|LE`, `latency_sum_us|B|U` (whole microseconds) and
/// `ejections|U`, for buckets B and upstream deployment U.
fn router(out: &mut String, fields: &[(String, String)]) {
    use std::collections::BTreeMap;
    let mut requests = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut sums = BTreeMap::new();
    let mut histograms: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut ejections = BTreeMap::new();
    for (k, v) in fields {
        let parts: Vec<&str> = k.split('|').collect();
        let pair = |i: usize| (parts[i].to_string(), parts[i + 1].to_string());
        match (parts.as_slice(), v.parse::<f64>()) {
            (["requests", _, _], Ok(n)) => {
                requests.insert(pair(1), n);
            }
            (["errors", _, _], Ok(n)) => {
                errors.insert(pair(1), n);
            }
            (["latency_sum_us", _, _], Ok(n)) => {
                *sums.entry(pair(1)).or_insert(0.0) += n / 1e6;
            }
            (["latency", _, _, le], Ok(n)) => {
                histograms
                    .entry(pair(1))
                    .or_default()
                    .insert(le.to_string(), n as u64);
            }
            (["ejections", u], Ok(n)) => {
                ejections.insert(u.to_string(), n);
            }
            _ => {}
        }
    }
    let series =
        |(b, u): &(String, String)| format!("bucket=\"{}\",upstream=\"{}\"", label(b), label(u));
    let _ = writeln!(
        out,
        "# HELP fado_router_requests_total Invocation attempts by bucket(s) and upstream deployment.\n# TYPE fado_router_requests_total counter"
    );
    for (k, n) in &requests {
        let _ = writeln!(out, "fado_router_requests_total{{{}}} {n}", series(k));
    }
    let _ = writeln!(
        out,
        "# HELP fado_router_errors_total Attempts that failed: not answered, timed out or a 5xx answer.\n# TYPE fado_router_errors_total counter"
    );
    for (k, n) in &errors {
        let _ = writeln!(out, "fado_router_errors_total{{{}}} {n}", series(k));
    }
    let _ = writeln!(
        out,
        "# HELP fado_router_request_duration_seconds Time to the upstream's response head.\n# TYPE fado_router_request_duration_seconds histogram"
    );
    for (k, h) in &histograms {
        let mut total = 0;
        let bounds = router_metrics::LATENCY_BUCKETS.iter().map(f64::to_string);
        for le in bounds.chain(std::iter::once("+Inf".to_string())) {
            total += h.get(le.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "fado_router_request_duration_seconds_bucket{{{},le=\"{le}\"}} {total}",
                series(k)
            );
        }
        let sum = sums.get(k).copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "fado_router_request_duration_seconds_sum{{{}}} {sum}",
            series(k)
        );
        let _ = writeln!(
            out,
            "fado_router_request_duration_seconds_count{{{}}} {total}",
            series(k)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fado_router_ejections_total Times outlier detection ejected an upstream deployment.\n# TYPE fado_router_ejections_total counter"
    );
    for (u, n) in &ejections {
        let _ = writeln!(
            out,
            "fado_router_ejections_total{{upstream=\"{}\"}} {n}",
            label(u)
        );
    }
}

/// Field → value of a counters hash.
fn hash(address: &str, key: &[u8]) -> ApiResult<Vec<(String, String)>> {
    let unavailable =
        |e: spin_sdk::redis::Error| ApiError::new(503, "redis_unavailable", format!("{e:?}"));
    let conn = Connection::open(address).map_err(unavailable)?;
    let items = conn
        .execute("HGETALL", &[RedisParameter::Binary(key.to_vec())])
        .map_err(unavailable)?;
    let text = |r: &RedisResult| match r {
        RedisResult::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisResult::Status(s) => Some(s.clone()),
        RedisResult::Int64(i) => Some(i.to_string()),
        RedisResult::Nil => None,
    };
    Ok(items
        .chunks(2)
        .filter_map(|pair| {
            let k = text(pair.first()?)?;
            let v = text(pair.get(1)?)?;
            Some((k, v))
        })
        .collect())
}
