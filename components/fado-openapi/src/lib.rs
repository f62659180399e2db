//! The OpenAPI 3.1 document of FaDO's HTTP API, served by the catalog at
//! `/api/openapi.json`. Schemas come from the types the catalog answers
//! with and reads (`fado_model`, `fado_model::api`), through utoipa's
//! `ToSchema`; the operations are listed in [`paths`] with the answers
//! each can give, built from the shared pieces in [`parts`].

mod parts;
mod paths;

use fado_model::api::{ErrorBody, Liveness, Readiness, ReplicaList, ResourceSummary};
use fado_model::api::{RouteOverrideEntry, RouteTablePage};
use fado_model::{
    Bucket, BucketInput, Cluster, ClusterInput, FaasDeployment, FaasInput, Job, ObjectInfo, Page,
    RouteOverride, RouteOverrideInput, Settings, SettingsInput, StorageDeployment, StorageInput,
    api::ObjectUpload, schema,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, RefOr, Schema, Tag,
};
use utoipa::{PartialSchema, ToSchema};

/// The security scheme every `/api` operation needs.
pub const ADMIN_TOKEN: &str = "adminToken";

const DESCRIPTION: &str = "The catalog component's REST API over PostgreSQL.

Every `/api` path needs the admin token (`Authorization: Bearer <token>`); `/healthz`, `/readyz` and `/api/openapi.json` do not. A request without a valid token gets 401 before anything else, including an unknown path or method (object paths excepted, see below).

Lists take `limit` (1-1000, default 100) and an opaque `cursor`, and answer `{\"items\": [...], \"next_cursor\": ...}`; pass `next_cursor` back as `cursor` until it is null.

Resources are addressed by numeric id or by name; a path segment of digits is read as an id.

Errors answer `{\"error\": {\"code\", \"message\", \"field\"}}` (`field` only when one input is at fault). A method a path does not document answers 405 `method_not_allowed`, listing the allowed methods in the message and in an `Allow` header; on `/api/clusters/{cluster}`, `/api/faas-deployments/{faas}`, `/api/storage-deployments/{storage}`, `/api/buckets/{bucket}` and `/api/buckets/{bucket}/route-override` the item is looked up first, so an unknown item gets 404 whatever the method. A body larger than 1 MiB answers 413 `too_large` on any path the catalog serves. Unknown paths answer 404.

`/api/buckets/{bucket}/objects` and the object paths below it are served by the objects component: there an invalid bucket name or object key is 400 (naming `bucket` or `key`) even before the token is checked, and object bodies stream through in bounded parts, without the 1 MiB limit.";

const TAGS: &[(&str, &str)] = &[
    (
        "clusters",
        "Sites holding FaaS and storage deployments, with their zones.",
    ),
    (
        "faas-deployments",
        "FaaS endpoints invocations are routed to.",
    ),
    (
        "storage-deployments",
        "S3-compatible services buckets live on.",
    ),
    ("buckets", "Buckets, their placement policy and replicas."),
    (
        "objects",
        "Objects: the catalog's listing, and uploads, downloads and deletes through the bucket's copies.",
    ),
    ("routing", "Route overrides and the computed route table."),
    ("settings", "The load balancer's global settings."),
    ("jobs", "The replication job ledger."),
    ("dashboard", "Summaries for the console."),
    ("metrics", "Replication and router metrics for Prometheus."),
    ("probes", "Liveness and readiness, without a token."),
    ("meta", "This document."),
];

/// The document.
pub fn document() -> OpenApi {
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    collect::<ErrorBody>(&mut schemas);
    collect::<Page<Cluster>>(&mut schemas);
    collect::<ClusterInput>(&mut schemas);
    collect::<Page<FaasDeployment>>(&mut schemas);
    collect::<FaasInput>(&mut schemas);
    collect::<Page<StorageDeployment>>(&mut schemas);
    collect::<StorageInput>(&mut schemas);
    collect::<Page<Bucket>>(&mut schemas);
    collect::<BucketInput>(&mut schemas);
    collect::<ReplicaList>(&mut schemas);
    collect::<Page<ObjectInfo>>(&mut schemas);
    collect::<ObjectUpload>(&mut schemas);
    collect::<RouteOverride>(&mut schemas);
    collect::<RouteOverrideInput>(&mut schemas);
    collect::<Page<RouteOverrideEntry>>(&mut schemas);
    collect::<Settings>(&mut schemas);
    collect::<SettingsInput>(&mut schemas);
    collect::<RouteTablePage>(&mut schemas);
    collect::<Page<Job>>(&mut schemas);
    collect::<ResourceSummary>(&mut schemas);
    collect::<Readiness>(&mut schemas);
    collect::<Liveness>(&mut schemas);
    collect::<schema::Name>(&mut schemas);
    collect::<schema::Label>(&mut schemas);
    collect::<schema::BucketName>(&mut schemas);
    collect::<schema::ObjectKey>(&mut schemas);
    collect::<fado_model::JobState>(&mut schemas);
    collect::<fado_model::JobKind>(&mut schemas);

    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .responses_from_iter(parts::responses())
        .security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `admin_token` variable of the application (at least 16 characters).",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("FaDO catalog API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(
                    LicenseBuilder::new()
                        .name("Apache-2.0")
                        .identifier(Some("Apache-2.0"))
                        .build(),
                )),
        )
        .security(Some([SecurityRequirement::new(
            ADMIN_TOKEN,
            Vec::<String>::new(),
        )]))
        .tags(Some(TAGS.iter().map(|(name, description)| {
            let mut t = Tag::new(*name);
            t.description = Some((*description).into());
            t
        })))
        .paths(paths::paths())
        .components(Some(components))
        .build()
}

/// The document as JSON.
pub fn json() -> String {
    document()
        .to_json()
        .expect("the OpenAPI document serializes")
}

/// Adds `T`'s schema, and every schema it refers to, once each.
fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    let mut found = vec![(T::name().into_owned(), <T as PartialSchema>::schema())];
    T::schemas(&mut found);
    for (name, schema) in found {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, schema));
        }
    }
}
