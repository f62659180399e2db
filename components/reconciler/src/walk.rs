//! One reconcile run: master buckets in turn, a page of keys at a time,
//! within the run's key budget.
//!
//! A bucket's walk spans runs: `buckets.reconcile_after` is the key the next
//! page starts after, and `reconciled_at` when a walk last ended. Buckets are
//! visited in that order (the least recently reconciled first, which keeps a
//! walk under way at the front until it ends), so every bucket gets its turn.

use anyhow::Result;
use fado_s3::{Endpoint, Page};
use fado_store::Db;
use fado_store::secrets::SecretError;

use crate::Config;
use crate::page;

/// S3 lists at most this many keys per request.
const PAGE_MAX: u64 = 1000;

/// What a run did, for its log line.
#[derive(Debug, Default)]
pub struct Totals {
    pub buckets: u64,
    pub keys: u64,
    pub changes: u64,
    pub jobs: u64,
}

/// A master bucket and how to reach its storage.
pub struct Bucket {
    pub id: i64,
    pub name: String,
    /// Its master's endpoint; a secret that cannot be decrypted fails this
    /// bucket's visit, not the sweep.
    endpoint: Result<Endpoint, SecretError>,
}

impl Bucket {
    fn endpoint(&self) -> Result<Endpoint> {
        Ok(self.endpoint.clone()?)
    }
}

/// Visits each master bucket whose storage is not known to be unhealthy at
/// most once, until the key budget is spent.
pub fn run(db: &Db, cfg: &Config) -> Result<Totals> {
    let mut totals = Totals::default();
    let mut budget = cfg.keys_per_sweep;
    for bucket in buckets(db, budget, &cfg.encryption_key)? {
        if budget == 0 {
            break;
        }
        totals.buckets += 1;
        let walked = fado_s3::block_on(walk(db, cfg, &bucket, &mut budget, &mut totals));
        if let Err(e) = walked {
            // One failing bucket must not stop the sweep. Its place in line
            // is kept, so the next run tries it again first.
            eprintln!("reconciler: bucket {}: {e:#}", bucket.name);
            budget = budget.saturating_sub(1);
        }
    }
    Ok(totals)
}

/// Master buckets in walk order. Every visit costs at least one listing,
/// charged to the budget, so `budget` also bounds the visits.
fn buckets(db: &Db, budget: u64, encryption_key: &str) -> Result<Vec<Bucket>> {
    let limit = i64::try_from(budget).unwrap_or(i64::MAX);
    Ok(
        fado_store::reconcile::walk_order(db, limit, encryption_key)?
            .into_iter()
            .map(|b| Bucket {
                id: b.id,
                name: b.name,
                endpoint: b.endpoint.map(Endpoint::from),
            })
            .collect(),
    )
}

/// Walks `bucket` from its cursor, page by page, until the walk ends or the
/// budget is spent.
async fn walk(
    db: &Db,
    cfg: &Config,
    bucket: &Bucket,
    budget: &mut u64,
    totals: &mut Totals,
) -> Result<()> {
    let client = bucket.endpoint()?.client();
    while *budget > 0 {
        let Some(cursor) = page::cursor(db, bucket.id)? else {
            return Ok(()); // deleted meanwhile
        };
        let max = (*budget).min(PAGE_MAX) as i32;
        let Some(listed) = fado_s3::list_page(&client, &bucket.name, &cursor.after, max).await?
        else {
            // Not created on its storage yet (its create_bucket job is
            // pending): to the back of the line, so it holds up no one.
            page::set_aside(db, bucket.id)?;
            *budget -= 1;
            return Ok(());
        };
        let Page { entries, complete } = listed;
        *budget = budget.saturating_sub(entries.len().max(1) as u64);
        totals.keys += entries.len() as u64;
        let done = page::record(db, cfg, bucket, &cursor, &entries, complete)?;
        totals.changes += done.changes;
        totals.jobs += done.jobs;
        if complete {
            return Ok(());
        }
    }
    Ok(())
}
