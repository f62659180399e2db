//! Tables `buckets`, `bucket_replica_overrides` and
//! `bucket_route_overrides`: buckets with their placement policy, their
//! hand-set replicas and routes, and (read from `replicas`, `bucket_stats`
//! and the ledger) their replicas' states and lag.
//!
//! # Lock order
//! Every transaction that changes a bucket locks rows in one order: the
//! bucket's row first ([`lock`], or an update of it), then the rows that
//! hang off it (replica and route overrides, jobs), and the catalog
//! generation last ([`Db::bump_generation`]). Two requests on one bucket
//! then queue on its row instead of each holding what the other waits for:
//! a route-override removal that deleted override rows before updating the
//! bucket deadlocked with a `PUT` that had updated the bucket and the
//! generation and was waiting for those rows. The functions here that
//! change several tables keep that order themselves.

use std::collections::HashMap;

use fado_model::api::RouteOverrideEntry;
use fado_model::{
    Bucket, BucketRoute, Health, Replica, ReplicaState, RouteOverride, RouteTarget, SelectionPolicy,
};

use crate::{Db, Param, Result, Row, decoded, id_array, opt_text, text_array};

const SELECT: &str =
    "SELECT b.id, b.name, b.master_storage_id, s.name AS master_storage, c.name AS master_cluster,
        b.allowed_zones, b.target_replicas, b.replica_override, b.route_override, b.route_policy,
        b.replica_shortfall, b.plan_notes, b.created_at, b.updated_at,
        coalesce((SELECT st.object_count FROM bucket_stats st WHERE st.bucket_id = b.id), 0) AS object_count,
        coalesce((SELECT st.total_bytes FROM bucket_stats st WHERE st.bucket_id = b.id), 0) AS total_bytes,
        CASE WHEN b.replica_override THEN (SELECT array_agg(o.storage_id ORDER BY o.storage_id)
            FROM bucket_replica_overrides o WHERE o.bucket_id = b.id) END AS replica_override_ids,
        CASE WHEN b.route_override THEN (SELECT array_agg(o.faas_id ORDER BY o.faas_id)
            FROM bucket_route_overrides o WHERE o.bucket_id = b.id) END AS route_override_ids
    FROM buckets b
    JOIN storage_deployments s ON s.id = b.master_storage_id
    JOIN clusters c ON c.id = s.cluster_id";

fn policy(r: &Row<'_>, column: &str) -> Result<Option<SelectionPolicy>> {
    r.opt_str(column)?
        .map(|p| decoded(SelectionPolicy::parse(column, &p)))
        .transpose()
}

fn from_row(r: Row<'_>, replicas: Vec<Replica>) -> Result<Bucket> {
    let route_override = if r.bool("route_override")? {
        Some(RouteOverride {
            faas_ids: r.ids("route_override_ids")?,
            policy: policy(&r, "route_policy")?,
        })
    } else {
        None
    };
    let shortfall = r.i64("replica_shortfall")?;
    Ok(Bucket {
        id: r.i64("id")?,
        name: r.str("name")?,
        master_storage_id: r.i64("master_storage_id")?,
        master_storage: r.str("master_storage")?,
        master_cluster: r.str("master_cluster")?,
        allowed_zones: r.strings("allowed_zones")?,
        target_replicas: r.i64("target_replicas")?,
        replica_override: if r.bool("replica_override")? {
            Some(r.ids("replica_override_ids")?)
        } else {
            None
        },
        route_override,
        replicas,
        replica_shortfall: shortfall,
        under_replicated: shortfall > 0,
        plan_notes: r.strings("plan_notes")?,
        object_count: r.i64("object_count")?,
        total_bytes: r.i64("total_bytes")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// Replicas of the given buckets, grouped by bucket id, in storage id
/// order.
fn replicas_of(db: &Db, bucket_ids: &[i64]) -> Result<HashMap<i64, Vec<Replica>>> {
    let rows = db.query(
        // Lag, read from the ledger: before its first full sync a replica
        // lacks the whole bucket; after it, what its queued object jobs carry.
        "SELECT r.bucket_id, r.storage_id, s.name AS storage, c.name AS cluster, r.state, r.last_sync_at,
                r.last_error,
                CASE WHEN r.last_sync_at IS NULL THEN st.object_count ELSE j.n END AS lag_objects,
                CASE WHEN r.last_sync_at IS NULL THEN st.total_bytes ELSE j.bytes END AS lag_bytes,
                CASE WHEN r.last_sync_at IS NULL THEN r.created_at ELSE j.oldest END AS oldest_unsynced_at
         FROM replicas r JOIN storage_deployments s ON s.id = r.storage_id JOIN clusters c ON c.id = s.cluster_id
         JOIN buckets b ON b.id = r.bucket_id JOIN bucket_stats st ON st.bucket_id = r.bucket_id
         CROSS JOIN LATERAL (
             SELECT count(*) AS n, coalesce(sum(object_size), 0)::bigint AS bytes, min(created_at) AS oldest
             FROM jobs WHERE bucket_name = b.name AND storage_id = r.storage_id
               AND state IN ('queued', 'running') AND kind IN ('copy_object', 'delete_object')) j
         WHERE r.bucket_id = ANY($1) ORDER BY r.bucket_id, r.storage_id",
        &[id_array(bucket_ids)],
    )?;
    let mut out: HashMap<i64, Vec<Replica>> = HashMap::new();
    for r in rows.iter() {
        out.entry(r.i64("bucket_id")?).or_default().push(Replica {
            storage_id: r.i64("storage_id")?,
            storage: r.str("storage")?,
            cluster: r.str("cluster")?,
            state: r.parse("state", ReplicaState::parse)?,
            last_sync_at: r.opt_time("last_sync_at")?,
            lag_objects: r.i64("lag_objects")?,
            lag_bytes: r.i64("lag_bytes")?,
            oldest_unsynced_at: r.opt_time("oldest_unsynced_at")?,
            last_error: r.opt_str("last_error")?,
        });
    }
    Ok(out)
}

/// Up to `limit` buckets with ids above `after` whose names start with
/// `prefix`, in id order, with their replicas; `under_replicated` keeps
/// those short of replicas.
pub fn list(
    db: &Db,
    after: i64,
    prefix: &str,
    under_replicated: bool,
    limit: i64,
) -> Result<Vec<Bucket>> {
    let rows = db.query(
        &format!(
            "{SELECT} WHERE b.id > $1 AND b.name LIKE $2 AND (NOT $3 OR b.replica_shortfall > 0)
             ORDER BY b.id LIMIT $4"
        ),
        &[
            Param::Int64(after),
            Param::Str(format!("{}%", crate::like_escape(prefix))),
            Param::Boolean(under_replicated),
            Param::Int64(limit),
        ],
    )?;
    let ids = rows
        .iter()
        .map(|r| r.i64("id"))
        .collect::<Result<Vec<_>>>()?;
    let mut replicas = replicas_of(db, &ids)?;
    rows.iter()
        .map(|r| {
            let id = r.i64("id")?;
            from_row(r, replicas.remove(&id).unwrap_or_default())
        })
        .collect()
}

pub fn get(db: &Db, id: i64) -> Result<Option<Bucket>> {
    let rows = db.query(&format!("{SELECT} WHERE b.id = $1"), &[Param::Int64(id)])?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let replicas = replicas(db, id)?;
    from_row(row, replicas).map(Some)
}

/// Bucket `id`'s replicas, in storage id order.
pub fn replicas(db: &Db, id: i64) -> Result<Vec<Replica>> {
    Ok(replicas_of(db, &[id])?.remove(&id).unwrap_or_default())
}

/// Locks bucket `id`'s row for the rest of the transaction (the first
/// step of the lock order), waiting for a concurrent change or deletion;
/// false when there is no such bucket (any more).
pub fn lock(db: &Db, id: i64) -> Result<bool> {
    let rows = db.query(
        "SELECT 1 AS x FROM buckets WHERE id = $1 FOR UPDATE",
        &[Param::Int64(id)],
    )?;
    Ok(!rows.is_empty())
}

/// Inserts a bucket; returns its id.
pub fn insert(
    db: &Db,
    name: &str,
    master_storage_id: i64,
    allowed_zones: &[String],
    target_replicas: i64,
) -> Result<i64> {
    let rows = db.query(
        "INSERT INTO buckets (name, master_storage_id, allowed_zones, target_replicas) VALUES ($1, $2, $3, $4)
         RETURNING id",
        &[
            Param::Str(name.into()),
            Param::Int64(master_storage_id),
            text_array(allowed_zones),
            // An int4 column; the API bounds the count well inside it.
            Param::Int32(target_replicas as i32),
        ],
    )?;
    rows.one()?.i64("id")
}

/// Sets a bucket's placement policy (which also locks its row).
pub fn set_policy(db: &Db, id: i64, allowed_zones: &[String], target_replicas: i64) -> Result<()> {
    db.execute(
        "UPDATE buckets SET allowed_zones = $2, target_replicas = $3, updated_at = now() WHERE id = $1",
        &[
            Param::Int64(id),
            text_array(allowed_zones),
            Param::Int32(target_replicas as i32),
        ],
    )?;
    Ok(())
}

/// Sets (`Some`, possibly empty) or clears (`None`) bucket `id`'s replica
/// override.
pub fn set_replica_override(db: &Db, id: i64, storage_ids: Option<&[i64]>) -> Result<()> {
    db.execute(
        "UPDATE buckets SET replica_override = $2 WHERE id = $1",
        &[Param::Int64(id), Param::Boolean(storage_ids.is_some())],
    )?;
    db.execute(
        "DELETE FROM bucket_replica_overrides WHERE bucket_id = $1",
        &[Param::Int64(id)],
    )?;
    if let Some(ids) = storage_ids {
        db.execute(
            "INSERT INTO bucket_replica_overrides (bucket_id, storage_id) SELECT $1, unnest($2::bigint[])",
            &[Param::Int64(id), id_array(ids)],
        )?;
    }
    Ok(())
}

pub fn delete(db: &Db, id: i64) -> Result<()> {
    db.execute("DELETE FROM buckets WHERE id = $1", &[Param::Int64(id)])?;
    Ok(())
}

// ---- route overrides ---------------------------------------------------------

/// Up to `limit` buckets with ids above `after` whose route is set by
/// hand, in id order, with their ids.
pub fn route_overrides(db: &Db, after: i64, limit: i64) -> Result<Vec<(i64, RouteOverrideEntry)>> {
    let rows = db.query(
        "SELECT b.id, b.name, b.route_policy,
                (SELECT array_agg(o.faas_id ORDER BY o.faas_id) FROM bucket_route_overrides o WHERE o.bucket_id = b.id) AS faas_ids
         FROM buckets b WHERE b.route_override AND b.id > $1 ORDER BY b.id LIMIT $2",
        &[Param::Int64(after), Param::Int64(limit)],
    )?;
    rows.iter()
        .map(|r| {
            Ok((
                r.i64("id")?,
                RouteOverrideEntry {
                    bucket: r.str("name")?,
                    faas_ids: r.ids("faas_ids")?,
                    policy: policy(&r, "route_policy")?,
                },
            ))
        })
        .collect()
}

/// Routes bucket `id` by placement again (the bucket's row first).
pub fn clear_route_override(db: &Db, id: i64) -> Result<()> {
    db.execute(
        "UPDATE buckets SET route_override = false, route_policy = NULL, updated_at = now() WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    db.execute(
        "DELETE FROM bucket_route_overrides WHERE bucket_id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

/// What [`write_route_override`] did.
#[derive(Debug)]
pub enum RouteOverrideWrite {
    /// Written, at this catalog generation; the bucket's route as the
    /// planner will compute it.
    Written { generation: i64, route: BucketRoute },
    /// No such bucket; nothing changed.
    NoBucket,
    /// A deployment named was deleted meanwhile; nothing changed.
    FaasGone,
}

/// Sets bucket `bucket_id`'s route override to `faas_ids` (sorted) with
/// `policy` in one statement, its own transaction (route changes are the
/// control plane's hot path, and each round trip to Postgres costs about
/// 0.4 ms): drops the deployments no longer listed, adds the new ones,
/// bumps the catalog generation, notes the bucket in `express_routes` for
/// the planner, and reads back the bucket's route: deployments in id
/// order, the default policy when none is given. A deployment deleted
/// since it was resolved fails the statement through its foreign key.
pub fn write_route_override(
    db: &Db,
    bucket_id: i64,
    faas_ids: &[i64],
    policy: Option<SelectionPolicy>,
) -> Result<RouteOverrideWrite> {
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
            opt_text(policy.map(|p| p.as_str())),
        ],
    )?;
    let Some(first) = rows.first() else {
        return Ok(RouteOverrideWrite::FaasGone);
    };
    let Some(bucket) = first.opt_str("bucket")? else {
        return Ok(RouteOverrideWrite::NoBucket);
    };
    let generation = first.i64("generation")?;
    let policy = match policy {
        Some(p) => p,
        None => first.parse("default_policy", SelectionPolicy::parse)?,
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
                health: r.parse("health", Health::parse)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RouteOverrideWrite::Written {
        generation,
        route: BucketRoute {
            bucket,
            policy,
            overridden: true,
            targets,
        },
    })
}
