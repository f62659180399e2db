//! The objects catalog and the replication jobs that follow a change.
//!
//! Every path by which an object of a master bucket changes (the object
//! API, storage event notifications, reconcile sweeps) records it here, in
//! the same way: the `objects` row is upserted or deleted, and a
//! `copy_object`/`delete_object` job is queued for every replica that has
//! started its first sync. A replica still `pending` needs none: its full
//! sync marks it `syncing` before listing the master, so it sees the change.

use crate::{Db, Param, Result, text_array};

/// One change to one object of a master bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The object was written: its size, ETag (unquoted) and content type.
    Put {
        key: String,
        size: i64,
        etag: String,
        content_type: Option<String>,
    },
    /// The object was deleted.
    Delete { key: String },
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Change::Put { key, .. } | Change::Delete { key } => key,
        }
    }
}

/// What [`record`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Jobs queued (or refreshed) for replicas.
    pub jobs: u64,
}

/// Records `changes` to the objects of bucket `bucket_id` (named `bucket`):
/// catalog rows and replica jobs. Changes of one kind (writes, or deletes)
/// are one statement, so a single change needs no transaction around it;
/// a batch of both kinds does. Wake the replicator after the commit when
/// [`Recorded::jobs`] is not zero.
pub fn record(db: &Db, bucket_id: i64, bucket: &str, changes: &[Change]) -> Result<Recorded> {
    // The last change of a key wins when a batch names it twice.
    let mut last: std::collections::HashMap<&str, &Change> = Default::default();
    for c in changes {
        last.insert(c.key(), c);
    }
    let (mut put_keys, mut sizes, mut etags, mut types) = (vec![], vec![], vec![], vec![]);
    let mut deleted = vec![];
    for c in last.values() {
        match c {
            Change::Put {
                key,
                size,
                etag,
                content_type,
            } => {
                put_keys.push(key.clone());
                sizes.push(Some(*size));
                etags.push(etag.clone());
                types.push(content_type.clone());
            }
            Change::Delete { key } => deleted.push(key.clone()),
        }
    }
    let mut jobs = 0;
    // One statement per kind of change: the catalog rows and the jobs
    // change together even outside a transaction, in one round trip.
    if !put_keys.is_empty() {
        jobs += db.execute(
            &format!(
                "WITH u AS (SELECT * FROM unnest($4::text[], $5::bigint[], $6::text[], $7::text[]) AS u(k, s, e, t)),
                 changed AS (
                     INSERT INTO objects (bucket_id, key, size, etag, content_type)
                     SELECT $3, k, s, e, t FROM u
                     ON CONFLICT (bucket_id, key) DO UPDATE SET size = EXCLUDED.size, etag = EXCLUDED.etag,
                         content_type = EXCLUDED.content_type, updated_at = now()
                     WHERE (objects.size, objects.etag, objects.content_type) IS DISTINCT FROM
                           (EXCLUDED.size, EXCLUDED.etag, EXCLUDED.content_type))
                 {QUEUE_JOBS}"
            ),
            &[
                Param::Str("copy_object".into()),
                Param::Str(bucket.into()),
                Param::Int64(bucket_id),
                text_array(&put_keys),
                Param::ArrayInt64(sizes),
                text_array(&etags),
                Param::ArrayStr(types),
            ],
        )?;
    }
    if !deleted.is_empty() {
        let none = vec![None; deleted.len()];
        jobs += db.execute(
            &format!(
                "WITH u AS (SELECT * FROM unnest($4::text[], $5::bigint[]) AS u(k, s)),
                 changed AS (DELETE FROM objects WHERE bucket_id = $3 AND key IN (SELECT k FROM u))
                 {QUEUE_JOBS}"
            ),
            &[
                Param::Str("delete_object".into()),
                Param::Str(bucket.into()),
                Param::Int64(bucket_id),
                text_array(&deleted),
                Param::ArrayInt64(none),
            ],
        )?;
    }
    Ok(Recorded { jobs })
}

/// Queues one `$1` job (kind) per key of `u` (`k`, size `s`) and replica of
/// bucket `$3` (named `$2`) that follows the master. A job already queued
/// for the same target is kept (its age is the age of the oldest change it
/// carries) with the newest size.
const QUEUE_JOBS: &str = "INSERT INTO jobs (kind, bucket_name, storage_id, object_key, object_size)
     SELECT $1, $2, r.storage_id, u.k, u.s
     FROM replicas r CROSS JOIN u
     WHERE r.bucket_id = $3 AND r.state NOT IN ('pending', 'deleting')
     ON CONFLICT (kind, bucket_name, coalesce(storage_id, 0), coalesce(object_key, ''))
         WHERE state = 'queued'
     DO UPDATE SET object_size = EXCLUDED.object_size, updated_at = now()";

/// Up to `limit` of bucket `bucket_id`'s objects after `after` whose keys
/// start with `prefix` (`%` and `_` in it are literal), in key order.
pub fn list(
    db: &Db,
    bucket_id: i64,
    after: &str,
    prefix: &str,
    limit: i64,
) -> Result<Vec<fado_model::ObjectInfo>> {
    let rows = db.query(
        "SELECT key, size, etag, content_type, updated_at FROM objects
         WHERE bucket_id = $1 AND key > $2 AND key LIKE $3 ORDER BY key LIMIT $4",
        &[
            Param::Int64(bucket_id),
            Param::Str(after.into()),
            // LIKE with a literal prefix: the "C" collation lets it use the index.
            Param::Str(format!("{}%", crate::like_escape(prefix))),
            Param::Int64(limit),
        ],
    )?;
    rows.iter()
        .map(|r| {
            Ok(fado_model::ObjectInfo {
                key: r.str("key")?,
                size: r.i64("size")?,
                etag: r.str("etag")?,
                content_type: r.opt_str("content_type")?,
                updated_at: r.time("updated_at")?,
            })
        })
        .collect()
}

/// Buckets among `names` whose master copy `storage_id` holds, as
/// `(id, name)`, share-locked until the transaction ends (so their master
/// and existence hold while their changes are recorded).
pub fn masters_among(db: &Db, names: &[String], storage_id: i64) -> Result<Vec<(i64, String)>> {
    let rows = db.query(
        "SELECT id, name FROM buckets WHERE name = ANY($1) AND master_storage_id = $2
         ORDER BY id FOR SHARE",
        &[text_array(names), Param::Int64(storage_id)],
    )?;
    rows.iter()
        .map(|r| Ok((r.i64("id")?, r.str("name")?)))
        .collect()
}

/// One copy of a bucket: the storage deployment holding it.
pub struct Copy {
    pub storage: String,
    pub endpoint: crate::storage::StoredEndpoint,
    pub health: fado_model::Health,
}

fn copy(r: &crate::Row<'_>, encryption_key: &str) -> Result<Copy, crate::storage::EndpointError> {
    Ok(Copy {
        storage: r.str("storage")?,
        endpoint: crate::storage::endpoint_in(r, "", encryption_key)?,
        health: r.parse("health", fado_model::Health::parse)?,
    })
}

/// A copy's columns, from storage deployment `s`.
fn copy_columns() -> String {
    format!(
        "s.name AS storage, {}, s.health",
        crate::storage::select_list("s", "")
    )
}

/// The bucket `segment` names (an id when all digits, else a name): its
/// id, name and master copy.
pub fn master(
    db: &Db,
    segment: &str,
    encryption_key: &str,
) -> Result<Option<(i64, String, Copy)>, crate::storage::EndpointError> {
    let by_id = segment.bytes().all(|b| b.is_ascii_digit());
    let rows = db.query(
        &format!(
            "SELECT b.id, b.name, {} FROM buckets b
             JOIN storage_deployments s ON s.id = b.master_storage_id
             WHERE {}",
            copy_columns(),
            if by_id {
                "b.id = $1::text::bigint"
            } else {
                "b.name = $1"
            }
        ),
        &[Param::Str(segment.into())],
    )?;
    rows.first()
        .map(|r| Ok((r.i64("id")?, r.str("name")?, copy(&r, encryption_key)?)))
        .transpose()
}

/// Bucket `bucket_id`'s ready replicas, in storage id order.
pub fn ready_replicas(
    db: &Db,
    bucket_id: i64,
    encryption_key: &str,
) -> Result<Vec<Copy>, crate::storage::EndpointError> {
    let rows = db.query(
        &format!(
            "SELECT {} FROM replicas r JOIN storage_deployments s ON s.id = r.storage_id
             WHERE r.bucket_id = $1 AND r.state = 'ready' ORDER BY r.storage_id",
            copy_columns()
        ),
        &[Param::Int64(bucket_id)],
    )?;
    rows.iter().map(|r| copy(&r, encryption_key)).collect()
}
