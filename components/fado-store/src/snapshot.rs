//! The catalog as the planner sees it: everything placement and routing
//! depend on, read in a handful of queries.

use fado_model::{Health, MissingHeader, ReplicaState, SelectionPolicy};

use crate::{Db, Result, decoded};

#[derive(Debug, Clone)]
pub struct ClusterRow {
    pub id: i64,
    pub name: String,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StorageRow {
    pub id: i64,
    pub cluster_id: i64,
    pub health: Health,
}

#[derive(Debug, Clone)]
pub struct FaasRow {
    pub id: i64,
    pub name: String,
    pub cluster_id: i64,
    pub base_url: String,
    pub path_template: String,
    pub timeout_ms: i64,
    pub health: Health,
}

#[derive(Debug, Clone)]
pub struct BucketRow {
    pub id: i64,
    pub name: String,
    pub master_storage_id: i64,
    pub allowed_zones: Vec<String>,
    pub target_replicas: i64,
    pub replica_override: Option<Vec<i64>>,
    pub route_override: Option<(Vec<i64>, Option<SelectionPolicy>)>,
    pub replica_shortfall: i64,
    pub plan_notes: Vec<String>,
    pub replicas: Vec<(i64, ReplicaState)>,
}

#[derive(Debug, Clone)]
pub struct CatalogSnapshot {
    pub clusters: Vec<ClusterRow>,
    pub storage: Vec<StorageRow>,
    pub faas: Vec<FaasRow>,
    pub buckets: Vec<BucketRow>,
    pub default_policy: SelectionPolicy,
    pub match_header: String,
    pub missing_header: MissingHeader,
}

/// Reads the snapshot. Call inside a transaction (REPEATABLE READ) for a
/// consistent view.
pub fn load(db: &Db) -> Result<CatalogSnapshot> {
    let clusters = db
        .query("SELECT id, name, zones FROM clusters ORDER BY id", &[])?
        .iter()
        .map(|r| {
            Ok(ClusterRow {
                id: r.i64("id")?,
                name: r.str("name")?,
                zones: r.strings("zones")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let storage = db
        .query(
            "SELECT id, cluster_id, health FROM storage_deployments ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(StorageRow {
                id: r.i64("id")?,
                cluster_id: r.i64("cluster_id")?,
                health: r.parse("health", Health::parse)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let faas = db
        .query(
            "SELECT id, name, cluster_id, base_url, path_template, timeout_ms, health FROM faas_deployments ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(FaasRow {
                id: r.i64("id")?,
                name: r.str("name")?,
                cluster_id: r.i64("cluster_id")?,
                base_url: r.str("base_url")?,
                path_template: r.str("path_template")?,
                timeout_ms: r.i64("timeout_ms")?,
                health: r.parse("health", Health::parse)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let replica_rows = db.query(
        "SELECT bucket_id, storage_id, state FROM replicas ORDER BY bucket_id, storage_id",
        &[],
    )?;
    let mut replicas: std::collections::HashMap<i64, Vec<(i64, ReplicaState)>> = Default::default();
    for r in replica_rows.iter() {
        replicas
            .entry(r.i64("bucket_id")?)
            .or_default()
            .push((r.i64("storage_id")?, r.parse("state", ReplicaState::parse)?));
    }
    let buckets = db
        .query(
            "SELECT b.id, b.name, b.master_storage_id, b.allowed_zones, b.target_replicas, b.replica_override,
                    b.route_override, b.route_policy, b.replica_shortfall, b.plan_notes,
                    (SELECT array_agg(o.storage_id ORDER BY o.storage_id) FROM bucket_replica_overrides o
                        WHERE o.bucket_id = b.id) AS replica_override_ids,
                    (SELECT array_agg(o.faas_id ORDER BY o.faas_id) FROM bucket_route_overrides o
                        WHERE o.bucket_id = b.id) AS route_override_ids
             FROM buckets b ORDER BY b.id",
            &[],
        )?
        .iter()
        .map(|r| {
            let id = r.i64("id")?;
            let route_override = if r.bool("route_override")? {
                let policy = match r.opt_str("route_policy")? {
                    Some(p) => Some(decoded(SelectionPolicy::parse("route_policy", &p))?),
                    None => None,
                };
                Some((r.ids("route_override_ids")?, policy))
            } else {
                None
            };
            Ok(BucketRow {
                id,
                name: r.str("name")?,
                master_storage_id: r.i64("master_storage_id")?,
                allowed_zones: r.strings("allowed_zones")?,
                target_replicas: r.i64("target_replicas")?,
                replica_override: if r.bool("replica_override")? {
                    Some(r.ids("replica_override_ids")?)
                } else {
                    None
                },
                route_override,
                replica_shortfall: r.i64("replica_shortfall")?,
                plan_notes: r.strings("plan_notes")?,
                replicas: replicas.remove(&id).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let settings = db.query(
        "SELECT default_policy, match_header, missing_header FROM settings",
        &[],
    )?;
    let s = settings.one()?;
    Ok(CatalogSnapshot {
        clusters,
        storage,
        faas,
        buckets,
        default_policy: s.parse("default_policy", SelectionPolicy::parse)?,
        match_header: s.str("match_header")?,
        missing_header: s.parse("missing_header", MissingHeader::parse)?,
    })
}
