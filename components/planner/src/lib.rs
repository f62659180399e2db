//! The planner component: FaDO's policy loop.
//!
//! Woken by a Redis message (after each catalog change, and by the periodic
//! sweep), it takes the planner advisory lock, and while the catalog's
//! generation is ahead of what it last planned:
//!
//! 1. loads the catalog snapshot and evaluates placement (`fado-placement`),
//! 2. in one REPEATABLE READ transaction writes the desired replica rows, the
//!    jobs that reach them, each bucket's shortfall, and the new route table,
//! 3. publishes the route table to Redis (the routes that changed), and
//!    wakes the replicator when it queued work.
//!
//! Every replica of the app receives each message, and every catalog change
//! sends one, so many planners may be woken at once. Only one plans: the
//! others find the advisory lock taken and return at once (waiting for it
//! held a database session each, and at 100 changes a second they took the
//! whole pool from the API). The holder keeps planning while the
//! generation is ahead, and after releasing the lock checks once more, so
//! a change whose planner gave way is never left unplanned. A planner that
//! finds the generation already planned only checks that Redis holds the
//! current route table (rebuilding it from Postgres when Redis lost it).
//!
//! A sweep (message payload `sweep`) always evaluates once, even when the
//! generation says nothing changed: it is the backstop for a change whose
//! writer forgot to bump the generation, and evaluation is idempotent. A
//! sweep that finds the lock taken bumps the generation, so the holder's
//! re-check runs a round that starts after the sweep was asked for.

mod apply;
mod convert;
mod publish;

use anyhow::{Context, Result};
use fado_model::locks;
use fado_store::Db;
use spin_sdk::redis_component;
use spin_sdk::variables;

/// Pause between back-to-back rounds while the catalog keeps changing. A
/// round re-plans every bucket (tens of ms at 100 buckets, ~0.4 s at
/// 10,000), so planning each of 100 changes a second took the cores from
/// the API and the router; route overrides do not wait for it (they are
/// published by the catalog at once, see the catalog's `express`). The
/// planner keeps the lock through the pause, so wake-ups meanwhile return
/// at once and leave their change to the next round.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(50);

/// The payload of periodic sweeps (see `[application.tool.fado]` in spin.toml).
const SWEEP: &[u8] = b"sweep";

#[redis_component]
fn on_message(message: bytes::Bytes) -> Result<()> {
    let pg = variables::get("pg_address").context("variable pg_address")?;
    let redis = variables::get("redis_address").context("variable redis_address")?;
    let db = Db::open(&pg)?;
    fado_store::ensure_schema(&db)?;
    let mut sweep = message.as_ref() == SWEEP;
    loop {
        if !fado_store::try_lock(&db, locks::PLANNER)? {
            if sweep {
                // The holder's round may have read the catalog before
                // this sweep was asked for, and it only re-checks the
                // generation. Bumping it first makes the holder (or this
                // planner, if the lock is free by now) run one more round.
                db.bump_generation()?;
                sweep = false;
                continue;
            }
            // The holder plans this change: it checks the generation again
            // after it lets go of the lock.
            return Ok(());
        }
        let result = rounds(&db, &redis, sweep);
        let _ = fado_store::unlock(&db, locks::PLANNER);
        if let Err(e) = &result {
            eprintln!("planner: {e:#}");
            return result;
        }
        // A change committed after the last check whose wake-up found the
        // lock taken.
        if caught_up(&db)? {
            return Ok(());
        }
        sweep = false;
    }
}

/// Rounds, [`COALESCE`] apart, until one has planned the newest generation.
fn rounds(db: &Db, redis: &str, mut sweep: bool) -> Result<()> {
    loop {
        run(db, redis, sweep)?;
        if caught_up(db)? {
            return Ok(());
        }
        sweep = false;
        std::thread::sleep(COALESCE);
    }
}

/// A round reads the whole catalog at REPEATABLE READ; a catalog write that
/// commits meanwhile to a row the round also writes (a bucket's shortfall,
/// a replica) makes the round fail with a serialization error. Re-reading
/// is the cure, and the next round sees the newer catalog.
fn plan_with_retries(db: &Db) -> Result<apply::Outcome> {
    let mut attempt = 0;
    loop {
        match apply::plan_and_write(db) {
            Err(e)
                if attempt < 5
                    && e.downcast_ref::<fado_store::StoreError>()
                        .is_some_and(|e| e.is(fado_store::sqlstate::SERIALIZATION_FAILURE)) =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Whether the newest catalog generation has been planned.
fn caught_up(db: &Db) -> Result<bool> {
    let s = state(db)?;
    Ok(s.planned_generation >= s.catalog_generation)
}

fn state(db: &Db) -> Result<fado_store::planner::Progress> {
    Ok(fado_store::planner::progress(db)?)
}

/// One round when the catalog is ahead of what was planned (or for a
/// sweep); otherwise only checks that Redis holds the current table.
fn run(db: &Db, redis: &str, sweep: bool) -> Result<()> {
    let s = state(db)?;
    if s.planned_generation >= s.catalog_generation && !sweep {
        return publish::ensure_published(db, redis, s.routes_version, s.planned_generation)
            .and_then(|()| publish::reconcile_express(db, redis, None, s.planned_generation));
    }
    let outcome = plan_with_retries(db)?;
    let published = match &outcome.table {
        Some(table) => publish::publish(redis, table, outcome.generation),
        // Unchanged, but Redis may have lost it (a sweep after a restart).
        None => publish::ensure_published(db, redis, outcome.routes_version, outcome.generation),
    }
    .and_then(|()| {
        publish::reconcile_express(db, redis, outcome.table.as_ref(), outcome.generation)
    });
    if let Err(e) = published {
        // Postgres has the table; the next sweep republishes it.
        eprintln!("planner: publishing routes to Redis failed: {e:#}");
    }
    if outcome.queued_jobs > 0 {
        publish::wake_replicator(redis);
    }
    Ok(())
}
