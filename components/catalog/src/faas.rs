//! `/api/faas-deployments`: the FaaS endpoints invocations are routed to.
//! Each has its own path template, so OpenFaaS (`/function/{function}`),
//! Spin or Knative (`/{function}`) and Lambda function URLs (empty) can all
//! serve the same invocation.

use fado_model::{FaasDeployment, FaasInput, Health, Platform, required, validate};
use fado_store::{Db, Param, Row, text_array};

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;
use crate::{Ctx, lookup};

const COLUMNS: &str = "f.id, f.name, f.cluster_id, c.name AS cluster, f.platform, f.base_url, f.path_template,
    f.labels, f.timeout_ms, f.health, f.health_detail, f.health_checked_at, f.created_at, f.updated_at";
const FROM: &str = "faas_deployments f JOIN clusters c ON c.id = f.cluster_id";

pub fn from_row(r: Row<'_>) -> ApiResult<FaasDeployment> {
    Ok(FaasDeployment {
        id: r.i64("id")?,
        name: r.str("name")?,
        cluster_id: r.i64("cluster_id")?,
        cluster: r.str("cluster")?,
        platform: Platform::parse("platform", &r.str("platform")?)?,
        base_url: r.str("base_url")?,
        path_template: r.str("path_template")?,
        labels: r.strings("labels")?,
        timeout_ms: r.i64("timeout_ms")?,
        health: Health::parse("health", &r.str("health")?)?,
        health_detail: r.opt_str("health_detail")?,
        health_checked_at: r.opt_time("health_checked_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub const RESOURCE: Resource = Resource {
    table: "faas_deployments",
    noun: "FaaS deployment",
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete,
};

fn delete(ctx: &Ctx, _req: &Req, id: i64) -> ApiResult<Reply> {
    ctx.db.transaction(|db| {
        db.execute(
            "DELETE FROM faas_deployments WHERE id = $1",
            &[Param::Int64(id)],
        )?;
        ctx.changed()
    })?;
    Reply::no_content()
}

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let db = &ctx.db;
    let p = req.page("faas-deployments")?;
    let cluster = match req.param("cluster") {
        Some(c) => match lookup::filter(db, "clusters", "cluster", c)? {
            Some(id) => Some(id),
            // No such cluster: nothing is in it.
            None => return Reply::ok(p.page(Vec::<FaasDeployment>::new(), |x| x.id.to_string())),
        },
        None => None,
    };
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE f.id > $1 AND ($2::bigint IS NULL OR f.cluster_id = $2)
             ORDER BY f.id LIMIT $3"
        ),
        &[
            Param::Int64(p.id_cursor()?),
            cluster.map(Param::Int64).unwrap_or(Param::DbNull),
            Param::Int64(p.limit + 1),
        ],
    )?;
    let items = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(p.page(items, |f| f.id.to_string()))
}

pub fn get(db: &Db, id: i64) -> ApiResult<FaasDeployment> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM {FROM} WHERE f.id = $1"),
        &[Param::Int64(id)],
    )?;
    from_row(
        rows.first()
            .ok_or_else(|| ApiError::not_found(format!("FaaS deployment {id}")))?,
    )
}

/// Validated fields of a create or update; `None` leaves a field unchanged.
struct Fields {
    name: Option<String>,
    cluster_id: Option<i64>,
    platform: Option<Platform>,
    base_url: Option<String>,
    path_template: Option<String>,
    labels: Option<Vec<String>>,
    timeout_ms: Option<i64>,
}

fn validate_input(db: &Db, input: &FaasInput) -> ApiResult<Fields> {
    if let Some(n) = &input.name {
        validate::name("name", n)?;
    }
    let cluster_id = input
        .cluster
        .as_ref()
        .map(|c| lookup::resolve(db, "clusters", "cluster", c, Some("cluster")))
        .transpose()?;
    let platform = input
        .platform
        .as_deref()
        .map(|p| Platform::parse("platform", p))
        .transpose()?;
    let base_url = input
        .base_url
        .as_deref()
        .map(|u| validate::base_url("base_url", u))
        .transpose()?;
    if let Some(t) = &input.path_template {
        validate::path_template("path_template", t)?;
    }
    let labels = input
        .labels
        .as_deref()
        .map(|l| validate::labels("labels", l))
        .transpose()?;
    if let Some(t) = input.timeout_ms {
        validate::timeout_ms("timeout_ms", t)?;
    }
    Ok(Fields {
        name: input.name.clone(),
        cluster_id,
        platform,
        base_url,
        path_template: input.path_template.clone(),
        labels,
        timeout_ms: input.timeout_ms,
    })
}

fn create(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let input: FaasInput = req.json()?;
    let name = required("name", &input.name)?;
    required("cluster", &input.cluster)?;
    required("base_url", &input.base_url)?;
    let f = validate_input(&ctx.db, &input)?;
    let platform = f.platform.unwrap_or(Platform::Other);
    let template = f
        .path_template
        .unwrap_or_else(|| platform.default_path_template().to_string());
    let created = ctx.db.transaction(|db| {
        let rows = db.query(
            "INSERT INTO faas_deployments (name, cluster_id, platform, base_url, path_template, labels, timeout_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                Param::Str(name.clone()),
                Param::Int64(f.cluster_id.expect("required above")),
                Param::Str(platform.as_str().into()),
                Param::Str(f.base_url.clone().expect("required above")),
                Param::Str(template.clone()),
                text_array(&f.labels.clone().unwrap_or_default()),
                Param::Int32(f.timeout_ms.unwrap_or(30_000) as i32),
            ],
        )?;
        let id = rows.one()?.i64("id")?;
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::created(format!("/api/faas-deployments/{}", created.id), created)
}

fn update(ctx: &Ctx, req: &Req, id: i64) -> ApiResult<Reply> {
    let input: FaasInput = req.json()?;
    if req.method == "PUT" {
        required("name", &input.name)?;
        required("cluster", &input.cluster)?;
        required("base_url", &input.base_url)?;
        required("path_template", &input.path_template)?;
    }
    let f = validate_input(&ctx.db, &input)?;
    let updated = ctx.db.transaction(|db| {
        db.execute(
            "UPDATE faas_deployments SET name = coalesce($2, name), cluster_id = coalesce($3, cluster_id),
                 platform = coalesce($4, platform), base_url = coalesce($5, base_url),
                 path_template = coalesce($6, path_template), labels = coalesce($7, labels),
                 timeout_ms = coalesce($8, timeout_ms), updated_at = now()
             WHERE id = $1",
            &[
                Param::Int64(id),
                fado_store::opt_text(f.name.as_deref()),
                f.cluster_id.map(Param::Int64).unwrap_or(Param::DbNull),
                fado_store::opt_text(f.platform.map(|p| p.as_str())),
                fado_store::opt_text(f.base_url.as_deref()),
                fado_store::opt_text(f.path_template.as_deref()),
                f.labels.as_deref().map(text_array).unwrap_or(Param::DbNull),
                f.timeout_ms.map(|t| Param::Int32(t as i32)).unwrap_or(Param::DbNull),
            ],
        )?;
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::ok(updated)
}
