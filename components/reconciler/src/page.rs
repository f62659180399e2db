//! One page of a bucket's walk in the database: where it starts, and
//! recording what it found together with the walk's next cursor.

use anyhow::{Result, bail};
use fado_store::objects::Change;
use fado_store::{Db, Param};
use fado_sync::Entry;

use crate::Config;
use crate::walk::Bucket;

/// Catalog rows one page reads at most (beyond them, the page is shortened).
const CATALOG_ROWS: usize = 1000;

/// Where a page starts.
pub struct Cursor {
    /// The key the page lists after (`""`: from the start).
    pub after: String,
    /// The database's clock before the page was listed: catalog rows
    /// written since are newer than the listing.
    pub started: String,
}

pub fn cursor(db: &Db, bucket_id: i64) -> Result<Option<Cursor>> {
    let rows = db.query(
        "SELECT reconcile_after, now() AS started FROM buckets WHERE id = $1",
        &[Param::Int64(bucket_id)],
    )?;
    rows.first()
        .map(|r| {
            Ok(Cursor {
                after: r.str("reconcile_after")?,
                started: r.time("started")?,
            })
        })
        .transpose()
}

/// Sends a bucket whose walk cannot start to the back of the line.
pub fn set_aside(db: &Db, bucket_id: i64) -> Result<()> {
    db.execute(
        "UPDATE buckets SET reconciled_at = now() WHERE id = $1",
        &[Param::Int64(bucket_id)],
    )?;
    Ok(())
}

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
        let gone = tx
            .query(
                "SELECT 1 AS x FROM buckets WHERE id = $1 FOR UPDATE",
                &[Param::Int64(bucket.id)],
            )?
            .is_empty();
        if gone {
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
                tx.execute(
                    "UPDATE buckets SET reconcile_after = $2 WHERE id = $1",
                    &[Param::Int64(bucket.id), Param::Str(end.clone())],
                )?;
            }
            None => {
                tx.execute(
                    "UPDATE buckets SET reconcile_after = '', reconciled_at = now() WHERE id = $1",
                    &[Param::Int64(bucket.id)],
                )?;
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
    let rows = tx.query(
        "SELECT key, size, etag, updated_at >= $4::text::timestamptz AS newer
         FROM objects
         WHERE bucket_id = $1 AND key > $2 AND ($3::text IS NULL OR key <= $3::text)
         ORDER BY key
         LIMIT $5",
        &[
            Param::Int64(bucket_id),
            Param::Str(cursor.after.clone()),
            fado_store::opt_text(upto),
            Param::Str(cursor.started.clone()),
            Param::Int64(CATALOG_ROWS as i64 + 1),
        ],
    )?;
    let mut entries = Vec::with_capacity(rows.len());
    let mut newer = Vec::new();
    for r in rows.iter() {
        let key = r.str("key")?;
        if r.bool("newer")? {
            newer.push(key.clone());
        }
        entries.push(Entry {
            key,
            size: u64::try_from(r.i64("size")?).unwrap_or(0),
            etag: r.str("etag")?,
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
