//! Placement and routing decisions over a catalog snapshot. Pure: the same
//! snapshot always gives the same answer, whatever the order of its lists.
//!
//! Placement rules, per bucket:
//! 1. the master storage always holds the bucket and is never a replica;
//! 2. replicas go only to storage whose cluster shares a zone with the
//!    bucket's allowed zones (anywhere when none are set), at most
//!    `target_replicas` of them;
//! 3. a replica override wins, minus entries that became invalid (zone limits
//!    are legal limits and bind overrides too), which are reported;
//! 4. least data moved: eligible existing replicas are kept first (`ready`,
//!    then in-progress ones), so an unchanged policy never churns;
//! 5. new replicas spread over clusters without a copy, then over zones not
//!    yet covered, with rendezvous hashing breaking ties stably;
//! 6. unhealthy storage gets no new replicas (existing ones stay);
//! 7. when too few places qualify, what fits is placed and the shortfall
//!    reported; a replica being deleted is re-chosen only as a last resort.
//!
//! Routes: a bucket routes to the FaaS deployments in the clusters holding
//! its master or a `ready` replica; a route override wins.

mod hash;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: i64,
    pub name: String,
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    pub id: i64,
    pub cluster_id: i64,
    pub healthy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faas {
    pub id: i64,
    pub cluster_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    Pending,
    Syncing,
    Ready,
    Deleting,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingReplica {
    pub storage_id: i64,
    pub state: ReplicaState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteOverride {
    pub faas_ids: Vec<i64>,
    pub policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub id: i64,
    pub name: String,
    pub master_storage_id: i64,
    /// Empty means anywhere.
    pub allowed_zones: Vec<String>,
    pub target_replicas: u32,
    /// `Some`: exactly these storage ids (possibly none), not the policy.
    pub replica_override: Option<Vec<i64>>,
    pub route_override: Option<RouteOverride>,
    pub replicas: Vec<ExistingReplica>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub clusters: Vec<Cluster>,
    pub storage: Vec<Storage>,
    pub faas: Vec<Faas>,
    pub buckets: Vec<Bucket>,
    /// The policy of routes without an override policy.
    pub default_policy: String,
}

/// The desired replica set of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPlan {
    pub bucket_id: i64,
    /// Storage ids holding replicas (master excluded), ascending.
    pub desired: Vec<i64>,
    /// Replicas asked for but not placeable.
    pub shortfall: u32,
    /// Why something could not be done as asked.
    pub notes: Vec<String>,
}

impl BucketPlan {
    pub fn under_replicated(&self) -> bool {
        self.shortfall > 0
    }
}

/// What moves a bucket from its current replicas to its plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actions {
    /// New replicas (or ones being deleted that are wanted again).
    pub create: Vec<i64>,
    /// Replicas no longer wanted (not already being deleted).
    pub delete: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub faas_ids: Vec<i64>,
    pub policy: String,
    pub overridden: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    /// Bucket name → route.
    pub routes: BTreeMap<String, Route>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideError {
    UnknownStorage(i64),
    IsMaster(i64),
    OutsideZones(i64),
    Duplicate(i64),
}

impl std::fmt::Display for OverrideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverrideError::UnknownStorage(id) => {
                write!(f, "storage deployment {id} does not exist")
            }
            OverrideError::IsMaster(id) => {
                write!(f, "storage deployment {id} holds the master copy")
            }
            OverrideError::OutsideZones(id) => {
                write!(f, "storage deployment {id} is outside the allowed zones")
            }
            OverrideError::Duplicate(id) => write!(f, "storage deployment {id} is listed twice"),
        }
    }
}

impl std::error::Error for OverrideError {}

/// Lookups built once per snapshot.
struct Index<'a> {
    clusters: HashMap<i64, &'a Cluster>,
    storage: HashMap<i64, &'a Storage>,
    /// All storage, ascending by id (input order must not matter).
    storage_sorted: Vec<&'a Storage>,
    faas_by_cluster: HashMap<i64, Vec<i64>>,
}

impl<'a> Index<'a> {
    fn new(s: &'a Snapshot) -> Self {
        let mut storage_sorted: Vec<&Storage> = s.storage.iter().collect();
        storage_sorted.sort_by_key(|x| x.id);
        storage_sorted.dedup_by_key(|x| x.id);
        let mut faas_by_cluster: HashMap<i64, Vec<i64>> = HashMap::new();
        for f in &s.faas {
            faas_by_cluster.entry(f.cluster_id).or_default().push(f.id);
        }
        for v in faas_by_cluster.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        Self {
            clusters: s.clusters.iter().map(|c| (c.id, c)).collect(),
            storage: s.storage.iter().map(|x| (x.id, x)).collect(),
            storage_sorted,
            faas_by_cluster,
        }
    }

    fn zones_of(&self, storage_id: i64) -> Option<&'a [String]> {
        let st = self.storage.get(&storage_id)?;
        Some(self.clusters.get(&st.cluster_id)?.zones.as_slice())
    }

    fn cluster_of(&self, storage_id: i64) -> Option<i64> {
        self.storage.get(&storage_id).map(|s| s.cluster_id)
    }

    /// Whether `storage_id` may hold a replica of `b` at all.
    fn eligible(&self, b: &Bucket, storage_id: i64) -> Result<(), OverrideError> {
        if storage_id == b.master_storage_id {
            return Err(OverrideError::IsMaster(storage_id));
        }
        let zones = self
            .zones_of(storage_id)
            .ok_or(OverrideError::UnknownStorage(storage_id))?;
        if zones_allow(&b.allowed_zones, zones) {
            Ok(())
        } else {
            Err(OverrideError::OutsideZones(storage_id))
        }
    }
}

/// The zone rule: a copy may sit on storage in `zones` when the bucket
/// allows no zones in particular, or one of them.
pub fn zones_allow(allowed: &[String], zones: &[String]) -> bool {
    allowed.is_empty() || zones.iter().any(|z| allowed.contains(z))
}

/// Checks a replica override before the API accepts it.
pub fn check_replica_override(
    snapshot: &Snapshot,
    bucket: &Bucket,
    storage_ids: &[i64],
) -> Result<(), OverrideError> {
    let index = Index::new(snapshot);
    let mut seen = BTreeSet::new();
    for &id in storage_ids {
        if !seen.insert(id) {
            return Err(OverrideError::Duplicate(id));
        }
        index.eligible(bucket, id)?;
    }
    Ok(())
}

/// The desired replicas of every bucket, ordered by bucket id.
pub fn plan(snapshot: &Snapshot) -> Vec<BucketPlan> {
    let index = Index::new(snapshot);
    let mut buckets: Vec<&Bucket> = snapshot.buckets.iter().collect();
    buckets.sort_by_key(|b| b.id);
    buckets.iter().map(|b| plan_bucket(&index, b)).collect()
}

fn plan_bucket(index: &Index<'_>, b: &Bucket) -> BucketPlan {
    if let Some(wanted) = &b.replica_override {
        let mut desired = BTreeSet::new();
        let mut notes = Vec::new();
        for &id in wanted {
            match index.eligible(b, id) {
                Ok(()) => {
                    desired.insert(id);
                }
                Err(e) => notes.push(format!("replica override entry dropped: {e}")),
            }
        }
        let dropped = wanted.len() - desired.len();
        return BucketPlan {
            bucket_id: b.id,
            desired: desired.into_iter().collect(),
            shortfall: dropped as u32,
            notes,
        };
    }

    let target = b.target_replicas as usize;
    let state_of: HashMap<i64, ReplicaState> =
        b.replicas.iter().map(|r| (r.storage_id, r.state)).collect();
    let score = |id: i64| hash::rendezvous(&b.name, id);

    // Keep eligible existing replicas: ready ones first, then in-progress;
    // within a group, the highest rendezvous score first, so shrinking the
    // target drops the same replicas every time.
    let mut kept: Vec<(u8, u64, i64)> = b
        .replicas
        .iter()
        .filter(|r| r.state != ReplicaState::Deleting && index.eligible(b, r.storage_id).is_ok())
        .map(|r| {
            let group = if r.state == ReplicaState::Ready { 0 } else { 1 };
            (group, u64::MAX - score(r.storage_id), r.storage_id)
        })
        .collect();
    kept.sort_unstable();
    kept.dedup_by_key(|k| k.2);
    let mut chosen: Vec<i64> = kept.into_iter().take(target).map(|k| k.2).collect();

    let master_cluster = index.cluster_of(b.master_storage_id);
    // First among storage with no replica being deleted there; then, as a
    // last resort, storage whose replica is being deleted.
    let pick_new = |chosen: &mut Vec<i64>, deleting_pass: bool| {
        while chosen.len() < target {
            let mut covered_clusters: BTreeSet<i64> = master_cluster.into_iter().collect();
            let mut covered_zones: BTreeSet<&str> = BTreeSet::new();
            for id in chosen
                .iter()
                .copied()
                .chain(std::iter::once(b.master_storage_id))
            {
                if let Some(c) = index.cluster_of(id) {
                    covered_clusters.insert(c);
                }
                if let Some(z) = index.zones_of(id) {
                    covered_zones.extend(z.iter().map(String::as_str));
                }
            }
            let best = index
                .storage_sorted
                .iter()
                .filter(|s| s.healthy && !chosen.contains(&s.id))
                .filter(|s| (state_of.get(&s.id) == Some(&ReplicaState::Deleting)) == deleting_pass)
                .filter(|s| index.eligible(b, s.id).is_ok())
                .max_by_key(|s| {
                    let new_cluster = !covered_clusters.contains(&s.cluster_id);
                    let new_zones = index
                        .zones_of(s.id)
                        .map(|z| {
                            z.iter()
                                .filter(|z| !covered_zones.contains(z.as_str()))
                                .count()
                        })
                        .unwrap_or(0);
                    (new_cluster, new_zones, score(s.id), std::cmp::Reverse(s.id))
                });
            match best {
                Some(s) => chosen.push(s.id),
                None => break,
            }
        }
    };
    pick_new(&mut chosen, false);
    pick_new(&mut chosen, true);

    let shortfall = target.saturating_sub(chosen.len()) as u32;
    let mut notes = Vec::new();
    if shortfall > 0 {
        notes.push(format!(
            "only {} of {} replicas can be placed: too few healthy storage deployments in the allowed zones",
            chosen.len(),
            target
        ));
    }
    chosen.sort_unstable();
    BucketPlan {
        bucket_id: b.id,
        desired: chosen,
        shortfall,
        notes,
    }
}

/// The changes that take `bucket`'s replicas to `plan`.
pub fn actions(bucket: &Bucket, plan: &BucketPlan) -> Actions {
    let current: HashMap<i64, ReplicaState> = bucket
        .replicas
        .iter()
        .map(|r| (r.storage_id, r.state))
        .collect();
    let create = plan
        .desired
        .iter()
        .copied()
        .filter(|id| matches!(current.get(id), None | Some(ReplicaState::Deleting)))
        .collect();
    let mut delete: Vec<i64> = current
        .iter()
        .filter(|(id, state)| **state != ReplicaState::Deleting && !plan.desired.contains(id))
        .map(|(id, _)| *id)
        .collect();
    delete.sort_unstable();
    Actions { create, delete }
}

/// The route table: which FaaS deployments serve each bucket, and how.
pub fn routes(snapshot: &Snapshot) -> RouteTable {
    let index = Index::new(snapshot);
    let faas_ids: BTreeSet<i64> = snapshot.faas.iter().map(|f| f.id).collect();
    let mut routes = BTreeMap::new();
    for b in &snapshot.buckets {
        let route = match &b.route_override {
            Some(o) => {
                let mut ids: Vec<i64> = o
                    .faas_ids
                    .iter()
                    .copied()
                    .filter(|id| faas_ids.contains(id))
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                Route {
                    faas_ids: ids,
                    policy: o
                        .policy
                        .clone()
                        .unwrap_or_else(|| snapshot.default_policy.clone()),
                    overridden: true,
                }
            }
            None => {
                let holders = std::iter::once(b.master_storage_id).chain(
                    b.replicas
                        .iter()
                        .filter(|r| r.state == ReplicaState::Ready)
                        .map(|r| r.storage_id),
                );
                let clusters: BTreeSet<i64> = holders.filter_map(|s| index.cluster_of(s)).collect();
                let mut ids: Vec<i64> = clusters
                    .iter()
                    .flat_map(|c| index.faas_by_cluster.get(c).cloned().unwrap_or_default())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                Route {
                    faas_ids: ids,
                    policy: snapshot.default_policy.clone(),
                    overridden: false,
                }
            }
        };
        routes.insert(b.name.clone(), route);
    }
    RouteTable { routes }
}

#[cfg(test)]
mod tests;
