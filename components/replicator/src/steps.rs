//! One replication step per job kind. Each is idempotent: running it again
//! after a crash, or twice, ends in the same state.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use fado_model::JobKind;
use fado_model::ReplicaState;
use fado_s3::{Copier, Endpoint};
use fado_store::Db;
use fado_store::replicas::{self, ObjectPair};
use fado_sync::Entry;
use futures::StreamExt;

use crate::Config;
use crate::ledger::{self, Job};

/// What a step changed beyond its own job.
#[derive(Debug, Default)]
pub struct Effect {
    /// The catalog changed in a way placement or routes depend on (a
    /// replica became ready or went away): the planner must run.
    pub catalog_changed: bool,
    /// Object bytes written to the destination.
    pub bytes: u64,
}

pub async fn run(db: &Db, cfg: &Config, job: &Job, owner: &str, pairs: &Pairs) -> Result<Effect> {
    let storage_id = job
        .storage_id
        .with_context(|| format!("job {} names no storage deployment", job.id))?;
    match job.kind {
        JobKind::CreateBucket => {
            let target = endpoint(db, cfg, storage_id)?;
            fado_s3::ensure_bucket(&target.client(), &job.bucket).await?;
            Ok(Effect::default())
        }
        JobKind::CreateReplica | JobKind::SyncReplica => {
            sync_replica(db, cfg, job, owner, storage_id).await
        }
        JobKind::DeleteReplica => delete_replica(db, cfg, job, storage_id).await,
        JobKind::DeleteBucket => {
            if replicas::bucket_lives_on(db, &job.bucket, storage_id)? {
                // A bucket of the same name was created again and lives
                // here: the old bucket's removal must not touch it.
                return Ok(Effect::default());
            }
            let target = endpoint(db, cfg, storage_id)?;
            fado_s3::remove_bucket(&target.client(), &job.bucket).await?;
            Ok(Effect::default())
        }
        JobKind::CopyObject | JobKind::DeleteObject => {
            let key = job
                .object_key
                .as_deref()
                .with_context(|| format!("job {} names no object", job.id))?;
            object_step(db, cfg, job, owner, pairs, storage_id, key).await
        }
    }
}

/// The S3 endpoint of a storage deployment, with its secret decrypted.
fn endpoint(db: &Db, cfg: &Config, storage_id: i64) -> Result<Endpoint> {
    fado_store::storage::endpoint(db, storage_id, &cfg.encryption_key)
        .context("reading a storage endpoint")?
        .map(Endpoint::from)
        .with_context(|| format!("storage deployment {storage_id} no longer exists"))
}

/// A bucket's master and one replica storage, with their clients.
struct Pair {
    master: Endpoint,
    master_client: fado_s3::Client,
    replica: Endpoint,
    replica_client: fado_s3::Client,
}

impl Pair {
    fn new(db: &Db, cfg: &Config, master_id: i64, replica_id: i64) -> Result<Self> {
        Ok(Self::of(
            endpoint(db, cfg, master_id)?,
            endpoint(db, cfg, replica_id)?,
        ))
    }

    fn of(master: Endpoint, replica: Endpoint) -> Self {
        Self {
            master_client: master.client(),
            replica_client: replica.client(),
            master,
            replica,
        }
    }

    fn copier<'a>(
        &'a self,
        bucket: &'a str,
        part_size: u64,
        on_part: &'a dyn Fn() -> Result<()>,
    ) -> Copier<'a> {
        Copier {
            source: &self.master,
            source_client: &self.master_client,
            dest: &self.replica,
            dest_client: &self.replica_client,
            bucket,
            part_size,
            on_part: Some(on_part),
        }
    }
}

/// Copies a full sync runs at the same time.
const COPIES_AT_ONCE: usize = 8;

/// Runs `f` at most every few seconds (lease renewals cost a database round
/// trip; the lease lasts a minute).
fn throttled(f: impl Fn() -> Result<()>) -> impl Fn() -> Result<()> {
    let last = std::cell::Cell::new(std::time::Instant::now());
    move || {
        if last.get().elapsed() < std::time::Duration::from_secs(5) {
            return Ok(());
        }
        last.set(std::time::Instant::now());
        f()
    }
}

/// Renews the job's lease during a long copy; fails once another replicator
/// has taken the job over, so two never write the same object.
fn keep_lease(db: &Db, job: &Job, owner: &str) -> Result<()> {
    if !ledger::renew(db, job, owner)? {
        bail!("the job's lease was lost while copying; another replicator took it over");
    }
    Ok(())
}

/// Creates the replica bucket if needed and makes it equal to the master
/// (copy what is missing or different, delete what the master lacks), then
/// marks the replica `ready`, which lets the planner route to it.
async fn sync_replica(
    db: &Db,
    cfg: &Config,
    job: &Job,
    owner: &str,
    storage_id: i64,
) -> Result<Effect> {
    let Some((bucket_id, master_id)) = replicas::bucket(db, &job.bucket)? else {
        return Ok(Effect::default()); // the bucket is gone: nothing to sync
    };
    match replicas::state(db, bucket_id, storage_id)? {
        None | Some(ReplicaState::Deleting) => return Ok(Effect::default()), // no longer wanted
        _ => {}
    }
    replicas::start_sync(db, bucket_id, storage_id)?;
    let pair = Pair::new(db, cfg, master_id, storage_id)?;
    let (master_client, replica_client) = (&pair.master_client, &pair.replica_client);
    fado_s3::ensure_bucket(replica_client, &job.bucket).await?;

    let Some(source) = fado_s3::list(master_client, &job.bucket).await? else {
        bail!(
            "the master bucket does not exist yet on its storage (its create_bucket job may still be pending)"
        );
    };
    let current = fado_s3::list(replica_client, &job.bucket)
        .await?
        .unwrap_or_default();
    let diff = fado_sync::diff(&source, &current);
    let mut to_copy: Vec<Entry> = diff.copy;
    for e in diff.check {
        let recorded = fado_s3::recorded_source_etag(replica_client, &job.bucket, &e.key).await?;
        if recorded.as_deref() != Some(e.etag.as_str()) {
            to_copy.push(e);
        }
    }
    let renew = throttled(|| keep_lease(db, job, owner));
    let copier = pair.copier(&job.bucket, cfg.part_size, &renew);
    // Several copies at once: small objects are dominated by round trips.
    // Memory stays bounded by COPIES_AT_ONCE parts.
    let mut copies = futures::stream::iter(to_copy.iter().map(|e| copier.copy(e)))
        .buffer_unordered(COPIES_AT_ONCE);
    let mut bytes = 0;
    while let Some(copied) = copies.next().await {
        if let Some(c) = copied? {
            bytes += c.bytes;
        }
        renew()?;
    }
    drop(copies);
    fado_s3::delete_keys(replica_client, &job.bucket, &diff.delete).await?;

    let changed = replicas::mark_synced(db, bucket_id, storage_id)?;
    Ok(Effect {
        catalog_changed: changed,
        bytes,
    })
}

/// Removes the replica bucket (every object, then the bucket) and the
/// replica's row.
async fn delete_replica(db: &Db, cfg: &Config, job: &Job, storage_id: i64) -> Result<Effect> {
    let bucket = replicas::bucket(db, &job.bucket)?;
    if let Some((bucket_id, _)) = bucket
        && replicas::state(db, bucket_id, storage_id)? != Some(ReplicaState::Deleting)
    {
        return Ok(Effect::default()); // wanted again: the planner changed its mind
    }
    let target = endpoint(db, cfg, storage_id)?;
    fado_s3::remove_bucket(&target.client(), &job.bucket).await?;
    let Some((bucket_id, _)) = bucket else {
        return Ok(Effect::default());
    };
    let changed = replicas::forget_deleted(db, bucket_id, storage_id)?;
    Ok(Effect {
        catalog_changed: changed,
        bytes: 0,
    })
}

/// Brings one object of a replica in line with the master: copies it when
/// the master has it, deletes it when the master does not.
async fn object_step(
    db: &Db,
    cfg: &Config,
    job: &Job,
    owner: &str,
    pairs: &Pairs,
    storage_id: i64,
    key: &str,
) -> Result<Effect> {
    let Some(pair) = pairs.get(db, cfg, &job.bucket, storage_id)? else {
        return Ok(Effect::default()); // the bucket is gone, or not kept there
    };
    let renew = || keep_lease(db, job, owner);
    let copier = pair.copier(&job.bucket, cfg.part_size, &renew);
    let recorded = job.object_size.and_then(|s| u64::try_from(s).ok());
    let entry = match recorded {
        // A small copy goes straight to GET and PUT: checking first would
        // cost as much as copying again. Whatever the job's kind, the master
        // decides: a copy of an object it no longer has becomes a delete.
        Some(size) if job.kind == JobKind::CopyObject && size <= fado_s3::SMALL_COPY => Entry {
            key: key.to_string(),
            size,
            etag: String::new(),
        },
        _ => {
            let Some(source) = fado_s3::head(&pair.master_client, &job.bucket, key).await? else {
                fado_s3::delete_keys(&pair.replica_client, &job.bucket, &[key.to_string()]).await?;
                return Ok(Effect::default());
            };
            if let Some(copy) = fado_s3::head(&pair.replica_client, &job.bucket, key).await?
                && copy.master_etag() == source.etag
                && copy.size == source.size
            {
                return Ok(Effect::default()); // already there (an earlier attempt, or a sync)
            }
            Entry {
                key: key.to_string(),
                size: source.size,
                etag: source.etag,
            }
        }
    };
    match copier.copy(&entry).await? {
        Some(c) => Ok(Effect {
            catalog_changed: false,
            bytes: c.bytes,
        }),
        None => {
            fado_s3::delete_keys(&pair.replica_client, &job.bucket, &[key.to_string()]).await?;
            Ok(Effect::default())
        }
    }
}

/// The storage pairs of a batch's object steps, looked up once per bucket
/// and replica: a batch is usually many objects of one bucket.
#[derive(Default)]
pub struct Pairs(RefCell<HashMap<ReplicaOf, Option<Rc<Pair>>>>);

/// A bucket's name and a storage deployment holding a copy of it.
type ReplicaOf = (String, i64);

impl Pairs {
    fn get(
        &self,
        db: &Db,
        cfg: &Config,
        bucket: &str,
        storage_id: i64,
    ) -> Result<Option<Rc<Pair>>> {
        let key = (bucket.to_string(), storage_id);
        if let Some(p) = self.0.borrow().get(&key) {
            return Ok(p.clone());
        }
        let pair = object_pair(db, cfg, bucket, storage_id)?.map(Rc::new);
        self.0.borrow_mut().insert(key, pair.clone());
        Ok(pair)
    }
}

/// The master and replica storage of an object step, in one query: `None`
/// when the bucket is gone or no longer lives on `storage_id`.
fn object_pair(db: &Db, cfg: &Config, bucket: &str, storage_id: i64) -> Result<Option<Pair>> {
    match replicas::object_pair(db, bucket, storage_id, &cfg.encryption_key)
        .context("reading a storage endpoint")?
    {
        ObjectPair::Moot => Ok(None),
        ObjectPair::StorageGone => bail!("storage deployment {storage_id} no longer exists"),
        ObjectPair::Pair { master, target } => Ok(Some(Pair::of(master.into(), target.into()))),
    }
}
