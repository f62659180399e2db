//! The demo's catalog, written through FaDO's own API: clusters, storage and
//! FaaS deployments, the sample bucket and its object. Every step checks
//! first, so a restart finds what the last run made and changes only what
//! differs (e.g. ports given on the command line).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::topology::{Layout, SAMPLE_BUCKET, SAMPLE_KEY, SAMPLE_REPLICAS, SAMPLE_ZONES};

/// One storage service as FaDO reaches it.
#[derive(Clone)]
pub struct StorageAccess {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// What `ensure` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("building the HTTP client")?,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// `call`, failing on anything but 2xx with FaDO's error body.
    async fn expect(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {value}");
        }
        Ok(value)
    }

    /// Makes `collection/name` exist with `body`'s fields: created when
    /// missing, patched when a readable field differs (write-only secrets
    /// cannot be compared, so they are sent whenever anything else changes).
    pub async fn ensure(&self, collection: &str, name: &str, body: Value) -> Result<Outcome> {
        let (status, current) = self
            .call(Method::GET, &format!("/api/{collection}/{name}"), None)
            .await?;
        match status {
            StatusCode::NOT_FOUND => {
                self.expect(Method::POST, &format!("/api/{collection}"), Some(&body))
                    .await?;
                Ok(Outcome::Created)
            }
            s if s.is_success() => {
                let differs = body
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(k, v)| current.get(k).is_some_and(|c| c != v));
                if !differs {
                    return Ok(Outcome::Unchanged);
                }
                self.expect(
                    Method::PATCH,
                    &format!("/api/{collection}/{name}"),
                    Some(&body),
                )
                .await?;
                Ok(Outcome::Updated)
            }
            s => bail!("GET /api/{collection}/{name}: {s}: {current}"),
        }
    }

    /// Registers the testbed: a cluster, a storage deployment and a FaaS
    /// deployment per cluster.
    pub async fn register(&self, layout: &Layout, storage: &[StorageAccess]) -> Result<()> {
        for (c, s) in layout.clusters.iter().zip(storage) {
            let what = [
                (
                    "clusters",
                    c.spec.name.to_string(),
                    json!({"name": c.spec.name, "zones": c.spec.zones}),
                ),
                (
                    "storage-deployments",
                    c.storage.clone(),
                    json!({"name": c.storage, "cluster": c.spec.name, "endpoint": s.endpoint,
                           "region": s.region, "path_style": true,
                           "access_key": s.access_key, "secret_key": s.secret_key}),
                ),
                (
                    "faas-deployments",
                    c.faas.clone(),
                    json!({"name": c.faas, "cluster": c.spec.name, "platform": "spin",
                           "base_url": format!("http://{}", c.faas_addr)}),
                ),
            ];
            for (collection, name, body) in what {
                let outcome = self
                    .ensure(collection, &name, body)
                    .await
                    .with_context(|| format!("registering {collection}/{name}"))?;
                tracing::info!("{collection}/{name}: {outcome:?}");
            }
        }
        Ok(())
    }

    /// The sample bucket (master on the first cluster, replicas in
    /// `germany`) and its image; an existing bucket is left as it is, since
    /// its policy may have been changed on purpose.
    pub async fn sample(&self, layout: &Layout, image: Vec<u8>) -> Result<()> {
        let (status, _) = self
            .call(Method::GET, &format!("/api/buckets/{SAMPLE_BUCKET}"), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            let body = json!({"name": SAMPLE_BUCKET, "master_storage": layout.master().storage,
                              "allowed_zones": SAMPLE_ZONES, "target_replicas": SAMPLE_REPLICAS});
            self.expect(Method::POST, "/api/buckets", Some(&body))
                .await
                .context("creating the sample bucket")?;
        }
        let object = format!("/api/buckets/{SAMPLE_BUCKET}/objects/{SAMPLE_KEY}");
        let url = format!("{}{object}", self.base);
        let head = self
            .http
            .head(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("HEAD {url}"))?;
        if head.status() == StatusCode::NOT_FOUND {
            let put = self
                .http
                .put(&url)
                .bearer_auth(&self.token)
                .header("content-type", "image/png")
                .body(image)
                .send()
                .await
                .with_context(|| format!("PUT {url}"))?;
            if !put.status().is_success() {
                let status = put.status();
                bail!(
                    "PUT {object}: {status}: {}",
                    put.text().await.unwrap_or_default()
                );
            }
        } else if !head.status().is_success() {
            bail!("HEAD {object}: {}", head.status());
        }
        Ok(())
    }

    /// Waits until the route table sends the sample bucket somewhere, so the
    /// first command a newcomer tries is routed.
    pub async fn routed(&self, timeout: Duration) -> Result<Vec<String>> {
        let start = Instant::now();
        loop {
            let table = self.expect(Method::GET, "/api/routes", None).await?;
            let targets: Vec<String> = table["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["bucket"] == SAMPLE_BUCKET)
                .flat_map(|r| r["targets"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t["cluster"].as_str().map(str::to_string))
                .collect();
            if !targets.is_empty() {
                return Ok(targets);
            }
            if start.elapsed() > timeout {
                bail!(
                    "the route table has no deployment for bucket {SAMPLE_BUCKET} after {timeout:?}: {table}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Polls `url` until it answers `200` (or, with `any_status`, anything at
/// all), or `alive` fails.
pub async fn wait_http(
    url: &str,
    any_status: bool,
    timeout: Duration,
    mut alive: impl FnMut() -> Result<()>,
) -> Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")?;
    let start = Instant::now();
    loop {
        alive()?;
        let last = match http.get(url).send().await {
            Ok(r) if any_status || r.status().is_success() => return Ok(()),
            Ok(r) => r.status().to_string(),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > timeout {
            bail!("{url} did not answer within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
