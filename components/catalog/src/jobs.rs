//! `/api/jobs`: the replication job ledger, and retrying dead jobs.

use fado_model::{Job, JobKind, JobState};
use fado_store::{Db, Param, Row};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

const COLUMNS: &str =
    "id, kind, bucket_name, storage_id, object_key, state, attempts, max_attempts, run_after,
    last_error, object_size, bytes_copied, last_attempt_ms, created_at, started_at, finished_at";

/// Channel the replicator listens on.
pub const REPLICATOR_CHANNEL: &str = fado_model::channels::REPLICATOR;

fn from_row(r: Row<'_>) -> ApiResult<Job> {
    Ok(Job {
        id: r.i64("id")?,
        kind: JobKind::parse("kind", &r.str("kind")?)?,
        bucket: r.str("bucket_name")?,
        storage_id: r.opt_i64("storage_id")?,
        object_key: r.opt_str("object_key")?,
        state: JobState::parse("state", &r.str("state")?)?,
        attempts: r.i64("attempts")?,
        max_attempts: r.i64("max_attempts")?,
        run_after: r.time("run_after")?,
        last_error: r.opt_str("last_error")?,
        object_size: r.opt_i64("object_size")?,
        bytes_copied: r.i64("bytes_copied")?,
        last_attempt_ms: r.opt_i64("last_attempt_ms")?,
        created_at: r.time("created_at")?,
        started_at: r.opt_time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
    })
}

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
    let rows = ctx.db.query(
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE id > $1 AND ($2::text IS NULL OR state = $2)
                 AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR bucket_name = $4)
             ORDER BY id LIMIT $5"
        ),
        &[
            Param::Int64(p.id_cursor()?),
            fado_store::opt_text(state.map(|s| s.as_str())),
            fado_store::opt_text(kind.map(|k| k.as_str())),
            fado_store::opt_text(req.param("bucket")),
            Param::Int64(p.limit + 1),
        ],
    )?;
    let items = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    Reply::ok(p.page(items, |j| j.id.to_string()))
}

fn get(db: &Db, id: i64) -> ApiResult<Job> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"),
        &[Param::Int64(id)],
    )?;
    from_row(
        rows.first()
            .ok_or_else(|| ApiError::not_found(format!("job {id}")))?,
    )
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
        let twin = db.query(
            "SELECT q.id FROM jobs q, jobs d WHERE d.id = $1 AND q.state = 'queued' AND q.kind = d.kind
                 AND q.bucket_name = d.bucket_name AND q.storage_id IS NOT DISTINCT FROM d.storage_id
                 AND q.object_key IS NOT DISTINCT FROM d.object_key",
            &[Param::Int64(id)],
        )?;
        if let Some(t) = twin.first() {
            return Err(ApiError::conflict(format!(
                "job {} is already queued for the same target; it will do what retrying job {id} would",
                t.i64("id")?
            )));
        }
        db.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = now(), lease_owner = NULL,
                 lease_expires_at = NULL, finished_at = NULL, updated_at = now() WHERE id = $1",
            &[Param::Int64(id)],
        )?;
        get(db, id)
    })?;
    ctx.wake(REPLICATOR_CHANNEL);
    Reply::ok(job)
}
