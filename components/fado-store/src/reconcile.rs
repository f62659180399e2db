//! What the reconcile sweep keeps in the database: which master buckets
//! to walk next (`buckets.reconciled_at`), where a bucket's walk goes on
//! (`buckets.reconcile_after`), and the catalog's objects to compare a
//! listed page with.

use crate::secrets::SecretError;
use crate::storage::{StoredEndpoint, endpoint_or_secret_error, select_list};
use crate::{Db, Param, Result, opt_text};

/// A master bucket to walk, with its storage.
pub struct WalkBucket {
    pub id: i64,
    pub name: String,
    /// Its master's endpoint, or why its secret could not be read (which
    /// stops this bucket's walk, not the sweep).
    pub endpoint: std::result::Result<StoredEndpoint, SecretError>,
}

/// Up to `limit` buckets whose master storage is not known to be down, the
/// least recently reconciled first (which keeps a walk under way at the
/// front until it ends).
pub fn walk_order(db: &Db, limit: i64, encryption_key: &str) -> Result<Vec<WalkBucket>> {
    let rows = db.query(
        &format!(
            "SELECT b.id, b.name, {}
             FROM buckets b JOIN storage_deployments s ON s.id = b.master_storage_id
             WHERE s.health <> 'unhealthy'
             ORDER BY b.reconciled_at NULLS FIRST, b.id
             LIMIT $1",
            select_list("s", "")
        ),
        &[Param::Int64(limit)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(WalkBucket {
                id: r.i64("id")?,
                name: r.str("name")?,
                endpoint: endpoint_or_secret_error(&r, "", encryption_key)?,
            })
        })
        .collect()
}

/// Where a bucket's next page starts.
pub struct Cursor {
    /// The key the page lists after (`""`: from the start).
    pub after: String,
    /// The database's clock before the page was listed: catalog rows
    /// written since are newer than the listing.
    pub started: String,
}

/// Bucket `id`'s cursor; `None` when the bucket is gone.
pub fn cursor(db: &Db, id: i64) -> Result<Option<Cursor>> {
    let rows = db.query(
        "SELECT reconcile_after, now() AS started FROM buckets WHERE id = $1",
        &[Param::Int64(id)],
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

/// Sends bucket `id` to the back of the walk order.
pub fn set_aside(db: &Db, id: i64) -> Result<()> {
    db.execute(
        "UPDATE buckets SET reconciled_at = now() WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

/// Bucket `id`'s walk goes on after `key`.
pub fn advance(db: &Db, id: i64, key: &str) -> Result<()> {
    db.execute(
        "UPDATE buckets SET reconcile_after = $2 WHERE id = $1",
        &[Param::Int64(id), Param::Str(key.into())],
    )?;
    Ok(())
}

/// Bucket `id`'s walk ended: the next starts from the first key, after
/// the other buckets had their turn.
pub fn finish(db: &Db, id: i64) -> Result<()> {
    db.execute(
        "UPDATE buckets SET reconcile_after = '', reconciled_at = now() WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

/// One of the catalog's objects, as a page compares it.
pub struct CatalogObject {
    pub key: String,
    pub size: i64,
    pub etag: String,
    /// Written after the page's listing began.
    pub newer: bool,
}

/// Up to `limit` of bucket `id`'s objects after `cursor.after` (and up to
/// `upto`, when given), in key order.
pub fn objects(
    db: &Db,
    id: i64,
    cursor: &Cursor,
    upto: Option<&str>,
    limit: i64,
) -> Result<Vec<CatalogObject>> {
    let rows = db.query(
        "SELECT key, size, etag, updated_at >= $4::text::timestamptz AS newer
         FROM objects
         WHERE bucket_id = $1 AND key > $2 AND ($3::text IS NULL OR key <= $3::text)
         ORDER BY key
         LIMIT $5",
        &[
            Param::Int64(id),
            Param::Str(cursor.after.clone()),
            opt_text(upto),
            Param::Str(cursor.started.clone()),
            Param::Int64(limit),
        ],
    )?;
    rows.iter()
        .map(|r| {
            Ok(CatalogObject {
                key: r.str("key")?,
                size: r.i64("size")?,
                etag: r.str("etag")?,
                newer: r.bool("newer")?,
            })
        })
        .collect()
}
