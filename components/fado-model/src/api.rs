//! The API's answers besides the resources themselves: pages with extra
//! fields, summaries, probes and the error body. The catalog builds its
//! answers from these types, the client reads them back with the same
//! types, and the OpenAPI document describes them from here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    BucketRoute, Health, JobState, LivenessStatus, ReadinessStatus, Replica, ReplicaState,
    RouteMeta, schema,
};

/// Every failure answers with this body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Machine-readable reason, e.g. `invalid`, `not_found`, `conflict`.
    pub code: String,
    /// What went wrong, for a person.
    #[schema(min_length = 1)]
    pub message: String,
    /// The input that was refused: a body field (`name`, `zones[1]`,
    /// `replica_override[0]`), `body` for the body as a whole, a query
    /// parameter (`limit`, `cursor`, `prefix`, `verify`, ...), or on object
    /// paths `bucket`, `key` or `content-length`. Absent when no single
    /// input is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub field: Option<String>,
}

/// A page of the route table the planner last published, in bucket name
/// order. `settings` is absent until a table has been published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteTablePage {
    /// Version of the published route table; 0 before the planner
    /// published one.
    #[schema(minimum = 0)]
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = RouteMeta)]
    pub settings: Option<RouteMeta>,
    pub items: Vec<BucketRoute>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A bucket whose route is set by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteOverrideEntry {
    pub bucket: String,
    pub faas_ids: Vec<i64>,
    #[schema(required = true)]
    pub policy: Option<crate::SelectionPolicy>,
}

/// Every replica of a bucket, in storage id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicaList {
    pub items: Vec<Replica>,
    /// Always null: every replica is listed at once.
    #[schema(required = true, schema_with = schema::null)]
    pub next_cursor: Option<String>,
}

/// An object just stored on its bucket's master copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectUpload {
    /// The bucket's name.
    pub bucket: String,
    pub key: String,
    #[schema(minimum = 0)]
    pub size: i64,
    /// The master's ETag, without quotes.
    pub etag: String,
    /// The request's `Content-Type`, stored with the object.
    #[schema(required = true)]
    pub content_type: Option<String>,
    /// The storage deployment holding the master copy.
    pub storage: String,
    /// Copy jobs queued (or refreshed) for replicas that have started their
    /// first sync.
    pub replica_jobs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BucketCounts {
    #[schema(minimum = 0)]
    pub total: i64,
    #[schema(minimum = 0)]
    pub under_replicated: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectCounts {
    #[schema(minimum = 0)]
    pub count: i64,
    #[schema(minimum = 0)]
    pub bytes: i64,
}

/// What replicas still lack: the object copies and deletes queued or
/// running for them (a replica before its first full sync is counted by
/// its sync job, not here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplicationLag {
    #[schema(minimum = 0)]
    pub objects: i64,
    /// The bytes of those objects, as far as known.
    #[schema(minimum = 0)]
    pub bytes: i64,
    /// When the oldest of them was queued; null when none is.
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub oldest: Option<String>,
}

/// A bucket short of replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Shortfall {
    pub bucket: String,
    pub target_replicas: i64,
    pub shortfall: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadJob {
    pub id: i64,
    pub kind: String,
    pub bucket: String,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// How far the planner has caught up with the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlannerProgress {
    pub catalog_generation: i64,
    pub planned_generation: i64,
    pub routes_version: i64,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub planned_at: Option<String>,
}

/// A bounded dashboard summary of the whole catalog (`GET /api/resources`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceSummary {
    #[schema(minimum = 0)]
    pub clusters: i64,
    /// FaaS deployments by health; states with none are left out.
    #[schema(schema_with = count_by::<Health>)]
    pub faas_deployments: BTreeMap<String, i64>,
    /// Storage deployments by health; states with none are left out.
    #[schema(schema_with = count_by::<Health>)]
    pub storage_deployments: BTreeMap<String, i64>,
    pub buckets: BucketCounts,
    /// Replicas by state; states with none are left out.
    #[schema(schema_with = count_by::<ReplicaState>)]
    pub replicas: BTreeMap<String, i64>,
    pub objects: ObjectCounts,
    pub replication_lag: ReplicationLag,
    /// Unfinished jobs (not `done`) by state.
    #[schema(schema_with = count_by::<JobState>)]
    pub jobs: BTreeMap<String, i64>,
    /// The (at most 10) buckets with the largest shortfall.
    #[schema(max_items = 10)]
    pub under_replicated_buckets: Vec<Shortfall>,
    /// The (at most 10) newest dead jobs.
    #[schema(max_items = 10)]
    pub dead_jobs: Vec<DeadJob>,
    pub planner: PlannerProgress,
}

/// Counts keyed by the values of `K`, each at least 1.
fn count_by<K: ToSchema>() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .additional_properties(Some(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(1)),
        ))
        .extensions(schema::keywords([(
            "propertyNames",
            serde_json::json!({ "$ref": format!("#/components/schemas/{}", K::name()) }),
        )]))
        .into()
}

/// One dependency's check: whether it answers, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DependencyCheck {
    pub ok: bool,
    /// Why the check failed (only when `ok` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub error: Option<String>,
}

/// `GET /readyz`: whether PostgreSQL and Redis answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub status: ReadinessStatus,
    pub postgres: DependencyCheck,
    pub redis: DependencyCheck,
}

/// `GET /healthz`: the catalog can answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    pub status: LivenessStatus,
}
