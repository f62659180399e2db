//! The job ledger as replicators work it: claiming due jobs under a lease,
//! renewing the lease, and finishing or failing an attempt. (Queuing,
//! cancelling and retrying jobs are in [`crate::jobs`].)

use std::time::Duration;

use fado_model::JobKind;

use crate::{Db, Param, Result};

/// A job as a claim hands it out.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: JobKind,
    pub bucket: String,
    pub storage_id: Option<i64>,
    pub object_key: Option<String>,
    /// The object's size when the change was recorded (object jobs).
    pub object_size: Option<i64>,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

/// Jobs (alias `j`) that may be claimed now: due, or abandoned by a
/// replicator whose lease ran out; and
/// - not against unhealthy storage (the job's own or the bucket's master):
///   such jobs wait, without spending attempts, until a health check sees
///   the storage back;
/// - not overlapping a job that is running under a live lease on the same
///   replica and object (or on the whole replica: a full sync). Work on one
///   target runs in order, so a copy that started before a newer change
///   cannot finish after the copy of that change.
const CLAIMABLE: &str = "((j.state = 'queued' AND j.run_after <= now())
       OR (j.state = 'running' AND j.lease_expires_at < now()))
     AND NOT EXISTS (SELECT 1 FROM storage_deployments s WHERE s.health = 'unhealthy'
         AND (s.id = j.storage_id OR s.id = (SELECT b.master_storage_id FROM buckets b WHERE b.name = j.bucket_name)))
     AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running' AND r.lease_expires_at >= now()
         AND r.id <> j.id AND r.bucket_name = j.bucket_name AND r.storage_id = j.storage_id
         AND (coalesce(r.object_key, '') = coalesce(j.object_key, '')
              OR r.kind IN ('create_replica', 'sync_replica')))";

/// Takes the oldest claimable job and leases it to `owner` for `lease`,
/// with up to `batch` − 1 more object jobs when it is one: a burst of
/// uploads then costs one claim for many copies. Work on a whole replica is
/// claimed alone, so no object job waits behind a full sync while its lease
/// runs out. In id order (the order of the changes the jobs carry).
pub fn claim(db: &Db, owner: &str, lease: Duration, batch: i64) -> Result<Vec<ClaimedJob>> {
    let rows = db.query(
        &format!(
            "WITH due AS MATERIALIZED (
                 SELECT j.id, j.kind, j.run_after FROM jobs j WHERE {CLAIMABLE}
                 ORDER BY j.run_after, j.id FOR UPDATE SKIP LOCKED LIMIT $3),
             first AS (SELECT id, kind FROM due ORDER BY run_after, id LIMIT 1),
             chosen AS (
                 SELECT id FROM first
                 UNION
                 SELECT due.id FROM due, first
                 WHERE first.kind IN ('copy_object', 'delete_object')
                   AND due.kind IN ('copy_object', 'delete_object'))
             UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1,
                 lease_expires_at = now() + make_interval(secs => $2), started_at = coalesce(started_at, now()),
                 updated_at = now()
             WHERE id IN (SELECT id FROM chosen)
             RETURNING id, kind, bucket_name, storage_id, object_key, object_size, attempts"
        ),
        &[
            Param::Str(owner.into()),
            Param::Floating64(lease.as_secs_f64()),
            Param::Int64(batch),
        ],
    )?;
    let mut jobs = rows
        .iter()
        .map(|r| {
            Ok(ClaimedJob {
                id: r.i64("id")?,
                kind: r.parse("kind", JobKind::parse)?,
                bucket: r.str("bucket_name")?,
                storage_id: r.opt_i64("storage_id")?,
                object_key: r.opt_str("object_key")?,
                object_size: r.opt_i64("object_size")?,
                attempts: r.i64("attempts")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Whether any job could be claimed now.
pub fn claimable(db: &Db) -> Result<bool> {
    let rows = db.query(
        &format!("SELECT 1 AS x FROM jobs j WHERE {CLAIMABLE} LIMIT 1"),
        &[],
    )?;
    Ok(!rows.is_empty())
}

/// Extends `owner`'s lease on job `id` by `lease`; false when the job was
/// taken over or finished by someone else.
pub fn renew(db: &Db, id: i64, owner: &str, lease: Duration) -> Result<bool> {
    let n = db.execute(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        &[
            Param::Int64(id),
            Param::Str(owner.into()),
            Param::Floating64(lease.as_secs_f64()),
        ],
    )?;
    Ok(n == 1)
}

/// Marks `owner`'s attempt at job `id` done, with the bytes it moved and
/// how long it took.
pub fn complete(db: &Db, id: i64, owner: &str, bytes: u64, took: Duration) -> Result<()> {
    db.execute(
        "UPDATE jobs SET state = 'done', finished_at = now(), last_error = NULL, lease_owner = NULL,
             lease_expires_at = NULL, updated_at = now(), bytes_copied = bytes_copied + $3,
             last_attempt_ms = $4
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        &[
            Param::Int64(id),
            Param::Str(owner.into()),
            Param::Int64(i64::try_from(bytes).unwrap_or(i64::MAX)),
            Param::Int64(i64::try_from(took.as_millis()).unwrap_or(i64::MAX)),
        ],
    )?;
    Ok(())
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Queued again, to run after the delay.
    Queued,
    /// Out of attempts.
    Dead,
    /// A newer queued job for the same target carries the work on.
    Superseded,
    /// No longer this attempt's: taken over, or cancelled while it ran.
    Lost,
}

impl Failed {
    pub fn as_str(self) -> &'static str {
        match self {
            Failed::Queued => "queued",
            Failed::Dead => "dead",
            Failed::Superseded => "done",
            Failed::Lost => "lost",
        }
    }
}

/// Ends `owner`'s failed attempt at `job`: requeued to run after
/// `retry_in`, or dead once it has used its attempts. The job's replica
/// (if any) notes the error; a dead `create_replica`/`sync_replica` marks
/// it `failed`, so the API shows why.
pub fn fail(
    db: &Db,
    job: &ClaimedJob,
    owner: &str,
    error: &str,
    took: Duration,
    retry_in: Duration,
) -> Result<Failed> {
    let rows = db.query(
        "WITH next AS (
             SELECT CASE WHEN d.attempts >= d.max_attempts THEN 'dead'
                         -- A newer change queued the same work: that job carries it on.
                         WHEN EXISTS (SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.kind = d.kind
                                      AND q.bucket_name = d.bucket_name
                                      AND q.storage_id IS NOT DISTINCT FROM d.storage_id
                                      AND q.object_key IS NOT DISTINCT FROM d.object_key) THEN 'done'
                         ELSE 'queued' END AS state
             FROM jobs d WHERE d.id = $1)
         UPDATE jobs SET state = next.state,
             run_after = now() + make_interval(secs => $3),
             last_error = $4, lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
             last_attempt_ms = $5,
             finished_at = CASE WHEN next.state = 'queued' THEN NULL ELSE now() END
         FROM next
         WHERE jobs.id = $1 AND jobs.lease_owner = $2 AND jobs.state = 'running'
         RETURNING jobs.state",
        &[
            Param::Int64(job.id),
            Param::Str(owner.into()),
            Param::Floating64(retry_in.as_secs_f64()),
            Param::Str(error.into()),
            Param::Int64(i64::try_from(took.as_millis()).unwrap_or(i64::MAX)),
        ],
    )?;
    let outcome = match rows.first().map(|r| r.str("state")).transpose()?.as_deref() {
        None => Failed::Lost,
        Some("dead") => Failed::Dead,
        Some("done") => Failed::Superseded,
        Some(_) => Failed::Queued,
    };
    if let Some(storage) = job.storage_id {
        let failed = outcome == Failed::Dead
            && matches!(job.kind, JobKind::CreateReplica | JobKind::SyncReplica);
        db.execute(
            "UPDATE replicas SET last_error = $3, state = coalesce($4, state), updated_at = now()
             WHERE storage_id = $2 AND bucket_id = (SELECT id FROM buckets WHERE name = $1)",
            &[
                Param::Str(job.bucket.clone()),
                Param::Int64(storage),
                Param::Str(error.into()),
                if failed {
                    Param::Str("failed".into())
                } else {
                    Param::DbNull
                },
            ],
        )?;
    }
    Ok(outcome)
}
