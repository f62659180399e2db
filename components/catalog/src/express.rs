//! Express routes: a route override takes effect when its `PUT` answers,
//! not one planner round later. The handler writes the override and reads
//! back the bucket's route in one statement (the same route the planner
//! will compute for an overridden bucket); once that has committed, the
//! route is written to the bucket's key in the route store `fado_routes`
//! tagged with the transaction's catalog generation, by compare-and-swap,
//! so a slower request of an older generation never replaces it. The same
//! statement notes the bucket in `express_routes`, for the planner. Under
//! fado the store is a near-cache of Redis: this process routes by the new
//! route at once, other processes once Redis's invalidation reaches them.
//! A lost write only means the change waits for the planner, as every
//! other change does.

use fado_model::route_keys;
use fado_model::{BucketRoute, Health, PublishedRoute, RouteTarget, SelectionPolicy};
use fado_store::{Db, Param, id_array};
use spin_sdk::wit::wasi::keyvalue::{atomics, store};

use crate::error::{ApiError, ApiResult};

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
         ), noted AS (
             INSERT INTO express_routes (bucket_id, generation) SELECT $1, value FROM generation
             ON CONFLICT (bucket_id) DO UPDATE SET generation = EXCLUDED.generation
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

/// Writes the express route (after the commit; the statement that made it
/// noted it in `express_routes` for the planner). Best effort: on failure
/// the planner's next table carries the change.
pub fn publish(generation: i64, route: &BucketRoute) {
    if let Err(e) = try_publish(generation, route) {
        eprintln!(
            "catalog: could not publish the route of {} at once ({e}); the planner will",
            route.bucket
        );
    }
}

/// The generation a published route was computed from.
#[derive(serde::Deserialize)]
struct Generation {
    generation: i64,
}

fn try_publish(generation: i64, route: &BucketRoute) -> Result<(), String> {
    let value = serde_json::to_vec(&PublishedRoute {
        generation,
        route: route.clone(),
    })
    .map_err(|e| e.to_string())?;
    let routes = store::open(route_keys::STORE).map_err(|e| format!("{e:?}"))?;
    let key = route_keys::route(&route.bucket);
    let mut cas = atomics::Cas::new(&routes, &key).map_err(|e| format!("{e:?}"))?;
    for _ in 0..8 {
        match cas.current().map_err(|e| format!("{e:?}"))? {
            // No route yet (a bucket the planner has not published) or
            // none any more (deleted meanwhile): the planner decides.
            None => return Ok(()),
            Some(v) => {
                if serde_json::from_slice::<Generation>(&v)
                    .is_ok_and(|g| g.generation >= generation)
                {
                    return Ok(());
                }
            }
        }
        match atomics::swap(cas, &value) {
            Ok(()) => return Ok(()),
            // It holds what the store has now: look again.
            Err(atomics::CasError::CasFailed(again)) => cas = again,
            Err(atomics::CasError::StoreError(e)) => return Err(format!("{e:?}")),
        }
    }
    Err("the route kept changing under concurrent writes".into())
}
