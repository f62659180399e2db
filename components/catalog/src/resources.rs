//! `GET /api/resources`: a bounded dashboard summary (counts, health,
//! replication state, the few buckets and jobs that need attention), never
//! the whole catalog.

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

/// How many problem buckets and jobs the summary names.
const TOP: i64 = 10;

pub fn summary(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    Reply::ok(fado_store::summary::resources(&ctx.db, TOP)?)
}
