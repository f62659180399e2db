//! One page of a bucket's walk in the database: where it starts, and
//! recording what it found together with the walk's next cursor.

use anyhow::{Result, bail};
use fado_store::objects::Change;
use fado_store::{Db, buckets, reconcile};
use fado_sync::Entry;

use crate::Config;
use crate::walk::Bucket;

/// Catalog rows one page reads at most (beyond them, the page is shortened).
const CATALOG_ROWS: usize = 1000;

pub use fado_store::reconcile::{Cursor, cursor, set_aside};

/// What recording a page did.
#[derive(Debug, Default)]
pub struct Recorded {
    pub changes: u64,
    pub jobs: u64,
}

/// Compares a listed page with the catalog and, in one transaction, records
/// the changes (with their replica jobs) and moves the walk's cursor; when
/// the walk ends, also queues the resync of replicas that are due one.
pub fn record(
    db: &Db,
    cfg: &Config,
    bucket: &Bucket,
    cursor: &Cursor,
    listed: &[Entry],
    listing_complete: bool,
) -> Result<Recorded> {
    let upto = if listing_complete {
        None
    } else {
        listed.last().map(|e| e.key.clone())
    };
    db.transaction(|tx| -> Result<Recorded> {
        // Waits for, or sees, a concurrent deletion of the bucket.
        if !buckets::lock(tx, bucket.id)? {
            return Ok(Recorded::default());
        }
        let (catalog, newer) = catalog(tx, bucket.id, cursor, upto.as_deref())?;
        let catalog_complete = catalog.len() <= CATALOG_ROWS;
        let catalog = &catalog[..catalog.len().min(CATALOG_ROWS)];
        let Some(settled) =
            fado_sync::settle_page(listed, listing_complete, catalog, catalog_complete, &newer)
        else {
            bail!("the storage returned an empty page that claims more keys follow");
        };
        let changes: Vec<Change> = settled
            .diff
            .put
            .iter()
            .map(|e| Change::Put {
                key: e.key.clone(),
                size: i64::try_from(e.size).unwrap_or(i64::MAX),
                etag: e.etag.clone(),
                // A listing carries no content type; it was never known
                // for an object written straight to storage.
                content_type: None,
            })
            .chain(
                settled
                    .diff
                    .delete
                    .iter()
                    .map(|key| Change::Delete { key: key.clone() }),
            )
            .collect();
        let mut out = Recorded {
            changes: changes.len() as u64,
            jobs: 0,
        };
        if !changes.is_empty() {
            out.jobs += fado_store::objects::record(tx, bucket.id, &bucket.name, &changes)?.jobs;
        }
        match &settled.end {
            Some(end) => {
                reconcile::advance(tx, bucket.id, end)?;
            }
            None => {
                reconcile::finish(tx, bucket.id)?;
                out.jobs += queue_resyncs(tx, cfg, bucket)?;
            }
        }
        Ok(out)
    })
}

/// The catalog's rows after the cursor (up to `upto` when given), one more
/// than a page reads so a cut read shows, and the keys among them written
/// after the page's listing began.
fn catalog(
    tx: &Db,
    bucket_id: i64,
    cursor: &Cursor,
    upto: Option<&str>,
) -> Result<(Vec<Entry>, Vec<String>)> {
    let rows = reconcile::objects(tx, bucket_id, cursor, upto, CATALOG_ROWS as i64 + 1)?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut newer = Vec::new();
    for o in rows {
        if o.newer {
            newer.push(o.key.clone());
        }
        entries.push(Entry {
            key: o.key,
            size: u64::try_from(o.size).unwrap_or(0),
            etag: o.etag,
        });
    }
    Ok((entries, newer))
}

/// Replicas are read-only, but nothing stops a direct write to one: a
/// ready replica not fully synced for `replica_resync_seconds` gets a full
/// sync, which puts it back in line with the master.
fn queue_resyncs(tx: &Db, cfg: &Config, bucket: &Bucket) -> Result<u64> {
    Ok(fado_store::jobs::queue_resyncs(
        tx,
        bucket.id,
        &bucket.name,
        cfg.resync_seconds,
    )?)
}
