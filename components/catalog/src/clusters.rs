//! `/api/clusters`: sites that hold FaaS and storage deployments, with the
//! zones bucket placement policies refer to.

use fado_model::{ClusterInput, required, validate};
use fado_store::lookup::Table;
use fado_store::{Db, clusters};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;

pub const RESOURCE: Resource = Resource {
    table: Table::Clusters,
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete: |ctx, _, id| delete(ctx, id),
};

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let p = req.page("clusters")?;
    let zone = req.param("zone");
    if let Some(z) = zone {
        validate::label("zone", z)?;
    }
    let items = clusters::list(&ctx.db, p.id_cursor()?, zone, p.limit + 1)?;
    Reply::ok(p.page(items, |c| c.id.to_string()))
}

fn get(db: &Db, id: i64) -> ApiResult<fado_model::Cluster> {
    clusters::get(db, id)?.ok_or_else(|| ApiError::not_found(format!("cluster {id}")))
}

fn create(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let input: ClusterInput = req.json()?;
    let name = required("name", &input.name)?;
    validate::name("name", &name)?;
    let zones = validate::labels("zones", &input.zones.unwrap_or_default())?;
    let cluster = ctx.db.transaction(|db| {
        let cluster = clusters::insert(db, &name, &zones)?;
        ctx.changed()?;
        Ok::<_, ApiError>(cluster)
    })?;
    Reply::created(format!("/api/clusters/{}", cluster.id), cluster)
}

fn update(ctx: &Ctx, req: &Req, id: i64) -> ApiResult<Reply> {
    let input: ClusterInput = req.json()?;
    if req.method == "PUT" {
        required("name", &input.name)?;
        required("zones", &input.zones)?;
    }
    if let Some(n) = &input.name {
        validate::name("name", n)?;
    }
    let zones = input
        .zones
        .as_deref()
        .map(|z| validate::labels("zones", z))
        .transpose()?;
    let cluster = ctx.db.transaction(|db| {
        if let Some(zones) = &zones {
            // A master copy may only live where its bucket's zones allow.
            let stranded = clusters::masters_outside(db, id, zones)?;
            if !stranded.is_empty() {
                return Err(ApiError::conflict(format!(
                    "these zones would leave the master copy of bucket(s) {} outside their allowed zones",
                    stranded.join(", ")
                )));
            }
        }
        let cluster = clusters::update(db, id, input.name.as_deref(), zones.as_deref())?;
        ctx.changed()?;
        Ok(cluster)
    })?;
    Reply::ok(cluster)
}

fn delete(ctx: &Ctx, id: i64) -> ApiResult<Reply> {
    ctx.db.transaction(|db| {
        let names = clusters::masters_on(db, id)?;
        if !names.is_empty() {
            return Err(ApiError::conflict(format!(
                "the cluster holds the master copy of {} bucket(s): {}; delete or move them first",
                names.len(),
                shorten(&names)
            )));
        }
        clusters::delete(db, id)?;
        ctx.changed()
    })?;
    Reply::no_content()
}

/// Lists up to 20 names, then says how many more.
pub fn shorten(names: &[String]) -> String {
    if names.len() <= 20 {
        names.join(", ")
    } else {
        format!("{} and {} more", names[..20].join(", "), names.len() - 20)
    }
}
