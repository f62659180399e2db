//! The planner component: FaDO's policy loop.
//!
//! Woken by a Redis message (after each catalog change, and by the periodic
//! sweep), it takes the planner advisory lock, and while the catalog's
//! generation is ahead of what it last planned:
//!
//! 1. loads the catalog snapshot and evaluates placement (`fado-placement`),
//! 2. in one REPEATABLE READ transaction writes the desired replica rows, the
//!    jobs that reach them, each bucket's shortfall, and the new route table,
//! 3. publishes the route table to Redis as a new version, swapped
//!    atomically, and wakes the replicator when it queued work.
//!
//! Every replica of the app receives each message, so several planners may
//! be woken at once: the advisory lock serialises them, and a planner that
//! finds the generation already planned only checks that Redis holds the
//! current route table (rebuilding it from Postgres when Redis lost it).
//!
//! A sweep (message payload `sweep`) always evaluates once, even when the
//! generation says nothing changed: it is the backstop for a change whose
//! writer forgot to bump the generation, and evaluation is idempotent.

mod apply;
mod convert;
mod publish;

use anyhow::{Context, Result};
use fado_store::{Db, Param};
use spin_sdk::redis_component;
use spin_sdk::variables;

/// Session advisory lock serialising planners ("FADOPLAN").
const PLANNER_LOCK: i64 = 0x4641_444F_504C_414E;

/// Re-plans at most this many times per wake-up when the catalog keeps changing.
const MAX_ROUNDS: usize = 3;

/// The payload of periodic sweeps (see `[application.tool.fado]` in spin.toml).
const SWEEP: &[u8] = b"sweep";

#[redis_component]
fn on_message(message: bytes::Bytes) -> Result<()> {
    let pg = variables::get("pg_address").context("variable pg_address")?;
    let redis = variables::get("redis_address").context("variable redis_address")?;
    let db = Db::open(&pg)?;
    fado_store::ensure_schema(&db)?;
    db.execute("SELECT pg_advisory_lock($1)", &[Param::Int64(PLANNER_LOCK)])?;
    let result = run(&db, &redis, message.as_ref() == SWEEP);
    let _ = db.execute(
        "SELECT pg_advisory_unlock($1)",
        &[Param::Int64(PLANNER_LOCK)],
    );
    if let Err(e) = &result {
        eprintln!("planner: {e:#}");
    }
    result
}

/// A round reads the whole catalog at REPEATABLE READ; a catalog write that
/// commits meanwhile makes its writes fail with a serialization error.
/// Re-reading is the cure, and the next round sees the newer catalog.
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

struct PlannerState {
    catalog_generation: i64,
    planned_generation: i64,
    routes_version: i64,
}

fn state(db: &Db) -> Result<PlannerState> {
    let rows = db.query(
        "SELECT catalog_generation, planned_generation, routes_version FROM planner_state",
        &[],
    )?;
    let r = rows.one()?;
    Ok(PlannerState {
        catalog_generation: r.i64("catalog_generation")?,
        planned_generation: r.i64("planned_generation")?,
        routes_version: r.i64("routes_version")?,
    })
}

fn run(db: &Db, redis: &str, sweep: bool) -> Result<()> {
    for round in 0..MAX_ROUNDS {
        let s = state(db)?;
        if s.planned_generation >= s.catalog_generation && !(sweep && round == 0) {
            publish::ensure_published(db, redis, s.routes_version, s.planned_generation)?;
            return Ok(());
        }
        let outcome = plan_with_retries(db)?;
        let published = match &outcome.table {
            Some(table) => publish::publish(redis, table, outcome.generation),
            None => publish::advance(redis, outcome.routes_version, outcome.generation),
        };
        if let Err(e) = published {
            // Postgres has the table; the next sweep republishes it.
            eprintln!("planner: publishing routes to Redis failed: {e:#}");
        }
        if outcome.queued_jobs > 0 {
            publish::wake_replicator(redis);
        }
    }
    Ok(())
}
