//! A typed async client of FaDO's HTTP API (the catalog, the object API,
//! the job ledger, routes) and of its ingress (invocations).
//!
//! Lists follow `next_cursor` until the end (or a given maximum); objects
//! stream from and to files in bounded chunks, never whole in memory; every
//! refusal keeps the API's status, code, message and field ([`ApiError`]);
//! connection failures name the URL that failed.

pub mod config;
mod error;
mod objects;
pub mod paths;
mod types;

use std::time::Duration;

use fado_model::{
    Bucket, BucketInput, Cluster, ClusterInput, FaasDeployment, FaasInput, Job, Page, Replica,
    RouteOverride, RouteOverrideInput, Settings, SettingsInput, StorageDeployment, StorageInput,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{ApiError, Error};
pub use objects::{Invocation, InvokeBody, InvokeRequest, Progress};
pub use reqwest::Method;
pub use types::*;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The largest page the API serves.
const MAX_PAGE: usize = 1000;

/// Characters kept as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment, percent-encoded (`/` included).
pub(crate) fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// An object key in a path: each `/`-separated part encoded, `/` kept.
pub(crate) fn key_path(key: &str) -> String {
    key.split('/').map(segment).collect::<Vec<_>>().join("/")
}

/// A catalog resource with the usual verbs under `/api/<COLLECTION>`.
pub trait Resource: DeserializeOwned {
    /// The collection's path segment (`storage-deployments`).
    const COLLECTION: &'static str;
    /// What one is called in messages (`storage deployment`).
    const NOUN: &'static str;
    /// The body of `POST` and `PATCH`.
    type Input: Serialize;

    /// The JSON sent for `input`: `fado-model`'s inputs leave unset fields
    /// out, so a `PATCH` changes only what it names.
    fn body(input: &Self::Input) -> Vec<u8> {
        to_json(input)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings, numbers and lists always serialise.
    serde_json::to_vec(v).expect("request bodies serialise")
}

impl Resource for Cluster {
    const COLLECTION: &'static str = "clusters";
    const NOUN: &'static str = "cluster";
    type Input = ClusterInput;
}

impl Resource for FaasDeployment {
    const COLLECTION: &'static str = "faas-deployments";
    const NOUN: &'static str = "FaaS deployment";
    type Input = FaasInput;
}

impl Resource for StorageDeployment {
    const COLLECTION: &'static str = "storage-deployments";
    const NOUN: &'static str = "storage deployment";
    type Input = StorageInput;
}

impl Resource for Bucket {
    const COLLECTION: &'static str = "buckets";
    const NOUN: &'static str = "bucket";
    type Input = BucketInput;
}

/// Query parameters: name and value.
pub type Query<'a> = &'a [(&'a str, String)];

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Scheme, host and port (and any path prefix), without a trailing `/`.
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base` is FaDO's listener, e.g. `http://127.0.0.1:3000` (the API is
    /// under `/api`, invocations at every other path).
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let url = url::Url::parse(base).map_err(|e| Error::BaseUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::BaseUrl {
                url: base.to_string(),
                reason: "expected http://HOST[:PORT] or https://…".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::BaseUrl {
                url: base.to_string(),
                reason: format!("building the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends `req`; a non-2xx answer becomes [`Error::Api`].
    pub(crate) async fn send(
        &self,
        url: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| Error::connect(url, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        Err(ApiError::from_response(status, &body).into())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Query<'_>,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let url = self.url(path);
        let mut req = self.request(method, &url).query(query);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = self.send(&url, req).await?;
        let bytes = resp.bytes().await.map_err(|e| Error::connect(&url, &e))?;
        // An empty body (204) reads as JSON null, which `()` accepts.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| Error::Protocol {
            url,
            reason: format!("the body does not parse: {e}"),
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, query: Query<'_>) -> Result<T> {
        self.call(Method::GET, path, query, None).await
    }

    /// Every item of a paginated list (at most `max`), following `next_cursor`.
    pub async fn list_path<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Query<'_>,
        max: Option<usize>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = max.map_or(MAX_PAGE, |m| (m - items.len()).min(MAX_PAGE));
            let mut q: Vec<(&str, String)> = query.to_vec();
            q.push(("limit", want.to_string()));
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: Page<T> = self.get_json(path, &q).await?;
            items.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() || max.is_some_and(|m| items.len() >= m) {
                return Ok(items);
            }
        }
    }

    // ---- catalog resources ---------------------------------------------------

    /// Every resource of a kind, with filters (`zone`, `cluster`, `prefix`, …).
    pub async fn list<R: Resource>(&self, filters: Query<'_>) -> Result<Vec<R>> {
        self.list_path(&format!("/api/{}", R::COLLECTION), filters, None)
            .await
    }

    /// One resource by id or name.
    pub async fn get<R: Resource>(&self, id_or_name: &str) -> Result<R> {
        self.get_json(&item_path::<R>(id_or_name), &[]).await
    }

    /// `POST`; `query` carries options such as `verify=false`.
    pub async fn create<R: Resource>(&self, input: &R::Input, query: Query<'_>) -> Result<R> {
        let path = format!("/api/{}", R::COLLECTION);
        self.call(Method::POST, &path, query, Some(R::body(input)))
            .await
    }

    /// `PATCH`: changes the fields `input` sets.
    pub async fn update<R: Resource>(
        &self,
        id_or_name: &str,
        input: &R::Input,
        query: Query<'_>,
    ) -> Result<R> {
        self.call(
            Method::PATCH,
            &item_path::<R>(id_or_name),
            query,
            Some(R::body(input)),
        )
        .await
    }

    /// `DELETE`; `query` carries options such as `force=true`.
    pub async fn delete<R: Resource>(&self, id_or_name: &str, query: Query<'_>) -> Result<()> {
        self.call(Method::DELETE, &item_path::<R>(id_or_name), query, None)
            .await
    }

    pub async fn replicas(&self, bucket: &str) -> Result<Vec<Replica>> {
        let page: Page<Replica> = self
            .get_json(&format!("{}/replicas", item_path::<Bucket>(bucket)), &[])
            .await?;
        Ok(page.items)
    }

    // ---- routing ---------------------------------------------------------------

    /// The route table the planner last published, every page merged;
    /// `bucket` narrows it to one bucket's route.
    pub async fn routes(&self, bucket: Option<&str>) -> Result<RouteTablePage> {
        let mut query: Vec<(&str, String)> = vec![("limit", MAX_PAGE.to_string())];
        if let Some(b) = bucket {
            query.push(("bucket", b.to_string()));
        }
        let mut table: RouteTablePage = self.get_json("/api/routes", &query).await?;
        while let Some(cursor) = table.next_cursor.take() {
            let mut q = query.clone();
            q.push(("cursor", cursor));
            let page: RouteTablePage = self.get_json("/api/routes", &q).await?;
            table.items.extend(page.items);
            table.next_cursor = page.next_cursor;
        }
        Ok(table)
    }

    pub async fn route_override(&self, bucket: &str) -> Result<RouteOverride> {
        self.get_json(
            &format!("{}/route-override", item_path::<Bucket>(bucket)),
            &[],
        )
        .await
    }

    pub async fn set_route_override(
        &self,
        bucket: &str,
        input: &RouteOverrideInput,
    ) -> Result<RouteOverride> {
        let path = format!("{}/route-override", item_path::<Bucket>(bucket));
        self.call(Method::PUT, &path, &[], json(input)).await
    }

    pub async fn clear_route_override(&self, bucket: &str) -> Result<()> {
        let path = format!("{}/route-override", item_path::<Bucket>(bucket));
        self.call(Method::DELETE, &path, &[], None).await
    }

    pub async fn route_overrides(&self) -> Result<Vec<RouteOverrideEntry>> {
        self.list_path("/api/route-overrides", &[], None).await
    }

    // ---- settings, jobs, summaries -----------------------------------------------

    pub async fn settings(&self) -> Result<Settings> {
        self.get_json("/api/settings", &[]).await
    }

    /// `PATCH /api/settings`: changes the fields `input` sets.
    pub async fn update_settings(&self, input: &SettingsInput) -> Result<Settings> {
        self.call(Method::PATCH, "/api/settings", &[], json(input))
            .await
    }

    /// Jobs matching `filters` (`state`, `kind`, `bucket`), oldest first, at
    /// most `max`.
    pub async fn jobs(&self, filters: Query<'_>, max: Option<usize>) -> Result<Vec<Job>> {
        self.list_path("/api/jobs", filters, max).await
    }

    pub async fn job(&self, id: &str) -> Result<Job> {
        self.get_json(&format!("/api/jobs/{}", segment(id)), &[])
            .await
    }

    /// Requeues a `dead` job.
    pub async fn retry_job(&self, id: &str) -> Result<Job> {
        let path = format!("/api/jobs/{}/retry", segment(id));
        self.call(Method::POST, &path, &[], None).await
    }

    pub async fn resources(&self) -> Result<ResourceSummary> {
        self.get_json("/api/resources", &[]).await
    }

    /// `GET /api/metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let url = self.url("/api/metrics");
        let resp = self.send(&url, self.request(Method::GET, &url)).await?;
        resp.text().await.map_err(|e| Error::connect(&url, &e))
    }

    /// `GET /readyz` (no token needed); a 503 still carries the checks.
    pub async fn readiness(&self) -> Result<Readiness> {
        let url = self.url("/readyz");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| Error::connect(&url, &e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| Error::connect(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|_| ApiError::from_response(status, &bytes).into())
    }
}

fn item_path<R: Resource>(id_or_name: &str) -> String {
    format!("/api/{}/{}", R::COLLECTION, segment(id_or_name))
}

/// A request body as JSON, unset fields left out.
fn json<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    Some(to_json(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_keys_are_percent_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(key_path("dir/a b?c#€"), "dir/a%20b%3Fc%23%E2%82%AC");
        assert_eq!(key_path("x-y_z.~"), "x-y_z.~");
    }

    #[test]
    fn unset_fields_are_left_out_but_a_cleared_override_is_sent() {
        let body = |i: &BucketInput| -> serde_json::Value {
            serde_json::from_slice(&Bucket::body(i)).unwrap()
        };
        let i = BucketInput {
            target_replicas: Some(2),
            ..BucketInput::default()
        };
        assert_eq!(body(&i), serde_json::json!({"target_replicas": 2}));
        let i = BucketInput {
            replica_override: Some(None),
            ..BucketInput::default()
        };
        assert_eq!(body(&i), serde_json::json!({"replica_override": null}));
        let i = ClusterInput {
            zones: Some(vec![]),
            ..ClusterInput::default()
        };
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&Cluster::body(&i)).unwrap(),
            serde_json::json!({"zones": []})
        );
    }

    #[test]
    fn base_urls_are_checked() {
        assert!(Client::new("http://127.0.0.1:3000/", None).is_ok());
        assert_eq!(
            Client::new("http://h:1/", None).unwrap().url("/api/x"),
            "http://h:1/api/x"
        );
        for bad in ["127.0.0.1:3000", "ftp://h", "not a url"] {
            let e = Client::new(bad, None).err().expect(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
