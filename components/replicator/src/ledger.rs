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
    pub attempts: i64,
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

const CLAIMABLE: &str = "(state = 'queued' AND run_after <= now())
     OR (state = 'running' AND lease_expires_at < now())";

/// Takes the oldest due job, or one whose lease ran out, and leases it.
pub fn claim(db: &Db, owner: &str) -> Result<Option<Job>> {
    let rows = db.query(
        &format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1,
                 lease_expires_at = now() + make_interval(secs => $2), started_at = coalesce(started_at, now()),
                 updated_at = now()
             WHERE id = (SELECT id FROM jobs WHERE {CLAIMABLE} ORDER BY run_after, id
                         FOR UPDATE SKIP LOCKED LIMIT 1)
             RETURNING id, kind, bucket_name, storage_id, object_key, attempts"
        ),
        &[Param::Str(owner.into()), Param::Floating64(LEASE.as_secs_f64())],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(Job {
        id: r.i64("id")?,
        kind: JobKind::parse("kind", &r.str("kind")?)?,
        bucket: r.str("bucket_name")?,
        storage_id: r.opt_i64("storage_id")?,
        object_key: r.opt_str("object_key")?,
        attempts: r.i64("attempts")?,
    }))
}

/// Whether any job is due now.
pub fn claimable(db: &Db) -> Result<bool> {
    let rows = db.query(
        &format!("SELECT 1 AS x FROM jobs WHERE {CLAIMABLE} LIMIT 1"),
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

pub fn complete(db: &Db, job: &Job, owner: &str) -> Result<()> {
    db.execute(
        "UPDATE jobs SET state = 'done', finished_at = now(), last_error = NULL, lease_owner = NULL,
             lease_expires_at = NULL, updated_at = now()
         WHERE id = $1 AND lease_owner = $2",
        &[Param::Int64(job.id), Param::Str(owner.into())],
    )?;
    Ok(())
}

/// Requeues the job after a backoff, or dead-letters it once it has used
/// its attempts. A dead `create_replica`/`sync_replica` marks its replica
/// `failed` so the API shows why.
pub fn fail(db: &Db, job: &Job, owner: &str, error: &str) -> Result<()> {
    let jitter = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
    let delay = fado_sync::backoff(
        job.attempts.max(1) as u32,
        BACKOFF_BASE,
        BACKOFF_CAP,
        jitter,
    );
    let rows = db.query(
        "UPDATE jobs SET
             state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
             run_after = now() + make_interval(secs => $3),
             last_error = $4, lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
             finished_at = CASE WHEN attempts >= max_attempts THEN now() END
         WHERE id = $1 AND lease_owner = $2
         RETURNING state",
        &[
            Param::Int64(job.id),
            Param::Str(owner.into()),
            Param::Floating64(delay.as_secs_f64()),
            Param::Str(error.into()),
        ],
    )?;
    let dead = rows.first().map(|r| r.str("state")).transpose()?.as_deref() == Some("dead");
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
    Ok(())
}
