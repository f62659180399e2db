//! The job ledger's writes other than the replicator's own claims: queuing
//! jobs, and cancelling queued ones a decision made moot. A job that is
//! already queued for the same target is never queued twice (the ledger's
//! unique index on queued jobs).

use fado_model::JobKind;

use crate::{Db, Param, Result, id_array, text_array};

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
