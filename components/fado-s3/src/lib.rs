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

use anyhow::{Context, Result, bail};
pub use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use fado_sync::{Entry, SOURCE_ETAG_META, normalize_etag};
use futures::{StreamExt, TryStreamExt};

mod error;
pub mod pipe;

pub use error::{S3Error, S3ErrorKind, has_code, s3_error_of};

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

impl From<fado_store::storage::StoredEndpoint> for Endpoint {
    fn from(e: fado_store::storage::StoredEndpoint) -> Self {
        Self {
            url: e.url,
            region: e.region,
            path_style: e.path_style,
            access_key: e.access_key,
            secret_key: e.secret_key,
        }
    }
}

impl Endpoint {
    /// Whether a server-side copy between the two can work: same service,
    /// same credentials.
    pub fn same_service(&self, other: &Endpoint) -> bool {
        self.url == other.url && self.access_key == other.access_key
    }

    pub fn client(&self) -> Client {
        self.client_with(None)
    }

    /// A client that gives up on an operation after `timeout` (all attempts
    /// included) and tries once: for probes, where a slow answer is the
    /// answer.
    pub fn probe_client(&self, timeout: std::time::Duration) -> Client {
        self.client_with(Some(timeout))
    }

    fn client_with(&self, probe_timeout: Option<std::time::Duration>) -> Client {
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
            // Bodies carry no CRC computed in the guest (it cost a tenth of
            // copy throughput, measured); integrity of a copy rests on TLS
            // or TCP plus Content-MD5 where the source's MD5 is known.
            // Operations that require a checksum (DeleteObjects) still get one.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .credentials_provider(creds)
            .http_client(aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build())
            .sleep_impl(aws_smithy_async::rt::sleep::SharedAsyncSleep::new(
                aws_smithy_wasm::wasi::WasiSleep,
            ));
        let config = match probe_timeout {
            Some(t) => config
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .timeout_config(
                    aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                        .connect_timeout(t)
                        .operation_timeout(t)
                        .build(),
                ),
            None => config,
        };
        Client::from_conf(config.build())
    }
}

/// Why a storage deployment failed a probe, by what the user should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// Nothing answered like S3 there (connection refused, timeout, TLS, DNS).
    Unreachable(String),
    /// The service does not know the access key.
    AccessKey(String),
    /// The service rejected the signature (wrong secret key) or the key's rights.
    Credentials(String),
    /// The service expects signatures for another region (`Some` when it said which).
    Region(Option<String>, String),
    /// Anything else the service answered.
    Other(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Unreachable(m) => write!(f, "the endpoint cannot be reached: {m}"),
            ProbeError::AccessKey(m) => write!(f, "the access key was rejected: {m}"),
            ProbeError::Credentials(m) => write!(f, "the credentials were rejected: {m}"),
            ProbeError::Region(Some(r), m) => {
                write!(f, "the service expects region {r:?}: {m}")
            }
            ProbeError::Region(None, m) => write!(f, "wrong region: {m}"),
            ProbeError::Other(m) => write!(f, "the service answered with an error: {m}"),
        }
    }
}

/// Checks that the endpoint answers S3 requests signed with these
/// credentials and region, with one `ListBuckets` (any key allowed to use
/// the service may call it).
pub async fn probe(endpoint: &Endpoint, timeout: std::time::Duration) -> Result<(), ProbeError> {
    use aws_sdk_s3::error::SdkError;
    let client = endpoint.probe_client(timeout);
    let e = match client.list_buckets().send().await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let detail = format!("{}", DisplayErrorContext(&e));
    match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("");
            let body = std::str::from_utf8(s.raw().body().bytes().unwrap_or_default())
                .unwrap_or_default()
                .to_string();
            let message = s.err().message().unwrap_or(code).to_string();
            match code {
                "InvalidAccessKeyId" => Err(ProbeError::AccessKey(message)),
                // Garage says "Forbidden: No such key: GK…" for an unknown key.
                _ if unknown_key(&message) => Err(ProbeError::AccessKey(message)),
                "SignatureDoesNotMatch" | "AccessDenied" | "InvalidToken" | "ExpiredToken" => {
                    Err(ProbeError::Credentials(message))
                }
                "AuthorizationHeaderMalformed"
                | "InvalidRegion"
                | "IllegalLocationConstraintException"
                    if message.to_ascii_lowercase().contains("region")
                        || body.contains("<Region>") =>
                {
                    Err(ProbeError::Region(
                        expected_region(&body, &message),
                        message,
                    ))
                }
                _ if s.raw().status().as_u16() == 403 => Err(ProbeError::Credentials(message)),
                _ => Err(ProbeError::Other(format!("{code}: {message}"))),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            Err(ProbeError::Unreachable(detail))
        }
        // A response that is not S3 XML: something else listens there.
        SdkError::ResponseError(_) => Err(ProbeError::Unreachable(format!(
            "the answer is not an S3 response ({detail})"
        ))),
        _ => Err(ProbeError::Other(detail)),
    }
}

fn unknown_key(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no such key") || m.contains("access key id you provided does not exist")
}

/// The region a service names when it refuses a signature's region: AWS
/// puts it in a `<Region>` element; others only say it in the message.
fn expected_region(body: &str, message: &str) -> Option<String> {
    if let Some(start) = body.find("<Region>") {
        let rest = &body[start + "<Region>".len()..];
        if let Some(end) = rest.find("</Region>") {
            return Some(rest[..end].trim().to_string()).filter(|r| !r.is_empty());
        }
    }
    // e.g. "... expecting 'garage'" / "... expected \"garage\"".
    let lower = message.to_ascii_lowercase();
    let at = lower.rfind("expect")?;
    let quoted = &message[at..];
    let open = quoted.find(['\'', '"', '`'])?;
    let q = quoted[open..].chars().next()?;
    let rest = &quoted[open + 1..];
    let close = rest.find(q)?;
    Some(rest[..close].to_string()).filter(|r| !r.is_empty() && r.len() <= 64)
}

/// Runs S3 futures to completion inside a (synchronous) component handler.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    wstd::runtime::block_on(f)
}

/// An S3 error with its code and message, for job ledgers and logs.
fn s3_error<E>(
    what: &str,
    e: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> anyhow::Error
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    anyhow::Error::new(S3Error::from_sdk(what, &e))
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

/// What a HEAD of one object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    /// Unquoted.
    pub etag: String,
    /// The master's ETag a copy recorded (see [`SOURCE_ETAG_META`]).
    pub source_etag: Option<String>,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: HashMap<String, String>,
}

impl Head {
    /// The ETag this object had on the master: its own unless it is a copy.
    pub fn master_etag(&self) -> &str {
        self.source_etag.as_deref().unwrap_or(&self.etag)
    }
}

/// HEAD of `bucket/key`; `None` when the object (or bucket) does not exist.
pub async fn head(client: &Client, bucket: &str, key: &str) -> Result<Option<Head>> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(h) => Ok(Some(Head {
            size: u64::try_from(h.content_length().unwrap_or(0)).unwrap_or(0),
            etag: normalize_etag(h.e_tag().unwrap_or("")),
            source_etag: h
                .metadata()
                .and_then(|m| m.get(SOURCE_ETAG_META))
                .map(|v| normalize_etag(v)),
            content_type: h.content_type().map(str::to_string),
            metadata: h.metadata().cloned().unwrap_or_default(),
        })),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
        Err(e) => Err(s3_error(&format!("reading {bucket}/{key}"), e)),
    }
}

/// The source ETag a copy recorded (see [`SOURCE_ETAG_META`]), if any.
pub async fn recorded_source_etag(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<String>> {
    Ok(head(client, bucket, key).await?.and_then(|h| h.source_etag))
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

/// Writes `body` as `bucket/key` in one request; returns the new ETag.
pub async fn put(
    client: &Client,
    bucket: &str,
    key: &str,
    body: bytes::Bytes,
    metadata: Option<HashMap<String, String>>,
    content_type: Option<String>,
) -> Result<String> {
    let len = body.len() as u64;
    let object = NewObject {
        metadata,
        content_type,
        content_md5: None,
    };
    put_stream(client, bucket, key, ByteStream::from(body), len, object).await
}

/// What a new object carries besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct NewObject {
    pub metadata: Option<HashMap<String, String>>,
    pub content_type: Option<String>,
    /// Base64 MD5 of the body, checked by the service (`Content-MD5`).
    pub content_md5: Option<String>,
}

/// Writes `len` bytes streamed from `body` as `bucket/key` in one request,
/// without holding them: the payload is left out of the signature
/// (`UNSIGNED-PAYLOAD`), because hashing every byte with SHA-256 inside the
/// component halved copy throughput (measured with fado-bench replication).
/// Returns the new ETag.
pub async fn put_stream(
    client: &Client,
    bucket: &str,
    key: &str,
    body: ByteStream,
    len: u64,
    object: NewObject,
) -> Result<String> {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_metadata(object.metadata)
        .set_content_type(object.content_type)
        .set_content_md5(object.content_md5)
        .content_length(len as i64)
        .body(body)
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| s3_error(&format!("writing {bucket}/{key}"), e))?;
    Ok(normalize_etag(out.e_tag().unwrap_or("")))
}

/// Whether an error says the bucket does not exist.
pub fn is_no_such_bucket(e: &anyhow::Error) -> bool {
    has_code(e, "NoSuchBucket")
}

/// A multipart upload in progress: parts are sent as they come, so the
/// writer holds one part at a time.
pub struct MultipartUpload<'a> {
    client: &'a Client,
    bucket: &'a str,
    key: &'a str,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl<'a> MultipartUpload<'a> {
    pub async fn start(
        client: &'a Client,
        bucket: &'a str,
        key: &'a str,
        metadata: Option<HashMap<String, String>>,
        content_type: Option<String>,
    ) -> Result<Self> {
        let upload = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_metadata(metadata)
            .set_content_type(content_type)
            .send()
            .await
            .map_err(|e| s3_error(&format!("starting an upload of {bucket}/{key}"), e))?;
        let upload_id = upload
            .upload_id()
            .context("an upload without an id")?
            .to_string();
        Ok(Self {
            client,
            bucket,
            key,
            upload_id,
            parts: Vec::new(),
        })
    }

    /// Sends the next part (every part but the last must be at least 5 MiB).
    pub async fn part(&mut self, body: Vec<u8>) -> Result<()> {
        let number = self.parts.len() as i32 + 1;
        let len = body.len() as u64;
        let part = self.send_part(number, ByteStream::from(body), len).await?;
        self.parts.push(part);
        Ok(())
    }

    /// Sends part `number` (from 1) streamed from `body`, unsigned like
    /// [`put_stream`]. Takes `&self` so several parts can be in flight;
    /// the caller hands the results to [`Self::complete_with`].
    pub async fn send_part(
        &self,
        number: i32,
        body: ByteStream,
        len: u64,
    ) -> Result<CompletedPart> {
        let (bucket, key) = (self.bucket, self.key);
        let part = self
            .client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .content_length(len as i64)
            .body(body)
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| s3_error(&format!("writing part {number} of {bucket}/{key}"), e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(part.e_tag().map(str::to_string))
            .build())
    }

    /// Completes the upload from parts sent with [`Self::send_part`], in any
    /// order; returns the object's ETag.
    pub async fn complete_with(mut self, mut parts: Vec<CompletedPart>) -> Result<String> {
        parts.sort_by_key(|p| p.part_number());
        self.parts = parts;
        self.complete().await
    }

    /// Completes the upload; returns the object's ETag.
    pub async fn complete(self) -> Result<String> {
        let (bucket, key) = (self.bucket, self.key);
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error(&format!("completing the upload of {bucket}/{key}"), e))?;
        Ok(normalize_etag(out.e_tag().unwrap_or("")))
    }

    /// Discards the parts sent so far (best effort: storage services also
    /// expire abandoned uploads).
    pub async fn abort(self) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(self.bucket)
            .key(self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
    }
}

/// Bytes `start..=end` of `bucket/key` as they arrive, refusing any version
/// other than `etag` (`If-Match`), so reading an object in parts never
/// mixes versions. Checks that the service answers with exactly that range.
pub async fn stream_range(
    client: &Client,
    bucket: &str,
    key: &str,
    (start, end): (u64, u64),
    etag: &str,
) -> Result<ByteStream> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(format!("bytes={start}-{end}"))
        .if_match(format!("\"{etag}\""))
        .send()
        .await
        .map_err(|e| s3_error(&format!("reading {bucket}/{key}"), e))?;
    let len = out.content_length().unwrap_or(-1);
    if len != (end - start + 1) as i64 {
        bail!("reading {bucket}/{key}: the service sent {len} bytes for range {start}-{end}");
    }
    Ok(out.body)
}

/// Bytes `start..=end` of `bucket/key`, held in memory; see [`stream_range`].
pub async fn read_range(
    client: &Client,
    bucket: &str,
    key: &str,
    range: (u64, u64),
    etag: &str,
) -> Result<Vec<u8>> {
    let (start, end) = range;
    let bytes = stream_range(client, bucket, key, range, etag)
        .await?
        .collect()
        .await
        .with_context(|| format!("reading {bucket}/{key}"))?
        .into_bytes();
    if bytes.len() as u64 != end - start + 1 {
        bail!(
            "reading {bucket}/{key}: got {} bytes for range {start}-{end}",
            bytes.len()
        );
    }
    Ok(bytes.to_vec())
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
    /// Called after each part of a multipart copy; an error stops the copy
    /// (the replicator renews its job's lease here, and stops when it lost it).
    pub on_part: Option<&'a dyn Fn() -> Result<()>>,
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
        let (bucket, key) = (self.bucket, entry.key.as_str());
        let server_side = self.source.same_service(self.dest);
        if entry.size <= SMALL_COPY && !server_side {
            match self.copy_small(key).await? {
                Small::Copied(c) => return Ok(Some(c)),
                Small::Missing => return Ok(None),
                // It grew since it was listed: the general path below.
                Small::Larger => {}
            }
        }
        let Some(head) = head(self.source_client, bucket, key).await? else {
            return Ok(None);
        };
        let mut object = copy_of(&head.etag, head.content_type, head.metadata);
        let (size, etag) = (head.size, head.etag);

        const MAX_SINGLE_COPY: u64 = 5 << 30;
        if server_side && size <= MAX_SINGLE_COPY {
            self.dest_client
                .copy_object()
                .bucket(bucket)
                .key(key)
                .copy_source(format!("{bucket}/{}", encode_key(key)))
                .copy_source_if_match(format!("\"{etag}\""))
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .set_metadata(object.metadata.take())
                .set_content_type(object.content_type.take())
                .send()
                .await
                .map_err(|e| s3_error(&format!("copying {bucket}/{key} on the server"), e))?;
            return Ok(Some(Copied {
                bytes: size,
                server_side: true,
            }));
        }

        let part_size = fado_sync::part_size(size, self.part_size);
        let ranges = fado_sync::parts(size, part_size);
        let copied = Copied {
            bytes: size,
            server_side: false,
        };
        if ranges.len() <= 1 {
            loop {
                let piped = pipe::Pipe {
                    source: self.source_client,
                    dest: self.dest_client,
                    bucket,
                    key,
                    range: ranges.first().copied(),
                    etag: &etag,
                    target: pipe::Target::Object(&object),
                }
                .run()
                .await;
                match piped {
                    // Some services' ETags are not MD5s though they look
                    // like one (e.g. with server-side encryption): copy
                    // again, unchecked, rather than fail for good.
                    Err(pipe::PipeError::BadDigest(_)) if object.content_md5.is_some() => {
                        object.content_md5 = None;
                    }
                    Err(e) => return Err(e.into()),
                    Ok(_) => return Ok(Some(copied)),
                }
            }
        }
        let upload = MultipartUpload::start(
            self.dest_client,
            bucket,
            key,
            object.metadata,
            object.content_type,
        )
        .await?;
        // Parts stream from source to destination, a few at once: one large
        // object then moves as fast as several small ones.
        let (upload_id, etag) = (upload.upload_id.as_str(), etag.as_str());
        let sent = futures::stream::iter(ranges.iter().enumerate().map(|(i, &range)| async move {
            let number = i as i32 + 1;
            let part_etag = pipe::Pipe {
                source: self.source_client,
                dest: self.dest_client,
                bucket,
                key,
                range: Some(range),
                etag,
                target: pipe::Target::Part { upload_id, number },
            }
            .run()
            .await?;
            self.on_part.map_or(Ok(()), |f| f())?;
            Ok::<_, anyhow::Error>(pipe::completed_part(number, &part_etag))
        }))
        .buffer_unordered(PARTS_AT_ONCE)
        .try_collect::<Vec<_>>()
        .await;
        match sent {
            Ok(parts) => {
                upload.complete_with(parts).await?;
                Ok(Some(copied))
            }
            Err(e) => {
                // Leave no half upload behind; the retry starts a fresh one.
                upload.abort().await;
                Err(e)
            }
        }
    }

    /// Copies `key` by one GET and one PUT, unless it turns out larger than
    /// [`SMALL_COPY`] (then the body is dropped unread and nothing is
    /// written).
    async fn copy_small(&self, key: &str) -> Result<Small> {
        let bucket = self.bucket;
        let got = match self
            .source_client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(g) => g,
            Err(e) if matches!(code_of(&e), Some("NoSuchKey" | "NoSuchBucket")) => {
                return Ok(Small::Missing);
            }
            Err(e) => return Err(s3_error(&format!("reading {bucket}/{key}"), e)),
        };
        let Some(size) = got.content_length().and_then(|n| u64::try_from(n).ok()) else {
            return Ok(Small::Larger); // unknown length: the general path finds it
        };
        if size > SMALL_COPY {
            return Ok(Small::Larger);
        }
        let etag = normalize_etag(got.e_tag().unwrap_or(""));
        let content_type = got.content_type().map(str::to_string);
        let metadata = got.metadata().cloned().unwrap_or_default();
        let body = got
            .body
            .collect()
            .await
            .with_context(|| format!("reading {bucket}/{key}"))?
            .into_bytes();
        if body.len() as u64 != size {
            bail!("reading {bucket}/{key}: got {} bytes of {size}", body.len());
        }
        let mut object = copy_of(&etag, content_type, metadata);
        let put = |object: NewObject| {
            put_stream(
                self.dest_client,
                bucket,
                key,
                ByteStream::from(body.clone()),
                size,
                object,
            )
        };
        match put(object.clone()).await {
            // See the same fallback in `copy`.
            Err(e) if object.content_md5.is_some() && has_code(&e, "BadDigest") => {
                object.content_md5 = None;
                put(object).await?;
            }
            result => {
                result?;
            }
        }
        Ok(Small::Copied(Copied {
            bytes: size,
            server_side: false,
        }))
    }
}

/// Objects up to this size are copied through the component's memory, by
/// one GET and one PUT: no HEAD first, since for them a HEAD costs about
/// what the copy does (measured with fado-bench replication's lag run).
pub const SMALL_COPY: u64 = 1 << 20;

/// How [`Copier::copy_small`] ended.
enum Small {
    Copied(Copied),
    /// The source has no such object (or bucket).
    Missing,
    /// The object is larger than [`SMALL_COPY`] now; nothing was written.
    Larger,
}

/// What a copy of an object with ETag `etag` carries: the source's metadata
/// plus its ETag, its content type, and the Content-MD5 its ETag gives.
fn copy_of(
    etag: &str,
    content_type: Option<String>,
    mut metadata: HashMap<String, String>,
) -> NewObject {
    metadata.insert(SOURCE_ETAG_META.to_string(), etag.to_string());
    NewObject {
        metadata: Some(metadata),
        content_type,
        // A plain (not multipart) source ETag is the body's MD5: the
        // destination checks the bytes end to end at no cost to us.
        content_md5: md5_of_etag(etag),
    }
}

/// Parts of one object a [`Copier`] moves at once.
const PARTS_AT_ONCE: usize = 4;

/// The base64 `Content-MD5` for a body whose ETag is `etag`, when the ETag
/// is a plain MD5 (32 hex digits; multipart ETags end in `-N`).
fn md5_of_etag(etag: &str) -> Option<String> {
    if etag.len() != 32 {
        return None;
    }
    let digest = (0..16)
        .map(|i| u8::from_str_radix(etag.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(aws_smithy_types::base64::encode(digest))
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

/// One page of a bucket listing, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// No keys follow the last one listed.
    pub complete: bool,
}

/// At most `max_keys` (S3 caps it at 1000) objects of `bucket` whose keys
/// sort after `start_after` (`""`: from the start). `None` when the bucket
/// does not exist. Lets a caller walk a large bucket a bounded page at a time.
pub async fn list_page(
    client: &Client,
    bucket: &str,
    start_after: &str,
    max_keys: i32,
) -> Result<Option<Page>> {
    let page = client
        .list_objects_v2()
        .bucket(bucket)
        .set_start_after((!start_after.is_empty()).then(|| start_after.to_string()))
        .max_keys(max_keys.clamp(1, 1000))
        .send()
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e) if matches!(code_of(&e), Some("NoSuchBucket")) => return Ok(None),
        Err(e) => return Err(s3_error(&format!("listing bucket {bucket}"), e)),
    };
    let entries = page
        .contents()
        .iter()
        .map(|o| {
            Ok(Entry {
                key: o
                    .key()
                    .context("a listed object without a key")?
                    .to_string(),
                size: u64::try_from(o.size().unwrap_or(0)).unwrap_or(0),
                etag: normalize_etag(o.e_tag().unwrap_or("")),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Page {
        entries,
        complete: page.is_truncated() != Some(true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_only_for_plain_md5_etags() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e; base64 of its bytes:
        assert_eq!(
            md5_of_etag("d41d8cd98f00b204e9800998ecf8427e").as_deref(),
            Some("1B2M2Y8AsgTpgAmY7PhCfg==")
        );
        assert_eq!(md5_of_etag("d41d8cd98f00b204e9800998ecf8427e-2"), None);
        assert_eq!(md5_of_etag("d41d8cd98f00b204e9800998ecf8427z"), None);
        assert_eq!(md5_of_etag(""), None);
        assert_eq!(md5_of_etag("é1d8cd98f00b204e9800998ecf8427"), None);
    }
}
