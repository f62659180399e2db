//! The replicator component: FaDO's data mover.
//!
//! Woken on `fado.replicator` (by the planner and the catalog after they
//! queue work, and by a periodic sweep), it claims jobs from the ledger in
//! Postgres (`FOR UPDATE SKIP LOCKED` plus a lease, so many replicators work
//! side by side; object jobs in batches, run in lanes that keep each
//! object's changes in order), carries out each step against the S3 API
//! of the storage involved, and records the outcome: done, retried later
//! with exponential backoff, or dead after `max_attempts`, with the error
//! visible in the API. Every step is idempotent, so a job whose replicator
//! died mid-way is simply run again once its lease expires.

mod ledger;
mod steps;

use std::time::{Duration, Instant};

use futures::StreamExt;

use anyhow::{Context, Result};
use fado_store::Db;
use spin_sdk::redis_component;
use spin_sdk::variables;

/// Work one wake-up may do before handing over: long enough to drain a
/// burst, short enough that a stuck storage does not pin an instance.
const BUDGET: Duration = Duration::from_secs(20);

pub const CHANNEL: &str = fado_model::channels::REPLICATOR;
pub const PLANNER_CHANNEL: &str = fado_model::channels::PLANNER;

pub struct Config {
    pub redis: String,
    pub encryption_key: String,
    pub part_size: u64,
}

fn config() -> Result<Config> {
    let var = |n: &str| variables::get(n).with_context(|| format!("variable {n}"));
    let part_mib: u64 = var("copy_part_size_mib")?
        .parse()
        .context("variable copy_part_size_mib: expected a whole number of MiB")?;
    Ok(Config {
        redis: var("redis_address")?,
        encryption_key: var("encryption_key")?,
        part_size: part_mib.max(5) << 20,
    })
}

/// Lanes of a claimed batch (see `fado_sync::lanes`) worked at once.
const LANES_AT_ONCE: usize = 8;

#[redis_component]
fn on_message(_message: bytes::Bytes) -> Result<()> {
    let pg = variables::get("pg_address").context("variable pg_address")?;
    let cfg = config()?;
    let db = Db::open(&pg)?;
    fado_store::ensure_schema(&db)?;
    let owner = ledger::owner_id();
    let started = Instant::now();
    let mut progressed = false;
    while started.elapsed() < BUDGET {
        let batch = ledger::claim(&db, &owner)?;
        if batch.is_empty() {
            break;
        }
        // Storage pairs and their clients, shared by the batch's jobs.
        let pairs = steps::Pairs::default();
        let lanes = fado_sync::lanes(batch, ledger::target);
        let ctx = (&db, &cfg, owner.as_str(), &pairs);
        let worked: Vec<Result<bool>> = fado_s3::block_on(
            futures::stream::iter(lanes.into_iter().map(|lane| work_lane(ctx, lane)))
                .buffer_unordered(LANES_AT_ONCE)
                .collect(),
        );
        for w in worked {
            progressed |= w?;
        }
    }
    if progressed {
        publish(&cfg.redis, PLANNER_CHANNEL);
    }
    if started.elapsed() >= BUDGET && ledger::claimable(&db)? {
        // More work than one wake-up's budget: hand over to a fresh instance.
        publish(&cfg.redis, CHANNEL);
    }
    Ok(())
}

/// Runs one lane's jobs in order and records each outcome; true when one
/// changed what the planner depends on.
async fn work_lane(
    (db, cfg, owner, pairs): (&Db, &Config, &str, &steps::Pairs),
    lane: Vec<ledger::Job>,
) -> Result<bool> {
    let mut progressed = false;
    for job in lane {
        let attempt = Instant::now();
        match steps::run(db, cfg, &job, owner, pairs).await {
            Ok(effect) => {
                ledger::complete(db, &job, owner, effect.bytes, attempt.elapsed())?;
                count(&cfg.redis, &job, "done", effect.bytes);
                progressed |= effect.catalog_changed;
            }
            Err(e) => {
                let message = format!("{e:#}");
                eprintln!(
                    "replicator: job {} ({} {}) failed: {message}",
                    job.id, job.kind, job.bucket
                );
                let failed = ledger::fail(db, &job, owner, &message, attempt.elapsed())?;
                let outcome = match failed {
                    fado_store::ledger::Failed::Queued => "retry",
                    other => other.as_str(),
                };
                count(&cfg.redis, &job, outcome, 0);
            }
        }
    }
    Ok(progressed)
}

/// The Redis hash of FaDO's counters (the catalog serves them at
/// `/api/metrics`): Redis, not Postgres, so counting costs the ledger nothing.
pub const METRICS_KEY: &[u8] = fado_model::REPLICATION_METRICS_KEY.as_bytes();

/// Counts one job outcome and the bytes it copied. Best effort: a lost
/// increment is a metrics gap, never a replication fault.
fn count(address: &str, job: &ledger::Job, outcome: &str, bytes: u64) {
    use spin_sdk::redis::RedisParameter::{Binary, Int64};
    let field = format!(
        "jobs_total{{kind=\"{}\",outcome=\"{outcome}\"}}",
        job.kind.as_str()
    );
    let result = spin_sdk::redis::Connection::open(address).and_then(|c| {
        c.execute(
            "HINCRBY",
            &[
                Binary(METRICS_KEY.to_vec()),
                Binary(field.into_bytes()),
                Int64(1),
            ],
        )?;
        if bytes > 0 {
            c.execute(
                "HINCRBY",
                &[
                    Binary(METRICS_KEY.to_vec()),
                    Binary(b"replicated_bytes_total".to_vec()),
                    Int64(bytes as i64),
                ],
            )?;
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("replicator: could not count job {}: {e:?}", job.id);
    }
}

/// Best effort: sweeps repeat every wake-up.
fn publish(address: &str, channel: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(channel, b"replicated".as_ref()));
    if let Err(e) = result {
        eprintln!("replicator: could not publish on {channel}: {e:?}");
    }
}
