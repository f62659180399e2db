//! A FaaS function for the router's end-to-end tests. It answers 200 with
//! JSON describing the request it received (method, path, query, headers,
//! body length and SHA-256) and the deployment it runs as (the
//! `deployment` variable, also in `x-echo-deployment`), so a test can see
//! where the router sent a call and what arrived.
//!
//! Query parameters change its behaviour: `sleep_ms=N` answers after N ms,
//! `status=N` answers with that status. The `delay_ms` variable slows every
//! call of a deployment (a slow platform).

use std::collections::BTreeMap;

use serde_json::json;
use sha2::{Digest, Sha256};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::variables;

#[http_component]
fn echo(req: Request) -> anyhow::Result<impl IntoResponse> {
    let deployment = variables::get("deployment").unwrap_or_else(|_| "unnamed".into());
    let uri = req.uri().to_string();
    let path_and_query = match uri.find("://") {
        Some(i) => uri[i + 3..]
            .find('/')
            .map_or("/".to_string(), |j| uri[i + 3 + j..].to_string()),
        None => uri.clone(),
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path_and_query.clone(), String::new()),
    };
    let params: BTreeMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let delay: u64 = variables::get("delay_ms")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sleep = params
        .get("sleep_ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if delay + sleep > 0 {
        std::thread::sleep(std::time::Duration::from_millis(delay + sleep));
    }
    let status = params
        .get("status")
        .and_then(|v| v.parse::<u16>().ok())
        .unwrap_or(200);
    let headers: BTreeMap<String, String> = req
        .headers()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                value.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = req.body();
    let report = json!({
        "deployment": deployment,
        "method": req.method().to_string(),
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": body.len(),
        "body_sha256": hex::encode(Sha256::digest(body)),
    });
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-echo-deployment", deployment)
        .body(report.to_string())
        .build())
}
