//! `/healthz` (the instance can answer) and `/readyz` (its dependencies,
//! PostgreSQL and Redis, answer too).

use fado_model::api::{DependencyCheck, Liveness, Readiness};
use fado_model::{LivenessStatus, ReadinessStatus};
use fado_store::Db;

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn live(req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    Reply::ok(Liveness {
        status: LivenessStatus::Ok,
    })
}

pub fn ready(req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let postgres = crate::var("pg_address").and_then(|a| Ok(fado_store::ping(&Db::open(&a)?)?));
    let redis = crate::var("redis_address").and_then(|a| {
        spin_sdk::redis::Connection::open(&a)
            .and_then(|c| c.execute("PING", &[]))
            .map(drop)
            .map_err(|e| ApiError::new(503, "redis_unavailable", format!("{e:?}")))
    });
    let check = |r: &ApiResult<()>| DependencyCheck {
        ok: r.is_ok(),
        error: r.as_ref().err().map(|e| e.message.clone()),
    };
    let ready = postgres.is_ok() && redis.is_ok();
    let mut reply = Reply::ok(Readiness {
        status: if ready {
            ReadinessStatus::Ready
        } else {
            ReadinessStatus::NotReady
        },
        postgres: check(&postgres),
        redis: check(&redis),
    })?;
    if !ready {
        reply.status = 503;
    }
    Ok(reply)
}
