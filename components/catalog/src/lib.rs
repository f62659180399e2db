//! The catalog component: FaDO's REST API over PostgreSQL.
//!
//! Every `/api` request needs the admin token (`Authorization: Bearer …`,
//! compared in constant time); `/healthz`, `/readyz` and
//! `/api/openapi.json` do not. Each request runs in a fresh instance: it
//! opens a pooled session, makes sure the schema is current, does its work
//! (mutations in one transaction that also bumps the catalog generation),
//! answers, and then wakes the planner through Redis (the wake-up is not
//! what the answer promises, so the client does not wait for it).

mod buckets;
mod clusters;
mod error;
mod express;
mod faas;
mod health;
mod http;
mod jobs;
mod lookup;
mod metrics;
mod resource;
mod resources;
mod routes;
mod settings;
mod storage;

use error::{ApiError, ApiResult};
use fado_store::Db;
use http::{Reply, Req};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::variables;

/// Redis channel the planner listens on.
pub const PLANNER_CHANNEL: &str = fado_model::channels::PLANNER;

/// Largest JSON body the API reads.
const MAX_BODY: usize = 1 << 20;
/// Runs of an idempotent request after a transaction conflict.
const MAX_RETRIES: u32 = 4;

/// What a handler needs besides the request.
pub struct Ctx {
    pub db: Db,
    redis_address: String,
    encryption_key: String,
    /// Channels to wake once the request succeeded (after its commit).
    wake: std::cell::RefCell<Vec<&'static str>>,
    /// A route override to publish at once (see `express`), with the
    /// catalog generation of its transaction.
    express: std::cell::RefCell<Option<(i64, fado_model::BucketRoute)>>,
}

impl Ctx {
    /// Records that the catalog changed (call inside the mutation's
    /// transaction): bumps the generation and wakes the planner afterwards.
    pub fn changed(&self) -> ApiResult<()> {
        self.db.bump_generation()?;
        self.wake(PLANNER_CHANNEL);
        Ok(())
    }

    /// Publishes `route` as an express route once the request succeeded,
    /// before it is answered.
    pub fn express_route(&self, generation: i64, route: fado_model::BucketRoute) {
        *self.express.borrow_mut() = Some((generation, route));
    }

    /// Publishes a wake-up on `channel` once the request has succeeded.
    pub fn wake(&self, channel: &'static str) {
        let mut w = self.wake.borrow_mut();
        if !w.contains(&channel) {
            w.push(channel);
        }
    }

    pub fn encryption_key(&self) -> &str {
        &self.encryption_key
    }
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let method = req.method().to_string().to_ascii_uppercase();
    let path = req.path_with_query().unwrap_or_else(|| "/".into());
    let auth = header(&req, "authorization");
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return send(out, Err(e)).await,
    };
    let req = Req::new(method, &path, body);
    let mut after = After::default();
    let result = serve(&req, auth.as_deref(), &mut after);
    send(out, result).await;
    after.run();
}

/// What a request does once it has answered: the wake-ups it owes.
#[derive(Default)]
struct After {
    redis_address: String,
    channels: Vec<&'static str>,
}

impl After {
    fn run(self) {
        for channel in self.channels {
            wake(&self.redis_address, channel);
        }
    }
}

fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

async fn read_body(req: IncomingRequest) -> ApiResult<Vec<u8>> {
    fado_api::read_body(req, MAX_BODY).await
}

async fn send(out: ResponseOutparam, result: ApiResult<Reply>) {
    let (status, body, location, text, extra) = match result {
        Ok(r) => (r.status, r.body, r.location, r.text, Vec::new()),
        Err(e) => (e.status, Some(e.body()), None, None, e.headers()),
    };
    let content_type = text.as_ref().map_or("application/json", |(t, _)| t);
    let mut headers = vec![("content-type".to_string(), content_type.as_bytes().to_vec())];
    headers.extend(
        extra
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes())),
    );
    if let Some(l) = location {
        headers.push(("location".into(), l.into_bytes()));
    }
    let response = OutgoingResponse::new(Fields::from_list(&headers).expect("static header names"));
    response.set_status_code(status).expect("a valid status");
    let bytes = match text {
        Some((_, t)) => t.into_bytes(),
        None => body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
    };
    let _ = out.set_with_body(response, bytes).await;
}

fn serve(req: &Req, auth: Option<&str>, after: &mut After) -> ApiResult<Reply> {
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => return health::live(req),
        ["readyz"] => return health::ready(req),
        ["api", "openapi.json"] => {
            if req.method != "GET" {
                return Err(ApiError::method_not_allowed(&["GET"]));
            }
            return Ok(Reply {
                status: 200,
                body: Some(
                    serde_json::to_value(fado_openapi::document())
                        .expect("the OpenAPI document serializes"),
                ),
                location: None,
                text: None,
            });
        }
        ["api", ..] => {}
        _ => {
            return Err(ApiError::new(
                404,
                "not_found",
                format!("no API route {}", req.path),
            ));
        }
    }
    authorize(auth)?;
    req.refuse_nul()?;

    // A deadlock or serialization failure rolls its transaction back whole,
    // so an idempotent request (PUT, PATCH, DELETE) is simply run again; a
    // POST is answered 503 `retry` instead, since an earlier step of it may
    // have committed.
    let idempotent = matches!(req.method.as_str(), "PUT" | "PATCH" | "DELETE");
    let mut attempt = 0u32;
    let (ctx, result) = loop {
        let ctx = Ctx {
            db: Db::open(&var("pg_address")?)?,
            redis_address: var("redis_address")?,
            encryption_key: var("encryption_key")?,
            wake: Default::default(),
            express: Default::default(),
        };
        fado_store::ensure_schema(&ctx.db)?;
        let result = route(&ctx, req, &segments[1..]);
        match &result {
            Err(e) if e.code == fado_api::RETRY_CODE && idempotent && attempt < MAX_RETRIES => {
                attempt += 1;
                // Apart, so the transactions that collided do not meet again.
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos()) % 10);
                std::thread::sleep(std::time::Duration::from_millis(
                    5 * u64::from(attempt) + jitter,
                ));
            }
            _ => break (ctx, result),
        }
    };
    if result.is_ok() {
        if let Some((generation, r)) = ctx.express.borrow_mut().take() {
            express::publish(generation, &r);
        }
        after.redis_address = ctx.redis_address.clone();
        after.channels = ctx.wake.take();
    }
    result
}

fn route(ctx: &Ctx, req: &Req, segments: &[&str]) -> ApiResult<Reply> {
    match segments {
        ["clusters"] => clusters::RESOURCE.collection(ctx, req),
        ["clusters", r] => clusters::RESOURCE.item(ctx, req, r),
        ["faas-deployments"] => faas::RESOURCE.collection(ctx, req),
        ["faas-deployments", r] => faas::RESOURCE.item(ctx, req, r),
        ["storage-deployments"] => storage::RESOURCE.collection(ctx, req),
        ["storage-deployments", r] => storage::RESOURCE.item(ctx, req, r),
        ["buckets"] => buckets::RESOURCE.collection(ctx, req),
        ["buckets", b] => buckets::RESOURCE.item(ctx, req, b),
        ["buckets", b, "replicas"] => buckets::replicas(ctx, req, b),
        ["buckets", b, "route-override"] => buckets::route_override(ctx, req, b),
        ["route-overrides"] => buckets::route_overrides(ctx, req),
        ["settings"] => settings::handle(ctx, req),
        ["routes"] => routes::table(ctx, req),
        ["jobs"] => jobs::collection(ctx, req),
        ["jobs", id] => jobs::item(ctx, req, id),
        ["jobs", id, "retry"] => jobs::retry(ctx, req, id),
        ["resources"] => resources::summary(ctx, req),
        ["metrics"] => metrics::render(ctx, req),
        _ => Err(ApiError::new(
            404,
            "not_found",
            format!("no API route {}", req.path),
        )),
    }
}

fn var(name: &str) -> ApiResult<String> {
    variables::get(name).map_err(|e| {
        ApiError::new(
            500,
            "misconfigured",
            format!("the catalog's variable {name:?} is not available: {e:?}"),
        )
    })
}

fn authorize(auth: Option<&str>) -> ApiResult<()> {
    fado_api::authorize(auth, &var("admin_token")?)
}

/// Publishes a wake-up. Best effort: the change is committed, and the
/// woken component's periodic sweep picks it up if this message is lost.
fn wake(address: &str, channel: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(channel, b"changed".as_ref()));
    if let Err(e) = result {
        eprintln!(
            "catalog: could not publish on {channel} ({e:?}); the next sweep will pick the change up"
        );
    }
}
