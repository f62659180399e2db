//! The job ledger (table `jobs`) as the API and the planner use it:
//! reading it, queuing jobs, cancelling queued ones a decision made moot,
//! and retrying dead ones (the replicator's claims are its own). A job that
//! is already queued for the same target is never queued twice (the
//! ledger's unique index on queued jobs).

use fado_model::{Job, JobKind, JobState};

use crate::{Db, Param, Result, Row, id_array, opt_text, text_array};

const COLUMNS: &str =
    "id, kind, bucket_name, storage_id, object_key, state, attempts, max_attempts, run_after,
    last_error, object_size, bytes_copied, last_attempt_ms, created_at, started_at, finished_at";

fn from_row(r: Row<'_>) -> Result<Job> {
    Ok(Job {
        id: r.i64("id")?,
        kind: r.parse("kind", JobKind::parse)?,
        bucket: r.str("bucket_name")?,
        storage_id: r.opt_i64("storage_id")?,
        object_key: r.opt_str("object_key")?,
        state: r.parse("state", JobState::parse)?,
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

/// What a listing of the ledger keeps.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
    pub bucket: Option<&'a str>,
}

/// Up to `limit` jobs with ids above `after` that pass `filter`, in id
/// order.
pub fn list(db: &Db, after: i64, filter: &Filter<'_>, limit: i64) -> Result<Vec<Job>> {
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM jobs WHERE id > $1 AND ($2::text IS NULL OR state = $2)
                 AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR bucket_name = $4)
             ORDER BY id LIMIT $5"
        ),
        &[
            Param::Int64(after),
            opt_text(filter.state.map(|s| s.as_str())),
            opt_text(filter.kind.map(|k| k.as_str())),
            opt_text(filter.bucket),
            Param::Int64(limit),
        ],
    )?;
    rows.iter().map(from_row).collect()
}

pub fn get(db: &Db, id: i64) -> Result<Option<Job>> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"),
        &[Param::Int64(id)],
    )?;
    rows.first().map(from_row).transpose()
}

/// The id of a queued job for the same target as job `id`, if any.
pub fn queued_twin(db: &Db, id: i64) -> Result<Option<i64>> {
    let rows = db.query(
        "SELECT q.id FROM jobs q, jobs d WHERE d.id = $1 AND q.state = 'queued' AND q.kind = d.kind
             AND q.bucket_name = d.bucket_name AND q.storage_id IS NOT DISTINCT FROM d.storage_id
             AND q.object_key IS NOT DISTINCT FROM d.object_key",
        &[Param::Int64(id)],
    )?;
    rows.first().map(|r| r.i64("id")).transpose()
}

/// Whether bucket `name` is still being deleted from storage (a
/// `delete_bucket` job is queued or running).
pub fn bucket_being_deleted(db: &Db, name: &str) -> Result<bool> {
    let rows = db.query(
        "SELECT 1 FROM jobs WHERE bucket_name = $1 AND kind = 'delete_bucket' AND state IN ('queued', 'running')",
        &[Param::Str(name.into())],
    )?;
    Ok(!rows.is_empty())
}

/// Queues job `id` again with a fresh set of attempts.
pub fn requeue(db: &Db, id: i64) -> Result<()> {
    db.execute(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_after = now(), lease_owner = NULL,
             lease_expires_at = NULL, finished_at = NULL, updated_at = now() WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

const ENQUEUE: &str = "INSERT INTO jobs (kind, bucket_name, storage_id)
     SELECT $1, b, s FROM unnest($2::text[], $3::bigint[]) AS u(b, s)
     ON CONFLICT DO NOTHING";

/// Queues a `kind` job for `bucket` on `storage_id` (`None`: a job that
/// names no storage).
pub fn enqueue(db: &Db, kind: JobKind, bucket: &str, storage_id: Option<i64>) -> Result<()> {
    db.execute(
        ENQUEUE,
        &[
            Param::Str(kind.as_str().into()),
            Param::ArrayStr(vec![Some(bucket.into())]),
            Param::ArrayInt64(vec![storage_id]),
        ],
    )?;
    Ok(())
}

/// Queues a `kind` job for each `buckets[i]` on `storage[i]`.
pub fn enqueue_each(db: &Db, kind: JobKind, buckets: &[String], storage: &[i64]) -> Result<()> {
    db.execute(
        ENQUEUE,
        &[
            Param::Str(kind.as_str().into()),
            text_array(buckets),
            id_array(storage),
        ],
    )?;
    Ok(())
}

/// Ends the queued (not running) `kind` jobs for each `buckets[i]` on
/// `storage[i]`, saying why.
pub fn cancel_queued(
    db: &Db,
    kind: JobKind,
    buckets: &[String],
    storage: &[i64],
    why: &str,
) -> Result<()> {
    db.execute(
        "UPDATE jobs j SET state = 'done', finished_at = now(), updated_at = now(),
             last_error = 'cancelled: ' || $4
         FROM unnest($2::text[], $3::bigint[]) AS u(b, s)
         WHERE j.kind = $1 AND j.state = 'queued' AND j.bucket_name = u.b AND j.storage_id = u.s",
        &[
            Param::Str(kind.as_str().into()),
            text_array(buckets),
            id_array(storage),
            Param::Str(why.into()),
        ],
    )?;
    Ok(())
}

/// Queues a full sync of each ready replica of bucket `bucket_id` (named
/// `bucket`) not fully synced for `older_than_secs`; returns how many.
pub fn queue_resyncs(db: &Db, bucket_id: i64, bucket: &str, older_than_secs: f64) -> Result<u64> {
    db.execute(
        "INSERT INTO jobs (kind, bucket_name, storage_id)
         SELECT $4, $2, r.storage_id FROM replicas r
         WHERE r.bucket_id = $1 AND r.state = 'ready'
           AND (r.last_sync_at IS NULL OR r.last_sync_at < now() - make_interval(secs => $3))
         ON CONFLICT (kind, bucket_name, coalesce(storage_id, 0), coalesce(object_key, ''))
             WHERE state = 'queued'
         DO NOTHING",
        &[
            Param::Int64(bucket_id),
            Param::Str(bucket.into()),
            Param::Floating64(older_than_secs),
            Param::Str(JobKind::SyncReplica.as_str().into()),
        ],
    )
}

/// Ends every queued job of bucket `bucket` but its `keep` jobs, saying why.
pub fn cancel_queued_for_bucket(db: &Db, bucket: &str, keep: JobKind, why: &str) -> Result<()> {
    db.execute(
        "UPDATE jobs SET state = 'done', finished_at = now(), last_error = 'cancelled: ' || $3,
             updated_at = now()
         WHERE bucket_name = $1 AND kind <> $2 AND state = 'queued'",
        &[
            Param::Str(bucket.into()),
            Param::Str(keep.as_str().into()),
            Param::Str(why.into()),
        ],
    )?;
    Ok(())
}
