//! `PUT` and `DELETE` of one object, always on the bucket's master copy;
//! replicas follow through the jobs `fado_store::objects::record` queues.

use fado_api::{ApiError, ApiResult};
use fado_model::api::ObjectUpload;
use fado_s3::MultipartUpload;
use fado_store::objects::{self, Change};
use spin_sdk::http::IncomingRequest;
use wasi::io::streams::{InputStream, StreamError};

use crate::location::{self, Bucket};
use crate::{Ctx, Out, header};

/// S3 allows at most this many parts per upload.
const MAX_PARTS: usize = 10_000;

pub fn put(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    req: &IncomingRequest,
    out: &mut Out,
) -> ApiResult<()> {
    let b = location::bucket(ctx, bucket)?;
    check_master(&b)?;
    let content_type = header(req, "content-type");
    let length = match header(req, "content-length") {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
            ApiError::invalid("content-length", format!("{v:?} is not a byte count"))
        })?),
        None => None,
    };
    // With the length known, parts grow so that any size fits in S3's
    // 10,000 parts; without it, parts stay at the configured size.
    let part_size = match length {
        Some(n) => fado_sync::part_size(n, ctx.part_size),
        None => ctx.part_size,
    };
    let mut body = Body::open(req, length)?;
    let stored = store(ctx, &b, key, content_type, &mut body, part_size, out);
    if stored.is_err() && !body.done {
        // Refused mid-body (storage or the catalog failed): read the rest,
        // within bounds, so the client gets the answer.
        crate::drain(&body.stream);
    }
    stored
}

/// Streams `body` to the master copy, records it and answers.
fn store(
    ctx: &Ctx,
    b: &Bucket,
    key: &str,
    content_type: Option<String>,
    body: &mut Body,
    part_size: u64,
    out: &mut Out,
) -> ApiResult<()> {
    let client = b.master.endpoint.client();
    let first = body.read_part(part_size)?;
    let etag = if body.done {
        check_length(body.announced, body.total)?;
        let first = bytes::Bytes::from(first); // cheap to clone for a retry
        let put = |data: bytes::Bytes| {
            fado_s3::put(&client, &b.name, key, data, None, content_type.clone())
        };
        fado_s3::block_on(async {
            match put(first.clone()).await {
                Err(e) if fado_s3::is_no_such_bucket(&e) => {
                    // Its create_bucket job has not run yet: do its work now.
                    fado_s3::ensure_bucket(&client, &b.name).await?;
                    put(first).await
                }
                other => other,
            }
        })
        .map_err(storage_error)?
    } else {
        fado_s3::block_on(multipart(
            &client,
            &b.name,
            key,
            content_type.clone(),
            first,
            body,
            part_size,
        ))?
    };
    let size = body.total as i64;
    // One change: one statement, atomic without a transaction.
    let recorded = objects::record(
        &ctx.db,
        b.id,
        &b.name,
        &[Change::Put {
            key: key.to_string(),
            size,
            etag: etag.clone(),
            content_type: content_type.clone(),
        }],
    )?;
    if recorded.jobs > 0 {
        crate::wake(&ctx.redis_address, fado_model::channels::REPLICATOR);
    }
    crate::respond_json(
        out,
        200,
        &ObjectUpload {
            bucket: b.name.clone(),
            key: key.to_string(),
            size,
            etag: etag.clone(),
            content_type,
            storage: b.master.storage.clone(),
            replica_jobs: recorded.jobs,
        },
        &[("etag", format!("\"{etag}\""))],
    );
    Ok(())
}

async fn multipart(
    client: &fado_s3::Client,
    bucket: &str,
    key: &str,
    content_type: Option<String>,
    first: Vec<u8>,
    body: &mut Body,
    part_size: u64,
) -> ApiResult<String> {
    let upload =
        match MultipartUpload::start(client, bucket, key, None, content_type.clone()).await {
            Err(e) if fado_s3::is_no_such_bucket(&e) => {
                fado_s3::ensure_bucket(client, bucket)
                    .await
                    .map_err(storage_error)?;
                MultipartUpload::start(client, bucket, key, None, content_type).await
            }
            other => other,
        }
        .map_err(storage_error)?;
    let mut upload = upload;
    let result = async {
        upload.part(first).await.map_err(storage_error)?;
        let mut parts = 1;
        while !body.done {
            let data = body.read_part(part_size)?;
            if data.is_empty() {
                break;
            }
            parts += 1;
            if parts > MAX_PARTS {
                return Err(ApiError::new(
                    413,
                    "too_large",
                    format!(
                        "the body exceeds {MAX_PARTS} parts of {part_size} bytes; send a Content-Length so parts can grow"
                    ),
                ));
            }
            upload.part(data).await.map_err(storage_error)?;
        }
        // Checked before completing: a short body never becomes an object.
        check_length(body.announced, body.total)
    }
    .await;
    match result {
        Ok(()) => upload.complete().await.map_err(storage_error),
        Err(e) => {
            // Leave no half upload behind.
            upload.abort().await;
            Err(e)
        }
    }
}

pub fn delete(ctx: &Ctx, bucket: &str, key: &str, out: &mut Out) -> ApiResult<()> {
    let b = location::bucket(ctx, bucket)?;
    check_master(&b)?;
    let client = b.master.endpoint.client();
    match fado_s3::block_on(fado_s3::delete_keys(&client, &b.name, &[key.to_string()])) {
        Ok(()) => {}
        // No bucket yet on the storage: nothing to delete there.
        Err(e) if fado_s3::is_no_such_bucket(&e) => {}
        Err(e) => return Err(storage_error(e)),
    }
    // One change: one statement, atomic without a transaction.
    let recorded = objects::record(
        &ctx.db,
        b.id,
        &b.name,
        &[Change::Delete {
            key: key.to_string(),
        }],
    )?;
    if recorded.jobs > 0 {
        crate::wake(&ctx.redis_address, fado_model::channels::REPLICATOR);
    }
    crate::send(out, 204, Vec::new(), Vec::new());
    Ok(())
}

/// The body must be as long as its `Content-Length` said.
fn check_length(announced: Option<u64>, got: u64) -> ApiResult<()> {
    match announced {
        Some(n) if n != got => Err(ApiError::invalid(
            "content-length",
            format!("announced {n} bytes, the body had {got}"),
        )),
        _ => Ok(()),
    }
}

fn check_master(b: &Bucket) -> ApiResult<()> {
    if b.master.healthy {
        return Ok(());
    }
    Err(ApiError::new(
        503,
        "storage_unavailable",
        format!(
            "the master copy of bucket {:?} is on storage {:?}, which is unhealthy; retry later",
            b.name, b.master.storage
        ),
    ))
}

fn storage_error(e: anyhow::Error) -> ApiError {
    ApiError::new(502, "storage_error", format!("{e:#}"))
}

/// The request body, read a part at a time.
struct Body {
    // Declared before `_body`: a stream must be dropped before its body.
    stream: InputStream,
    _body: spin_sdk::wit::wasi::http0_2_0::types::IncomingBody,
    /// What `Content-Length` said.
    announced: Option<u64>,
    total: u64,
    done: bool,
}

impl Body {
    fn open(req: &IncomingRequest, announced: Option<u64>) -> ApiResult<Self> {
        let body = req
            .consume()
            .map_err(|_| ApiError::new(500, "internal", "the request body was taken twice"))?;
        let stream = body
            .stream()
            .map_err(|_| ApiError::new(500, "internal", "the request stream was taken twice"))?;
        Ok(Self {
            stream,
            _body: body,
            announced,
            total: 0,
            done: false,
        })
    }

    /// Up to `size` bytes: fewer only at the end of the body.
    fn read_part(&mut self, size: u64) -> ApiResult<Vec<u8>> {
        let mut part = Vec::with_capacity(size.min(64 << 20) as usize);
        while (part.len() as u64) < size && !self.done {
            let want = (size - part.len() as u64).min(1 << 20);
            match self.stream.blocking_read(want) {
                Ok(chunk) => part.extend_from_slice(&chunk),
                Err(StreamError::Closed) => self.done = true,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(ApiError::new(
                        400,
                        "bad_request",
                        format!("reading the request body: {}", e.to_debug_string()),
                    ));
                }
            }
        }
        self.total += part.len() as u64;
        Ok(part)
    }
}
