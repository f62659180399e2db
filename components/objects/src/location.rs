//! Where a bucket's copies live: its master and its ready replicas, with
//! the credentials to reach them.

use fado_api::{ApiError, ApiResult};
use fado_s3::Endpoint;

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

fn copy(c: fado_store::objects::Copy) -> Copy {
    Copy {
        storage: c.storage,
        endpoint: c.endpoint.into(),
        healthy: c.health != fado_model::Health::Unhealthy,
    }
}

/// The bucket named (or numbered) `segment` with its master only (writes
/// and the listing need no more), or a 404 naming it.
pub fn bucket(ctx: &Ctx, segment: &str) -> ApiResult<Bucket> {
    let (id, name, master) = fado_store::objects::master(&ctx.db, segment, &ctx.encryption_key)?
        .ok_or_else(|| ApiError::not_found(format!("bucket {segment:?}")))?;
    Ok(Bucket {
        id,
        name,
        master: copy(master),
        ready_replicas: Vec::new(),
    })
}

/// The bucket named (or numbered) `segment` with its ready replicas too, for
/// reads that may fall back to them.
pub fn bucket_and_replicas(ctx: &Ctx, segment: &str) -> ApiResult<Bucket> {
    let mut b = bucket(ctx, segment)?;
    b.ready_replicas = fado_store::objects::ready_replicas(&ctx.db, b.id, &ctx.encryption_key)?
        .into_iter()
        .map(copy)
        .collect();
    Ok(b)
}
