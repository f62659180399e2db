//! `/api/clusters`: sites that hold FaaS and storage deployments, with the
//! zones bucket placement policies refer to.

use fado_model::{Cluster, ClusterInput, required, validate};
use fado_store::{Db, Param, Row, text_array};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;

const COLUMNS: &str = "id, name, zones, created_at, updated_at";

pub fn from_row(r: Row<'_>) -> ApiResult<Cluster> {
    Ok(Cluster {
        id: r.i64("id")?,
        name: r.str("name")?,
        zones: r.strings("zones")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub const RESOURCE: Resource = Resource {
    table: "clusters",
    noun: "cluster",
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete: |ctx, _, id| delete(ctx, id),
};

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let db = &ctx.db;
    let p = req.page("clusters")?;
    let zone = req.param("zone").map(str::to_string);
    if let Some(z) = &zone {
        validate::label("zone", z)?;
    }
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM clusters WHERE id > $1 AND ($2::text IS NULL OR $2 = ANY(zones))
             ORDER BY id LIMIT $3"
        ),
        &[
            Param::Int64(p.id_cursor()?),
            fado_store::opt_text(zone.as_deref()),
            Param::Int64(p.limit + 1),
        ],
    )?;
    let items = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(p.page(items, |c| c.id.to_string()))
}

pub fn get(db: &Db, id: i64) -> ApiResult<Cluster> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM clusters WHERE id = $1"),
        &[Param::Int64(id)],
    )?;
    from_row(
        rows.first()
            .ok_or_else(|| ApiError::not_found(format!("cluster {id}")))?,
    )
}

fn create(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let input: ClusterInput = req.json()?;
    let name = required("name", &input.name)?;
    validate::name("name", &name)?;
    let zones = validate::labels("zones", &input.zones.unwrap_or_default())?;
    let cluster = ctx.db.transaction(|db| {
        let rows = db.query(
            &format!("INSERT INTO clusters (name, zones) VALUES ($1, $2) RETURNING {COLUMNS}"),
            &[Param::Str(name.clone()), text_array(&zones)],
        )?;
        ctx.changed()?;
        from_row(rows.one()?)
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
            check_masters_stay_in_zones(db, id, zones)?;
        }
        let rows = db.query(
            &format!(
                "UPDATE clusters SET name = coalesce($2, name), zones = coalesce($3, zones), updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[
                Param::Int64(id),
                fado_store::opt_text(input.name.as_deref()),
                zones.as_deref().map(text_array).unwrap_or(Param::DbNull),
            ],
        )?;
        ctx.changed()?;
        from_row(rows.one()?)
    })?;
    Reply::ok(cluster)
}

/// A master copy may only live where its bucket's zones allow: changing a
/// cluster's zones must not strand one outside them.
fn check_masters_stay_in_zones(db: &Db, cluster_id: i64, zones: &[String]) -> ApiResult<()> {
    let rows = db.query(
        "SELECT b.name FROM buckets b JOIN storage_deployments s ON s.id = b.master_storage_id
         WHERE s.cluster_id = $1 AND cardinality(b.allowed_zones) > 0 AND NOT (b.allowed_zones && $2)
         ORDER BY b.name LIMIT 20",
        &[Param::Int64(cluster_id), text_array(zones)],
    )?;
    if rows.is_empty() {
        return Ok(());
    }
    let names = rows
        .iter()
        .map(|r| r.str("name"))
        .collect::<Result<Vec<_>, _>>()?;
    Err(ApiError::conflict(format!(
        "these zones would leave the master copy of bucket(s) {} outside their allowed zones",
        names.join(", ")
    )))
}

fn delete(ctx: &Ctx, id: i64) -> ApiResult<Reply> {
    ctx.db.transaction(|db| {
        let rows = db.query(
            "SELECT b.name FROM buckets b JOIN storage_deployments s ON s.id = b.master_storage_id
             WHERE s.cluster_id = $1 ORDER BY b.name",
            &[Param::Int64(id)],
        )?;
        if !rows.is_empty() {
            let names = rows
                .iter()
                .map(|r| r.str("name"))
                .collect::<Result<Vec<_>, _>>()?;
            return Err(ApiError::conflict(format!(
                "the cluster holds the master copy of {} bucket(s): {}; delete or move them first",
                names.len(),
                shorten(&names)
            )));
        }
        db.execute("DELETE FROM clusters WHERE id = $1", &[Param::Int64(id)])?;
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
