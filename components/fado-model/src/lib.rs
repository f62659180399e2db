//! FaDO's catalog vocabulary: the resources as the API shows them, the
//! request bodies it accepts, and the rules every writer validates against.
//! Used by the catalog component, the `fado` CLI and the tests alike.

pub mod api;
pub mod schema;
pub mod validate;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
pub use validate::FieldError;

macro_rules! string_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)+
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }

            /// Parses the wire spelling; the error lists the accepted values.
            pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(FieldError::new(
                        field,
                        format!("{other:?} is not one of: {}", [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// How the router picks among a bucket's FaaS deployments.
    SelectionPolicy {
        RoundRobin = "round_robin",
        LeastConn = "least_conn",
        Random = "random",
        P2c = "p2c",
        First = "first",
        IpHash = "ip_hash",
        HeaderHash = "header_hash",
        LeastLatency = "least_latency",
    }
}

string_enum! {
    /// Health as last observed by a probe or by the router.
    Health { Unknown = "unknown", Healthy = "healthy", Unhealthy = "unhealthy" }
}

string_enum! {
    /// Life of a replica; it receives invocations only when `ready`.
    ReplicaState {
        Pending = "pending",
        Syncing = "syncing",
        Ready = "ready",
        Deleting = "deleting",
        Failed = "failed",
    }
}

string_enum! {
    /// The FaaS platform; decides the default path template
    /// (`/function/{function}` for openfaas, empty for lambda,
    /// `/{function}` otherwise).
    Platform { Openfaas = "openfaas", Spin = "spin", Knative = "knative", Lambda = "lambda", Other = "other" }
}

string_enum! {
    /// What an invocation without the match header gets.
    MissingHeader { Reject = "reject", Any = "any" }
}

string_enum! {
    /// Kinds of replication job in the ledger.
    JobKind {
        CreateBucket = "create_bucket",
        CreateReplica = "create_replica",
        SyncReplica = "sync_replica",
        CopyObject = "copy_object",
        DeleteObject = "delete_object",
        DeleteReplica = "delete_replica",
        DeleteBucket = "delete_bucket",
    }
}

string_enum! {
    /// `dead` jobs ran out of attempts; they stay visible and can be retried.
    JobState { Queued = "queued", Running = "running", Done = "done", Dead = "dead" }
}

string_enum! {
    /// Whether both dependencies answer (`GET /readyz`).
    ReadinessStatus { Ready = "ready", NotReady = "not_ready" }
}

string_enum! {
    /// Always `ok` (`GET /healthz`).
    LivenessStatus { Ok = "ok" }
}

impl Platform {
    /// The usual invocation path for functions on this platform.
    pub fn default_path_template(self) -> &'static str {
        match self {
            Platform::Openfaas => "/function/{function}",
            Platform::Spin | Platform::Knative | Platform::Other => "/{function}",
            Platform::Lambda => "",
        }
    }
}

/// A reference to another resource by numeric id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Ref {
    Id(i64),
    Name(String),
}

impl Ref {
    /// Interprets a URL path segment: digits are an id, anything else a name.
    pub fn from_segment(s: &str) -> Ref {
        match s.parse::<i64>() {
            Ok(id) => Ref::Id(id),
            Err(_) => Ref::Name(s.to_string()),
        }
    }
}

/// A JSON number is an id (`3` or `3.0`: JSON has one number type, and
/// JSON Schema counts `3.0` as an integer); a string is a name.
impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Ref;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id (an integer) or a name (a string)")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Ref, E> {
                Ok(Ref::Id(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ref, E> {
                IntegerVisitor.visit_u64(v).map(Ref::Id)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Ref, E> {
                IntegerVisitor.visit_f64(v).map(Ref::Id)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ref, E> {
                Ok(Ref::Name(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Reads an `i64` from any JSON number with an integral value in range:
/// `2.0` is the integer 2 to JSON Schema, so it must be to the API too.
struct IntegerVisitor;

impl serde::de::Visitor<'_> for IntegerVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
        // 2^63 is the first f64 past i64::MAX.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() != 0.0 || !v.is_finite() {
            Err(E::custom(format!("{v} is not an integer")))
        } else if !(-LIMIT..LIMIT).contains(&v) {
            Err(E::custom(format!("{v} is too large")))
        } else {
            Ok(v as i64)
        }
    }
}

/// An integer field that may be left out but not sent as `null`.
fn not_null_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(IntegerVisitor).map(Some)
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Id(id) => write!(f, "{id}"),
            Ref::Name(n) => write!(f, "{n:?}"),
        }
    }
}

// ---- resources -------------------------------------------------------------

/// A site that holds FaaS and storage deployments, with the zones placement
/// policies refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub id: i64,
    #[schema(value_type = schema::Name)]
    pub name: String,
    #[schema(value_type = schema::Labels)]
    pub zones: Vec<String>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: String,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// A FaaS endpoint invocations are routed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FaasDeployment {
    pub id: i64,
    #[schema(value_type = schema::Name)]
    pub name: String,
    pub cluster_id: i64,
    /// The cluster's name.
    pub cluster: String,
    pub platform: Platform,
    pub base_url: String,
    pub path_template: String,
    pub labels: Vec<String>,
    pub timeout_ms: i64,
    pub health: Health,
    #[schema(required = true)]
    pub health_detail: Option<String>,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub health_checked_at: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: String,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// An S3-compatible service buckets live on. The secret key is write-only
/// and never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageDeployment {
    pub id: i64,
    #[schema(value_type = schema::Name)]
    pub name: String,
    pub cluster_id: i64,
    /// The cluster's name.
    pub cluster: String,
    pub endpoint: String,
    /// When registered without one: the region the storage asked for when
    /// checked, else `us-east-1`.
    pub region: String,
    pub path_style: bool,
    pub access_key: String,
    /// Whether event notifications are accepted (a `notify_token` is set).
    pub notifications: bool,
    /// `healthy` right after a passed check; a deployment registered
    /// unchecked is `unknown` until the health checker probes it.
    pub health: Health,
    #[schema(required = true)]
    pub health_detail: Option<String>,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub health_checked_at: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: String,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// A copy of a bucket on a storage deployment other than its master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Replica {
    pub storage_id: i64,
    pub storage: String,
    pub cluster: String,
    pub state: ReplicaState,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub last_sync_at: Option<String>,
    /// Objects the replica is behind: the bucket's object count before its
    /// first full sync, then its queued or running object jobs.
    pub lag_objects: i64,
    /// The bytes of those objects (as far as known).
    pub lag_bytes: i64,
    /// Since when it is behind: its creation before the first full sync,
    /// then its oldest pending object job; null when it is not behind.
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub oldest_unsynced_at: Option<String>,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// A bucket's hand-set route; `policy` null means the default policy from
/// the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteOverride {
    /// The FaaS deployments invocations go to, by id, ascending.
    pub faas_ids: Vec<i64>,
    #[schema(required = true)]
    pub policy: Option<SelectionPolicy>,
}

/// A bucket with its placement policy, overrides and replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub id: i64,
    pub name: String,
    pub master_storage_id: i64,
    pub master_storage: String,
    pub master_cluster: String,
    /// Empty: anywhere.
    pub allowed_zones: Vec<String>,
    pub target_replicas: i64,
    /// Storage deployment ids when replicas are chosen by hand (possibly
    /// none); null when the planner chooses.
    #[schema(required = true)]
    pub replica_override: Option<Vec<i64>>,
    #[schema(required = true)]
    pub route_override: Option<RouteOverride>,
    pub replicas: Vec<Replica>,
    /// Replicas the planner could not place (see `plan_notes`).
    #[schema(minimum = 0)]
    pub replica_shortfall: i64,
    /// `replica_shortfall > 0`.
    pub under_replicated: bool,
    pub plan_notes: Vec<String>,
    pub object_count: i64,
    pub total_bytes: i64,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: String,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// The catalog's metadata of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ObjectInfo {
    pub key: String,
    pub size: i64,
    pub etag: String,
    #[schema(required = true)]
    pub content_type: Option<String>,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// The load balancer's global settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    pub default_policy: SelectionPolicy,
    pub match_header: String,
    pub missing_header: MissingHeader,
    #[schema(value_type = schema::Timestamp)]
    pub updated_at: String,
}

/// One entry of the replication job ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    /// The bucket's name (a job may outlive its bucket).
    pub bucket: String,
    #[schema(required = true)]
    pub storage_id: Option<i64>,
    #[schema(required = true)]
    pub object_key: Option<String>,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    #[schema(value_type = schema::Timestamp)]
    pub run_after: String,
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Object copy jobs: the size of the object to copy, when known (it
    /// counts in the replica's `lag_bytes`).
    #[schema(required = true, minimum = 0)]
    pub object_size: Option<i64>,
    /// Bytes the job moved, added when an attempt completes.
    #[schema(minimum = 0)]
    pub bytes_copied: i64,
    /// How long the last attempt ran, in milliseconds; null before the
    /// first.
    #[schema(required = true, minimum = 0)]
    pub last_attempt_ms: Option<i64>,
    #[schema(value_type = schema::Timestamp)]
    pub created_at: String,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub started_at: Option<String>,
    #[schema(required = true, value_type = Option<schema::Timestamp>)]
    pub finished_at: Option<String>,
}

/// PostgreSQL session advisory locks that let one instance at a time do a
/// component's work; the ids spell their names in ASCII. (Migrations take
/// `fado_migrations::LOCK_KEY`, "FADOMIGR".)
pub mod locks {
    /// The planner: one plans at a time ("FADOPLAN").
    pub const PLANNER: i64 = 0x4641_444F_504C_414E;
    /// The health checker ("FADOHLTH").
    pub const HEALTH: i64 = 0x4641_444F_484C_5448;
    /// The reconcile sweep ("FADORECN").
    pub const RECONCILER: i64 = 0x4641_444F_5245_434E;
}

/// Redis channels that wake FaDO's Redis-triggered components (a wake-up
/// only: the work itself is in Postgres).
pub mod channels {
    pub const PLANNER: &str = "fado.planner";
    pub const REPLICATOR: &str = "fado.replicator";
    pub const HEALTH: &str = "fado.health";
    pub const RECONCILER: &str = "fado.reconciler";
}

/// The route table as routers read it: key-value store `fado_routes`
/// (`wasi:keyvalue`; Redis under Spin, a near-cache of Redis under fado),
/// one key per bucket, so a change rewrites only the routes it changes.
/// The planner writes it (in Redis directly), the catalog writes a route
/// override's route the moment it commits (through the store), the router
/// reads it per request.
pub mod route_keys {
    /// The key-value store label (`key_value_stores` in spin.toml).
    pub const STORE: &str = "fado_routes";
    /// JSON [`crate::RouteMeta`]: what applies to every route.
    pub const META: &str = "fado:routes:meta";
    /// Per bucket: JSON [`crate::PublishedRoute`] at `ROUTE_PREFIX` + name.
    pub const ROUTE_PREFIX: &str = "fado:route:";
    /// The name under which the route over every deployment is published
    /// (requests without the match header, when `missing_header` is
    /// `any`); never a bucket name.
    pub const ANY: &str = "*";
    /// Hash: `version` and `generation` of the published table (the
    /// planner's own bookkeeping; routers do not read it).
    pub const VERSION: &str = "fado:routes:version";
    /// Set: the bucket names that have a route key.
    pub const INDEX: &str = "fado:routes:index";

    /// The key of bucket `name`'s route.
    pub fn route(name: &str) -> String {
        format!("{ROUTE_PREFIX}{name}")
    }
}

/// The router's own state: key-value store `fado_router_state`. Under fado
/// it is process-local memory (each `fado` process balances on its own
/// counters, as each Caddy or Envoy does); under Spin, Redis.
pub mod router_state {
    /// The key-value store label.
    pub const STORE: &str = "fado_router_state";
    /// Round-robin position of a route: `rr:<route name>`.
    pub fn round_robin(route: &str) -> String {
        format!("rr:{route}")
    }
    /// Requests in flight to a deployment that started in one lease window:
    /// `inflight:<faas id>:<window>`. A deployment's count is the sum of
    /// the current and the previous window, so an instance that died
    /// mid-request leaks nothing past two windows.
    pub fn in_flight(faas_id: i64, window: u64) -> String {
        format!("inflight:{faas_id}:{window}")
    }
    /// Length of an in-flight lease window, ms.
    pub const LEASE_WINDOW_MS: u64 = 60_000;
    /// A deployment's outlier record: `outlier:<faas id>`.
    pub fn outlier(faas_id: i64) -> String {
        format!("outlier:{faas_id}")
    }
    /// A deployment's peak-EWMA latency: `latency:<faas id>`.
    pub fn latency(faas_id: i64) -> String {
        format!("latency:{faas_id}")
    }
    /// Prefix of the metrics counters, rendered by `/api/metrics`:
    /// `m:requests|B|U`, `m:errors|B|U`, `m:latency|B|U|LE`,
    /// `m:latency_sum_us|B|U` and `m:ejections|U`, for buckets B and
    /// upstream deployment U.
    pub const METRICS_PREFIX: &str = "m:";
}

/// The replicator's counters: a Redis hash of Prometheus sample names
/// (`replicated_bytes_total`, `jobs_total{kind="…",outcome="…"}`) to
/// totals, incremented by the replicator and rendered by `/api/metrics`.
pub const REPLICATION_METRICS_KEY: &str = "fado:metrics";

/// The router's latency histogram.
pub mod router_metrics {
    /// Upper bounds (seconds) of the latency histogram's buckets; a field
    /// names its bucket by the bound's `to_string()`, or `+Inf`.
    pub const LATENCY_BUCKETS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
}

/// What applies to every route of the published table: the settings the
/// route table was computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = RouteSettings)]
pub struct RouteMeta {
    pub match_header: String,
    pub missing_header: MissingHeader,
    pub default_policy: SelectionPolicy,
}

/// One bucket's route as published: the catalog generation it was computed
/// from (a writer never replaces a route with one from an older
/// generation), then the route. `generation` comes first so the planner's
/// Redis script can read it without decoding the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedRoute {
    pub generation: i64,
    pub route: BucketRoute,
}

/// One FaaS deployment a bucket's invocations may go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RouteTarget {
    pub faas_id: i64,
    pub name: String,
    pub cluster: String,
    pub base_url: String,
    pub path_template: String,
    pub timeout_ms: i64,
    pub health: Health,
}

/// Where one bucket's invocations go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BucketRoute {
    pub bucket: String,
    pub policy: SelectionPolicy,
    pub overridden: bool,
    pub targets: Vec<RouteTarget>,
}

/// The computed route table, as published to Redis (the thesis's "raw configuration").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    pub version: i64,
    pub match_header: String,
    pub missing_header: MissingHeader,
    pub default_policy: SelectionPolicy,
    pub routes: Vec<BucketRoute>,
    /// Every FaaS deployment: the route of requests that name no bucket,
    /// when `missing_header` is `any` (published under the name `*`).
    #[serde(default)]
    pub any: Vec<RouteTarget>,
}

/// A page of a list; pass `next_cursor` back as `cursor` for the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

// ---- request bodies --------------------------------------------------------
//
// Every field is an `Option` that may be left out but not sent as `null`
// (see `not_null`); each names its format for the document with
// `value_type`, which also keeps it from being documented as nullable.

/// Fields of a cluster. PATCH changes the fields given; POST needs `name`
/// (zones default to none); PUT needs both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterInput {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Name)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Labels)]
    pub zones: Option<Vec<String>>,
}

/// Fields of a FaaS deployment. At creation `platform` defaults to `other`,
/// `path_template` to the platform's usual one, `labels` to none and
/// `timeout_ms` to 30000. PATCH changes the fields given. PUT needs `name`,
/// `cluster`, `base_url` and `path_template`; fields it leaves out keep
/// their values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaasInput {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Name)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Ref)]
    pub cluster: Option<Ref>,
    // Read as text so that a bad value is refused naming the field.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Platform)]
    pub platform: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::BaseUrl)]
    pub base_url: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::PathTemplate)]
    pub path_template: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Labels)]
    pub labels: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "not_null_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::TimeoutMs)]
    pub timeout_ms: Option<i64>,
}

/// Fields of a storage deployment. At creation `path_style` defaults to
/// true, and `region` to the region the check finds (`us-east-1` when the
/// storage accepts that, or when unchecked). PATCH changes the fields
/// given. PUT needs `name`, `cluster`, `endpoint`, `access_key` and
/// `secret_key`; fields it leaves out keep their values. Giving `cluster`
/// for a storage deployment that holds a bucket's master copy is refused
/// with 409, even when it is the current cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageInput {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Name)]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Ref)]
    pub cluster: Option<Ref>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::BaseUrl)]
    pub endpoint: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Region)]
    pub region: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub path_style: Option<bool>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Credential)]
    pub access_key: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::secret_key)]
    pub secret_key: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::NotifyToken)]
    pub notify_token: Option<String>,
}

/// Fields of a bucket. PATCH changes the fields given; PUT needs
/// `allowed_zones` and `target_replicas`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketInput {
    /// Required at creation; on update it may only repeat the current name
    /// (buckets cannot be renamed).
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::BucketName)]
    pub name: Option<String>,
    /// Storage deployment holding the master copy; required at creation,
    /// and on update it may only name the current one. It must lie inside
    /// `allowed_zones`.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Ref)]
    pub master_storage: Option<Ref>,
    /// Zones the bucket's copies may live in; empty (the default) means
    /// anywhere.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::Labels)]
    pub allowed_zones: Option<Vec<String>>,
    /// Defaults to 0.
    #[serde(
        default,
        deserialize_with = "not_null_integer",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::TargetReplicas)]
    pub target_replicas: Option<i64>,
    /// `null` clears an override; a list (possibly empty) sets one.
    #[serde(
        default,
        deserialize_with = "explicit_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::replica_override)]
    pub replica_override: Option<Option<Vec<Ref>>>,
}

/// Routes a bucket's invocations to these FaaS deployments whatever its
/// placement; `policy` null or absent uses the default policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteOverrideInput {
    /// Required; an `Option` so that leaving it out is reported by name.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = schema::route_override_faas, required = true)]
    pub faas: Option<Vec<Ref>>,
    /// `null` or absent: the default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SelectionPolicy>)]
    pub policy: Option<String>,
}

/// PATCH changes the fields given; PUT needs all three.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = SelectionPolicy)]
    pub default_policy: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = schema::HeaderName)]
    pub match_header: Option<String>,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = MissingHeader)]
    pub missing_header: Option<String>,
}

/// A field that may be left out but not sent as `null` (which would
/// otherwise read as "left out", silently changing nothing).
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Distinguishes a field set to `null` from a field left out.
fn explicit_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks a required field is present.
pub fn required<T: Clone>(field: &str, v: &Option<T>) -> Result<T, FieldError> {
    v.clone()
        .ok_or_else(|| FieldError::new(field, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_their_wire_names() {
        for p in SelectionPolicy::ALL {
            assert_eq!(SelectionPolicy::parse("p", p.as_str()).unwrap(), *p);
            assert_eq!(
                serde_json::to_string(p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        let e = SelectionPolicy::parse("default_policy", "fastest").unwrap_err();
        assert_eq!(e.field, "default_policy");
        assert!(e.message.contains("round_robin"));
    }

    #[test]
    fn refs_accept_ids_and_names() {
        assert_eq!(serde_json::from_str::<Ref>("3").unwrap(), Ref::Id(3));
        assert_eq!(
            serde_json::from_str::<Ref>("\"hpc\"").unwrap(),
            Ref::Name("hpc".into())
        );
        assert_eq!(Ref::from_segment("42"), Ref::Id(42));
        assert_eq!(
            Ref::from_segment("hpc-cluster"),
            Ref::Name("hpc-cluster".into())
        );
    }

    #[test]
    fn integral_numbers_with_a_fraction_part_are_integers() {
        let r: Vec<Ref> = serde_json::from_str("[3.0, 4064342690212598.0, -1.0]").unwrap();
        assert_eq!(r, [Ref::Id(3), Ref::Id(4064342690212598), Ref::Id(-1)]);
        for bad in ["2.5", "1e19", "18446744073709551615", "true", "null", "[]"] {
            assert!(serde_json::from_str::<Ref>(bad).is_err(), "{bad}");
        }
        let b: BucketInput = serde_json::from_str(r#"{"target_replicas": 42.0}"#).unwrap();
        assert_eq!(b.target_replicas, Some(42));
        let f: FaasInput = serde_json::from_str(r#"{"timeout_ms": 1e3}"#).unwrap();
        assert_eq!(f.timeout_ms, Some(1000));
        for bad in [
            r#"{"target_replicas": 1.5}"#,
            r#"{"target_replicas": null}"#,
            r#"{"target_replicas": "1"}"#,
        ] {
            assert!(serde_json::from_str::<BucketInput>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_and_missing_overrides_differ() {
        let b: BucketInput = serde_json::from_str(r#"{"replica_override": null}"#).unwrap();
        assert_eq!(b.replica_override, Some(None));
        let b: BucketInput = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(b.replica_override, None);
        let b: BucketInput = serde_json::from_str(r#"{"replica_override": [1, "s3-b"]}"#).unwrap();
        assert_eq!(
            b.replica_override,
            Some(Some(vec![Ref::Id(1), Ref::Name("s3-b".into())]))
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<ClusterInput>(r#"{"name":"a","zone":["x"]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `zone`"), "{e}");
    }

    #[test]
    fn platforms_know_their_paths() {
        assert_eq!(
            Platform::Openfaas.default_path_template(),
            "/function/{function}"
        );
        assert_eq!(Platform::Lambda.default_path_template(), "");
    }
}
