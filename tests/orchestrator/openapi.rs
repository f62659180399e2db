//! The catalog's OpenAPI document (`/api/openapi.json`) against the running
//! catalog: the document is well formed, it documents exactly the routes the
//! dispatcher in `components/catalog/src/lib.rs` serves, every documented
//! operation answers only documented statuses with bodies that validate
//! against the documented schemas (JSON Schema 2020-12), the bodies it
//! accepts validate against the documented request schemas, and every method
//! a path does not document answers 405. The object paths the objects
//! component serves are in the document too; the storage deployments here
//! are made up, so they are only called in ways that never reach storage
//! (`objects.rs` runs the rest against Garage).

use std::collections::{BTreeMap, BTreeSet};

use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde_json::{Value, json};

/// The keys of an OpenAPI path item that are operations.
const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Methods probed for 405 on every path.
const PROBED: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const TOKEN: Option<&str> = Some(ADMIN_TOKEN);
const WRONG_TOKEN: Option<&str> = Some("not-the-admin-token-0123456789");

const CLUSTERS: &str = "/api/clusters";
const CLUSTER: &str = "/api/clusters/{cluster}";
const FAAS_LIST: &str = "/api/faas-deployments";
const FAAS: &str = "/api/faas-deployments/{faas}";
const STORAGE_LIST: &str = "/api/storage-deployments";
const STORAGE: &str = "/api/storage-deployments/{storage}";
/// Registering the made-up storage of this test: unchecked.
const UNCHECKED: &str = "/api/storage-deployments?verify=false";
const BUCKETS: &str = "/api/buckets";
const BUCKET: &str = "/api/buckets/{bucket}";
const REPLICAS: &str = "/api/buckets/{bucket}/replicas";
const OBJECTS: &str = "/api/buckets/{bucket}/objects";
const OBJECT: &str = "/api/buckets/{bucket}/objects/{key}";
const ROUTE_OVERRIDE: &str = "/api/buckets/{bucket}/route-override";
const ROUTE_OVERRIDES: &str = "/api/route-overrides";
const SETTINGS: &str = "/api/settings";
const ROUTES: &str = "/api/routes";
const JOBS: &str = "/api/jobs";
const JOB: &str = "/api/jobs/{job}";
const RETRY: &str = "/api/jobs/{job}/retry";
const RESOURCES: &str = "/api/resources";
const METRICS: &str = "/api/metrics";

// ---- the document on its own ----------------------------------------------

/// Follows `$ref`s (local ones: the document has no others) to the object.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                v = doc
                    .pointer(r.strip_prefix('#').expect("a local $ref"))
                    .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            }
            None => return v,
        }
    }
    panic!("a $ref chain longer than 16")
}

/// Every `$ref` in `v`, with the JSON pointer where it stands.
fn collect_refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (k.as_str(), child) {
                    ("$ref", Value::String(r)) => out.push((here, r.clone())),
                    _ => collect_refs(child, &here, out),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                collect_refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Compiles `schema` as JSON Schema 2020-12 with the document's components
/// beside it, so `#/components/...` references resolve as they do in the
/// document. Building also checks the schema against the 2020-12 meta-schema.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("not a valid JSON Schema 2020-12 ({e}): {schema}"))
}

/// The ways `instance` breaks `schema` (empty when it validates).
fn violations(doc: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    validator(doc, schema)
        .iter_errors(instance)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect()
}

fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors = violations(doc, schema, instance);
    assert!(
        errors.is_empty(),
        "{what}: the body does not match the documented schema {schema}:\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}

/// `{name}` placeholders of a path template.
fn placeholders(template: &str) -> BTreeSet<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// A path template with its placeholders blanked: `/api/jobs/{}`.
fn shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The parameters of an operation: the path item's and its own, resolved.
fn parameters<'a>(doc: &'a Value, template: &str, method: &str) -> Vec<&'a Value> {
    let item = &doc["paths"][template];
    let op = &item[method];
    let mut out: Vec<&Value> = Vec::new();
    for list in [&op["parameters"], &item["parameters"]] {
        for p in list.as_array().into_iter().flatten() {
            let p = resolve(doc, p);
            // An operation's parameter overrides the path item's of the same name.
            if !out
                .iter()
                .any(|q| q["name"] == p["name"] && q["in"] == p["in"])
            {
                out.push(p);
            }
        }
    }
    out
}

/// Every documented operation: (method in lowercase, path template).
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in OPERATIONS {
            if item.get(method).is_some() {
                out.push((method.to_string(), template.clone()));
            }
        }
    }
    out
}

fn json_schema<'a>(doc: &'a Value, holder: &'a Value) -> Option<&'a Value> {
    resolve(doc, holder)
        .get("content")
        .and_then(|c| c.get("application/json"))
        .map(|m| &m["schema"])
}

/// The schema of a plain-text body (the metrics).
fn text_schema<'a>(doc: &'a Value, holder: &'a Value) -> Option<&'a Value> {
    resolve(doc, holder)
        .get("content")
        .and_then(|c| c.get("text/plain"))
        .map(|m| &m["schema"])
}

/// Whether a request body or response carries raw bytes: only
/// `application/octet-stream`, a binary string.
fn is_binary(doc: &Value, holder: &Value) -> bool {
    let content = resolve(doc, holder)
        .get("content")
        .and_then(Value::as_object);
    content.is_some_and(|c| {
        c.len() == 1
            && c.get("application/octet-stream")
                .is_some_and(|m| m["schema"] == json!({"type": "string", "format": "binary"}))
    })
}

/// Whether an operation takes a JSON body.
fn takes_json(doc: &Value, op: &Value) -> bool {
    op.get("requestBody")
        .is_some_and(|b| json_schema(doc, b).is_some())
}

/// Structural checks of an OpenAPI 3.1 document.
fn check_document(doc: &Value) {
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");

    let mut refs = Vec::new();
    collect_refs(doc, "", &mut refs);
    assert!(!refs.is_empty());
    for (at, r) in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: $ref {r} is not local"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    let check_security = |at: &str, security: &Value| {
        for requirement in security.as_array().expect("security is a list") {
            for name in requirement.as_object().expect("a requirement").keys() {
                assert!(
                    schemes.contains_key(name),
                    "{at}: unknown security scheme {name}"
                );
            }
        }
    };
    check_security("security", &doc["security"]);

    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
    {
        // Compiling checks it against the 2020-12 meta-schema.
        let _ = validator(doc, schema);
        assert!(!name.is_empty());
    }

    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    let mut ids = BTreeSet::new();
    for (template, item) in paths {
        assert!(template.starts_with('/'), "{template}");
        for key in item.as_object().expect("a path item").keys() {
            assert!(
                OPERATIONS.contains(&key.as_str())
                    || ["parameters", "summary", "description", "servers"].contains(&key.as_str()),
                "{template}: unexpected key {key}"
            );
        }
        let mut any = false;
        for method in OPERATIONS {
            let Some(op) = item.get(method) else { continue };
            any = true;
            let at = format!("{} {template}", method.to_uppercase());
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: operationId"));
            assert!(ids.insert(id.to_string()), "{at}: operationId {id} twice");
            if let Some(s) = op.get("security") {
                check_security(&at, s);
            }

            let responses = op["responses"]
                .as_object()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| panic!("{at}: no responses"));
            for (status, response) in responses {
                let valid = status == "default"
                    || (status.len() == 3
                        && (b'1'..=b'5').contains(&status.as_bytes()[0])
                        && status[1..].bytes().all(|b| b.is_ascii_digit() || b == b'X'));
                assert!(valid, "{at}: response key {status}");
                assert_ne!(status, "405", "{at}: a documented method never answers 405");
                let r = resolve(doc, response);
                assert!(r["description"].is_string(), "{at} {status}: description");
                if let Some(schema) = json_schema(doc, response) {
                    let _ = validator(doc, schema);
                    assert_eq!(
                        r["content"].as_object().map(|c| c.len()),
                        Some(1),
                        "{at} {status}: JSON and something else"
                    );
                } else if let Some(schema) = text_schema(doc, response) {
                    assert_eq!(schema, &json!({"type": "string"}), "{at} {status}");
                    assert_eq!(r["content"].as_object().map(|c| c.len()), Some(1));
                } else if r.get("content").is_some() {
                    assert!(
                        is_binary(doc, response),
                        "{at} {status}: a body that is neither JSON, text nor bytes"
                    );
                }
                for h in r["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(_, h)| h)
                {
                    let _ = validator(doc, &resolve(doc, h)["schema"]);
                }
            }

            let params = parameters(doc, template, method);
            let mut in_path = BTreeSet::new();
            for p in &params {
                let name = p["name"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}: a parameter without a name"));
                let location = p["in"].as_str().unwrap_or_default();
                assert!(
                    ["path", "query", "header", "cookie"].contains(&location),
                    "{at}: parameter {name} in {location:?}"
                );
                if location == "path" {
                    assert_eq!(
                        p["required"], true,
                        "{at}: path parameter {name} must be required"
                    );
                    in_path.insert(name.to_string());
                }
                let _ = validator(doc, &p["schema"]);
            }
            assert_eq!(
                in_path,
                placeholders(template),
                "{at}: the path parameters must match the template"
            );

            if let Some(body) = op.get("requestBody") {
                match json_schema(doc, body) {
                    Some(schema) => {
                        let _ = validator(doc, schema);
                    }
                    None => assert!(
                        is_binary(doc, body),
                        "{at}: a request body that is neither JSON nor bytes"
                    ),
                }
            }
        }
        assert!(any, "{template}: no operation");
    }
}

// ---- the dispatcher's routes -------------------------------------------------

/// The routes `serve` and `route` in the catalog's lib.rs match, as path
/// shapes (`/api/buckets/{}/replicas`), read from the source.
fn dispatched_routes() -> BTreeSet<String> {
    let file = harness::workspace().join("components/catalog/src/lib.rs");
    let src = std::fs::read_to_string(&file).expect("reading the catalog's lib.rs");
    let mut routes = BTreeSet::new();
    for (function, prefix) in [("fn serve(", ""), ("fn route(", "/api")] {
        let start = src
            .find(function)
            .unwrap_or_else(|| panic!("`{function}` is not in {}", file.display()));
        let body = &src[start..];
        let end = body[1..].find("\nfn ").map_or(body.len(), |i| i + 1);
        let mut arms = 0;
        for line in body[..end].lines() {
            let Some((pattern, _)) = line
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.split_once("] =>"))
            else {
                continue;
            };
            arms += 1;
            let mut path = prefix.to_string();
            let mut rest = false;
            for part in pattern.split(',').map(str::trim) {
                if part == ".." {
                    rest = true;
                } else if let Some(literal) =
                    part.strip_prefix('"').and_then(|p| p.strip_suffix('"'))
                {
                    path.push('/');
                    path.push_str(literal);
                } else {
                    assert!(
                        !part.is_empty()
                            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "cannot read the match arm [{pattern}] in {function}"
                    );
                    path.push_str("/{}");
                }
            }
            // `["api", ..]` hands over to `route`; it is no route itself.
            if !rest {
                routes.insert(path);
            }
        }
        assert!(arms >= 3, "found only {arms} match arms in `{function}`");
    }
    // The object listing is served by the objects component (spin.toml
    // routes /api/buckets/:bucket/objects/... to it), with the same shape,
    // and so are the objects themselves (the key is the rest of the path).
    routes.insert("/api/buckets/{}/objects".to_string());
    routes.insert("/api/buckets/{}/objects/{}".to_string());
    routes
}

// ---- calling the API through the document ------------------------------------

enum Body {
    None,
    Json(Value),
    Raw(String),
    /// Bytes, as `application/octet-stream`.
    Bytes(Vec<u8>),
}

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn send(
    o: &Orchestrator,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &Body,
) -> Answer {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut req = harness::http().request(m, o.fado.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match body {
        Body::None => {}
        Body::Json(v) => req = req.json(v),
        Body::Raw(s) => {
            req = req
                .header("content-type", "application/json")
                .body(s.clone())
        }
        Body::Bytes(b) => {
            req = req
                .header("content-type", "application/octet-stream")
                .body(b.clone())
        }
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = headers
        .get("content-type")
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("text/plain"));
    let bytes = r.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else if text {
        Value::String(String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path} → {status}: the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Answer {
        status,
        body,
        headers,
    }
}

/// The API as the document describes it: every call must be to a
/// documented operation and get a documented answer.
struct Api<'a> {
    o: &'a Orchestrator,
    doc: Value,
    /// Statuses seen per operation (lowercase method, template).
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
    /// A body each operation accepted, for the error probes.
    accepted: BTreeMap<(String, String), Value>,
}

impl<'a> Api<'a> {
    fn operation(&self, method: &str, template: &str) -> &Value {
        self.doc["paths"]
            .get(template)
            .and_then(|item| item.get(method.to_lowercase()))
            .unwrap_or_else(|| panic!("{method} {template} is not documented"))
    }

    /// Calls `path` (an instance of `template`) and checks the answer
    /// against the documentation of the operation.
    async fn call(
        &mut self,
        token: Option<&str>,
        method: &str,
        template: &str,
        path: &str,
        body: Body,
    ) -> Answer {
        let a = send(self.o, token, method, path, &body).await;
        let what = format!("{method} {path} → {}", a.status);
        let op = self.operation(method, template).clone();
        let doc = &self.doc;

        let responses = op["responses"].as_object().expect("responses");
        let response = responses
            .get(&a.status.to_string())
            .or_else(|| responses.get(&format!("{}XX", a.status / 100)))
            .or_else(|| responses.get("default"))
            .unwrap_or_else(|| {
                panic!(
                    "{what}: status not documented (documented: {:?}); body: {}",
                    responses.keys().collect::<Vec<_>>(),
                    a.body
                )
            });
        match json_schema(doc, response).or_else(|| text_schema(doc, response)) {
            Some(schema) if method != "HEAD" => {
                assert!(!a.body.is_null(), "{what}: a body is documented, none came");
                assert_valid(doc, schema, &a.body, &what);
            }
            _ => assert!(
                a.body.is_null(),
                "{what}: documented without a body, but answered {}",
                a.body
            ),
        }
        for (name, h) in resolve(doc, response)["headers"]
            .as_object()
            .into_iter()
            .flatten()
        {
            let h = resolve(doc, h);
            let value = a.headers.get(name.to_ascii_lowercase());
            if h["required"] == true {
                assert!(value.is_some(), "{what}: header {name} is missing");
            }
            if let Some(v) = value {
                let v = json!(v.to_str().expect("an ASCII header"));
                assert_valid(doc, &h["schema"], &v, &format!("{what}: header {name}"));
            }
        }

        if (200..300).contains(&a.status)
            && let Body::Json(sent) = &body
        {
            let schema = op
                .get("requestBody")
                .and_then(|b| json_schema(doc, b))
                .unwrap_or_else(|| panic!("{what}: accepted a body it does not document"));
            let errors = violations(doc, schema, sent);
            assert!(
                errors.is_empty(),
                "{what}: the catalog accepted a body the documented request schema refuses:\n  {}\nbody: {sent}",
                errors.join("\n  ")
            );
            self.accepted
                .insert((method.to_lowercase(), template.to_string()), sent.clone());
        }
        if a.status == 201 {
            // The Location names what was created.
            let location = a.headers["location"].to_str().expect("ASCII").to_string();
            let got = send(self.o, TOKEN, "GET", &location, &Body::None).await;
            assert_eq!(got.status, 200, "{what}: GET {location}: {}", got.body);
            assert_eq!(got.body["id"], a.body["id"], "{what}: GET {location}");
        }

        self.seen
            .entry((method.to_lowercase(), template.to_string()))
            .or_default()
            .insert(a.status);
        a
    }

    /// A call with the admin token that must answer `want`; returns the body.
    async fn expect(
        &mut self,
        want: u16,
        method: &str,
        template: &str,
        path: &str,
        body: Value,
    ) -> Value {
        let body = if body.is_null() {
            Body::None
        } else {
            Body::Json(body)
        };
        let a = self.call(TOKEN, method, template, path, body).await;
        assert_eq!(a.status, want, "{method} {path}: {}", a.body);
        a.body
    }

    /// A call that must be refused with `status` and, when given, name `field`.
    async fn refused(
        &mut self,
        status: u16,
        field: Option<&str>,
        method: &str,
        template: &str,
        path: &str,
        body: Value,
    ) -> String {
        let b = self.expect(status, method, template, path, body).await;
        if let Some(f) = field {
            assert_eq!(b["error"]["field"], f, "{method} {path}: {b}");
        }
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The documented schema of `method template`'s request body.
    fn request_schema(&self, method: &str, template: &str) -> Value {
        let op = self.operation(method, template);
        json_schema(&self.doc, &op["requestBody"])
            .unwrap_or_else(|| panic!("{method} {template} documents no JSON body"))
            .clone()
    }

    /// Sends `body`, which `schema_valid` says the documented request schema
    /// accepts or not, and checks the catalog agrees: accepted (`want`) or
    /// refused with 400 naming `field`.
    async fn agree(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        body: Value,
        outcome: Result<u16, &str>,
    ) {
        let schema = self.request_schema(method, template);
        let errors = violations(&self.doc, &schema, &body);
        match outcome {
            Ok(want) => {
                assert!(
                    errors.is_empty(),
                    "the documented schema refuses {body}: {errors:?}"
                );
                self.expect(want, method, template, path, body).await;
            }
            Err(field) => {
                assert!(
                    !errors.is_empty(),
                    "the documented schema of {method} {template} accepts {body}, which the catalog refuses"
                );
                self.refused(400, Some(field), method, template, path, body)
                    .await;
            }
        }
    }
}

/// `template` with its placeholders replaced from `values`.
fn fill(template: &str, values: &BTreeMap<&str, String>) -> String {
    template
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => values
                    .get(name)
                    .unwrap_or_else(|| panic!("no value for {{{name}}}"))
                    .clone(),
                None => s.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn cursor(page: &Value) -> String {
    page["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("expected another page: {page}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_matches_the_catalog() {
    let mut o = Orchestrator::start().await.unwrap();

    // ---- (a) the served document is the one this source generates, and well formed ----
    let served = send(&o, None, "GET", "/api/openapi.json", &Body::None).await;
    assert_eq!(served.status, 200, "{}", served.body);
    let generated = serde_json::to_value(fado_openapi::document()).unwrap();
    assert!(
        served.body == generated,
        "the catalog serves another document than fado-openapi generates: rebuild the components (./infra/build)"
    );
    let doc = served.body;
    check_document(&doc);
    // The validator resolves component references and refuses what they refuse.
    let cluster = json!({"$ref": "#/components/schemas/Cluster"});
    assert!(!violations(&doc, &cluster, &json!({"id": "1"})).is_empty());
    assert!(!violations(&doc, &cluster, &json!({"id": 1, "name": "a", "zones": [], "created_at": "yesterday", "updated_at": "2026-01-01T00:00:00.000000Z"})).is_empty());

    // ---- (b) documented paths are exactly the dispatched routes ----
    let dispatched = dispatched_routes();
    let documented: BTreeMap<String, String> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|t| (shape(t), t.clone()))
        .collect();
    for route in &dispatched {
        assert!(
            documented.contains_key(route),
            "the catalog serves {route}, which the document does not describe"
        );
    }
    for (route, template) in &documented {
        assert!(
            dispatched.contains(route),
            "the document describes {template}, which the catalog does not serve"
        );
    }

    // ---- (c) every operation, with valid input ----
    let mut api = Api {
        o: &o,
        doc: doc.clone(),
        seen: BTreeMap::new(),
        accepted: BTreeMap::new(),
    };

    // Probes and the document need no token.
    for (method, path) in [
        ("GET", "/healthz"),
        ("HEAD", "/healthz"),
        ("GET", "/readyz"),
        ("HEAD", "/readyz"),
        ("GET", "/api/openapi.json"),
    ] {
        let a = api.call(None, method, path, path, Body::None).await;
        assert_eq!(a.status, 200, "{method} {path}: {}", a.body);
    }

    // Clusters.
    api.expect(
        201,
        "POST",
        CLUSTERS,
        CLUSTERS,
        json!({"name": "edge", "zones": ["germany", "eu"]}),
    )
    .await;
    let core = api
        .expect(
            201,
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "core", "zones": ["eu"]}),
        )
        .await;
    api.expect(201, "POST", CLUSTERS, CLUSTERS, json!({"name": "spare"}))
        .await;
    let page = api
        .expect(200, "GET", CLUSTERS, "/api/clusters?limit=2", Value::Null)
        .await;
    let page = api
        .expect(
            200,
            "GET",
            CLUSTERS,
            &format!("/api/clusters?limit=2&cursor={}", cursor(&page)),
            Value::Null,
        )
        .await;
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    let page = api
        .expect(
            200,
            "GET",
            CLUSTERS,
            "/api/clusters?zone=germany",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    api.expect(200, "GET", CLUSTER, "/api/clusters/edge", Value::Null)
        .await;
    api.expect(
        200,
        "GET",
        CLUSTER,
        &format!("/api/clusters/{}", core["id"]),
        Value::Null,
    )
    .await;
    api.expect(
        200,
        "PUT",
        CLUSTER,
        "/api/clusters/edge",
        json!({"name": "edge", "zones": ["eu", "germany", "hpc"]}),
    )
    .await;
    api.expect(
        200,
        "PATCH",
        CLUSTER,
        "/api/clusters/core",
        json!({"zones": ["eu", "france"]}),
    )
    .await;

    // FaaS deployments (the addresses are loopback ports nobody serves).
    api.expect(
        201,
        "POST",
        FAAS_LIST,
        FAAS_LIST,
        json!({"name": "fn-edge", "cluster": "edge", "platform": "openfaas",
               "base_url": "http://127.0.0.1:1/", "labels": ["gpu"], "timeout_ms": 5000}),
    )
    .await;
    let fn_core = api
        .expect(
            201,
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "fn-core", "cluster": core["id"], "base_url": "https://127.0.0.1:2"}),
        )
        .await;
    api.expect(
        201,
        "POST",
        FAAS_LIST,
        FAAS_LIST,
        json!({"name": "fn-spare", "cluster": "spare", "platform": "lambda",
               "base_url": "https://127.0.0.1:3", "path_template": ""}),
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            FAAS_LIST,
            "/api/faas-deployments?limit=2",
            Value::Null,
        )
        .await;
    api.expect(
        200,
        "GET",
        FAAS_LIST,
        &format!("/api/faas-deployments?limit=2&cursor={}", cursor(&page)),
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            FAAS_LIST,
            "/api/faas-deployments?cluster=edge",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    api.expect(
        200,
        "GET",
        FAAS,
        "/api/faas-deployments/fn-edge",
        Value::Null,
    )
    .await;
    api.expect(
        200,
        "PUT",
        FAAS,
        "/api/faas-deployments/fn-core",
        json!({"name": "fn-core", "cluster": "core", "platform": "spin",
               "base_url": "http://127.0.0.1:2", "path_template": "/{function}"}),
    )
    .await;
    api.expect(
        200,
        "PATCH",
        FAAS,
        "/api/faas-deployments/fn-edge",
        json!({"timeout_ms": 100, "labels": []}),
    )
    .await;

    // Storage deployments (nothing listens at their endpoints: unchecked).
    let s3_edge = api
        .expect(
            201,
            "POST",
            STORAGE_LIST,
            UNCHECKED,
            json!({"name": "s3-edge", "cluster": "edge", "endpoint": "http://127.0.0.1:1",
                   "region": "garage", "path_style": true, "access_key": "GK-edge", "secret_key": "edge-secret"}),
        )
        .await;
    let s3_core = api
        .expect(
            201,
            "POST",
            STORAGE_LIST,
            UNCHECKED,
            json!({"name": "s3-core", "cluster": core["id"], "endpoint": "http://127.0.0.1:2",
                   "access_key": "GK-core", "secret_key": "core-secret",
                   "notify_token": "core-notify-token-0123"}),
        )
        .await;
    assert_eq!(
        (&s3_edge["health"], &s3_edge["notifications"]),
        (&json!("unknown"), &json!(false)),
        "{s3_edge}"
    );
    assert_eq!(s3_core["notifications"], true, "{s3_core}");
    api.expect(
        201,
        "POST",
        STORAGE_LIST,
        UNCHECKED,
        json!({"name": "s3-spare", "cluster": "core", "endpoint": "http://127.0.0.1:3",
               "access_key": "GK-spare", "secret_key": "spare-secret"}),
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            STORAGE_LIST,
            "/api/storage-deployments?limit=1",
            Value::Null,
        )
        .await;
    api.expect(
        200,
        "GET",
        STORAGE_LIST,
        &format!("/api/storage-deployments?limit=1&cursor={}", cursor(&page)),
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            STORAGE_LIST,
            "/api/storage-deployments?cluster=core",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    api.expect(
        200,
        "GET",
        STORAGE,
        &format!("/api/storage-deployments/{}", s3_edge["id"]),
        Value::Null,
    )
    .await;
    // s3-spare holds no master copy, so it may be replaced (cluster included).
    api.expect(
        200,
        "PUT",
        STORAGE,
        "/api/storage-deployments/s3-spare?verify=false",
        json!({"name": "s3-spare", "cluster": "core", "endpoint": "http://127.0.0.1:3",
               "region": "us-west-2", "access_key": "GK-spare", "secret_key": "new-secret"}),
    )
    .await;
    api.expect(
        200,
        "PATCH",
        STORAGE,
        "/api/storage-deployments/s3-core?verify=0",
        json!({"path_style": false}),
    )
    .await;

    // Buckets.
    let photos = api
        .expect(
            201,
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "photos.eu", "master_storage": "s3-edge", "allowed_zones": ["eu"],
                   "target_replicas": 1}),
        )
        .await;
    api.expect(
        201,
        "POST",
        BUCKETS,
        BUCKETS,
        json!({"name": "logs", "master_storage": s3_core["id"], "replica_override": []}),
    )
    .await;
    api.expect(
        201,
        "POST",
        BUCKETS,
        BUCKETS,
        json!({"name": "doomed-1", "master_storage": "s3-core", "replica_override": null}),
    )
    .await;
    let page = api
        .expect(200, "GET", BUCKETS, "/api/buckets?limit=2", Value::Null)
        .await;
    api.expect(
        200,
        "GET",
        BUCKETS,
        &format!("/api/buckets?limit=2&cursor={}", cursor(&page)),
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            BUCKETS,
            "/api/buckets?prefix=photos&under_replicated=false",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    api.expect(
        200,
        "GET",
        BUCKETS,
        "/api/buckets?under_replicated",
        Value::Null,
    )
    .await;
    api.expect(200, "GET", BUCKET, "/api/buckets/photos.eu", Value::Null)
        .await;
    api.expect(
        200,
        "GET",
        BUCKET,
        &format!("/api/buckets/{}", photos["id"]),
        Value::Null,
    )
    .await;
    api.expect(
        200,
        "PUT",
        BUCKET,
        "/api/buckets/logs",
        json!({"allowed_zones": ["eu"], "target_replicas": 1, "replica_override": null}),
    )
    .await;
    let b = api
        .expect(
            200,
            "PATCH",
            BUCKET,
            "/api/buckets/photos.eu",
            json!({"replica_override": ["s3-core"]}),
        )
        .await;
    assert_eq!(b["replica_override"], json!([s3_core["id"]]), "{b}");
    api.expect(
        200,
        "PATCH",
        BUCKET,
        "/api/buckets/photos.eu",
        json!({"name": "photos.eu", "master_storage": "s3-edge", "replica_override": null}),
    )
    .await;

    // Replicas, once the planner has placed them.
    o.settled().await;
    let replicas = api
        .expect(
            200,
            "GET",
            REPLICAS,
            "/api/buckets/photos.eu/replicas",
            Value::Null,
        )
        .await;
    assert_eq!(replicas["items"].as_array().unwrap().len(), 1, "{replicas}");
    let b = api
        .expect(200, "GET", BUCKET, "/api/buckets/photos.eu", Value::Null)
        .await;
    assert_eq!(b["replicas"], replicas["items"]);

    // Objects, as the notify component would record them.
    let db = o.db().await.unwrap();
    db.batch_execute(
        "INSERT INTO objects (bucket_id, key, size, etag, content_type)
         SELECT b.id, k, length(k), md5(k), CASE WHEN k = 'a/2' THEN NULL ELSE 'text/plain' END
         FROM buckets b, unnest(ARRAY['a/1', 'a/2', 'b/1']) AS k WHERE b.name = 'logs'",
    )
    .await
    .unwrap();
    let page = api
        .expect(
            200,
            "GET",
            OBJECTS,
            "/api/buckets/logs/objects?prefix=a/&limit=1",
            Value::Null,
        )
        .await;
    let page = api
        .expect(
            200,
            "GET",
            OBJECTS,
            &format!(
                "/api/buckets/logs/objects?prefix=a/&limit=1&cursor={}",
                cursor(&page)
            ),
            Value::Null,
        )
        .await;
    assert_eq!(page["items"][0]["content_type"], Value::Null, "{page}");
    api.expect(
        200,
        "GET",
        OBJECTS,
        "/api/buckets/logs/objects",
        Value::Null,
    )
    .await;

    // One object's operations, only in ways that never reach the (made-up)
    // storage: without the token, 401 whatever the path; with it, a bucket
    // name or key that is not valid is refused, an unknown bucket before
    // storage is contacted.
    let long_key = format!("/api/buckets/logs/objects/{}", "k".repeat(1025));
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        let body = || match method {
            "PUT" => Body::Bytes(b"some bytes".to_vec()),
            _ => Body::None,
        };
        for (path, field) in [
            ("/api/buckets/logs/objects/%01", "key"),
            ("/api/buckets/logs/objects/a/%FF", "key"),
            (long_key.as_str(), "key"),
            ("/api/buckets/Bad_Bucket/objects/a", "bucket"),
        ] {
            let a = api.call(TOKEN, method, OBJECT, path, body()).await;
            assert_eq!(a.status, 400, "{method} {path}: {}", a.body);
            if method != "HEAD" {
                assert_eq!(a.body["error"]["field"], field, "{method} {path}");
            }
            let a = api.call(None, method, OBJECT, path, body()).await;
            assert_eq!(
                a.status, 401,
                "{method} {path} without the token: {}",
                a.body
            );
        }
        for path in [
            "/api/buckets/no-such-bucket/objects/a/b%2Fc.txt",
            "/api/buckets/987654321/objects/a",
        ] {
            let a = api.call(TOKEN, method, OBJECT, path, body()).await;
            assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        }
    }

    // Route overrides.
    let r = api
        .expect(
            200,
            "PUT",
            ROUTE_OVERRIDE,
            "/api/buckets/photos.eu/route-override",
            json!({"faas": ["fn-edge", fn_core["id"]], "policy": "p2c"}),
        )
        .await;
    assert_eq!(r["policy"], "p2c");
    api.expect(
        200,
        "PUT",
        ROUTE_OVERRIDE,
        "/api/buckets/logs/route-override",
        json!({"faas": ["fn-core"]}),
    )
    .await;
    api.expect(
        200,
        "GET",
        ROUTE_OVERRIDE,
        "/api/buckets/photos.eu/route-override",
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            ROUTE_OVERRIDES,
            "/api/route-overrides?limit=1",
            Value::Null,
        )
        .await;
    let page = api
        .expect(
            200,
            "GET",
            ROUTE_OVERRIDES,
            &format!("/api/route-overrides?limit=1&cursor={}", cursor(&page)),
            Value::Null,
        )
        .await;
    assert_eq!(page["items"][0]["policy"], Value::Null, "{page}");

    // Settings.
    api.expect(200, "GET", SETTINGS, SETTINGS, Value::Null)
        .await;
    api.expect(
        200,
        "PATCH",
        SETTINGS,
        SETTINGS,
        json!({"default_policy": "least_conn"}),
    )
    .await;
    api.expect(
        200,
        "PUT",
        SETTINGS,
        SETTINGS,
        json!({"default_policy": "round_robin", "match_header": "X-Data-Bucket", "missing_header": "any"}),
    )
    .await;

    // The route table.
    o.settled().await;
    let page = api
        .expect(200, "GET", ROUTES, "/api/routes?limit=1", Value::Null)
        .await;
    assert!(page["settings"].is_object(), "{page}");
    api.expect(
        200,
        "GET",
        ROUTES,
        &format!("/api/routes?limit=1&cursor={}", cursor(&page)),
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            ROUTES,
            "/api/routes?bucket=photos.eu",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"][0]["overridden"], true, "{page}");

    // Jobs: a dead one to retry and a finished one that cannot be.
    let dead: i64 = db
        .query_one(
            "INSERT INTO jobs (kind, bucket_name, state, attempts, last_error, finished_at)
             VALUES ('sync_replica', 'ghost-bucket', 'dead', 10, 'SlowDown', now()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let done: i64 = db
        .query_one(
            "INSERT INTO jobs (kind, bucket_name, object_key, state, finished_at)
             VALUES ('copy_object', 'ghost-bucket', 'k', 'done', now()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let page = api
        .expect(200, "GET", JOBS, "/api/jobs?limit=1", Value::Null)
        .await;
    api.expect(
        200,
        "GET",
        JOBS,
        &format!("/api/jobs?limit=1&cursor={}", cursor(&page)),
        Value::Null,
    )
    .await;
    let page = api
        .expect(
            200,
            "GET",
            JOBS,
            "/api/jobs?state=dead&kind=sync_replica&bucket=ghost-bucket",
            Value::Null,
        )
        .await;
    assert_eq!(page["items"][0]["id"], dead, "{page}");
    api.expect(200, "GET", JOB, &format!("/api/jobs/{done}"), Value::Null)
        .await;
    let summary = api
        .expect(200, "GET", RESOURCES, RESOURCES, Value::Null)
        .await;
    assert!(
        summary["dead_jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["id"] == dead),
        "{summary}"
    );
    let metrics = api.expect(200, "GET", METRICS, METRICS, Value::Null).await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "fado_jobs{kind=\"sync_replica\",state=\"dead\"} 1",
        "fado_storage_healthy{storage=\"s3-edge\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    let job = api
        .expect(
            200,
            "POST",
            RETRY,
            &format!("/api/jobs/{dead}/retry"),
            Value::Null,
        )
        .await;
    assert_eq!(job["state"], "queued", "{job}");

    // ---- (c) every operation, refused: no token, unknown items, bad input ----
    let known: BTreeMap<&str, String> = [
        ("cluster", "edge".to_string()),
        ("faas", "fn-edge".to_string()),
        ("storage", "s3-edge".to_string()),
        ("bucket", "photos.eu".to_string()),
        ("key", "docs/read%20me.txt".to_string()),
        ("job", done.to_string()),
    ]
    .into();
    for (method, template) in operations(&doc) {
        let op = doc["paths"][&template][&method].clone();
        let m = method.to_uppercase();
        let documents = |status: &str| op["responses"].get(status).is_some();
        // A body the operation accepted, so that only the probed fault is
        // wrong (bytes, for an object upload).
        let json_body = takes_json(&doc, &op);
        let accepted = match op.get("requestBody") {
            Some(_) if json_body => Some(
                api.accepted
                    .get(&(method.clone(), template.clone()))
                    .cloned()
                    .unwrap_or_else(|| panic!("{m} {template} was never called with a valid body")),
            ),
            _ => None,
        };
        let valid = || match &accepted {
            Some(v) => Body::Json(v.clone()),
            None if op.get("requestBody").is_some() => Body::Bytes(b"some bytes".to_vec()),
            None => Body::None,
        };
        let path = fill(&template, &known);

        let secured = op
            .get("security")
            .unwrap_or(&doc["security"])
            .as_array()
            .is_some_and(|s| !s.is_empty());
        if secured {
            for token in [None, WRONG_TOKEN] {
                let a = api.call(token, &m, &template, &path, valid()).await;
                assert_eq!(a.status, 401, "{m} {path} without the token: {}", a.body);
                if m != "HEAD" {
                    assert_eq!(a.body["error"]["code"], "unauthorized");
                }
            }
        }

        if documents("404") && !placeholders(&template).is_empty() {
            for unknown in ["no-such-thing", "987654321"] {
                let mut unknown_values = known.clone();
                for v in unknown_values.values_mut() {
                    *v = unknown.to_string();
                }
                let p = fill(&template, &unknown_values);
                let a = api.call(TOKEN, &m, &template, &p, valid()).await;
                assert_eq!(a.status, 404, "{m} {p}: {}", a.body);
            }
        }

        if documents("400") && json_body {
            let schema = api.request_schema(&m, &template);
            for (body, field) in [
                (json!({"no_such_field": 1}), "no_such_field"),
                (json!([1]), "body"),
                (json!("text"), "body"),
            ] {
                assert!(
                    !violations(&doc, &schema, &body).is_empty(),
                    "{m} {template}: the documented schema accepts {body}"
                );
                api.refused(400, Some(field), &m, &template, &path, body)
                    .await;
            }
            let a = api
                .call(TOKEN, &m, &template, &path, Body::Raw("{\"na".into()))
                .await;
            assert_eq!(
                (a.status, &a.body["error"]["code"]),
                (400, &json!("invalid_json"))
            );
            let a = api.call(TOKEN, &m, &template, &path, Body::None).await;
            assert_eq!(a.status, 400, "{m} {path} without a body: {}", a.body);
        }

        // (An object upload's 413 needs storage: see the coverage below.)
        if documents("413") && json_body {
            let huge = json!({"name": "x".repeat(1 << 20)});
            let a = api
                .call(TOKEN, &m, &template, &path, Body::Json(huge))
                .await;
            assert_eq!(a.status, 413, "{m} {path}: {}", a.body);
        }

        if documents("400") {
            for p in parameters(&doc, &template, &method) {
                if p["in"] != "query" {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                let schema = resolve(&doc, &p["schema"]);
                // Values the catalog refuses; all but the opaque cursor are
                // refused by the documented schema too.
                let bad: Vec<&str> = match name {
                    "limit" => vec!["0", "1001", "ten"],
                    "cursor" => vec!["not-a-cursor"],
                    _ if schema.get("enum").is_some() => vec!["no-such-value"],
                    _ => vec![],
                };
                for value in bad {
                    let as_json = value
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!(value));
                    assert!(
                        name == "cursor" || !violations(&doc, schema, &as_json).is_empty(),
                        "{m} {template}: the documented schema of `{name}` accepts {value}"
                    );
                    let p = format!("{path}?{name}={value}");
                    // With a valid body, so that the parameter is what is wrong.
                    let a = api.call(TOKEN, &m, &template, &p, valid()).await;
                    assert_eq!(a.status, 400, "{m} {p}: {}", a.body);
                    assert_eq!(a.body["error"]["field"], name, "{m} {p}: {}", a.body);
                }
            }
        }
    }

    // Input the schemas describe: the catalog and the document agree.
    // (method, path template, path, body, Ok(status) or Err(field refused))
    type Case<'a> = (&'a str, &'a str, &'a str, Value, Result<u16, &'a str>);
    let cases: Vec<Case> = vec![
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"zones": ["eu"]}),
            Err("name"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "Bad_Name"}),
            Err("name"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "1abc"}),
            Err("name"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "abc-"}),
            Err("name"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "a".repeat(64)}),
            Err("name"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "a".repeat(63)}),
            Ok(201),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "z", "zones": ["1a", "b-2"]}),
            Ok(201),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "ok", "zones": ["eu", "eu"]}),
            Err("zones[1]"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "ok", "zones": ["-eu"]}),
            Err("zones[0]"),
        ),
        (
            "POST",
            CLUSTERS,
            CLUSTERS,
            json!({"name": "ok", "zones": (0..65).map(|i| format!("z{i}")).collect::<Vec<_>>()}),
            Err("zones"),
        ),
        (
            "PUT",
            CLUSTER,
            "/api/clusters/spare",
            json!({"name": "spare"}),
            Err("zones"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge"}),
            Err("base_url"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "ftp://h"}),
            Err("base_url"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h/?a=1"}),
            Err("base_url"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://u:p@h"}),
            Err("base_url"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "platform": "mainframe"}),
            Err("platform"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "path_template": "fn/{function}"}),
            Err("path_template"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "path_template": "/{fn}"}),
            Err("path_template"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "path_template": "/{function}/{function}"}),
            Err("path_template"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "path_template": "/a b"}),
            Err("path_template"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "timeout_ms": 0}),
            Err("timeout_ms"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "timeout_ms": 3_600_001}),
            Err("timeout_ms"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "http://h", "labels": ["GPU"]}),
            Err("labels[0]"),
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST,
            json!({"name": "f", "cluster": "edge", "base_url": "HTTP://127.0.0.1:4", "path_template": "/fn/{function}/run", "timeout_ms": 3_600_000}),
            Ok(201),
        ),
        (
            "PUT",
            FAAS,
            "/api/faas-deployments/fn-spare",
            json!({"name": "fn-spare", "cluster": "spare", "base_url": "http://h"}),
            Err("path_template"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "access_key": "a"}),
            Err("secret_key"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "h:9000", "access_key": "a", "secret_key": "b"}),
            Err("endpoint"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "region": "eu west", "access_key": "a", "secret_key": "b"}),
            Err("region"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "access_key": "", "secret_key": "b"}),
            Err("access_key"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "access_key": "a", "secret_key": "x".repeat(257)}),
            Err("secret_key"),
        ),
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "access_key": "a\u{1}", "secret_key": "b"}),
            Err("access_key"),
        ),
        (
            "POST",
            STORAGE_LIST,
            UNCHECKED,
            json!({"name": "s-max", "cluster": "edge", "endpoint": "http://127.0.0.1:5", "region": "a_B-1", "access_key": "a".repeat(256), "secret_key": "b"}),
            Ok(201),
        ),
        (
            "POST",
            STORAGE_LIST,
            UNCHECKED,
            json!({"name": "s", "cluster": "edge", "endpoint": "http://h", "access_key": "a", "secret_key": "b", "notify_token": "0123456789abcde"}),
            Err("notify_token"),
        ),
        (
            "PATCH",
            STORAGE,
            "/api/storage-deployments/s3-spare",
            json!({"notify_token": "0123456789abcde\u{1}"}),
            Err("notify_token"),
        ),
        (
            "PATCH",
            STORAGE,
            "/api/storage-deployments/s3-spare",
            json!({"notify_token": "0123456789abcdef"}),
            Ok(200),
        ),
        (
            "PATCH",
            STORAGE,
            "/api/storage-deployments/s3-spare",
            json!({"notify_token": ""}),
            Ok(200),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "ab", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "Abc", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "a..b", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "a.-b", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "-ab", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "192.168.1.1", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "xn--abc", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "abc-s3alias", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "a_b", "master_storage": "s3-core"}),
            Err("name"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "good"}),
            Err("master_storage"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "good", "master_storage": "s3-core", "target_replicas": 65}),
            Err("target_replicas"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "good", "master_storage": "s3-core", "target_replicas": -1}),
            Err("target_replicas"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "good", "master_storage": "s3-core", "allowed_zones": ["EU"]}),
            Err("allowed_zones[0]"),
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS,
            json!({"name": "256.1.1.1", "master_storage": "s3-core", "target_replicas": 64}),
            Ok(201),
        ),
        (
            "PUT",
            BUCKET,
            "/api/buckets/logs",
            json!({"allowed_zones": ["eu"]}),
            Err("target_replicas"),
        ),
        (
            "PUT",
            ROUTE_OVERRIDE,
            "/api/buckets/logs/route-override",
            json!({"faas": []}),
            Err("faas"),
        ),
        (
            "PUT",
            ROUTE_OVERRIDE,
            "/api/buckets/logs/route-override",
            json!({"faas": ["fn-core"], "policy": "sometimes"}),
            Err("policy"),
        ),
        (
            "PATCH",
            SETTINGS,
            SETTINGS,
            json!({"default_policy": "fastest"}),
            Err("default_policy"),
        ),
        (
            "PATCH",
            SETTINGS,
            SETTINGS,
            json!({"match_header": "bad header"}),
            Err("match_header"),
        ),
        (
            "PATCH",
            SETTINGS,
            SETTINGS,
            json!({"match_header": "h".repeat(65)}),
            Err("match_header"),
        ),
        (
            "PATCH",
            SETTINGS,
            SETTINGS,
            json!({"missing_header": "drop"}),
            Err("missing_header"),
        ),
        (
            "PUT",
            SETTINGS,
            SETTINGS,
            json!({"default_policy": "first", "match_header": "X-FaDO-Bucket"}),
            Err("missing_header"),
        ),
    ];
    for (method, template, path, body, outcome) in cases {
        api.agree(method, template, path, body, outcome).await;
    }

    // Refusals the schemas cannot express: malformed (400), or well-formed
    // but refused by the platform's state, a reference to nothing included
    // (409 naming the field).
    for (method, template, path, body, field, status) in [
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST.to_string(),
            json!({"name": "f", "cluster": "nowhere", "base_url": "http://h"}),
            "cluster",
            409,
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS.to_string(),
            json!({"name": "good", "master_storage": "s3-core", "allowed_zones": ["germany"]}),
            "master_storage",
            409,
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS.to_string(),
            json!({"name": "good", "master_storage": "s3-core", "replica_override": ["s3-core"]}),
            "replica_override[0]",
            409,
        ),
        (
            "PATCH",
            BUCKET,
            "/api/buckets/photos.eu".to_string(),
            json!({"name": "photos.us"}),
            "name",
            409,
        ),
        (
            "PUT",
            BUCKET,
            "/api/buckets/photos.eu".to_string(),
            json!({"name": "photos.us", "allowed_zones": [], "target_replicas": 0}),
            "name",
            409,
        ),
        (
            "PATCH",
            BUCKET,
            "/api/buckets/photos.eu".to_string(),
            json!({"master_storage": "s3-core"}),
            "master_storage",
            409,
        ),
        (
            "PUT",
            ROUTE_OVERRIDE,
            "/api/buckets/logs/route-override".to_string(),
            json!({"faas": ["fn-core", "fn-core"]}),
            "faas[1]",
            400,
        ),
        (
            "PUT",
            ROUTE_OVERRIDE,
            "/api/buckets/logs/route-override".to_string(),
            json!({"faas": ["no-such-fn"]}),
            "faas[0]",
            409,
        ),
        (
            "GET",
            OBJECTS,
            "/api/buckets/logs/objects?prefix=%01".to_string(),
            Value::Null,
            "prefix",
            400,
        ),
        (
            "GET",
            OBJECTS,
            "/api/buckets/Bad_Bucket/objects".to_string(),
            Value::Null,
            "bucket",
            400,
        ),
        // Checked storage: nothing listens on a free port.
        (
            "POST",
            STORAGE_LIST,
            STORAGE_LIST.to_string(),
            json!({"name": "s-down", "cluster": "edge", "access_key": "a", "secret_key": "b",
                   "endpoint": format!("http://127.0.0.1:{}", harness::free_port())}),
            "endpoint",
            400,
        ),
        (
            "PATCH",
            STORAGE,
            "/api/storage-deployments/s3-spare?verify=true".to_string(),
            json!({"secret_key": "other-secret"}),
            "endpoint",
            400,
        ),
    ] {
        api.refused(status, Some(field), method, template, &path, body)
            .await;
    }
    // A filter naming no cluster lists nothing.
    for (template, path) in [
        (FAAS_LIST, "/api/faas-deployments?cluster=nowhere"),
        (STORAGE_LIST, "/api/storage-deployments?cluster=nowhere"),
    ] {
        let page = api.expect(200, "GET", template, path, Value::Null).await;
        assert_eq!(page["items"], json!([]), "{path}: {page}");
    }

    // Conflicts.
    for (method, template, path, body) in [
        (
            "POST",
            CLUSTERS,
            CLUSTERS.to_string(),
            json!({"name": "edge"}),
        ),
        (
            "PUT",
            CLUSTER,
            "/api/clusters/core".to_string(),
            json!({"name": "edge", "zones": ["eu", "france"]}),
        ),
        // Narrowing edge's zones would strand photos.eu's master outside `eu`.
        (
            "PATCH",
            CLUSTER,
            "/api/clusters/edge".to_string(),
            json!({"zones": ["asia"]}),
        ),
        (
            "DELETE",
            CLUSTER,
            "/api/clusters/edge".to_string(),
            Value::Null,
        ),
        (
            "POST",
            FAAS_LIST,
            FAAS_LIST.to_string(),
            json!({"name": "fn-edge", "cluster": "edge", "base_url": "http://h"}),
        ),
        (
            "PUT",
            FAAS,
            "/api/faas-deployments/fn-core".to_string(),
            json!({"name": "fn-edge", "cluster": "core", "base_url": "http://h", "path_template": ""}),
        ),
        (
            "PATCH",
            FAAS,
            "/api/faas-deployments/fn-core".to_string(),
            json!({"name": "fn-edge"}),
        ),
        (
            "POST",
            STORAGE_LIST,
            UNCHECKED.to_string(),
            json!({"name": "s3-edge", "cluster": "edge", "endpoint": "http://h", "access_key": "a", "secret_key": "b"}),
        ),
        (
            "PUT",
            STORAGE,
            "/api/storage-deployments/s3-spare?verify=false".to_string(),
            json!({"name": "s3-edge", "cluster": "core", "endpoint": "http://h", "access_key": "a", "secret_key": "b"}),
        ),
        (
            "PATCH",
            STORAGE,
            "/api/storage-deployments/s3-edge".to_string(),
            json!({"cluster": "core"}),
        ),
        (
            "DELETE",
            STORAGE,
            "/api/storage-deployments/s3-edge".to_string(),
            Value::Null,
        ),
        (
            "POST",
            BUCKETS,
            BUCKETS.to_string(),
            json!({"name": "photos.eu", "master_storage": "s3-edge"}),
        ),
        (
            "DELETE",
            BUCKET,
            "/api/buckets/logs".to_string(),
            Value::Null,
        ),
        (
            "POST",
            RETRY,
            format!("/api/jobs/{done}/retry"),
            Value::Null,
        ),
    ] {
        api.refused(409, None, method, template, &path, body).await;
    }
    api.refused(
        404,
        None,
        "GET",
        ROUTE_OVERRIDE,
        "/api/buckets/doomed-1/route-override",
        Value::Null,
    )
    .await;

    // ---- (d) every method a path does not document answers 405 ----
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = fill(template, &known);
        let allowed: BTreeSet<String> = OPERATIONS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        for method in PROBED {
            if allowed.contains(method) {
                continue;
            }
            let a = send(&o, TOKEN, method, &path, &Body::None).await;
            assert_eq!(
                a.status, 405,
                "{method} {path} (documented: {allowed:?}): {}",
                a.body
            );
            // RFC 9110: a 405 names the allowed methods in `Allow`.
            let allow: BTreeSet<String> = a
                .headers
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {path}: a 405 without an Allow header"))
                .to_str()
                .expect("ASCII")
                .split(',')
                .map(|m| m.trim().to_string())
                .collect();
            assert_eq!(allow, allowed, "{method} {path}: Allow");
            if method == "HEAD" {
                continue;
            }
            assert_valid(
                &doc,
                &json!({"$ref": "#/components/schemas/Error"}),
                &a.body,
                &format!("{method} {path}"),
            );
            assert_eq!(
                a.body["error"]["code"], "method_not_allowed",
                "{method} {path}"
            );
            // The message lists exactly the documented methods.
            let listed: BTreeSet<String> = a.body["error"]["message"]
                .as_str()
                .unwrap()
                .trim_start_matches("use one of:")
                .split(',')
                .map(|m| m.trim().to_string())
                .collect();
            assert_eq!(listed, allowed, "{method} {path}: {}", a.body);
        }
    }

    // ---- deletions, last ----
    api.expect(
        204,
        "DELETE",
        ROUTE_OVERRIDE,
        "/api/buckets/photos.eu/route-override",
        Value::Null,
    )
    .await;
    api.expect(
        204,
        "DELETE",
        ROUTE_OVERRIDE,
        "/api/buckets/photos.eu/route-override",
        Value::Null,
    )
    .await;
    api.refused(
        404,
        None,
        "GET",
        ROUTE_OVERRIDE,
        "/api/buckets/photos.eu/route-override",
        Value::Null,
    )
    .await;
    api.expect(
        204,
        "DELETE",
        BUCKET,
        "/api/buckets/logs?force=true",
        Value::Null,
    )
    .await;
    api.expect(
        204,
        "DELETE",
        BUCKET,
        "/api/buckets/doomed-1?force=0",
        Value::Null,
    )
    .await;
    api.expect(
        204,
        "DELETE",
        FAAS,
        "/api/faas-deployments/fn-spare",
        Value::Null,
    )
    .await;
    api.expect(
        204,
        "DELETE",
        STORAGE,
        "/api/storage-deployments/s3-spare",
        Value::Null,
    )
    .await;
    api.expect(204, "DELETE", CLUSTER, "/api/clusters/spare", Value::Null)
        .await;

    // ---- readiness without Redis ----
    drop(db);
    let Api {
        seen: mut seen_so_far,
        ..
    } = api;
    o.redis.stop();
    let mut api = Api {
        o: &o,
        doc: doc.clone(),
        seen: BTreeMap::new(),
        accepted: BTreeMap::new(),
    };
    for method in ["GET", "HEAD"] {
        let a = api
            .call(None, method, "/readyz", "/readyz", Body::None)
            .await;
        assert_eq!(a.status, 503, "{method} /readyz without Redis: {}", a.body);
    }
    for (k, v) in api.seen {
        seen_so_far.entry(k).or_default().extend(v);
    }

    // ---- coverage: every documented answer was seen ----
    // 500 and 503 need a broken deployment; 503 is seen on /readyz only.
    // An object's answers past the bucket lookup need real storage
    // (`objects.rs`): here only 400, 401 and 404 are.
    let mut missing = Vec::new();
    for (method, template) in operations(&doc) {
        let seen = seen_so_far
            .get(&(method.clone(), template.clone()))
            .cloned()
            .unwrap_or_default();
        for status in doc["paths"][&template][&method]["responses"]
            .as_object()
            .unwrap()
            .keys()
        {
            let api_path = template.starts_with("/api/");
            if api_path && (status == "500" || status == "503") {
                continue;
            }
            if template == OBJECT && !["400", "401", "404"].contains(&status.as_str()) {
                continue;
            }
            let status: u16 = status.parse().expect("a numeric status");
            if !seen.contains(&status) {
                missing.push(format!("{} {template} {status}", method.to_uppercase()));
            }
        }
        eprintln!("{:7} {template}: {seen:?}", method.to_uppercase());
    }
    assert!(
        missing.is_empty(),
        "documented answers never seen: {missing:#?}"
    );
}
