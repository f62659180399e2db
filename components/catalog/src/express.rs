//! Express routes: a route override takes effect when its `PUT` answers,
//! not one planner round later. The handler builds the bucket's route
//! inside its transaction (the same route the planner will compute for an
//! overridden bucket); once the request has committed it is written to
//! `fado:routes:express` tagged with the transaction's catalog generation.
//! The router prefers it while it is newer than the published table; the
//! planner drops it when a table planned from that generation (or a later
//! one) is published. A lost write only means the change waits for the
//! planner, as every other change does.

use fado_model::route_keys::{EXPRESS, META};
use fado_model::{BucketRoute, Health, RouteTarget, SelectionPolicy};
use fado_store::{Db, id_array};

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

fn stored<T>(r: Result<T, fado_model::FieldError>) -> ApiResult<T> {
    r.map_err(|e| {
        ApiError::new(
            500,
            "internal",
            format!("stored {}: {}", e.field, e.message),
        )
    })
}

/// The route of `bucket` overridden to `faas_ids` (in id order, as the
/// planner orders them) with `policy`, or the default policy.
pub fn route_of(
    db: &Db,
    bucket: &str,
    faas_ids: &[i64],
    policy: Option<SelectionPolicy>,
) -> ApiResult<BucketRoute> {
    let policy = match policy {
        Some(p) => p,
        None => {
            let rows = db.query("SELECT default_policy FROM settings", &[])?;
            stored(SelectionPolicy::parse(
                "default_policy",
                &rows.one()?.str("default_policy")?,
            ))?
        }
    };
    let rows = db.query(
        "SELECT f.id, f.name, c.name AS cluster, f.base_url, f.path_template, f.timeout_ms, f.health
         FROM faas_deployments f JOIN clusters c ON c.id = f.cluster_id
         WHERE f.id = ANY($1) ORDER BY f.id",
        &[id_array(faas_ids)],
    )?;
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
                health: stored(Health::parse("health", &r.str("health")?))?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(BucketRoute {
        bucket: bucket.to_string(),
        policy,
        overridden: true,
        targets,
    })
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
