//! Recording parsed events: one transaction for the whole notification, so
//! a failure leaves the catalog as it was and the storage's retry starts
//! clean.

use std::collections::BTreeMap;

use fado_store::Db;
use fado_store::objects::{self, Change};

use crate::error::ApiResult;
use crate::events::Event;

/// What a notification did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records recorded in the objects catalog.
    pub accepted: u64,
    /// Records of other event kinds, of buckets FaDO does not know, or of
    /// buckets this storage does not hold the master copy of.
    pub ignored: u64,
    /// Replica jobs queued.
    pub jobs: u64,
}

/// Records the changes `events` report from storage deployment `storage_id`.
pub fn apply(db: &Db, storage_id: i64, events: Vec<Event>) -> ApiResult<Outcome> {
    let mut out = Outcome::default();
    // Per bucket, in arrival order: the last change of a key wins.
    let mut by_bucket: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for e in events {
        match e {
            Event::Change { bucket, change } => by_bucket.entry(bucket).or_default().push(change),
            Event::Other => out.ignored += 1,
        }
    }
    if by_bucket.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = by_bucket.keys().cloned().collect();
    db.transaction(|tx| -> ApiResult<()> {
        // Replicas are read-only, so only the master's events count. FOR
        // SHARE holds each bucket's master (and existence) until the commit.
        for (id, name) in objects::masters_among(tx, &names, storage_id)? {
            let Some(changes) = by_bucket.remove(&name) else {
                continue;
            };
            out.accepted += changes.len() as u64;
            out.jobs += objects::record(tx, id, &name, &changes)?.jobs;
        }
        Ok(())
    })?;
    if !by_bucket.is_empty() {
        let skipped: usize = by_bucket.values().map(Vec::len).sum();
        out.ignored += skipped as u64;
        eprintln!(
            "notify: storage deployment {storage_id}: ignored {skipped} record(s) of buckets it holds no master copy of: {}",
            shorten(by_bucket.keys())
        );
    }
    Ok(out)
}

/// The first few names, for a log line.
fn shorten<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let total = names.len();
    let mut s = names.take(5).cloned().collect::<Vec<_>>().join(", ");
    if total > 5 {
        s.push_str(&format!(" and {} more", total - 5));
    }
    s
}
