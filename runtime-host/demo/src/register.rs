//! The demo's catalog, written through FaDO's own API: clusters, storage and
//! FaaS deployments, the sample bucket and its object. Every step checks
//! first, so a restart finds what the last run made and changes only what
//! differs (e.g. ports given on the command line).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fado_client::{Client, Resource};
use fado_model::{
    Bucket, BucketInput, Cluster, ClusterInput, FaasDeployment, FaasInput, Ref, StorageDeployment,
    StorageInput,
};

use crate::topology::{Layout, SAMPLE_BUCKET, SAMPLE_KEY, SAMPLE_REPLICAS, SAMPLE_ZONES};

/// One storage service as FaDO reaches it.
#[derive(Clone)]
pub struct StorageAccess {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

/// What `ensure` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

fn is_not_found(e: &fado_client::Error) -> bool {
    e.api().is_some_and(|a| a.is_not_found())
}

/// Makes resource `name` exist as `input` says: created when missing,
/// patched when `differs` finds a readable field changed (write-only
/// secrets cannot be compared, so they are sent whenever anything else
/// changes).
async fn ensure<R: Resource>(
    api: &Client,
    name: &str,
    input: &R::Input,
    differs: impl Fn(&R) -> bool,
) -> Result<Outcome> {
    let what = || format!("{} {name}", R::NOUN);
    match api.get::<R>(name).await {
        Ok(current) if !differs(&current) => Ok(Outcome::Unchanged),
        Ok(_) => {
            api.update::<R>(name, input, &[]).await.with_context(what)?;
            Ok(Outcome::Updated)
        }
        Err(e) if is_not_found(&e) => {
            api.create::<R>(input, &[]).await.with_context(what)?;
            Ok(Outcome::Created)
        }
        Err(e) => Err(e).with_context(what),
    }
}

/// Registers the testbed: a cluster, a storage deployment and a FaaS
/// deployment per cluster.
pub async fn register(api: &Client, layout: &Layout, storage: &[StorageAccess]) -> Result<()> {
    for (c, s) in layout.clusters.iter().zip(storage) {
        let cluster = c.spec.name;
        let zones: Vec<String> = c.spec.zones.iter().map(|z| z.to_string()).collect();
        let input = ClusterInput {
            name: Some(cluster.into()),
            zones: Some(zones.clone()),
        };
        let o = ensure(api, cluster, &input, |x: &Cluster| x.zones != zones).await?;
        tracing::info!("cluster {cluster}: {o:?}");

        let input = StorageInput {
            name: Some(c.storage.clone()),
            cluster: Some(Ref::Name(cluster.into())),
            endpoint: Some(s.endpoint.clone()),
            region: Some(s.region.clone()),
            path_style: Some(true),
            access_key: Some(s.access_key.clone()),
            secret_key: Some(s.secret_key.clone()),
            notify_token: None,
        };
        let o = ensure(api, &c.storage, &input, |x: &StorageDeployment| {
            x.cluster != cluster
                || x.endpoint != s.endpoint
                || x.region != s.region
                || !x.path_style
                || x.access_key != s.access_key
        })
        .await?;
        tracing::info!("storage deployment {}: {o:?}", c.storage);

        let base_url = format!("http://{}", c.faas_addr);
        let input = FaasInput {
            name: Some(c.faas.clone()),
            cluster: Some(Ref::Name(cluster.into())),
            platform: Some("spin".into()),
            base_url: Some(base_url.clone()),
            ..Default::default()
        };
        let o = ensure(api, &c.faas, &input, |x: &FaasDeployment| {
            x.cluster != cluster || x.base_url != base_url || x.platform.as_str() != "spin"
        })
        .await?;
        tracing::info!("FaaS deployment {}: {o:?}", c.faas);
    }
    Ok(())
}

/// The sample bucket (master on the first cluster, replicas in
/// `germany`) and its image; an existing bucket is left as it is, since
/// its policy may have been changed on purpose.
pub async fn sample(api: &Client, layout: &Layout, image: Vec<u8>) -> Result<()> {
    match api.get::<Bucket>(SAMPLE_BUCKET).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {
            let input = BucketInput {
                name: Some(SAMPLE_BUCKET.into()),
                master_storage: Some(Ref::Name(layout.master().storage.clone())),
                allowed_zones: Some(SAMPLE_ZONES.iter().map(|z| z.to_string()).collect()),
                target_replicas: Some(SAMPLE_REPLICAS),
                ..Default::default()
            };
            api.create::<Bucket>(&input, &[])
                .await
                .context("creating the sample bucket")?;
        }
        Err(e) => return Err(e).context("reading the sample bucket"),
    }
    match api.head_object(SAMPLE_BUCKET, SAMPLE_KEY).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => {
            let len = image.len() as u64;
            api.put_reader(
                SAMPLE_BUCKET,
                SAMPLE_KEY,
                std::io::Cursor::new(image),
                Some(len),
                Some("image/png"),
                Arc::new(()),
            )
            .await
            .context("uploading the sample image")?;
            Ok(())
        }
        Err(e) => Err(e).context("reading the sample image"),
    }
}

/// Waits until the route table sends the sample bucket somewhere, so the
/// first command a newcomer tries is routed; returns the clusters it goes to.
pub async fn routed(api: &Client, timeout: Duration) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let table = api
            .routes(Some(SAMPLE_BUCKET))
            .await
            .context("reading the route table")?;
        let clusters: Vec<String> = table
            .items
            .iter()
            .filter(|r| r.bucket == SAMPLE_BUCKET)
            .flat_map(|r| r.targets.iter().map(|t| t.cluster.clone()))
            .collect();
        if !clusters.is_empty() {
            return Ok(clusters);
        }
        if start.elapsed() > timeout {
            bail!("the route table has no deployment for bucket {SAMPLE_BUCKET} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
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
