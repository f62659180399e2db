//! `/api/faas-deployments`: the FaaS endpoints invocations are routed to.
//! Each has its own path template, so OpenFaaS (`/function/{function}`),
//! Spin or Knative (`/{function}`) and Lambda function URLs (empty) can all
//! serve the same invocation.

use fado_model::{FaasDeployment, FaasInput, Platform, required, validate};
use fado_store::Db;
use fado_store::faas::{self, Fields};
use fado_store::lookup::Table;

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;
use crate::{Ctx, lookup};

/// A deployment's timeout when none is given.
const DEFAULT_TIMEOUT_MS: i64 = 30_000;

pub const RESOURCE: Resource = Resource {
    table: Table::FaasDeployments,
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete,
};

fn delete(ctx: &Ctx, _req: &Req, id: i64) -> ApiResult<Reply> {
    ctx.db.transaction(|db| {
        faas::delete(db, id)?;
        ctx.changed()
    })?;
    Reply::no_content()
}

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let db = &ctx.db;
    let p = req.page("faas-deployments")?;
    let cluster = match req.param("cluster") {
        Some(c) => match lookup::filter(db, Table::Clusters, "cluster", c)? {
            Some(id) => Some(id),
            // No such cluster: nothing is in it.
            None => return Reply::ok(p.page(Vec::<FaasDeployment>::new(), |x| x.id.to_string())),
        },
        None => None,
    };
    let items = faas::list(db, p.id_cursor()?, cluster, p.limit + 1)?;
    Reply::ok(p.page(items, |f| f.id.to_string()))
}

fn get(db: &Db, id: i64) -> ApiResult<FaasDeployment> {
    faas::get(db, id)?.ok_or_else(|| ApiError::not_found(format!("FaaS deployment {id}")))
}

fn validate_input(db: &Db, input: &FaasInput) -> ApiResult<Fields> {
    if let Some(n) = &input.name {
        validate::name("name", n)?;
    }
    let cluster_id = input
        .cluster
        .as_ref()
        .map(|c| lookup::resolve(db, Table::Clusters, c, Some("cluster")))
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
    let f = Fields {
        name: Some(name),
        platform: Some(platform),
        path_template: Some(template),
        labels: Some(f.labels.unwrap_or_default()),
        timeout_ms: Some(f.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
        ..f
    };
    let created = ctx.db.transaction(|db| {
        let id = faas::insert(db, &f)?;
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
        faas::update(db, id, &f)?;
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::ok(updated)
}
