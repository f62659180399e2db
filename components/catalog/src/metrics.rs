//! `GET /api/metrics`: replication metrics in the Prometheus text format.
//! Counters come from the Redis hash the replicator increments; gauges are
//! read from the catalog when scraped.

use std::fmt::Write;

use fado_store::Param;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

/// The replicator's counters (see its `METRICS_KEY`).
const METRICS_KEY: &[u8] = b"fado:metrics";

pub fn render(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let counters = counters(&ctx.redis_address)?;
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
    let rows = ctx.db.query(
        "SELECT kind, state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running', 'dead')
         GROUP BY kind, state ORDER BY kind, state",
        &[],
    )?;
    for r in rows.iter() {
        let _ = writeln!(
            out,
            "fado_jobs{{kind=\"{}\",state=\"{}\"}} {}",
            r.str("kind")?,
            r.str("state")?,
            r.i64("n")?
        );
    }
    let _ = writeln!(
        out,
        "# HELP fado_storage_healthy Whether the last health checks found the storage deployment up (unknown counts as up).\n# TYPE fado_storage_healthy gauge"
    );
    let rows = ctx.db.query(
        "SELECT name, health FROM storage_deployments ORDER BY name",
        &[] as &[Param],
    )?;
    for r in rows.iter() {
        let up = r.str("health")? != "unhealthy";
        let _ = writeln!(
            out,
            "fado_storage_healthy{{storage=\"{}\"}} {}",
            r.str("name")?,
            u8::from(up)
        );
    }
    Reply::text("text/plain; version=0.0.4", out)
}

/// Field → value of the counters hash.
fn counters(address: &str) -> ApiResult<Vec<(String, i64)>> {
    let unavailable =
        |e: spin_sdk::redis::Error| ApiError::new(503, "redis_unavailable", format!("{e:?}"));
    let conn = Connection::open(address).map_err(unavailable)?;
    let items = conn
        .execute("HGETALL", &[RedisParameter::Binary(METRICS_KEY.to_vec())])
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
            let v = text(pair.get(1)?)?.parse().ok()?;
            Some((k, v))
        })
        .collect())
}
