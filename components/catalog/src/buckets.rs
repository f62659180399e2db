//! `/api/buckets`: buckets with their placement policy (allowed zones,
//! target replica count, replica override), their route override, their
//! replicas' states, and their objects' metadata.
//!
//! # Lock order
//! Every transaction that changes a bucket locks rows in one order: the
//! bucket's row first (by updating it), then the rows that hang off it
//! (replica and route overrides, jobs), and the catalog generation last
//! (`Ctx::changed`). Two requests on one bucket then queue on its row
//! instead of each holding what the other waits for: a route-override
//! `DELETE` that removed override rows before updating the bucket
//! deadlocked with a `PUT` that had updated the bucket and the generation
//! and was waiting for those rows.

use std::collections::HashMap;

use fado_model::api::{ReplicaList, RouteOverrideEntry};
use fado_model::{
    Bucket, BucketInput, JobKind, Page, Ref, Replica, ReplicaState, RouteOverride,
    RouteOverrideInput, SelectionPolicy, required, validate,
};
use fado_store::{Db, Param, Row, id_array, text_array};

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;
use crate::{Ctx, lookup};

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

fn from_row(r: Row<'_>, replicas: Vec<Replica>) -> ApiResult<Bucket> {
    let route_override = if r.bool("route_override")? {
        Some(RouteOverride {
            faas_ids: r.ids("route_override_ids")?,
            policy: r
                .opt_str("route_policy")?
                .map(|p| SelectionPolicy::parse("route_policy", &p))
                .transpose()?,
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

/// Replicas of the given buckets, grouped by bucket id.
fn replicas_of(db: &Db, bucket_ids: &[i64]) -> ApiResult<HashMap<i64, Vec<Replica>>> {
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
            state: ReplicaState::parse("state", &r.str("state")?)?,
            last_sync_at: r.opt_time("last_sync_at")?,
            lag_objects: r.i64("lag_objects")?,
            lag_bytes: r.i64("lag_bytes")?,
            oldest_unsynced_at: r.opt_time("oldest_unsynced_at")?,
            last_error: r.opt_str("last_error")?,
        });
    }
    Ok(out)
}

pub const RESOURCE: Resource = Resource {
    table: "buckets",
    noun: "bucket",
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete,
};

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let db = &ctx.db;
    let p = req.page("buckets")?;
    let prefix = req.param("prefix").unwrap_or("");
    let under = req.flag("under_replicated")?;
    let rows = db.query(
        &format!(
            "{SELECT} WHERE b.id > $1 AND b.name LIKE $2 AND (NOT $3 OR b.replica_shortfall > 0)
             ORDER BY b.id LIMIT $4"
        ),
        &[
            Param::Int64(p.id_cursor()?),
            Param::Str(format!("{}%", like_escape(prefix))),
            Param::Boolean(under),
            Param::Int64(p.limit + 1),
        ],
    )?;
    let ids = rows
        .iter()
        .map(|r| r.i64("id"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut replicas = replicas_of(db, &ids)?;
    let items = rows
        .iter()
        .map(|r| {
            let id = r.i64("id")?;
            from_row(r, replicas.remove(&id).unwrap_or_default())
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(p.page(items, |b| b.id.to_string()))
}

pub fn get(db: &Db, id: i64) -> ApiResult<Bucket> {
    let rows = db.query(&format!("{SELECT} WHERE b.id = $1"), &[Param::Int64(id)])?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::not_found(format!("bucket {id}")))?;
    let replicas = replicas_of(db, &[id])?.remove(&id).unwrap_or_default();
    from_row(row, replicas)
}

/// `%` and `_` in a user's prefix are literal.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The zones of the cluster a storage deployment belongs to.
fn storage_zones(db: &Db, storage_id: i64) -> ApiResult<Vec<String>> {
    let rows = db.query(
        "SELECT c.zones FROM storage_deployments s JOIN clusters c ON c.id = s.cluster_id WHERE s.id = $1",
        &[Param::Int64(storage_id)],
    )?;
    Ok(rows.one()?.strings("zones")?)
}

/// The master copy is data like any other: it must sit inside the zones.
fn check_master_zones(db: &Db, master: i64, allowed: &[String], field: &str) -> ApiResult<()> {
    let zones = storage_zones(db, master)?;
    if fado_placement::zones_allow(allowed, &zones) {
        Ok(())
    } else {
        Err(ApiError::conflict_at(
            field,
            format!(
                "the master storage is in zones [{}], outside the allowed zones [{}]",
                zones.join(", "),
                allowed.join(", ")
            ),
        ))
    }
}

/// Resolves and checks a replica override with the placement rules
/// (`fado_placement::check_replica_override`): existing storage, not the
/// master, inside the allowed zones, no duplicates. A refusal names the
/// entry at fault.
fn check_override(db: &Db, refs: &[Ref], master: i64, allowed: &[String]) -> ApiResult<Vec<i64>> {
    let field = |i: usize| format!("replica_override[{i}]");
    let mut ids = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        ids.push(lookup::resolve(
            db,
            "storage_deployments",
            "storage deployment",
            r,
            Some(&field(i)),
        )?);
    }
    // What the rules read: the named storage deployments with their
    // clusters' zones.
    let rows = db.query(
        "SELECT s.id, s.cluster_id, c.zones FROM storage_deployments s JOIN clusters c ON c.id = s.cluster_id
         WHERE s.id = ANY($1::bigint[])",
        &[id_array(&ids)],
    )?;
    let mut snapshot = fado_placement::Snapshot::default();
    for r in rows.iter() {
        let (id, cluster_id) = (r.i64("id")?, r.i64("cluster_id")?);
        snapshot.storage.push(fado_placement::Storage {
            id,
            cluster_id,
            healthy: true,
        });
        snapshot.clusters.push(fado_placement::Cluster {
            id: cluster_id,
            name: String::new(),
            zones: r.strings("zones")?,
        });
    }
    let bucket = fado_placement::Bucket {
        master_storage_id: master,
        allowed_zones: allowed.to_vec(),
        ..Default::default()
    };
    use fado_placement::OverrideError as E;
    let Err(e) = fado_placement::check_replica_override(&snapshot, &bucket, &ids) else {
        return Ok(ids);
    };
    let at = |id: i64, nth: usize| {
        let i = ids
            .iter()
            .enumerate()
            .filter(|(_, x)| **x == id)
            .nth(nth)
            .map_or(0, |(i, _)| i);
        (field(i), &refs[i])
    };
    Err(match e {
        E::IsMaster(id) => {
            ApiError::conflict_at(at(id, 0).0, "the master storage cannot also hold a replica")
        }
        E::Duplicate(id) => {
            let (f, r) = at(id, 1);
            ApiError::invalid(f, format!("storage deployment {r} is listed twice"))
        }
        E::OutsideZones(id) => {
            let (f, r) = at(id, 0);
            let zones = snapshot
                .storage
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| snapshot.clusters.iter().find(|c| c.id == s.cluster_id))
                .map(|c| c.zones.join(", "))
                .unwrap_or_default();
            ApiError::conflict_at(
                f,
                format!(
                    "storage deployment {r} is in zones [{zones}], outside the allowed zones [{}]",
                    allowed.join(", ")
                ),
            )
        }
        // Deleted since it was resolved.
        E::UnknownStorage(id) => {
            ApiError::missing_at(at(id, 0).0, format!("storage deployment {}", at(id, 0).1))
        }
    })
}

fn set_override(db: &Db, bucket: i64, ids: Option<&[i64]>) -> ApiResult<()> {
    db.execute(
        "UPDATE buckets SET replica_override = $2 WHERE id = $1",
        &[Param::Int64(bucket), Param::Boolean(ids.is_some())],
    )?;
    db.execute(
        "DELETE FROM bucket_replica_overrides WHERE bucket_id = $1",
        &[Param::Int64(bucket)],
    )?;
    if let Some(ids) = ids {
        db.execute(
            "INSERT INTO bucket_replica_overrides (bucket_id, storage_id) SELECT $1, unnest($2::bigint[])",
            &[Param::Int64(bucket), id_array(ids)],
        )?;
    }
    Ok(())
}

/// Adds a job to the ledger unless the same one is already waiting.
pub fn enqueue(db: &Db, kind: JobKind, bucket: &str, storage_id: Option<i64>) -> ApiResult<()> {
    Ok(fado_store::jobs::enqueue(db, kind, bucket, storage_id)?)
}

fn check_target(v: i64) -> ApiResult<()> {
    Ok(fado_model::validate::target_replicas("target_replicas", v)?)
}

fn create(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let input: BucketInput = req.json()?;
    let name = required("name", &input.name)?;
    validate::bucket_name("name", &name)?;
    let master_ref = required("master_storage", &input.master_storage)?;
    let master = lookup::resolve(
        &ctx.db,
        "storage_deployments",
        "storage deployment",
        &master_ref,
        Some("master_storage"),
    )?;
    let zones = validate::labels(
        "allowed_zones",
        &input.allowed_zones.clone().unwrap_or_default(),
    )?;
    let target = input.target_replicas.unwrap_or(0);
    check_target(target)?;
    let bucket = ctx.db.transaction(|db| {
        check_master_zones(db, master, &zones, "master_storage")?;
        let deleting = db.query(
            "SELECT 1 FROM jobs WHERE bucket_name = $1 AND kind = 'delete_bucket' AND state IN ('queued', 'running')",
            &[Param::Str(name.clone())],
        )?;
        if !deleting.is_empty() {
            return Err(ApiError::conflict(format!(
                "bucket {name:?} is still being deleted from storage; try again once its delete jobs finish"
            )));
        }
        let overrides = match &input.replica_override {
            Some(Some(refs)) => Some(check_override(db, refs, master, &zones)?),
            _ => None,
        };
        let rows = db.query(
            "INSERT INTO buckets (name, master_storage_id, allowed_zones, target_replicas) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[
                Param::Str(name.clone()),
                Param::Int64(master),
                text_array(&zones),
                Param::Int32(target as i32),
            ],
        )?;
        let id = rows.one()?.i64("id")?;
        if overrides.is_some() {
            set_override(db, id, overrides.as_deref())?;
        }
        enqueue(db, JobKind::CreateBucket, &name, Some(master))?;
        ctx.wake(crate::jobs::REPLICATOR_CHANNEL);
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::created(format!("/api/buckets/{}", bucket.name), bucket)
}

fn update(ctx: &Ctx, req: &Req, id: i64) -> ApiResult<Reply> {
    let input: BucketInput = req.json()?;
    let current = get(&ctx.db, id)?;
    if let Some(n) = &input.name
        && *n != current.name
    {
        return Err(ApiError::conflict_at(
            "name",
            "a bucket cannot be renamed; create a new bucket",
        ));
    }
    if let Some(m) = &input.master_storage {
        let master = lookup::resolve(
            &ctx.db,
            "storage_deployments",
            "storage deployment",
            m,
            Some("master_storage"),
        )?;
        if master != current.master_storage_id {
            return Err(ApiError::conflict_at(
                "master_storage",
                "the master copy cannot be moved; create a new bucket on the other storage",
            ));
        }
    }
    if req.method == "PUT" {
        required("allowed_zones", &input.allowed_zones)?;
        required("target_replicas", &input.target_replicas)?;
    }
    let zones = match &input.allowed_zones {
        Some(z) => validate::labels("allowed_zones", z)?,
        None => current.allowed_zones.clone(),
    };
    let target = input.target_replicas.unwrap_or(current.target_replicas);
    check_target(target)?;
    let bucket = ctx.db.transaction(|db| {
        // The bucket's row first (see the module's lock order).
        db.execute(
            "UPDATE buckets SET allowed_zones = $2, target_replicas = $3, updated_at = now() WHERE id = $1",
            &[Param::Int64(id), text_array(&zones), Param::Int32(target as i32)],
        )?;
        check_master_zones(db, current.master_storage_id, &zones, "allowed_zones")?;
        match &input.replica_override {
            Some(Some(refs)) => {
                let ids = check_override(db, refs, current.master_storage_id, &zones)?;
                set_override(db, id, Some(&ids))?;
            }
            Some(None) => set_override(db, id, None)?,
            None => {
                // A kept override must still respect narrowed zones.
                if let Some(ids) = &current.replica_override {
                    let refs: Vec<Ref> = ids.iter().map(|i| Ref::Id(*i)).collect();
                    check_override(db, &refs, current.master_storage_id, &zones)?;
                }
            }
        }
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::ok(bucket)
}

fn delete(ctx: &Ctx, req: &Req, id: i64) -> ApiResult<Reply> {
    let force = req.flag("force")?;
    ctx.db.transaction(|db| {
        // The bucket's row first (see the module's lock order).
        db.execute(
            "SELECT 1 FROM buckets WHERE id = $1 FOR UPDATE",
            &[Param::Int64(id)],
        )?;
        let bucket = get(db, id)?;
        if bucket.object_count > 0 && !force {
            return Err(ApiError::conflict(format!(
                "bucket {:?} holds {} object(s); delete them first or pass ?force=true to delete the bucket and every copy",
                bucket.name, bucket.object_count
            )));
        }
        enqueue(db, JobKind::DeleteBucket, &bucket.name, Some(bucket.master_storage_id))?;
        ctx.wake(crate::jobs::REPLICATOR_CHANNEL);
        for r in &bucket.replicas {
            enqueue(db, JobKind::DeleteBucket, &bucket.name, Some(r.storage_id))?;
        }
        // Pending work for the old bucket is moot once it is being deleted.
        fado_store::jobs::cancel_queued_for_bucket(
            db,
            &bucket.name,
            JobKind::DeleteBucket,
            "bucket deleted",
        )?;
        db.execute("DELETE FROM buckets WHERE id = $1", &[Param::Int64(id)])?;
        ctx.changed()
    })?;
    Reply::no_content()
}

pub fn replicas(ctx: &Ctx, req: &Req, segment: &str) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let id = lookup::segment(&ctx.db, "buckets", "bucket", segment)?;
    let replicas = replicas_of(&ctx.db, &[id])?.remove(&id).unwrap_or_default();
    Reply::ok(ReplicaList {
        items: replicas,
        next_cursor: None,
    })
}

pub fn route_override(ctx: &Ctx, req: &Req, segment: &str) -> ApiResult<Reply> {
    let bucket = || lookup::segment(&ctx.db, "buckets", "bucket", segment);
    match req.method.as_str() {
        "GET" => {
            let b = get(&ctx.db, bucket()?)?;
            match b.route_override {
                Some(o) => Reply::ok(o),
                None => Err(ApiError::not_found(format!(
                    "a route override for bucket {:?}",
                    b.name
                ))),
            }
        }
        "PUT" => {
            let input: RouteOverrideInput = req.json()?;
            let policy = input
                .policy
                .as_deref()
                .map(|p| SelectionPolicy::parse("policy", p))
                .transpose()?;
            let faas = fado_model::required("faas", &input.faas)?;
            if faas.is_empty() {
                return Err(ApiError::invalid(
                    "faas",
                    "list at least one FaaS deployment (DELETE the override to route by placement again)",
                ));
            }
            let (id, resolved) = lookup::bucket_and_faas(&ctx.db, segment, &faas)?;
            let mut ids = Vec::with_capacity(resolved.len());
            for (i, (f, r)) in resolved.into_iter().zip(&faas).enumerate() {
                if ids.contains(&f) {
                    return Err(ApiError::invalid(
                        format!("faas[{i}]"),
                        format!("FaaS deployment {r} is listed twice"),
                    ));
                }
                ids.push(f);
            }
            ids.sort_unstable();
            let (generation, route) = crate::express::write_override(&ctx.db, id, &ids, policy)?;
            ctx.wake(crate::PLANNER_CHANNEL);
            ctx.express_route(generation, route);
            Reply::ok(RouteOverride {
                faas_ids: ids,
                policy,
            })
        }
        "DELETE" => {
            let id = bucket()?;
            ctx.db.transaction(|db| {
                // The bucket's row first (see the module's lock order).
                db.execute(
                    "UPDATE buckets SET route_override = false, route_policy = NULL, updated_at = now() WHERE id = $1",
                    &[Param::Int64(id)],
                )?;
                db.execute("DELETE FROM bucket_route_overrides WHERE bucket_id = $1", &[Param::Int64(id)])?;
                ctx.changed()
            })?;
            Reply::no_content()
        }
        _ => Err(ApiError::method_not_allowed(&["GET", "PUT", "DELETE"])),
    }
}

/// `GET /api/route-overrides`: every bucket whose route is set by hand.
pub fn route_overrides(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let p = req.page("route-overrides")?;
    let rows = ctx.db.query(
        "SELECT b.id, b.name, b.route_policy,
                (SELECT array_agg(o.faas_id ORDER BY o.faas_id) FROM bucket_route_overrides o WHERE o.bucket_id = b.id) AS faas_ids
         FROM buckets b WHERE b.route_override AND b.id > $1 ORDER BY b.id LIMIT $2",
        &[Param::Int64(p.id_cursor()?), Param::Int64(p.limit + 1)],
    )?;
    let items = rows
        .iter()
        .map(|r| {
            let policy = r
                .opt_str("route_policy")?
                .map(|p| fado_store::decoded(SelectionPolicy::parse("route_policy", &p)))
                .transpose()?;
            Ok((
                r.i64("id")?,
                RouteOverrideEntry {
                    bucket: r.str("name")?,
                    faas_ids: r.ids("faas_ids")?,
                    policy,
                },
            ))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let p = p.page(items, |(id, _)| id.to_string());
    Reply::ok(Page {
        items: p.items.into_iter().map(|(_, v)| v).collect(),
        next_cursor: p.next_cursor,
    })
}
