//! `/api/jobs`: the replication job ledger, and retrying dead jobs.

use fado_model::{Job, JobKind, JobState};
use fado_store::{Db, jobs};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

/// Channel the replicator listens on.
pub const REPLICATOR_CHANNEL: &str = fado_model::channels::REPLICATOR;

fn job_id(s: &str) -> ApiResult<i64> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("job {s:?}")))
}

pub fn collection(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let p = req.page("jobs")?;
    let state = req
        .param("state")
        .map(|s| JobState::parse("state", s))
        .transpose()?;
    let kind = req
        .param("kind")
        .map(|k| JobKind::parse("kind", k))
        .transpose()?;
    let filter = jobs::Filter {
        state,
        kind,
        bucket: req.param("bucket"),
    };
    let items = jobs::list(&ctx.db, p.id_cursor()?, &filter, p.limit + 1)?;
    Reply::ok(p.page(items, |j| j.id.to_string()))
}

fn get(db: &Db, id: i64) -> ApiResult<Job> {
    jobs::get(db, id)?.ok_or_else(|| ApiError::not_found(format!("job {id}")))
}

pub fn item(ctx: &Ctx, req: &Req, id: &str) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    Reply::ok(get(&ctx.db, job_id(id)?)?)
}

/// `POST /api/jobs/{id}/retry`: gives a dead job a fresh set of attempts.
pub fn retry(ctx: &Ctx, req: &Req, id: &str) -> ApiResult<Reply> {
    if req.method != "POST" {
        return Err(ApiError::method_not_allowed(&["POST"]));
    }
    let id = job_id(id)?;
    let job = ctx.db.transaction(|db| {
        let job = get(db, id)?;
        if job.state != JobState::Dead {
            return Err(ApiError::conflict(format!(
                "job {id} is {}; only dead jobs can be retried",
                job.state
            )));
        }
        // The ledger holds one queued job per target (jobs_one_queued).
        if let Some(twin) = jobs::queued_twin(db, id)? {
            return Err(ApiError::conflict(format!(
                "job {twin} is already queued for the same target; it will do what retrying job {id} would"
            )));
        }
        jobs::requeue(db, id)?;
        get(db, id)
    })?;
    ctx.wake(REPLICATOR_CHANNEL);
    Reply::ok(job)
}
