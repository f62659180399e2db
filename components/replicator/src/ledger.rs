//! The job ledger: claiming, leasing, completing and failing jobs.

use std::time::Duration;

use anyhow::Result;
use fado_model::JobKind;
use fado_store::{Db, Param};

/// How long a claim holds before another replicator may take the job over.
pub const LEASE: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub bucket: String,
    pub storage_id: Option<i64>,
    pub object_key: Option<String>,
    /// The object's size when the change was recorded (object jobs).
    pub object_size: Option<i64>,
    pub attempts: i64,
}

impl Job {
    /// What the job works on, for `fado_sync::lanes`.
    pub fn target(&self) -> fado_sync::Target {
        let whole = !matches!(self.kind, JobKind::CopyObject | JobKind::DeleteObject);
        fado_sync::Target {
            bucket: self.bucket.clone(),
            storage: self.storage_id,
            object: if whole { None } else { self.object_key.clone() },
        }
    }
}

/// An id for this instance's leases.
pub fn owner_id() -> String {
    format!("replicator-{:016x}", random_u64())
}

/// std seeds `RandomState` from `wasi:random`: no extra crate needed.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
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

/// Object jobs one claim may take at once.
pub const BATCH: i64 = 16;

/// Takes the oldest claimable job and leases it, with up to [`BATCH`] − 1
/// more object jobs when it is one: a burst of uploads then costs one claim
/// and one instance for many copies, which run side by side (see
/// `fado_sync::lanes`). Work on a whole replica is claimed alone, so no
/// object job waits behind a full sync while its lease runs out.
pub fn claim(db: &Db, owner: &str) -> Result<Vec<Job>> {
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
            Param::Floating64(LEASE.as_secs_f64()),
            Param::Int64(BATCH),
        ],
    )?;
    let mut jobs = rows
        .iter()
        .map(|r| {
            Ok(Job {
                id: r.i64("id")?,
                kind: JobKind::parse("kind", &r.str("kind")?)?,
                bucket: r.str("bucket_name")?,
                storage_id: r.opt_i64("storage_id")?,
                object_key: r.opt_str("object_key")?,
                object_size: r.opt_i64("object_size")?,
                attempts: r.i64("attempts")?,
            })
        })
        .collect::<Result<Vec<Job>>>()?;
    // Jobs are queued in the order of the changes they carry.
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Whether any job is due now.
pub fn claimable(db: &Db) -> Result<bool> {
    let rows = db.query(
        &format!("SELECT 1 AS x FROM jobs j WHERE {CLAIMABLE} LIMIT 1"),
        &[],
    )?;
    Ok(!rows.is_empty())
}

/// Extends the lease while a long step runs; false when the job was taken
/// over or finished by someone else (then the step should stop).
pub fn renew(db: &Db, job: &Job, owner: &str) -> Result<bool> {
    let n = db.execute(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        &[
            Param::Int64(job.id),
            Param::Str(owner.into()),
            Param::Floating64(LEASE.as_secs_f64()),
        ],
    )?;
    Ok(n == 1)
}

/// Marks the job done, with what its attempt moved and how long it took.
pub fn complete(db: &Db, job: &Job, owner: &str, bytes: u64, took: Duration) -> Result<()> {
    db.execute(
        "UPDATE jobs SET state = 'done', finished_at = now(), last_error = NULL, lease_owner = NULL,
             lease_expires_at = NULL, updated_at = now(), bytes_copied = bytes_copied + $3,
             last_attempt_ms = $4
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        &[
            Param::Int64(job.id),
            Param::Str(owner.into()),
            Param::Int64(bytes as i64),
            Param::Int64(took.as_millis() as i64),
        ],
    )?;
    Ok(())
}

/// Requeues the job after a backoff, or dead-letters it once it has used
/// its attempts. A dead `create_replica`/`sync_replica` marks its replica
/// `failed` so the API shows why.
/// Returns the job's new state: `queued` (retry), `dead`, `done` (a
/// newer queued job carries the work on), or `lost` (it is no longer this
/// attempt's: taken over, or cancelled while it ran).
pub fn fail(db: &Db, job: &Job, owner: &str, error: &str, took: Duration) -> Result<String> {
    let jitter = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
    let delay = fado_sync::backoff(
        job.attempts.max(1) as u32,
        BACKOFF_BASE,
        BACKOFF_CAP,
        jitter,
    );
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
            Param::Floating64(delay.as_secs_f64()),
            Param::Str(error.into()),
            Param::Int64(took.as_millis() as i64),
        ],
    )?;
    let state = rows
        .first()
        .map(|r| r.str("state"))
        .transpose()?
        // The lease was taken over, or the job cancelled, meanwhile.
        .unwrap_or_else(|| "lost".into());
    let dead = state == "dead";
    if let Some(storage) = job.storage_id {
        let state = if dead && matches!(job.kind, JobKind::CreateReplica | JobKind::SyncReplica) {
            Some("failed")
        } else {
            None
        };
        db.execute(
            "UPDATE replicas SET last_error = $3, state = coalesce($4, state), updated_at = now()
             WHERE storage_id = $2 AND bucket_id = (SELECT id FROM buckets WHERE name = $1)",
            &[
                Param::Str(job.bucket.clone()),
                Param::Int64(storage),
                Param::Str(error.into()),
                state.map(|s| Param::Str(s.into())).unwrap_or(Param::DbNull),
            ],
        )?;
    }
    Ok(state)
}
