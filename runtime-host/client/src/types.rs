//! Answers of the API that `fado-model` does not define (the catalog builds
//! them as JSON directly), shaped after the OpenAPI document's schemas.

use std::collections::BTreeMap;

use fado_model::{BucketRoute, MissingHeader, SelectionPolicy};
use serde::{Deserialize, Serialize};

/// `RouteSettings`: the settings a route table was computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSettings {
    pub match_header: String,
    pub missing_header: MissingHeader,
    pub default_policy: SelectionPolicy,
}

/// `RouteTablePage`, every page merged: the published route table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    /// 0 before the planner published a table.
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<RouteSettings>,
    pub items: Vec<BucketRoute>,
    pub next_cursor: Option<String>,
}

/// `RouteOverrideEntry`: a bucket whose route is set by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteOverrideEntry {
    pub bucket: String,
    pub faas_ids: Vec<i64>,
    pub policy: Option<SelectionPolicy>,
}

/// `ObjectUpload`: an object just stored on its bucket's master copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectUpload {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub content_type: Option<String>,
    pub storage: String,
    pub replica_jobs: i64,
}

/// What the headers of an object download (or `HEAD`) say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectHead {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub content_type: Option<String>,
    pub last_modified: Option<String>,
    /// The storage deployment that served it (`X-FaDO-Storage`).
    pub storage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketCounts {
    pub total: i64,
    pub under_replicated: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectCounts {
    pub count: i64,
    pub bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shortfall {
    pub bucket: String,
    pub target_replicas: i64,
    pub shortfall: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadJob {
    pub id: i64,
    pub kind: String,
    pub bucket: String,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannerProgress {
    pub catalog_generation: i64,
    pub planned_generation: i64,
    pub routes_version: i64,
    pub planned_at: Option<String>,
}

/// `ResourceSummary` (`GET /api/resources`): the dashboard's bounded summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSummary {
    pub clusters: i64,
    /// By health; states with none are left out.
    pub faas_deployments: BTreeMap<String, i64>,
    pub storage_deployments: BTreeMap<String, i64>,
    pub buckets: BucketCounts,
    /// By replica state.
    pub replicas: BTreeMap<String, i64>,
    pub objects: ObjectCounts,
    /// Unfinished jobs by state.
    pub jobs: BTreeMap<String, i64>,
    pub under_replicated_buckets: Vec<Shortfall>,
    pub dead_jobs: Vec<DeadJob>,
    pub planner: PlannerProgress,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependencyCheck {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `Readiness` (`GET /readyz`, no token needed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub status: String,
    pub postgres: DependencyCheck,
    pub redis: DependencyCheck,
}
