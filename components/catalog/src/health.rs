//! `/healthz` (the instance can answer) and `/readyz` (its dependencies,
//! PostgreSQL and Redis, answer too).

use fado_store::Db;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn live(req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    Reply::ok(json!({ "status": "ok" }))
}

pub fn ready(req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let postgres = crate::var("pg_address").and_then(|a| {
        let db = Db::open(&a)?;
        db.query("SELECT 1", &[])?;
        Ok(())
    });
    let redis = crate::var("redis_address").and_then(|a| {
        spin_sdk::redis::Connection::open(&a)
            .and_then(|c| c.execute("PING", &[]))
            .map(drop)
            .map_err(|e| ApiError::new(503, "redis_unavailable", format!("{e:?}")))
    });
    let check = |r: &ApiResult<()>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e.message }),
    };
    let body = json!({
        "status": if postgres.is_ok() && redis.is_ok() { "ready" } else { "not_ready" },
        "postgres": check(&postgres),
        "redis": check(&redis),
    });
    Ok(Reply {
        status: if postgres.is_ok() && redis.is_ok() {
            200
        } else {
            503
        },
        body: Some(body),
        location: None,
        text: None,
    })
}
