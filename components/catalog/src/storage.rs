//! `/api/storage-deployments`: the S3-compatible services buckets live on.
//! The secret key is write-only: stored encrypted, never returned.

use fado_model::{StorageDeployment, StorageInput, required, validate};
use fado_s3::{Endpoint, ProbeError};
use fado_store::lookup::Table;
use fado_store::storage::{self, Fields};
use fado_store::{Db, secrets};

use crate::clusters::shorten;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::resource::Resource;
use crate::{Ctx, lookup};

pub const RESOURCE: Resource = Resource {
    table: Table::StorageDeployments,
    list,
    create,
    get: |ctx, id| Reply::ok(get(&ctx.db, id)?),
    update,
    delete: |ctx, _, id| delete(ctx, id),
};

fn list(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let db = &ctx.db;
    let p = req.page("storage-deployments")?;
    let cluster = match req.param("cluster") {
        Some(c) => match lookup::filter(db, Table::Clusters, "cluster", c)? {
            Some(id) => Some(id),
            // No such cluster: nothing is in it.
            None => {
                return Reply::ok(p.page(Vec::<StorageDeployment>::new(), |x| x.id.to_string()));
            }
        },
        None => None,
    };
    let items = storage::list(db, p.id_cursor()?, cluster, p.limit + 1)?;
    Reply::ok(p.page(items, |s| s.id.to_string()))
}

fn get(db: &Db, id: i64) -> ApiResult<StorageDeployment> {
    storage::get(db, id)?.ok_or_else(|| ApiError::not_found(format!("storage deployment {id}")))
}

fn validate_input(ctx: &Ctx, input: &StorageInput) -> ApiResult<Fields> {
    if let Some(n) = &input.name {
        validate::name("name", n)?;
    }
    let cluster_id = input
        .cluster
        .as_ref()
        .map(|c| lookup::resolve(&ctx.db, Table::Clusters, c, Some("cluster")))
        .transpose()?;
    let endpoint = input
        .endpoint
        .as_deref()
        .map(|e| validate::base_url("endpoint", e))
        .transpose()?;
    if let Some(r) = &input.region {
        validate::region("region", r)?;
    }
    if let Some(k) = &input.access_key {
        validate::text("access_key", k, validate::MAX_CREDENTIAL)?;
    }
    let secret_key_enc = match &input.secret_key {
        Some(s) => {
            validate::text("secret_key", s, validate::MAX_CREDENTIAL)?;
            Some(
                secrets::encrypt(ctx.encryption_key(), s)
                    .map_err(|e| ApiError::new(500, "internal", e.to_string()))?,
            )
        }
        None => None,
    };
    let notify_token_sha256 = match input.notify_token.as_deref() {
        None => None,
        Some("") => Some(String::new()),
        Some(t) => {
            validate::text("notify_token", t, validate::MAX_CREDENTIAL)?;
            if t.chars().count() < validate::MIN_NOTIFY_TOKEN {
                return Err(ApiError::invalid(
                    "notify_token",
                    format!(
                        "must be at least {} characters (use a long random string)",
                        validate::MIN_NOTIFY_TOKEN
                    ),
                ));
            }
            Some(secrets::token_digest(t))
        }
    };
    Ok(Fields {
        notify_token_sha256,
        name: input.name.clone(),
        cluster_id,
        endpoint,
        region: input.region.clone(),
        path_style: input.path_style,
        access_key: input.access_key.clone(),
        secret_key_enc,
    })
}

fn create(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    let input: StorageInput = req.json()?;
    let name = required("name", &input.name)?;
    for (field, present) in [
        ("cluster", input.cluster.is_some()),
        ("endpoint", input.endpoint.is_some()),
        ("access_key", input.access_key.is_some()),
        ("secret_key", input.secret_key.is_some()),
    ] {
        if !present {
            return Err(ApiError::invalid(field, "is required"));
        }
    }
    let check = req.flag_or("verify", true)?;
    let mut f = validate_input(ctx, &input)?;
    let verified = if check {
        let endpoint = Endpoint {
            url: f.endpoint.clone().expect("required above"),
            region: f.region.clone().unwrap_or_default(),
            path_style: input.path_style.unwrap_or(true),
            access_key: f.access_key.clone().expect("required above"),
            secret_key: input.secret_key.clone().expect("required above"),
        };
        f.region = Some(verify(endpoint, f.region.is_some())?);
        true
    } else {
        false
    };
    let f = Fields {
        name: Some(name),
        region: Some(f.region.unwrap_or_else(|| DEFAULT_REGION.into())),
        path_style: Some(input.path_style.unwrap_or(true)),
        ..f
    };
    let created = ctx.db.transaction(|db| {
        let id = storage::insert(db, &f)?;
        if verified {
            storage::mark_healthy(db, id)?;
        }
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::created(format!("/api/storage-deployments/{}", created.id), created)
}

fn update(ctx: &Ctx, req: &Req, id: i64) -> ApiResult<Reply> {
    let input: StorageInput = req.json()?;
    if req.method == "PUT" {
        required("name", &input.name)?;
        required("cluster", &input.cluster)?;
        required("endpoint", &input.endpoint)?;
        required("access_key", &input.access_key)?;
        required("secret_key", &input.secret_key)?;
    }
    let mut f = validate_input(ctx, &input)?;
    let touches_access = input.endpoint.is_some()
        || input.region.is_some()
        || input.path_style.is_some()
        || input.access_key.is_some()
        || input.secret_key.is_some();
    let check = req.flag_or("verify", true)?;
    let verified = if touches_access && check {
        let current = stored_endpoint(ctx, id)?;
        let endpoint = Endpoint {
            url: f.endpoint.clone().unwrap_or(current.url),
            region: f.region.clone().unwrap_or(current.region),
            path_style: input.path_style.unwrap_or(current.path_style),
            access_key: f.access_key.clone().unwrap_or(current.access_key),
            secret_key: input.secret_key.clone().unwrap_or(current.secret_key),
        };
        f.region = Some(verify(endpoint, true)?);
        true
    } else {
        false
    };
    let updated = ctx.db.transaction(|db| {
        // Naming the cluster it is already in (as every PUT does) is no move.
        let current = get(db, id)?.cluster_id;
        if f.cluster_id.is_some_and(|c| c != current) {
            check_not_a_master(db, id, "moving it to another cluster")?;
        }
        storage::update(db, id, &f)?;
        if verified {
            storage::mark_healthy(db, id)?;
        }
        ctx.changed()?;
        get(db, id)
    })?;
    Reply::ok(updated)
}

/// How long registering storage waits for it to answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const DEFAULT_REGION: &str = "us-east-1";

/// Checks the endpoint and credentials against the service itself (one
/// signed `ListBuckets`) and returns the region to record. Without a region
/// given, it tries `us-east-1` and then the region the service names when
/// it refuses that one. `?verify=false` skips this (storage that is not up
/// yet); the health checker probes it later.
fn verify(mut endpoint: Endpoint, region_given: bool) -> ApiResult<String> {
    if !region_given {
        endpoint.region = DEFAULT_REGION.into();
    }
    let mut outcome = fado_s3::block_on(fado_s3::probe(&endpoint, PROBE_TIMEOUT));
    if !region_given && let Err(ProbeError::Region(Some(expected), _)) = &outcome {
        endpoint.region = expected.clone();
        outcome = fado_s3::block_on(fado_s3::probe(&endpoint, PROBE_TIMEOUT));
    }
    let field = match &outcome {
        Ok(()) => return Ok(endpoint.region),
        Err(ProbeError::Unreachable(_) | ProbeError::Other(_)) => "endpoint",
        Err(ProbeError::AccessKey(_)) => "access_key",
        Err(ProbeError::Credentials(_)) => "secret_key",
        Err(ProbeError::Region(..)) => "region",
    };
    let e = outcome.expect_err("handled above");
    Err(ApiError::invalid(
        field,
        format!(
            "checking the storage at {} failed: {e} (pass ?verify=false to register it unchecked)",
            endpoint.url
        ),
    ))
}

/// The stored endpoint of a storage deployment, secret decrypted.
fn stored_endpoint(ctx: &Ctx, id: i64) -> ApiResult<Endpoint> {
    fado_store::storage::endpoint(&ctx.db, id, ctx.encryption_key())?
        .map(Endpoint::from)
        .ok_or_else(|| ApiError::not_found(format!("storage deployment {id}")))
}

/// Refuses `what` for a storage deployment holding master copies, naming them.
fn check_not_a_master(db: &Db, id: i64, what: &str) -> ApiResult<()> {
    let names = storage::masters_on(db, id)?;
    if names.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "refusing {what}: the storage deployment holds the master copy of {} bucket(s): {}",
        names.len(),
        shorten(&names)
    )))
}

fn delete(ctx: &Ctx, id: i64) -> ApiResult<Reply> {
    ctx.db.transaction(|db| {
        check_not_a_master(db, id, "to delete it")?;
        storage::delete(db, id)?;
        ctx.changed()
    })?;
    Reply::no_content()
}
