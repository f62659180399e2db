//! Express routes: a route override takes effect when its `PUT` answers,
//! not one planner round later. The handler writes the override and reads
//! back the bucket's route in one statement (the same route the planner
//! will compute for an overridden bucket); once that has committed it is
//! written to
//! `fado:routes:express` tagged with the transaction's catalog generation.
//! The router prefers it while it is newer than the published table; the
//! planner drops it when a table planned from that generation (or a later
//! one) is published. A lost write only means the change waits for the
//! planner, as every other change does.

use fado_model::route_keys::{EXPRESS, META};
use fado_model::{BucketRoute, Health, RouteTarget, SelectionPolicy};
use fado_store::{Db, Param, id_array};

use crate::error::{ApiError, ApiResult};

/// KEYS[1] express, KEYS[2] meta; ARGV[1] bucket, ARGV[2] generation,
/// ARGV[3] route JSON. Written only when newer than both the published
/// table and an express route already there (requests can finish out of
/// order).
const WRITE: &str = r#"
local g = tonumber(ARGV[2])
if tonumber(redis.call('HGET', KEYS[2], 'generation') or '0') >= g then return 0 end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and tonumber(string.match(held, '^(%d+)|') or '0') >= g then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
return 1
"#;

/// Sets bucket `bucket_id`'s route override to `faas_ids` (sorted) with
/// `policy` in one statement (its own transaction: route changes are the
/// control plane's hot path, and each round trip to Postgres costs about
/// 0.4 ms): drops the deployments no longer listed, adds the new ones,
/// bumps the catalog generation, and reads back what the bucket's route
/// needs. Returns the generation and the route, as the planner will compute
/// it for an overridden bucket (deployments in id order; the default policy
/// when none is given). A deployment deleted since it was resolved fails
/// the statement through its foreign key, changing nothing.
pub fn write_override(
    db: &Db,
    bucket_id: i64,
    faas_ids: &[i64],
    policy: Option<SelectionPolicy>,
) -> ApiResult<(i64, BucketRoute)> {
    let rows = db.query(
        "WITH gone AS (
             DELETE FROM bucket_route_overrides WHERE bucket_id = $1 AND faas_id <> ALL($2::bigint[])
         ), added AS (
             INSERT INTO bucket_route_overrides (bucket_id, faas_id) SELECT $1, unnest($2::bigint[])
             ON CONFLICT DO NOTHING
         ), bucket AS (
             UPDATE buckets SET route_override = true, route_policy = $3, updated_at = now()
             WHERE id = $1 RETURNING name
         ), generation AS (
             UPDATE catalog_generation SET value = value + 1 RETURNING value
         )
         SELECT (SELECT name FROM bucket) AS bucket,
                (SELECT value FROM generation) AS generation,
                (SELECT default_policy FROM settings) AS default_policy,
                f.id, f.name, c.name AS cluster, f.base_url, f.path_template, f.timeout_ms, f.health
         FROM faas_deployments f JOIN clusters c ON c.id = f.cluster_id
         WHERE f.id = ANY($2::bigint[]) ORDER BY f.id",
        &[
            Param::Int64(bucket_id),
            id_array(faas_ids),
            fado_store::opt_text(policy.map(|p| p.as_str())),
        ],
    )?;
    let first = rows.first().ok_or_else(|| {
        ApiError::new(
            409,
            "conflict",
            "the FaaS deployments changed meanwhile; retry",
        )
    })?;
    let Some(bucket) = first.opt_str("bucket")? else {
        return Err(ApiError::not_found(format!("bucket {bucket_id}")));
    };
    let generation = first.i64("generation")?;
    let policy = match policy {
        Some(p) => p,
        None => fado_store::decoded(SelectionPolicy::parse(
            "default_policy",
            &first.str("default_policy")?,
        ))?,
    };
    let targets = rows
        .iter()
        .map(|r| {
            Ok(RouteTarget {
                faas_id: r.i64("id")?,
                name: r.str("name")?,
                cluster: r.str("cluster")?,
                base_url: r.str("base_url")?,
                path_template: r.str("path_template")?,
                timeout_ms: r.i64("timeout_ms")?,
                health: fado_store::decoded(Health::parse("health", &r.str("health")?))?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let route = BucketRoute {
        bucket,
        policy,
        overridden: true,
        targets,
    };
    Ok((generation, route))
}

/// Writes the express route (after the commit). Best effort: on failure
/// the planner's next table carries the change.
pub fn publish(redis_address: &str, generation: i64, route: &BucketRoute) {
    use spin_sdk::redis::{Connection, RedisParameter};
    let bin = |s: &[u8]| RedisParameter::Binary(s.to_vec());
    let json = match serde_json::to_vec(route) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("catalog: encoding the express route failed: {e}");
            return;
        }
    };
    let result = Connection::open(redis_address).and_then(|c| {
        c.execute(
            "EVAL",
            &[
                bin(WRITE.as_bytes()),
                RedisParameter::Int64(2),
                bin(EXPRESS.as_bytes()),
                bin(META.as_bytes()),
                bin(route.bucket.as_bytes()),
                bin(generation.to_string().as_bytes()),
                bin(&json),
            ],
        )
    });
    if let Err(e) = result {
        eprintln!(
            "catalog: could not publish the route of {} at once ({e:?}); the planner will",
            route.bucket
        );
    }
}
