//! Example function `nodeinfo`: answers, for any method and path, which
//! cluster and deployment served the call (the `cluster` and `deployment`
//! variables, set per cluster), so a demo shows where FaDO's router sent it.

use serde_json::json;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::variables;

#[http_component]
fn nodeinfo(req: Request) -> impl IntoResponse {
    let var = |name: &str| variables::get(name).unwrap_or_default();
    let cluster = var("cluster");
    let bucket = req
        .header("x-fado-bucket")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let body = json!({
        "function": "nodeinfo",
        "cluster": cluster,
        "deployment": var("deployment"),
        "method": req.method().to_string(),
        "path": req.path(),
        "bucket": bucket,
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-fado-cluster", cluster)
        .body(body.to_string())
        .build()
}
