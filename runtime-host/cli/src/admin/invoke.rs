//! `fado invoke FUNCTION --bucket B`: one call through FaDO's ingress,
//! printing the function's answer, the deployment and cluster that served
//! it and how long it took.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fado_client::{InvokeBody, InvokeRequest};
use fado_model::FaasDeployment;
use serde::Serialize;

use super::{Ctx, about, output};

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The function and the rest of the path: `resize` or `resize/v1?size=9`.
    function: String,
    /// The bucket(s) the call works on (comma-separated for several).
    #[arg(long, short)]
    bucket: Option<String>,
    /// Request body: text, or @FILE to stream a file.
    #[arg(long, short)]
    data: Option<String>,
    /// HTTP method (default: POST with --data, else GET).
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// Extra request headers, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// The header naming the bucket, when the settings renamed it.
    #[arg(long, default_value = "X-FaDO-Bucket")]
    match_header: String,
}

#[derive(Serialize)]
struct Outcome {
    status: u16,
    upstream: Option<String>,
    cluster: Option<String>,
    elapsed_ms: f64,
    bytes: u64,
    content_type: Option<String>,
    /// The body as JSON when it is JSON, else as text.
    body: serde_json::Value,
}

pub async fn run(ctx: &Ctx, a: InvokeArgs) -> Result<()> {
    let body = match a.data.as_deref() {
        None => InvokeBody::Empty,
        Some(d) => match d.strip_prefix('@') {
            Some(file) => {
                let path = PathBuf::from(file);
                // Checked here so a missing file is named before anything is sent.
                std::fs::metadata(&path).with_context(|| format!("--data @{file}"))?;
                InvokeBody::File(path)
            }
            None => InvokeBody::Bytes(d.as_bytes().to_vec()),
        },
    };
    let method = match &a.method {
        Some(m) => reqwest_method(m)?,
        None if a.data.is_some() => fado_client::Method::POST,
        None => fado_client::Method::GET,
    };
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("--header {h:?}: write `Name: value`"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let path = format!("/{}", a.function.trim_start_matches('/'));
    let function = a
        .function
        .split(['/', '?'])
        .find(|s| !s.is_empty())
        .unwrap_or("");
    if function.is_empty() {
        bail!("FUNCTION is empty: name the function to call");
    }
    let request = InvokeRequest {
        method,
        path: &path,
        bucket: a.bucket.as_deref().map(|b| (a.match_header.as_str(), b)),
        headers: &headers,
        body,
    };
    let subject = format!("invoking {function:?}");
    let (inv, captured) = if ctx.json {
        let mut buf = Vec::new();
        let inv = about(ctx.client.invoke(request, &mut buf).await, &subject)?;
        (inv, Some(buf))
    } else {
        let mut out = tokio::io::stdout();
        let inv = about(ctx.client.invoke(request, &mut out).await, &subject)?;
        (inv, None)
    };
    // The serving deployment's cluster, when the token allows asking.
    let cluster = match &inv.upstream {
        Some(name) => ctx
            .client
            .get::<FaasDeployment>(name)
            .await
            .ok()
            .map(|f| f.cluster),
        None => None,
    };
    let elapsed_ms = inv.elapsed.as_secs_f64() * 1000.0;
    if let Some(buf) = captured {
        let body = serde_json::from_slice(&buf)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&buf).into()));
        output::json(&Outcome {
            status: inv.status,
            upstream: inv.upstream.clone(),
            cluster: cluster.clone(),
            elapsed_ms,
            bytes: inv.bytes,
            content_type: inv.content_type.clone(),
            body,
        })?;
    } else {
        eprintln!(
            "{}{} from {}{} in {elapsed_ms:.1} ms ({})",
            if inv.bytes > 0 { "\n" } else { "" },
            inv.status,
            inv.upstream.as_deref().unwrap_or("?"),
            cluster
                .map(|c| format!(" (cluster {c})"))
                .unwrap_or_default(),
            output::bytes(inv.bytes as i64)
        );
    }
    if inv.status >= 400 {
        bail!(
            "{subject}: {} answered {}",
            inv.upstream.as_deref().unwrap_or("the function"),
            inv.status
        );
    }
    Ok(())
}

fn reqwest_method(m: &str) -> Result<fado_client::Method> {
    fado_client::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
        .map_err(|_| anyhow!("--method {m:?} is not an HTTP method"))
}
