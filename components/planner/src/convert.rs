//! From the catalog snapshot (database rows) to the placement crate's
//! input, and from its plans to replica actions.

use fado_model::{Health, ReplicaState};
use fado_placement as placement;
use fado_store::snapshot::{BucketRow, CatalogSnapshot};

fn state(s: ReplicaState) -> placement::ReplicaState {
    match s {
        ReplicaState::Pending => placement::ReplicaState::Pending,
        ReplicaState::Syncing => placement::ReplicaState::Syncing,
        ReplicaState::Ready => placement::ReplicaState::Ready,
        ReplicaState::Deleting => placement::ReplicaState::Deleting,
        ReplicaState::Failed => placement::ReplicaState::Failed,
    }
}

fn bucket(b: &BucketRow) -> placement::Bucket {
    placement::Bucket {
        id: b.id,
        name: b.name.clone(),
        master_storage_id: b.master_storage_id,
        allowed_zones: b.allowed_zones.clone(),
        target_replicas: b.target_replicas.clamp(0, i64::from(u32::MAX)) as u32,
        replica_override: b.replica_override.clone(),
        route_override: b
            .route_override
            .as_ref()
            .map(|(ids, policy)| placement::RouteOverride {
                faas_ids: ids.clone(),
                policy: policy.map(|p| p.as_str().to_string()),
            }),
        replicas: b
            .replicas
            .iter()
            .map(|(storage_id, s)| placement::ExistingReplica {
                storage_id: *storage_id,
                state: state(*s),
            })
            .collect(),
    }
}

pub fn snapshot(s: &CatalogSnapshot) -> placement::Snapshot {
    placement::Snapshot {
        clusters: s
            .clusters
            .iter()
            .map(|c| placement::Cluster {
                id: c.id,
                name: c.name.clone(),
                zones: c.zones.clone(),
            })
            .collect(),
        // Unknown health counts as usable: probes come later than registration.
        storage: s
            .storage
            .iter()
            .map(|st| placement::Storage {
                id: st.id,
                cluster_id: st.cluster_id,
                healthy: st.health != Health::Unhealthy,
            })
            .collect(),
        faas: s
            .faas
            .iter()
            .map(|f| placement::Faas {
                id: f.id,
                cluster_id: f.cluster_id,
            })
            .collect(),
        buckets: s.buckets.iter().map(bucket).collect(),
        default_policy: s.default_policy.as_str().to_string(),
    }
}

pub fn actions(b: &BucketRow, plan: &placement::BucketPlan) -> placement::Actions {
    placement::actions(&bucket(b), plan)
}
