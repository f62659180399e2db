//! The reconciler component: FaDO's reconcile sweep.
//!
//! Many S3 services (Garage among them) send no event notifications, and
//! people write to master buckets directly. Woken on `fado.reconciler` (a
//! sweep every 30 s), the reconciler walks the master buckets a page of
//! keys at a time, compares each page with the objects catalog and records
//! what changed, which queues the replica jobs that carry it across. When a
//! bucket's walk completes it also queues a full sync of replicas not synced
//! for `replica_resync_seconds`, which undoes direct writes to them.
//!
//! One run lists at most `reconcile_keys_per_sweep` keys, and only one
//! reconciler works at a time (a session advisory lock): a second wake-up
//! while a run is under way returns at once.

mod page;
mod walk;

use anyhow::{Context, Result};
use fado_store::Db;
use spin_sdk::redis_component;
use spin_sdk::variables;

pub const REPLICATOR_CHANNEL: &str = fado_model::channels::REPLICATOR;

pub struct Config {
    pub encryption_key: String,
    /// Most keys one run lists, across all buckets.
    pub keys_per_sweep: u64,
    /// A ready replica not fully synced for this long gets a full sync.
    pub resync_seconds: f64,
}

fn config() -> Result<Config> {
    let var = |n: &str| variables::get(n).with_context(|| format!("variable {n}"));
    let keys: u64 = var("reconcile_keys_per_sweep")?
        .trim()
        .parse()
        .context("variable reconcile_keys_per_sweep: expected a whole number")?;
    let resync: u64 = var("replica_resync_seconds")?
        .trim()
        .parse()
        .context("variable replica_resync_seconds: expected a whole number of seconds")?;
    Ok(Config {
        encryption_key: var("encryption_key")?,
        keys_per_sweep: keys.max(1),
        resync_seconds: resync as f64,
    })
}

#[redis_component]
fn on_message(_message: bytes::Bytes) -> Result<()> {
    let pg = variables::get("pg_address").context("variable pg_address")?;
    let redis = variables::get("redis_address").context("variable redis_address")?;
    let cfg = config()?;
    let db = Db::open(&pg)?;
    fado_store::ensure_schema(&db)?;
    if !try_lock(&db)? {
        return Ok(()); // another reconciler is sweeping
    }
    let result = walk::run(&db, &cfg);
    unlock(&db);
    let totals = result?;
    if totals.jobs > 0 {
        publish(&redis, REPLICATOR_CHANNEL);
    }
    eprintln!(
        "reconciler: {} bucket(s) visited, {} key(s) listed, {} change(s), {} job(s) queued",
        totals.buckets, totals.keys, totals.changes, totals.jobs
    );
    Ok(())
}

fn try_lock(db: &Db) -> Result<bool> {
    Ok(fado_store::try_lock(db, fado_model::locks::RECONCILER)?)
}

fn unlock(db: &Db) {
    if let Err(e) = fado_store::unlock(db, fado_model::locks::RECONCILER) {
        eprintln!("reconciler: releasing the sweep lock: {e}");
    }
}

/// Best effort: the replicator's own sweep finds queued jobs anyway.
fn publish(address: &str, channel: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(channel, b"reconciled".as_ref()));
    if let Err(e) = result {
        eprintln!("reconciler: could not publish on {channel}: {e:?}");
    }
}
