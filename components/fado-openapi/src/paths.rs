//! Every operation of the API, path by path, with the answers it can give.

use fado_model::api::{
    Liveness, ObjectUpload, Readiness, ReplicaList, ResourceSummary, RouteOverrideEntry,
    RouteTablePage,
};
use fado_model::{
    Bucket, BucketInput, Cluster, ClusterInput, FaasDeployment, FaasInput, Job, JobKind, JobState,
    ObjectInfo, Page, RouteOverride, RouteOverrideInput, Settings, SettingsInput,
    StorageDeployment, StorageInput, schema,
};
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, Parameter, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::ObjectBuilder;
use utoipa::openapi::{Content, Paths, PathsBuilder, Required, Response, ResponseBuilder};

use crate::parts::{
    self, Op, binary, bucket, cluster_filter, error, flag, header, item, job, object_key, op,
    paged, query, range, string, text_filter, verify,
};

use HttpMethod::{Delete, Get, Head, Patch, Post, Put};

/// Every path of the API.
pub fn paths() -> Paths {
    let mut paths = PathsBuilder::new()
        .path("/healthz", path(&[], probes_live()))
        .path("/readyz", path(&[], probes_ready()))
        .path("/api/openapi.json", path(&[], vec![this_document()]));
    for resource in RESOURCES {
        paths = paths
            .path(
                format!("/api/{}", resource.plural),
                path(&[], resource.collection()),
            )
            .path(
                format!("/api/{}/{{{}}}", resource.plural, resource.param),
                path(&[item(resource.param, resource.noun)], resource.item()),
            );
    }
    paths
        .path("/api/buckets", path(&[], buckets()))
        .path("/api/buckets/{bucket}", path(&[bucket()], bucket_item()))
        .path(
            "/api/buckets/{bucket}/replicas",
            path(&[bucket()], replicas()),
        )
        .path(
            "/api/buckets/{bucket}/objects",
            path(&[bucket()], objects()),
        )
        .path(
            "/api/buckets/{bucket}/objects/{key}",
            path(&[bucket(), object_key()], object()),
        )
        .path(
            "/api/buckets/{bucket}/route-override",
            path(&[bucket()], route_override()),
        )
        .path("/api/route-overrides", path(&[], route_overrides()))
        .path("/api/settings", path(&[], settings()))
        .path("/api/routes", path(&[], routes()))
        .path("/api/jobs", path(&[], jobs()))
        .path("/api/jobs/{job}", path(&[job()], vec![job_get()]))
        .path("/api/jobs/{job}/retry", path(&[job()], vec![job_retry()]))
        .path("/api/resources", path(&[], vec![resources()]))
        .path("/api/metrics", path(&[], vec![metrics()]))
        .build()
}

fn path(parameters: &[Parameter], operations: Vec<Op>) -> PathItem {
    let mut item = PathItem::default();
    for o in operations {
        let method = o.method.clone();
        item.merge_operations(PathItem::new(method, o.build()));
    }
    if !parameters.is_empty() {
        item.parameters = Some(parameters.to_vec());
    }
    item
}

// ---- probes and this document ----------------------------------------------

fn probes_live() -> Vec<Op> {
    vec![
        op(
            Get,
            "getLiveness",
            "probes",
            "Liveness: the catalog can answer",
        )
        .public()
        .answers::<Liveness>(200, "Alive."),
        op(Head, "headLiveness", "probes", "Liveness, without a body")
            .public()
            .answer(200, described("Alive.")),
    ]
}

fn probes_ready() -> Vec<Op> {
    vec![
        op(
            Get,
            "getReadiness",
            "probes",
            "Readiness: PostgreSQL and Redis answer too",
        )
        .public()
        .answers::<Readiness>(200, "Both dependencies answer.")
        .answers::<Readiness>(503, "A dependency does not answer; its check says why."),
        op(Head, "headReadiness", "probes", "Readiness, without a body")
            .public()
            .answer(200, described("Both dependencies answer."))
            .answer(503, described("A dependency does not answer.")),
    ]
}

fn this_document() -> Op {
    let document = ObjectBuilder::new()
        .required("openapi")
        .required("info")
        .required("paths");
    op(Get, "getOpenApi", "meta", "This document")
        .public()
        .answer(
            200,
            ResponseBuilder::new()
                .description("The OpenAPI 3.1 document of this API.")
                .content("application/json", Content::new(Some(document)))
                .build(),
        )
}

fn described(description: &str) -> Response {
    ResponseBuilder::new().description(description).build()
}

// ---- catalog resources -------------------------------------------------------

/// Clusters, FaaS and storage deployments: listed, created, read, replaced,
/// changed and deleted alike.
struct Resource {
    /// The path segment, which is also the tag.
    plural: &'static str,
    /// The item's path parameter.
    param: &'static str,
    noun: &'static str,
    /// Operation ids: `listX`, `createX`, … with X this.
    id: &'static str,
    list_filter: fn() -> Parameter,
    /// Adds an answer of a page of items, of one item; a body of the
    /// input with the fields a request requires; a PATCH body.
    page: fn(Op, u16, &str) -> Op,
    one: fn(Op, u16, &str) -> Op,
    input: fn(Op, &[&str]) -> Op,
    patch: fn(Op) -> Op,
    create_requires: &'static [&'static str],
    replace_requires: &'static [&'static str],
    /// `?verify=` on create and replace.
    verified: bool,
    /// Whether deleting can conflict with what refers to the item.
    delete_conflicts: bool,
}

fn answers_with<T: ToSchema>(o: Op, status: u16, description: &str) -> Op {
    o.answers::<T>(status, description)
}

fn body_of<T: ToSchema>(o: Op, required: &[&str]) -> Op {
    o.body_requiring::<T>(required)
}

fn patch_of<T: ToSchema>(o: Op) -> Op {
    o.body(schema::reference::<T>())
}

const RESOURCES: &[Resource] = &[
    Resource {
        plural: "clusters",
        param: "cluster",
        noun: "cluster",
        id: "Cluster",
        list_filter: || {
            query(
                "zone",
                "Only clusters in this zone.",
                schema::reference::<schema::Label>(),
            )
        },
        page: answers_with::<Page<Cluster>>,
        one: answers_with::<Cluster>,
        input: body_of::<ClusterInput>,
        patch: patch_of::<ClusterInput>,
        create_requires: &["name"],
        replace_requires: &["name", "zones"],
        verified: false,
        delete_conflicts: true,
    },
    Resource {
        plural: "faas-deployments",
        param: "faas",
        noun: "FaaS deployment",
        id: "FaasDeployment",
        list_filter: cluster_filter,
        page: answers_with::<Page<FaasDeployment>>,
        one: answers_with::<FaasDeployment>,
        input: body_of::<FaasInput>,
        patch: patch_of::<FaasInput>,
        create_requires: &["name", "cluster", "base_url"],
        replace_requires: &["name", "cluster", "base_url", "path_template"],
        verified: false,
        delete_conflicts: false,
    },
    Resource {
        plural: "storage-deployments",
        param: "storage",
        noun: "storage deployment",
        id: "StorageDeployment",
        list_filter: cluster_filter,
        page: answers_with::<Page<StorageDeployment>>,
        one: answers_with::<StorageDeployment>,
        input: body_of::<StorageInput>,
        patch: patch_of::<StorageInput>,
        create_requires: &["name", "cluster", "endpoint", "access_key", "secret_key"],
        replace_requires: &["name", "cluster", "endpoint", "access_key", "secret_key"],
        verified: true,
        delete_conflicts: true,
    },
];

impl Resource {
    fn collection(&self) -> Vec<Op> {
        let (id, tag, noun) = (self.id, self.plural, self.noun);
        let list = op(
            Get,
            &format!("list{id}s"),
            tag,
            &format!("List {}", plural(noun)),
        )
        .params(paged())
        .params([(self.list_filter)()]);
        let list = (self.page)(list, 200, &format!("A page of {}.", plural(noun)))
            .errors(&[400, 401, 500, 503]);
        let create = op(
            Post,
            &format!("create{id}"),
            tag,
            &format!("Create {}", article(noun)),
        )
        .params(self.verified.then(verify));
        let create = (self.input)(create, self.create_requires);
        let create = (self.one)(create, 201, &format!("The new {noun}."));
        let create = created(create).errors(&[400, 401, 409, 413, 500, 503]);
        vec![list, create]
    }

    fn item(&self) -> Vec<Op> {
        let (id, tag, noun) = (self.id, self.plural, self.noun);
        let get = op(
            Get,
            &format!("get{id}"),
            tag,
            &format!("Get {}", article(noun)),
        );
        let get = (self.one)(get, 200, &format!("The {noun}.")).errors(&[401, 404, 500, 503]);
        let replace = op(
            Put,
            &format!("replace{id}"),
            tag,
            &format!("Replace {}", article(noun)),
        )
        .params(self.verified.then(verify));
        let replace = (self.input)(replace, self.replace_requires);
        let replace = (self.one)(replace, 200, &format!("The updated {noun}."))
            .errors(&[400, 401, 404, 409, 413, 500, 503]);
        let update = op(
            Patch,
            &format!("update{id}"),
            tag,
            &format!("Change some fields of {}", article(noun)),
        )
        .params(self.verified.then(verify));
        let update = (self.patch)(update);
        let update = (self.one)(update, 200, &format!("The updated {noun}."))
            .errors(&[400, 401, 404, 409, 413, 500, 503]);
        let delete = op(
            Delete,
            &format!("delete{id}"),
            tag,
            &format!("Delete {}", article(noun)),
        )
        .no_content("Deleted.");
        let delete = if self.delete_conflicts {
            delete.errors(&[401, 404, 409, 500, 503])
        } else {
            delete.errors(&[401, 404, 500, 503])
        };
        vec![get, replace, update, delete]
    }
}

fn plural(noun: &str) -> String {
    format!("{noun}s")
}

fn article(noun: &str) -> String {
    format!("a {noun}")
}

/// A 201 answer gets the new resource's `Location`.
fn created(o: Op) -> Op {
    o.with_location(201)
}

impl Op {
    fn with_location(self, status: u16) -> Op {
        self.add_header(
            status,
            "Location",
            header(
                "Path of the new resource.",
                string().format(Some(utoipa::openapi::SchemaFormat::Custom(
                    "uri-reference".into(),
                ))),
            ),
        )
    }
}

// ---- buckets -------------------------------------------------------------------

fn buckets() -> Vec<Op> {
    let list = op(Get, "listBuckets", "buckets", "List buckets")
        .params(paged())
        .params([
            text_filter("prefix", "Only buckets whose name starts with this."),
            flag(
                "under_replicated",
                "`true` (or `1`, or the name alone): only buckets short of replicas. Other values than `true`, `1`, `false`, `0` and empty are 400.",
                None,
            ),
        ])
        .answers::<Page<Bucket>>(200, "A page of buckets.")
        .errors(&[400, 401, 500, 503]);
    let create = op(Post, "createBucket", "buckets", "Create a bucket")
        .body_requiring::<BucketInput>(&["name", "master_storage"])
        .answers::<Bucket>(201, "The new bucket.");
    let create = created(create).errors(&[400, 401, 409, 413, 500, 503]);
    vec![list, create]
}

fn bucket_item() -> Vec<Op> {
    vec![
        op(Get, "getBucket", "buckets", "Get a bucket")
            .answers::<Bucket>(200, "The bucket.")
            .errors(&[401, 404, 500, 503]),
        op(Put, "replaceBucket", "buckets", "Replace a bucket")
            .body_requiring::<BucketInput>(&["allowed_zones", "target_replicas"])
            .answers::<Bucket>(200, "The updated bucket.")
            .errors(&[400, 401, 404, 409, 413, 500, 503]),
        op(Patch, "updateBucket", "buckets", "Change some fields of a bucket")
            .body(schema::reference::<BucketInput>())
            .answers::<Bucket>(200, "The updated bucket.")
            .errors(&[400, 401, 404, 409, 413, 500, 503]),
        op(Delete, "deleteBucket", "buckets", "Delete a bucket")
            .params([flag(
                "force",
                "`true` (or `1`, or the name alone) deletes a bucket that still holds objects. Values other than `true`, `1`, `false`, `0` and empty are 400.",
                None,
            )])
            .no_content("Deleted.")
            .errors(&[400, 401, 404, 409, 500, 503]),
    ]
}

fn replicas() -> Vec<Op> {
    vec![
        op(
            Get,
            "listBucketReplicas",
            "buckets",
            "A bucket's replicas, with their state and lag",
        )
        .answers::<ReplicaList>(200, "Every replica of the bucket.")
        .errors(&[401, 404, 500, 503]),
    ]
}

// ---- objects -------------------------------------------------------------------

fn objects() -> Vec<Op> {
    vec![
        op(
            Get,
            "listBucketObjects",
            "objects",
            "The catalog's view of a bucket's objects",
        )
        .params(paged())
        .params([query(
            "prefix",
            "Only keys starting with this (1 to 1024 bytes, no control characters; `%` and `_` are literal).",
            string()
                .max_length(Some(1024))
                .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*$")),
        )])
        .answers::<Page<ObjectInfo>>(200, "A page of objects.")
        .errors(&[400, 401, 404, 500, 503]),
    ]
}

/// The headers of an object's download, full or ranged.
fn object_headers(o: Op, status: u16) -> Op {
    let o = o
        .add_header(
            status,
            "ETag",
            header("The object's ETag on its master copy, quoted.", string()),
        )
        .add_header(
            status,
            "Content-Length",
            header(
                "Bytes in the body (of the range, for 206).",
                string().pattern(Some("^[0-9]+$")),
            ),
        )
        .add_header(
            status,
            "Accept-Ranges",
            header("`bytes`.", string().enum_values(Some(["bytes"]))),
        )
        .add_header(
            status,
            "X-FaDO-Storage",
            header("The storage deployment the object was read from.", string()),
        );
    if status == 206 {
        o.add_header(
            206,
            "Content-Range",
            header(
                "`bytes first-last/size`: the range sent, and the object's size.",
                string().pattern(Some("^bytes [0-9]+-[0-9]+/[0-9]+$")),
            ),
        )
    } else {
        o
    }
}

fn not_found_object(what: &str) -> Response {
    error(what, &["not_found"])
}

fn object() -> Vec<Op> {
    let bytes = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/octet-stream", binary())
            .build()
    };
    let download = op(Get, "getObject", "objects", "Download an object")
        .params([range()])
        .answer(200, bytes("The object's bytes."))
        .answer(206, bytes("The requested range of the object."))
        .answer(
            404,
            not_found_object("No such bucket, or no such object in it."),
        )
        .errors(&[400, 401, 416, 500, 502])
        .answer(503, parts::shared("StorageUnavailable"));
    let download = object_headers(object_headers(download, 200), 206);

    let head = op(
        Head,
        "headObject",
        "objects",
        "An object's headers, without its bytes",
    )
    .params([range()])
    .answer(200, described("The object's headers."))
    .answer(206, described("The headers of the requested range."))
    .answer(400, described("An invalid bucket name or object key."))
    .answer(401, described("The admin token is missing or wrong."))
    .add_header(401, "WWW-Authenticate", parts::www_authenticate())
    .answer(404, described("No such bucket, or no such object in it."))
    .answer(
        416,
        described("The range starts past the end of the object."),
    )
    .add_header(416, "Content-Range", parts::unsatisfied_range())
    .answer(
        500,
        described("A misconfiguration or an unexpected failure."),
    )
    .answer(502, described("No copy could be read."))
    .answer(
        503,
        described("Every copy is on unhealthy storage, or the database is unavailable."),
    );
    let head = object_headers(object_headers(head, 200), 206);

    let upload = op(
        Put,
        "putObject",
        "objects",
        "Upload an object to the bucket's master copy",
    )
    .raw_body(
        RequestBodyBuilder::new()
            .required(Some(Required::False))
            .description(Some(
                "The object's bytes. The request's `Content-Type` is stored with the object and served back. An empty body stores an empty object.",
            ))
            .content("application/octet-stream", binary())
            .build(),
    )
    .answers::<ObjectUpload>(200, "Stored on the master copy.")
    .add_header(
        200,
        "ETag",
        header("The object's ETag on its master copy, quoted.", string()),
    )
    .answer(404, not_found_object("No such bucket."))
    .answer(
        413,
        error(
            "Sent without a `Content-Length`, the body needs more than 10,000 parts of `copy_part_size_mib` (`too_large`).",
            &["too_large"],
        ),
    )
    .errors(&[400, 401, 500, 502])
    .answer(503, parts::shared("StorageUnavailable"));

    let delete = op(Delete, "deleteObject", "objects", "Delete an object")
        .no_content("Deleted.")
        .answer(404, not_found_object("No such bucket."))
        .errors(&[400, 401, 500, 502])
        .answer(503, parts::shared("StorageUnavailable"));
    vec![download, head, upload, delete]
}

// ---- routing and settings ------------------------------------------------------

fn route_override() -> Vec<Op> {
    vec![
        op(
            Get,
            "getRouteOverride",
            "routing",
            "A bucket's route override",
        )
        .answers::<RouteOverride>(200, "The override.")
        .errors(&[401, 404, 500, 503]),
        op(
            Put,
            "setRouteOverride",
            "routing",
            "Route a bucket's invocations by hand",
        )
        .body(schema::reference::<RouteOverrideInput>())
        .answers::<RouteOverride>(200, "The override as stored.")
        .errors(&[400, 401, 404, 409, 413, 500, 503]),
        op(
            Delete,
            "deleteRouteOverride",
            "routing",
            "Route a bucket by placement again",
        )
        .no_content("No override any more (also when there was none).")
        .errors(&[401, 404, 500, 503]),
    ]
}

fn route_overrides() -> Vec<Op> {
    vec![
        op(
            Get,
            "listRouteOverrides",
            "routing",
            "Every bucket whose route is set by hand",
        )
        .params(paged())
        .answers::<Page<RouteOverrideEntry>>(200, "A page of overrides.")
        .errors(&[400, 401, 500, 503]),
    ]
}

fn settings() -> Vec<Op> {
    vec![
        op(
            Get,
            "getSettings",
            "settings",
            "The load balancer's settings",
        )
        .answers::<Settings>(200, "The settings.")
        .errors(&[401, 500, 503]),
        op(Put, "replaceSettings", "settings", "Set every setting")
            .body_requiring::<SettingsInput>(&["default_policy", "match_header", "missing_header"])
            .answers::<Settings>(200, "The settings as stored.")
            .errors(&[400, 401, 413, 500, 503]),
        op(Patch, "updateSettings", "settings", "Change some settings")
            .body(schema::reference::<SettingsInput>())
            .answers::<Settings>(200, "The settings as stored.")
            .errors(&[400, 401, 413, 500, 503]),
    ]
}

fn routes() -> Vec<Op> {
    vec![
        op(
            Get,
            "getRouteTable",
            "routing",
            "The route table the planner last published",
        )
        .params(paged())
        .params([text_filter("bucket", "Only this bucket's route.")])
        .answers::<RouteTablePage>(200, "A page of routes.")
        .errors(&[400, 401, 500, 503]),
    ]
}

// ---- jobs, dashboard, metrics --------------------------------------------------

fn jobs() -> Vec<Op> {
    vec![
        op(Get, "listJobs", "jobs", "The replication job ledger")
            .params(paged())
            .params([
                query(
                    "state",
                    "Only jobs in this state (another value is 400).",
                    schema::reference::<JobState>(),
                ),
                query(
                    "kind",
                    "Only jobs of this kind (another value is 400).",
                    schema::reference::<JobKind>(),
                ),
                text_filter("bucket", "Only jobs for this bucket name."),
            ])
            .answers::<Page<Job>>(200, "A page of jobs.")
            .errors(&[400, 401, 500, 503]),
    ]
}

fn job_get() -> Op {
    op(Get, "getJob", "jobs", "One job")
        .answers::<Job>(200, "The job.")
        .errors(&[401, 404, 500, 503])
}

fn job_retry() -> Op {
    op(
        Post,
        "retryJob",
        "jobs",
        "Give a dead job a fresh set of attempts",
    )
    .answers::<Job>(200, "The job, queued again.")
    .errors(&[401, 404, 409, 500, 503])
}

fn resources() -> Op {
    op(
        Get,
        "getResourceSummary",
        "dashboard",
        "A bounded dashboard summary",
    )
    .answers::<ResourceSummary>(
        200,
        "Counts, health, replication state and the few buckets and jobs that need attention.",
    )
    .errors(&[401, 500, 503])
}

fn metrics() -> Op {
    op(
        Get,
        "getMetrics",
        "metrics",
        "Replication and router metrics in the Prometheus text format",
    )
    .answer(
        200,
        ResponseBuilder::new()
            .description("The metrics (`text/plain; version=0.0.4`).")
            .content("text/plain", Content::new(Some(string())))
            .build(),
    )
    .errors(&[401, 500])
    .answer(
        503,
        error(
            "Redis is unreachable (`redis_unavailable`), or as on other paths: `database_unavailable`, `schema_mismatch`.",
            &["redis_unavailable", "database_unavailable", "schema_mismatch", "retry"],
        ),
    )
}
