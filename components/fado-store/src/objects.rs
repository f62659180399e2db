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
