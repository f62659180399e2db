//! Where a bucket's copies live: its master and its ready replicas, with
//! the credentials to reach them.

use fado_api::{ApiError, ApiResult};
use fado_s3::Endpoint;
use fado_store::{Db, Param, Row};

use crate::Ctx;

/// One copy of a bucket.
pub struct Copy {
    pub storage: String,
    pub endpoint: Endpoint,
    pub healthy: bool,
}

/// A bucket as the data plane needs it.
pub struct Bucket {
    pub id: i64,
    pub name: String,
    pub master: Copy,
    /// Replicas whose first full sync completed, master's cluster excluded.
    pub ready_replicas: Vec<Copy>,
}

/// A copy's columns, from storage deployment `s`.
fn storage_columns() -> String {
    format!(
        "s.name AS storage, {}, s.health",
        fado_store::storage::select_list("s", "")
    )
}

fn copy(ctx: &Ctx, r: Row<'_>) -> ApiResult<Copy> {
    Ok(Copy {
        storage: r.str("storage")?,
        endpoint: fado_store::storage::endpoint_in(&r, "", &ctx.encryption_key)?.into(),
        healthy: r.str("health")? != "unhealthy",
    })
}

/// The bucket named (or numbered) `segment` with its master only (writes
/// and the listing need no more), or a 404 naming it.
pub fn bucket(ctx: &Ctx, segment: &str) -> ApiResult<Bucket> {
    let db: &Db = &ctx.db;
    let by_id = segment.bytes().all(|b| b.is_ascii_digit());
    let rows = db.query(
        &format!(
            "SELECT b.id, b.name, {} FROM buckets b
             JOIN storage_deployments s ON s.id = b.master_storage_id
             WHERE {}",
            storage_columns(),
            if by_id {
                "b.id = $1::text::bigint"
            } else {
                "b.name = $1"
            }
        ),
        &[Param::Str(segment.into())],
    )?;
    let r = rows
        .first()
        .ok_or_else(|| ApiError::not_found(format!("bucket {segment:?}")))?;
    let (id, name) = (r.i64("id")?, r.str("name")?);
    let master = copy(ctx, r)?;
    Ok(Bucket {
        id,
        name,
        master,
        ready_replicas: Vec::new(),
    })
}

/// The bucket named (or numbered) `segment` with its ready replicas too, for
/// reads that may fall back to them.
pub fn bucket_and_replicas(ctx: &Ctx, segment: &str) -> ApiResult<Bucket> {
    let mut b = bucket(ctx, segment)?;
    let replicas = ctx.db.query(
        &format!(
            "SELECT {} FROM replicas r JOIN storage_deployments s ON s.id = r.storage_id
             WHERE r.bucket_id = $1 AND r.state = 'ready' ORDER BY r.storage_id",
            storage_columns()
        ),
        &[Param::Int64(b.id)],
    )?;
    b.ready_replicas = replicas
        .iter()
        .map(|r| copy(ctx, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(b)
}
