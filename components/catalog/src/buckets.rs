//! `/api/buckets`: buckets with their placement policy (allowed zones,
//! target replica count, replica override), their route override, their
//! replicas' states, and their objects' metadata.
//!
//! Every change of a bucket follows the lock order stated in
//! `fado_store::buckets`: the bucket's row first, the catalog generation
//! (`Ctx::changed`) last.

use fado_model::api::ReplicaList;
use fado_model::{
    Bucket, BucketInput, JobKind, Page, Ref, RouteOverride, RouteOverrideInput, SelectionPolicy,
    required, validate,
};
use fado_store::buckets::{self, RouteOverrideWrite};
use fado_store::lookup::Table;
use fado_store::{Db, storage};

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;
use crate::{Ctx, lookup};

pub const RESOURCE: Resource = Resource {
    table: Table::Buckets,
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
    let items = buckets::list(db, p.id_cursor()?, prefix, under, p.limit + 1)?;
    Reply::ok(p.page(items, |b| b.id.to_string()))
}

pub fn get(db: &Db, id: i64) -> ApiResult<Bucket> {
    buckets::get(db, id)?.ok_or_else(|| ApiError::not_found(format!("bucket {id}")))
}

/// The master copy is data like any other: it must sit inside the zones.
fn check_master_zones(db: &Db, master: i64, allowed: &[String], field: &str) -> ApiResult<()> {
    let zones = storage::zones_of(db, master)?;
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
            Table::StorageDeployments,
            r,
            Some(&field(i)),
        )?);
    }
    // What the rules read: the named storage deployments with their
    // clusters' zones.
    let mut snapshot = fado_placement::Snapshot::default();
    for s in storage::placed(db, &ids)? {
        snapshot.storage.push(fado_placement::Storage {
            id: s.id,
            cluster_id: s.cluster_id,
            healthy: true,
        });
        snapshot.clusters.push(fado_placement::Cluster {
            id: s.cluster_id,
            name: String::new(),
            zones: s.zones,
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
        Table::StorageDeployments,
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
        if fado_store::jobs::bucket_being_deleted(db, &name)? {
            return Err(ApiError::conflict(format!(
                "bucket {name:?} is still being deleted from storage; try again once its delete jobs finish"
            )));
        }
        let overrides = match &input.replica_override {
            Some(Some(refs)) => Some(check_override(db, refs, master, &zones)?),
            _ => None,
        };
        let id = buckets::insert(db, &name, master, &zones, target)?;
        if overrides.is_some() {
            buckets::set_replica_override(db, id, overrides.as_deref())?;
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
            Table::StorageDeployments,
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
        // The bucket's row first (the lock order).
        buckets::set_policy(db, id, &zones, target)?;
        check_master_zones(db, current.master_storage_id, &zones, "allowed_zones")?;
        match &input.replica_override {
            Some(Some(refs)) => {
                let ids = check_override(db, refs, current.master_storage_id, &zones)?;
                buckets::set_replica_override(db, id, Some(&ids))?;
            }
            Some(None) => buckets::set_replica_override(db, id, None)?,
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
        // The bucket's row first (the lock order).
        buckets::lock(db, id)?;
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
        buckets::delete(db, id)?;
        ctx.changed()
    })?;
    Reply::no_content()
}

pub fn replicas(ctx: &Ctx, req: &Req, segment: &str) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let id = lookup::segment(&ctx.db, Table::Buckets, segment)?;
    Reply::ok(ReplicaList {
        items: buckets::replicas(&ctx.db, id)?,
        next_cursor: None,
    })
}

pub fn route_override(ctx: &Ctx, req: &Req, segment: &str) -> ApiResult<Reply> {
    let bucket = || lookup::segment(&ctx.db, Table::Buckets, segment);
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
            let (generation, route) =
                match buckets::write_route_override(&ctx.db, id, &ids, policy)? {
                    RouteOverrideWrite::Written { generation, route } => (generation, route),
                    RouteOverrideWrite::NoBucket => {
                        return Err(ApiError::not_found(format!("bucket {id}")));
                    }
                    RouteOverrideWrite::FaasGone => {
                        return Err(ApiError::new(
                            409,
                            "conflict",
                            "the FaaS deployments changed meanwhile; retry",
                        ));
                    }
                };
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
                buckets::clear_route_override(db, id)?;
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
    let items = buckets::route_overrides(&ctx.db, p.id_cursor()?, p.limit + 1)?;
    let p = p.page(items, |(id, _)| id.to_string());
    Reply::ok(Page {
        items: p.items.into_iter().map(|(_, v)| v).collect(),
        next_cursor: p.next_cursor,
    })
}
