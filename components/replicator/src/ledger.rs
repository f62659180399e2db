//! The replicator's side of the job ledger (`fado_store::ledger`): how
//! long a lease holds, how many object jobs one claim takes, and how long a
//! failed job waits before its next attempt.

use std::time::Duration;

use anyhow::Result;
use fado_model::JobKind;
use fado_store::Db;
pub use fado_store::ledger::ClaimedJob as Job;
use fado_store::ledger::{self, Failed};

/// How long a claim holds before another replicator may take the job over.
pub const LEASE: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Object jobs one claim may take at once (they run side by side, see
/// `fado_sync::lanes`).
pub const BATCH: i64 = 16;

/// What a job works on, for `fado_sync::lanes`.
pub fn target(job: &Job) -> fado_sync::Target {
    let whole = !matches!(job.kind, JobKind::CopyObject | JobKind::DeleteObject);
    fado_sync::Target {
        bucket: job.bucket.clone(),
        storage: job.storage_id,
        object: if whole { None } else { job.object_key.clone() },
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

pub fn claim(db: &Db, owner: &str) -> Result<Vec<Job>> {
    Ok(ledger::claim(db, owner, LEASE, BATCH)?)
}

pub fn claimable(db: &Db) -> Result<bool> {
    Ok(ledger::claimable(db)?)
}

/// Extends the lease while a long step runs; false when the job was taken
/// over or finished by someone else (then the step should stop).
pub fn renew(db: &Db, job: &Job, owner: &str) -> Result<bool> {
    Ok(ledger::renew(db, job.id, owner, LEASE)?)
}

pub fn complete(db: &Db, job: &Job, owner: &str, bytes: u64, took: Duration) -> Result<()> {
    Ok(ledger::complete(db, job.id, owner, bytes, took)?)
}

/// Requeues the job after a jittered exponential backoff, or dead-letters
/// it once it has used its attempts.
pub fn fail(db: &Db, job: &Job, owner: &str, error: &str, took: Duration) -> Result<Failed> {
    let jitter = 0.5 + (random_u64() % 1000) as f64 / 2000.0;
    let delay = fado_sync::backoff(
        job.attempts.max(1) as u32,
        BACKOFF_BASE,
        BACKOFF_CAP,
        jitter,
    );
    Ok(ledger::fail(db, job, owner, error, took, delay)?)
}
