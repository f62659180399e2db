//! Table `replicas` as replication moves it: a replica's state, its sync,
//! and what an object step needs to know about where a bucket lives. A
//! change of a replica's state changes routes, so it bumps the catalog
//! generation in the same transaction.

use fado_model::ReplicaState;

use crate::storage::{EndpointError, StoredEndpoint, endpoint_in, select_list};
use crate::{Db, Param, Result};

/// Bucket `name`'s id and master storage, if the bucket exists.
pub fn bucket(db: &Db, name: &str) -> Result<Option<(i64, i64)>> {
    let rows = db.query(
        "SELECT id, master_storage_id FROM buckets WHERE name = $1",
        &[Param::Str(name.into())],
    )?;
    rows.first()
        .map(|r| Ok((r.i64("id")?, r.i64("master_storage_id")?)))
        .transpose()
}

/// Whether bucket `name` lives on `storage_id`: its master copy, or a
/// replica that is not being deleted.
pub fn bucket_lives_on(db: &Db, name: &str, storage_id: i64) -> Result<bool> {
    let rows = db.query(
        "SELECT 1 AS x FROM buckets b WHERE b.name = $1 AND (b.master_storage_id = $2
             OR EXISTS (SELECT 1 FROM replicas r WHERE r.bucket_id = b.id AND r.storage_id = $2 AND r.state <> 'deleting'))",
        &[Param::Str(name.into()), Param::Int64(storage_id)],
    )?;
    Ok(!rows.is_empty())
}

pub fn state(db: &Db, bucket_id: i64, storage_id: i64) -> Result<Option<ReplicaState>> {
    let rows = db.query(
        "SELECT state FROM replicas WHERE bucket_id = $1 AND storage_id = $2",
        &[Param::Int64(bucket_id), Param::Int64(storage_id)],
    )?;
    rows.first()
        .map(|r| r.parse("state", ReplicaState::parse))
        .transpose()
}

/// Marks a pending or failed replica as syncing.
pub fn start_sync(db: &Db, bucket_id: i64, storage_id: i64) -> Result<()> {
    db.execute(
        "UPDATE replicas SET state = 'syncing', updated_at = now()
         WHERE bucket_id = $1 AND storage_id = $2 AND state IN ('pending', 'failed')",
        &[Param::Int64(bucket_id), Param::Int64(storage_id)],
    )?;
    Ok(())
}

/// Runs `sql` (a change of one replica row, `$1` bucket and `$2` storage)
/// in a transaction that bumps the catalog generation when it changed the
/// row; returns whether it did.
fn change(db: &Db, sql: &str, bucket_id: i64, storage_id: i64) -> Result<bool> {
    db.transaction(|tx| {
        let n = tx.execute(sql, &[Param::Int64(bucket_id), Param::Int64(storage_id)])?;
        if n > 0 {
            tx.bump_generation()?;
        }
        Ok(n > 0)
    })
}

/// Marks a replica that is not being deleted ready, just synced.
pub fn mark_synced(db: &Db, bucket_id: i64, storage_id: i64) -> Result<bool> {
    change(
        db,
        "UPDATE replicas SET state = 'ready', last_sync_at = now(), last_error = NULL, updated_at = now()
         WHERE bucket_id = $1 AND storage_id = $2 AND state IN ('pending', 'syncing', 'failed', 'ready')",
        bucket_id,
        storage_id,
    )
}

/// Drops a replica that was being deleted, once its storage is empty.
pub fn forget_deleted(db: &Db, bucket_id: i64, storage_id: i64) -> Result<bool> {
    change(
        db,
        "DELETE FROM replicas WHERE bucket_id = $1 AND storage_id = $2 AND state = 'deleting'",
        bucket_id,
        storage_id,
    )
}

/// Where an object step on bucket `bucket` and storage `storage_id` reads
/// and writes.
pub enum ObjectPair {
    /// The bucket is gone, or no longer lives on the storage.
    Moot,
    /// The storage deployment was deleted.
    StorageGone,
    Pair {
        master: StoredEndpoint,
        target: StoredEndpoint,
    },
}

/// The master and target storage of an object step, in one query.
pub fn object_pair(
    db: &Db,
    bucket: &str,
    storage_id: i64,
    encryption_key: &str,
) -> Result<ObjectPair, EndpointError> {
    let rows = db.query(
        &format!(
            "SELECT b.master_storage_id = $2 OR EXISTS (SELECT 1 FROM replicas r WHERE r.bucket_id = b.id
                        AND r.storage_id = $2 AND r.state <> 'deleting') AS lives_there,
                    {}, {}
             FROM buckets b JOIN storage_deployments m ON m.id = b.master_storage_id
             LEFT JOIN storage_deployments d ON d.id = $2
             WHERE b.name = $1",
            select_list("m", ""),
            select_list("d", "d_"),
        ),
        &[Param::Str(bucket.into()), Param::Int64(storage_id)],
    )?;
    let Some(r) = rows.first() else {
        return Ok(ObjectPair::Moot);
    };
    if !r.bool("lives_there")? {
        return Ok(ObjectPair::Moot);
    }
    if r.opt_str("d_endpoint")?.is_none() {
        return Ok(ObjectPair::StorageGone);
    }
    Ok(ObjectPair::Pair {
        master: endpoint_in(&r, "", encryption_key)?,
        target: endpoint_in(&r, "d_", encryption_key)?,
    })
}
