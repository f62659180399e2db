//! S3 access for FaDO's components, through `aws-sdk-s3` running over
//! `aws-smithy-wasm`'s `wasi:http` client (so the host's pooled outbound
//! connections carry it, under `fado` and Spin alike).
//!
//! Memory stays bounded: objects are copied in ranged parts of at most
//! [`Copier::part_size`] bytes (the WASI client buffers one response body,
//! so a part is the most that is ever held), as a multipart upload when there
//! is more than one part, and by server-side copy when source and destination
//! are the same service.

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow, bail};
pub use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use fado_sync::{Entry, SOURCE_ETAG_META, normalize_etag};

/// How to reach one storage deployment.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub region: String,
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Endpoint {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether a server-side copy between the two can work: same service,
    /// same credentials.
    pub fn same_service(&self, other: &Endpoint) -> bool {
        self.url == other.url && self.access_key == other.access_key
    }

    pub fn client(&self) -> Client {
        let creds = aws_credential_types::Credentials::from_keys(
            self.access_key.clone(),
            self.secret_key.clone(),
            None,
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(self.url.clone())
            .force_path_style(self.path_style)
            .credentials_provider(creds)
            .http_client(aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build())
            .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                aws_smithy_wasm::wasi::WasiSleep,
            ))
            .build();
        Client::from_conf(config)
    }
}

/// Runs S3 futures to completion inside a (synchronous) component handler.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    wstd::runtime::block_on(f)
}

/// An S3 error with its code and message, for job ledgers and logs.
fn s3_error<E, R>(what: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> anyhow::Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anyhow!("{what}: {}", DisplayErrorContext(&e))
}

fn code_of<E: ProvideErrorMetadata, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

/// Creates `bucket` unless it exists already (owned by these credentials).
pub async fn ensure_bucket(client: &Client, bucket: &str) -> Result<()> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(code_of(&e), Some("BucketAlreadyOwnedByYou")) => Ok(()),
        Err(e) => {
            // Some services answer BucketAlreadyExists to the owner too.
            if matches!(code_of(&e), Some("BucketAlreadyExists"))
                && client.head_bucket().bucket(bucket).send().await.is_ok()
            {
                return Ok(());
            }
            Err(s3_error(&format!("creating bucket {bucket}"), e))
        }
    }
}

/// Every object of `bucket`, by key. `None` when the bucket does not exist.
pub async fn list(client: &Client, bucket: &str) -> Result<Option<Vec<Entry>>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if matches!(code_of(&e), Some("NoSuchBucket")) => return Ok(None),
            Err(e) => return Err(s3_error(&format!("listing bucket {bucket}"), e)),
        };
        for o in page.contents() {
            let key = o.key().context("a listed object without a key")?;
            out.push(Entry {
                key: key.to_string(),
                size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                etag: normalize_etag(o.e_tag().unwrap_or("")),
            });
        }
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok(Some(out)),
        }
    }
}

/// The source ETag a copy recorded (see [`SOURCE_ETAG_META`]), if any.
pub async fn recorded_source_etag(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<String>> {
    let head = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error(&format!("reading {bucket}/{key}"), e))?;
    Ok(head
        .metadata()
        .and_then(|m| m.get(SOURCE_ETAG_META))
        .map(|v| normalize_etag(v)))
}

/// Deletes `keys` from `bucket` (absent keys are fine), 1000 per request.
pub async fn delete_keys(client: &Client, bucket: &str, keys: &[String]) -> Result<()> {
    for chunk in keys.chunks(1000) {
        let objects = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .context("building a delete request")?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .context("building a delete request")?;
        let out = client
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| s3_error(&format!("deleting objects from {bucket}"), e))?;
        if let Some(err) = out.errors().first() {
            bail!(
                "deleting {}/{}: {} {}",
                bucket,
                err.key().unwrap_or("?"),
                err.code().unwrap_or("?"),
                err.message().unwrap_or("")
            );
        }
    }
    Ok(())
}

/// Deletes every object of `bucket`, then the bucket. A bucket that does not
/// exist is already removed.
pub async fn remove_bucket(client: &Client, bucket: &str) -> Result<()> {
    let Some(objects) = list(client, bucket).await? else {
        return Ok(());
    };
    let keys: Vec<String> = objects.into_iter().map(|e| e.key).collect();
    delete_keys(client, bucket, &keys).await?;
    match client.delete_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) if matches!(code_of(&e), Some("NoSuchBucket")) => Ok(()),
        Err(e) => Err(s3_error(&format!("deleting bucket {bucket}"), e)),
    }
}

/// Copies objects of one bucket from a source to a destination storage.
pub struct Copier<'a> {
    pub source: &'a Endpoint,
    pub source_client: &'a Client,
    pub dest: &'a Endpoint,
    pub dest_client: &'a Client,
    pub bucket: &'a str,
    /// The most bytes held in memory for one object (one part).
    pub part_size: u64,
}

/// What one copy did, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub bytes: u64,
    pub server_side: bool,
}

impl Copier<'_> {
    /// Copies `entry` (as listed on the source) and records its ETag on the
    /// copy. Returns `None` when the source no longer has the object.
    pub async fn copy(&self, entry: &Entry) -> Result<Option<Copied>> {
        let head = match self
            .source_client
            .head_object()
            .bucket(self.bucket)
            .key(&entry.key)
            .send()
            .await
        {
            Ok(h) => h,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => return Ok(None),
            Err(e) => {
                return Err(s3_error(
                    &format!("reading {}/{}", self.bucket, entry.key),
                    e,
                ));
            }
        };
        let size = u64::try_from(head.content_length().unwrap_or(0)).unwrap_or(0);
        let etag = normalize_etag(head.e_tag().unwrap_or(""));
        let mut metadata: HashMap<String, String> = head.metadata().cloned().unwrap_or_default();
        metadata.insert(SOURCE_ETAG_META.to_string(), etag.clone());
        let content_type = head.content_type().map(str::to_string);

        const MAX_SINGLE_COPY: u64 = 5 << 30;
        if self.source.same_service(self.dest) && size <= MAX_SINGLE_COPY {
            self.dest_client
                .copy_object()
                .bucket(self.bucket)
                .key(&entry.key)
                .copy_source(format!("{}/{}", self.bucket, encode_key(&entry.key)))
                .copy_source_if_match(format!("\"{etag}\""))
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .set_metadata(Some(metadata))
                .set_content_type(content_type)
                .send()
                .await
                .map_err(|e| {
                    s3_error(
                        &format!("copying {}/{} on the server", self.bucket, entry.key),
                        e,
                    )
                })?;
            return Ok(Some(Copied {
                bytes: size,
                server_side: true,
            }));
        }

        let part_size = fado_sync::part_size(size, self.part_size);
        let ranges = fado_sync::parts(size, part_size);
        if ranges.len() <= 1 {
            let body = match ranges.first() {
                Some(&(start, end)) => self.read(&entry.key, start, end, &etag).await?,
                None => Vec::new(),
            };
            self.dest_client
                .put_object()
                .bucket(self.bucket)
                .key(&entry.key)
                .set_metadata(Some(metadata))
                .set_content_type(content_type)
                .content_length(body.len() as i64)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| s3_error(&format!("writing {}/{}", self.bucket, entry.key), e))?;
            return Ok(Some(Copied {
                bytes: size,
                server_side: false,
            }));
        }

        let upload = self
            .dest_client
            .create_multipart_upload()
            .bucket(self.bucket)
            .key(&entry.key)
            .set_metadata(Some(metadata))
            .set_content_type(content_type)
            .send()
            .await
            .map_err(|e| {
                s3_error(
                    &format!("starting an upload of {}/{}", self.bucket, entry.key),
                    e,
                )
            })?;
        let upload_id = upload
            .upload_id()
            .context("an upload without an id")?
            .to_string();
        let result = self
            .upload_parts(&entry.key, &upload_id, &ranges, &etag)
            .await;
        if result.is_err() {
            // Leave no half upload behind; the retry starts a fresh one.
            let _ = self
                .dest_client
                .abort_multipart_upload()
                .bucket(self.bucket)
                .key(&entry.key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result.map(|()| {
            Some(Copied {
                bytes: size,
                server_side: false,
            })
        })
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        ranges: &[(u64, u64)],
        etag: &str,
    ) -> Result<()> {
        let mut done = Vec::with_capacity(ranges.len());
        for (i, &(start, end)) in ranges.iter().enumerate() {
            let number = i as i32 + 1;
            let body = self.read(key, start, end, etag).await?;
            let part = self
                .dest_client
                .upload_part()
                .bucket(self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(body.len() as i64)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| {
                    s3_error(
                        &format!("writing part {number} of {}/{key}", self.bucket),
                        e,
                    )
                })?;
            done.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
        }
        self.dest_client
            .complete_multipart_upload()
            .bucket(self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                s3_error(
                    &format!("completing the upload of {}/{key}", self.bucket),
                    e,
                )
            })?;
        Ok(())
    }

    /// One range of the source object, refusing a version other than the
    /// one being copied (`If-Match`), so a copy never mixes two versions.
    async fn read(&self, key: &str, start: u64, end: u64, etag: &str) -> Result<Vec<u8>> {
        let out = self
            .source_client
            .get_object()
            .bucket(self.bucket)
            .key(key)
            .range(format!("bytes={start}-{end}"))
            .if_match(format!("\"{etag}\""))
            .send()
            .await
            .map_err(|e| s3_error(&format!("reading {}/{key}", self.bucket), e))?;
        let bytes = out
            .body
            .collect()
            .await
            .with_context(|| format!("reading {}/{key}", self.bucket))?
            .into_bytes();
        if bytes.len() as u64 != end - start + 1 {
            bail!(
                "reading {}/{key}: got {} bytes for range {start}-{end}",
                self.bucket,
                bytes.len()
            );
        }
        Ok(bytes.to_vec())
    }
}

/// Percent-encodes a key for `x-amz-copy-source` (slashes stay).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
