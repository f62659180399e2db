//! Express routes: a route override takes effect when its `PUT` answers,
//! not one planner round later. The handler writes the override and reads
//! back the bucket's route in one statement
//! (`fado_store::buckets::write_route_override`: the same route the planner
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
use fado_model::{BucketRoute, PublishedRoute};
use spin_sdk::wit::wasi::keyvalue::{atomics, store};

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
