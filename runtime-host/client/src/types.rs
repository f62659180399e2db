//! The API's answers, as the catalog builds them: `fado_model::api`, plus
//! what an object download's headers say, which has no JSON body.

use serde::{Deserialize, Serialize};

pub use fado_model::api::{
    BucketCounts, DeadJob, DependencyCheck, ObjectCounts, ObjectUpload, PlannerProgress, Readiness,
    ResourceSummary, RouteOverrideEntry, RouteTablePage, Shortfall,
};

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
