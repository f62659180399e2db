//! The dashboard's summary of the whole catalog (`GET /api/resources`):
//! counts, health, replication state, and the few buckets and jobs that
//! need attention. Bounded whatever the catalog's size.

use std::collections::BTreeMap;

use fado_model::api::{
    BucketCounts, DeadJob, ObjectCounts, PlannerProgress, ReplicationLag, ResourceSummary,
    Shortfall,
};

use crate::{Db, Param, Result, Rows};

fn counts(rows: &Rows, key: &str) -> Result<BTreeMap<String, i64>> {
    rows.iter()
        .map(|r| Ok((r.str(key)?, r.i64("n")?)))
        .collect()
}

/// The summary, naming at most `top` short buckets and dead jobs.
pub fn resources(db: &Db, top: i64) -> Result<ResourceSummary> {
    let totals = db.query(
        "SELECT (SELECT count(*) FROM clusters) AS clusters,
                (SELECT count(*) FROM buckets) AS buckets,
                (SELECT count(*) FROM buckets WHERE replica_shortfall > 0) AS under_replicated,
                (SELECT coalesce(sum(object_count), 0) FROM bucket_stats) AS objects,
                (SELECT coalesce(sum(total_bytes), 0) FROM bucket_stats) AS bytes,
                l.n AS lag_objects, l.bytes AS lag_bytes, l.oldest AS lag_oldest
         FROM (SELECT count(*) AS n, coalesce(sum(object_size), 0)::bigint AS bytes, min(created_at) AS oldest
               FROM jobs WHERE state IN ('queued', 'running') AND kind IN ('copy_object', 'delete_object')) l",
        &[],
    )?;
    let t = totals.one()?;
    let faas = db.query(
        "SELECT health, count(*) AS n FROM faas_deployments GROUP BY health",
        &[],
    )?;
    let storage = db.query(
        "SELECT health, count(*) AS n FROM storage_deployments GROUP BY health",
        &[],
    )?;
    let replicas = db.query(
        "SELECT state, count(*) AS n FROM replicas GROUP BY state",
        &[],
    )?;
    let jobs = db.query(
        "SELECT state, count(*) AS n FROM jobs WHERE state <> 'done' GROUP BY state",
        &[],
    )?;
    let under = db.query(
        "SELECT name, target_replicas, replica_shortfall FROM buckets WHERE replica_shortfall > 0
         ORDER BY replica_shortfall DESC, name LIMIT $1",
        &[Param::Int64(top)],
    )?;
    let dead = db.query(
        "SELECT id, kind, bucket_name, last_error FROM jobs WHERE state = 'dead' ORDER BY id DESC LIMIT $1",
        &[Param::Int64(top)],
    )?;
    let planner = db.query(
        "SELECT catalog_generation, planned_generation, routes_version, planned_at FROM planner_state",
        &[],
    )?;
    let p = planner.one()?;
    Ok(ResourceSummary {
        clusters: t.i64("clusters")?,
        faas_deployments: counts(&faas, "health")?,
        storage_deployments: counts(&storage, "health")?,
        buckets: BucketCounts {
            total: t.i64("buckets")?,
            under_replicated: t.i64("under_replicated")?,
        },
        replicas: counts(&replicas, "state")?,
        objects: ObjectCounts {
            count: t.i64("objects")?,
            bytes: t.i64("bytes")?,
        },
        replication_lag: ReplicationLag {
            objects: t.i64("lag_objects")?,
            bytes: t.i64("lag_bytes")?,
            oldest: t.opt_time("lag_oldest")?,
        },
        jobs: counts(&jobs, "state")?,
        under_replicated_buckets: under
            .iter()
            .map(|r| {
                Ok(Shortfall {
                    bucket: r.str("name")?,
                    target_replicas: r.i64("target_replicas")?,
                    shortfall: r.i64("replica_shortfall")?,
                })
            })
            .collect::<Result<_>>()?,
        dead_jobs: dead
            .iter()
            .map(|r| {
                Ok(DeadJob {
                    id: r.i64("id")?,
                    kind: r.str("kind")?,
                    bucket: r.str("bucket_name")?,
                    last_error: r.opt_str("last_error")?,
                })
            })
            .collect::<Result<_>>()?,
        planner: PlannerProgress {
            catalog_generation: p.i64("catalog_generation")?,
            planned_generation: p.i64("planned_generation")?,
            routes_version: p.i64("routes_version")?,
            planned_at: p.opt_time("planned_at")?,
        },
    })
}

/// Unfinished and dead jobs by kind and state, for `/api/metrics`:
/// `(kind, state, count)`, in that order.
pub fn job_gauges(db: &Db) -> Result<Vec<(String, String, i64)>> {
    let rows = db.query(
        "SELECT kind, state, count(*) AS n FROM jobs WHERE state IN ('queued', 'running', 'dead')
         GROUP BY kind, state ORDER BY kind, state",
        &[],
    )?;
    rows.iter()
        .map(|r| Ok((r.str("kind")?, r.str("state")?, r.i64("n")?)))
        .collect()
}

/// Every storage deployment's name and health, in name order.
pub fn storage_health(db: &Db) -> Result<Vec<(String, fado_model::Health)>> {
    let rows = db.query(
        "SELECT name, health FROM storage_deployments ORDER BY name",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok((
                r.str("name")?,
                r.parse("health", fado_model::Health::parse)?,
            ))
        })
        .collect()
}
