//! The notify component: storage event notifications.
//!
//! `POST /notify/{storage}` takes S3 event notifications (the `Records` JSON
//! of AWS S3 and MinIO webhooks) from one storage deployment, authenticated
//! by that deployment's notify token. Object writes and removals in buckets
//! whose master copy lives there go into the objects catalog, and replica
//! jobs are queued, in one transaction per request; after the commit the
//! replicator is woken. Events from replicas are ignored: replicas are
//! read-only, and the next sync undoes writes made to them directly.

mod apply;
mod error;
mod events;

use error::{ApiError, ApiResult};
use fado_model::Ref;
use fado_store::{Db, secrets};
use serde_json::{Value, json};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::variables;

/// Redis channel the replicator listens on.
const REPLICATOR_CHANNEL: &str = fado_model::channels::REPLICATOR;

/// Largest notification body read. MinIO sends one record per request, AWS
/// a handful; a megabyte is thousands of records.
const MAX_BODY: usize = 1 << 20;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let result = serve(req).await;
    send(out, result).await;
}

async fn serve(req: IncomingRequest) -> ApiResult<Value> {
    let path = req.path_with_query().unwrap_or_default();
    let storage = storage_segment(&path)?.to_string();
    if !matches!(req.method(), Method::Post) {
        return Err(ApiError::method_not_allowed(&["POST"]));
    }
    let token = bearer_token(&req);
    let redis = var("redis_address")?;
    let db = Db::open(&var("pg_address")?)?;
    fado_store::ensure_schema(&db)?;
    // Authenticate before reading the body: strangers cannot make us buffer it.
    let storage_id = authenticate(&db, &storage, token.as_deref())?;
    let body = read_body(req).await?;
    let events = events::parse(&body)?;
    let outcome = apply::apply(&db, storage_id, events)?;
    if outcome.jobs > 0 {
        wake(&redis);
    }
    Ok(json!({
        "accepted": outcome.accepted,
        "ignored": outcome.ignored,
        "jobs": outcome.jobs,
    }))
}

/// The `{storage}` of `/notify/{storage}`.
fn storage_segment(path: &str) -> ApiResult<&str> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    match path.trim_end_matches('/').strip_prefix("/notify/") {
        Some(s) if !s.is_empty() && !s.contains('/') => Ok(s),
        _ => Err(ApiError::new(
            404,
            "not_found",
            format!(
                "no route {path}: notifications go to /notify/{{storage deployment name or id}}"
            ),
        )),
    }
}

fn bearer_token(req: &IncomingRequest) -> Option<String> {
    let value = req.headers().get("authorization").into_iter().next()?;
    let value = String::from_utf8(value).ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The id of the storage deployment `segment` names, once `token` proved
/// the request comes from it.
fn authenticate(db: &Db, segment: &str, token: Option<&str>) -> ApiResult<i64> {
    let r = Ref::from_segment(segment);
    let (id, digest) = fado_store::storage::notify_token(db, &r)?.ok_or_else(|| {
        ApiError::new(
            404,
            "not_found",
            format!("storage deployment {r} does not exist"),
        )
    })?;
    let Some(digest) = digest else {
        return Err(ApiError::new(
            403,
            "notifications_disabled",
            format!(
                "storage deployment {r} has no notify token: set `notify_token` on it to accept its notifications"
            ),
        ));
    };
    match token {
        Some(t) if secrets::token_matches(t, &digest) => Ok(id),
        _ => Err(ApiError::new(
            401,
            "unauthorized",
            "send the storage deployment's notify token: `Authorization: Bearer <token>`",
        )),
    }
}

async fn read_body(req: IncomingRequest) -> ApiResult<Vec<u8>> {
    fado_api::read_body(req, MAX_BODY).await
}

async fn send(out: ResponseOutparam, result: ApiResult<Value>) {
    let (status, body, extra) = match result {
        Ok(v) => (200, v, Vec::new()),
        Err(e) => (e.status, e.body(), e.headers()),
    };
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    headers.extend(
        extra
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_bytes())),
    );
    let response = OutgoingResponse::new(Fields::from_list(&headers).expect("static header names"));
    response.set_status_code(status).expect("a valid status");
    let _ = out
        .set_with_body(response, body.to_string().into_bytes())
        .await;
}

fn var(name: &str) -> ApiResult<String> {
    variables::get(name).map_err(|e| {
        ApiError::new(
            500,
            "misconfigured",
            format!("the notify component's variable {name:?} is not available: {e:?}"),
        )
    })
}

/// Wakes the replicator. Best effort: the jobs are committed, and its
/// periodic sweep picks them up if this message is lost.
fn wake(address: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(REPLICATOR_CHANNEL, b"notified".as_ref()));
    if let Err(e) = result {
        eprintln!(
            "notify: could not publish on {REPLICATOR_CHANNEL} ({e:?}); the next sweep will pick the jobs up"
        );
    }
}
