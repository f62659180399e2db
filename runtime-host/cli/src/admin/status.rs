//! `fado status`: readiness, planner progress, deployment health,
//! replication lag and under-replicated buckets at a glance.

use anyhow::Result;
use fado_model::Bucket;
use serde::Serialize;

use super::output::{self, bytes, opt, opt_time};
use super::{Ctx, about};
use fado_client::{Readiness, ResourceSummary};

/// A replica behind its master.
#[derive(Serialize)]
struct Lagging {
    bucket: String,
    storage: String,
    state: String,
    lag_objects: i64,
    lag_bytes: i64,
    oldest_unsynced_at: Option<String>,
}

#[derive(Serialize)]
struct Status {
    api: String,
    readiness: Readiness,
    summary: ResourceSummary,
    lag: Vec<Lagging>,
}

pub async fn run(ctx: &Ctx) -> Result<()> {
    let c = &ctx.client;
    let readiness = about(c.readiness().await, "checking readiness")?;
    let summary = about(c.resources().await, "reading the summary")?;
    // Lag is per replica, on the buckets: list them all (1000 a page).
    let buckets: Vec<Bucket> = about(c.list(&[]).await, "listing buckets")?;
    let mut lag: Vec<Lagging> = buckets
        .iter()
        .flat_map(|b| {
            b.replicas
                .iter()
                .filter(|r| r.lag_objects > 0 || r.lag_bytes > 0)
                .map(|r| Lagging {
                    bucket: b.name.clone(),
                    storage: r.storage.clone(),
                    state: r.state.to_string(),
                    lag_objects: r.lag_objects,
                    lag_bytes: r.lag_bytes,
                    oldest_unsynced_at: r.oldest_unsynced_at.clone(),
                })
        })
        .collect();
    lag.sort_by_key(|l| std::cmp::Reverse((l.lag_bytes, l.lag_objects)));
    let status = Status {
        api: c.base().to_string(),
        readiness,
        summary,
        lag,
    };
    if ctx.json {
        return output::json(&status);
    }
    print(&status);
    Ok(())
}

/// `3 healthy, 1 unhealthy` from counts by state.
fn counts(m: &std::collections::BTreeMap<String, i64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check(ok: bool, error: &Option<String>) -> String {
    if ok {
        "ok".into()
    } else {
        format!("FAILING: {}", opt(error))
    }
}

fn print(s: &Status) {
    let r = &s.readiness;
    let m = &s.summary;
    let p = &m.planner;
    let behind = p.catalog_generation - p.planned_generation;
    let total_lag_objects: i64 = s.lag.iter().map(|l| l.lag_objects).sum();
    let total_lag_bytes: i64 = s.lag.iter().map(|l| l.lag_bytes).sum();
    let oldest = s
        .lag
        .iter()
        .filter_map(|l| l.oldest_unsynced_at.clone())
        .min();
    output::print(&output::fields(vec![
        ("API", format!("{} ({})", s.api, r.status)),
        ("postgres", check(r.postgres.ok, &r.postgres.error)),
        ("redis", check(r.redis.ok, &r.redis.error)),
        (
            "planner",
            format!(
                "{} (generation {} of {}, routes v{}, planned {})",
                if behind > 0 { "behind" } else { "up to date" },
                p.planned_generation,
                p.catalog_generation,
                p.routes_version,
                opt_time(&p.planned_at)
            ),
        ),
        ("clusters", m.clusters.to_string()),
        ("FaaS", counts(&m.faas_deployments)),
        ("storage", counts(&m.storage_deployments)),
        (
            "buckets",
            format!(
                "{} ({} under-replicated)",
                m.buckets.total, m.buckets.under_replicated
            ),
        ),
        ("replicas", counts(&m.replicas)),
        (
            "objects",
            format!("{} ({})", m.objects.count, bytes(m.objects.bytes)),
        ),
        ("jobs", counts(&m.jobs)),
        (
            "replication lag",
            if s.lag.is_empty() {
                "none".into()
            } else {
                format!(
                    "{} replicas behind by {} objects, {} (oldest since {})",
                    s.lag.len(),
                    total_lag_objects,
                    bytes(total_lag_bytes),
                    opt_time(&oldest)
                )
            },
        ),
    ]));
    if !m.under_replicated_buckets.is_empty() {
        println!("\nUnder-replicated buckets:");
        let mut t = output::table(&["BUCKET", "TARGET", "SHORT BY"]);
        for u in &m.under_replicated_buckets {
            t.add_row(vec![
                u.bucket.clone(),
                u.target_replicas.to_string(),
                u.shortfall.to_string(),
            ]);
        }
        output::print(&t);
    }
    if !s.lag.is_empty() {
        println!("\nLagging replicas:");
        let mut t = output::table(&["BUCKET", "STORAGE", "STATE", "OBJECTS", "BYTES", "SINCE"]);
        for l in s.lag.iter().take(10) {
            t.add_row(vec![
                l.bucket.clone(),
                l.storage.clone(),
                l.state.clone(),
                l.lag_objects.to_string(),
                bytes(l.lag_bytes),
                opt_time(&l.oldest_unsynced_at),
            ]);
        }
        output::print(&t);
    }
    if !m.dead_jobs.is_empty() {
        println!("\nDead jobs (newest):");
        let mut t = output::table(&["ID", "KIND", "BUCKET", "LAST ERROR"]);
        for d in &m.dead_jobs {
            t.add_row(vec![
                d.id.to_string(),
                d.kind.clone(),
                d.bucket.clone(),
                opt(&d.last_error),
            ]);
        }
        output::print(&t);
    }
}
