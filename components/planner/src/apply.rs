//! One planning round: evaluate the snapshot and write its consequences in
//! one transaction. Writes are idempotent (upserts, `ON CONFLICT DO NOTHING`
//! for jobs), so a round that runs twice changes nothing the second time.

use anyhow::Result;
use fado_model::{BucketRoute, JobKind, ReplicaState, RouteTable, RouteTarget};
use fado_store::Db;
use fado_store::planner;
use fado_store::snapshot::{self, CatalogSnapshot};
use sha2::{Digest, Sha256};

use crate::convert;

/// How many route tables Postgres keeps (the newest is the router's fallback).
const KEEP_TABLES: i64 = 20;

pub struct Outcome {
    /// The table to publish, when it changed.
    pub table: Option<RouteTable>,
    /// The version of the newest table (published now or earlier).
    pub routes_version: i64,
    /// The catalog generation this round planned from.
    pub generation: i64,
    pub queued_jobs: usize,
}

pub fn plan_and_write(db: &Db) -> Result<Outcome> {
    db.snapshot_transaction(write)
}

fn write(db: &Db) -> Result<Outcome> {
    let progress = planner::progress(db)?;
    let generation = progress.catalog_generation;
    let routes_version = progress.routes_version;
    let routes_digest = progress.routes_digest;
    let mut snap = snapshot::load(db)?;
    let input = convert::snapshot(&snap);
    let plans = fado_placement::plan(&input);

    let mut create: (Vec<i64>, Vec<i64>, Vec<String>) = Default::default();
    let mut delete: (Vec<i64>, Vec<i64>, Vec<String>) = Default::default();
    let mut shortfall: (Vec<i64>, Vec<i32>, Vec<String>) = Default::default();
    for plan in &plans {
        let Some(bucket) = snap.buckets.iter_mut().find(|b| b.id == plan.bucket_id) else {
            continue;
        };
        let actions = convert::actions(bucket, plan);
        for storage in actions.create {
            create.0.push(bucket.id);
            create.1.push(storage);
            create.2.push(bucket.name.clone());
            match bucket.replicas.iter_mut().find(|(s, _)| *s == storage) {
                Some(r) => r.1 = ReplicaState::Pending,
                None => bucket.replicas.push((storage, ReplicaState::Pending)),
            }
        }
        for storage in actions.delete {
            delete.0.push(bucket.id);
            delete.1.push(storage);
            delete.2.push(bucket.name.clone());
            if let Some(r) = bucket.replicas.iter_mut().find(|(s, _)| *s == storage) {
                r.1 = ReplicaState::Deleting;
            }
        }
        let notes = plan.notes.join("\n");
        if bucket.replica_shortfall != i64::from(plan.shortfall)
            || bucket.plan_notes.join("\n") != notes
        {
            shortfall.0.push(bucket.id);
            shortfall.1.push(plan.shortfall as i32);
            shortfall.2.push(notes);
        }
    }

    if !create.0.is_empty() {
        planner::replicas_pending(db, &create.0, &create.1)?;
        cancel(db, &create.2, &create.1, JobKind::DeleteReplica)?;
        enqueue(db, JobKind::CreateReplica, &create.2, &create.1)?;
    }
    if !delete.0.is_empty() {
        planner::replicas_deleting(db, &delete.0, &delete.1)?;
        cancel(db, &delete.2, &delete.1, JobKind::CreateReplica)?;
        cancel(db, &delete.2, &delete.1, JobKind::SyncReplica)?;
        enqueue(db, JobKind::DeleteReplica, &delete.2, &delete.1)?;
    }
    if !shortfall.0.is_empty() {
        planner::set_shortfalls(db, &shortfall.0, &shortfall.1, &shortfall.2)?;
    }

    let routes = fado_placement::routes(&convert::snapshot(&snap));
    let mut table = route_table(&snap, &routes, routes_version);
    // Comparing digests spares reading the previous table (megabytes of
    // JSON at 10,000 buckets) back from Postgres on every round.
    let digest = digest(&table)?;
    let unchanged = routes_version > 0 && routes_digest.as_deref() == Some(digest.as_str());
    let publish = if unchanged {
        None
    } else {
        table.version = routes_version + 1;
        planner::store_route_table(db, &table, KEEP_TABLES)?;
        Some(table.clone())
    };
    planner::record_round(db, generation, table.version, &digest)?;
    Ok(Outcome {
        table: publish,
        routes_version: table.version,
        generation,
        queued_jobs: create.0.len() + delete.0.len(),
    })
}

fn enqueue(db: &Db, kind: JobKind, buckets: &[String], storage: &[i64]) -> Result<()> {
    Ok(fado_store::jobs::enqueue_each(db, kind, buckets, storage)?)
}

/// Drops queued (not running) jobs a new decision made moot.
fn cancel(db: &Db, buckets: &[String], storage: &[i64], kind: JobKind) -> Result<()> {
    Ok(fado_store::jobs::cancel_queued(
        db,
        kind,
        buckets,
        storage,
        "the planner changed its decision",
    )?)
}

/// The published table: each bucket's policy and the FaaS deployments
/// (with what the router needs to call them).
fn route_table(
    snap: &CatalogSnapshot,
    routes: &fado_placement::RouteTable,
    version: i64,
) -> RouteTable {
    let target = |f: &fado_store::snapshot::FaasRow| RouteTarget {
        faas_id: f.id,
        name: f.name.clone(),
        cluster: snap
            .clusters
            .iter()
            .find(|c| c.id == f.cluster_id)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        base_url: f.base_url.clone(),
        path_template: f.path_template.clone(),
        timeout_ms: f.timeout_ms,
        health: f.health,
    };
    let mut any: Vec<RouteTarget> = snap.faas.iter().map(target).collect();
    any.sort_by_key(|t| t.faas_id);
    let routes = routes
        .routes
        .iter()
        .map(|(bucket, r)| BucketRoute {
            bucket: bucket.clone(),
            policy: fado_model::SelectionPolicy::parse("policy", &r.policy)
                .unwrap_or(snap.default_policy),
            overridden: r.overridden,
            targets: r
                .faas_ids
                .iter()
                .filter_map(|id| snap.faas.iter().find(|f| f.id == *id))
                .map(target)
                .collect(),
        })
        .collect();
    RouteTable {
        version,
        match_header: snap.match_header.clone(),
        missing_header: snap.missing_header,
        default_policy: snap.default_policy,
        routes,
        any,
    }
}

/// SHA-256 of the table without its version: equal digests, equal tables.
fn digest(table: &RouteTable) -> Result<String> {
    let mut hasher = Sha256::new();
    let unversioned = (
        &table.match_header,
        table.missing_header,
        table.default_policy,
        &table.routes,
        &table.any,
    );
    serde_json::to_writer(HashWriter(&mut hasher), &unversioned)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Streams serde_json's output into the hasher instead of a buffer.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
