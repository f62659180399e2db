//! `GET`/`HEAD` of one object: from the first healthy copy that has it (the
//! master first, then ready replicas), in ranged parts of bounded size
//! written to the response as they arrive.

use fado_api::{ApiError, ApiResult};
use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse};
use wasi::io::streams::{OutputStream, StreamError};

use crate::location::{self, Copy};
use crate::{Ctx, Out, header};

/// `wasi:io` accepts at most 4096 bytes per blocking write.
const WRITE_CHUNK: usize = 4096;

pub fn get(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    req: &IncomingRequest,
    out: &mut Out,
    with_body: bool,
) -> ApiResult<()> {
    let b = location::bucket_and_replicas(ctx, bucket)?;
    let copies: Vec<&Copy> = std::iter::once(&b.master)
        .chain(b.ready_replicas.iter())
        .filter(|c| c.healthy)
        .collect();
    if copies.is_empty() {
        return Err(unavailable(&b.name));
    }
    let mut last_error = None;
    for (i, c) in copies.iter().enumerate() {
        let client = c.endpoint.client();
        match fado_s3::block_on(fado_s3::head(&client, &b.name, key)) {
            Ok(Some(head)) => {
                return serve(ctx, &b.name, key, c, &client, head, req, out, with_body);
            }
            // The master is the authority on what exists; a replica may lag.
            Ok(None) if i == 0 && c.storage == b.master.storage => {
                return Err(ApiError::not_found(format!(
                    "object {key:?} in bucket {:?}",
                    b.name
                )));
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!(
                    "objects: reading {}/{key} from {}: {e:#}",
                    b.name, c.storage
                );
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) => Err(ApiError::new(
            502,
            "storage_error",
            format!("no copy of bucket {:?} could be read: {e:#}", b.name),
        )),
        None => Err(ApiError::not_found(format!(
            "object {key:?} in bucket {:?}",
            b.name
        ))),
    }
}

fn unavailable(bucket: &str) -> ApiError {
    ApiError::new(
        503,
        "storage_unavailable",
        format!("every copy of bucket {bucket:?} is on unhealthy storage; retry later"),
    )
}

#[allow(clippy::too_many_arguments)]
fn serve(
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    copy: &Copy,
    client: &fado_s3::Client,
    head: fado_s3::Head,
    req: &IncomingRequest,
    out: &mut Out,
    with_body: bool,
) -> ApiResult<()> {
    let size = head.size;
    let range = match header(req, "range") {
        Some(r) => match parse_range(&r, size) {
            Ok(range) => Some(range),
            Err(RangeError::Ignore) => None,
            Err(RangeError::Unsatisfiable) => {
                crate::respond_json(
                    out,
                    416,
                    &ApiError::new(
                        416,
                        "range_not_satisfiable",
                        format!("{r:?} is outside the object's {size} bytes"),
                    )
                    .body(),
                    &[("content-range", format!("bytes */{size}"))],
                );
                return Ok(());
            }
        },
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-length".into(), length.to_string().into_bytes()),
        (
            "etag".into(),
            format!("\"{}\"", head.master_etag()).into_bytes(),
        ),
        ("accept-ranges".into(), b"bytes".to_vec()),
        ("x-fado-storage".into(), copy.storage.clone().into_bytes()),
        (
            "content-type".into(),
            head.content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into())
                .into_bytes(),
        ),
    ];
    if range.is_some() {
        headers.push((
            "content-range".into(),
            format!("bytes {start}-{end}/{size}").into_bytes(),
        ));
    }
    let status = if range.is_some() { 206 } else { 200 };
    let Some(outparam) = out.take() else {
        return Ok(());
    };
    let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid header names"));
    response.set_status_code(status).expect("a valid status");
    let body = response
        .body()
        .map_err(|_| ApiError::new(500, "internal", "the response body was taken twice"))?;
    outparam.set(response);
    if with_body && length > 0 {
        let stream = body
            .write()
            .map_err(|_| ApiError::new(500, "internal", "the response stream was taken twice"))?;
        // Parts of the copy's version only (If-Match): a concurrent
        // overwrite fails the read instead of mixing versions.
        let mut at = start;
        while at <= end {
            let part_end = end.min(at + ctx.part_size - 1);
            let bytes = fado_s3::block_on(fado_s3::read_range(
                client,
                bucket,
                key,
                (at, part_end),
                &head.etag,
            ))
            .map_err(|e| ApiError::new(502, "storage_error", format!("{e:#}")))?;
            write_stream(&stream, &bytes).map_err(|e| {
                ApiError::new(499, "client_gone", format!("writing the response: {e:?}"))
            })?;
            at = part_end + 1;
        }
        drop(stream);
    }
    let finished = OutgoingBody::finish(body, None);
    // A HEAD answer announces the object's length but carries no body, so
    // the host's length check fails its finish; the HTTP server sends no
    // body for HEAD anyway.
    if with_body {
        finished.map_err(|e| {
            ApiError::new(500, "internal", format!("finishing the response: {e:?}"))
        })?;
    }
    Ok(())
}

/// Writes all of `bytes`, blocking while the client is slow.
pub fn write_stream(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

enum RangeError {
    /// Not a form we serve (several ranges, other units): send it all.
    Ignore,
    Unsatisfiable,
}

/// One `bytes=` range of an object of `size` bytes, as inclusive offsets.
fn parse_range(header: &str, size: u64) -> Result<(u64, u64), RangeError> {
    let spec = header
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Ignore)?;
    if spec.contains(',') {
        return Err(RangeError::Ignore);
    }
    let (a, b) = spec.split_once('-').ok_or(RangeError::Ignore)?;
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().map_err(|_| RangeError::Ignore);
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Err(RangeError::Ignore),
        // The last `b` bytes.
        (true, false) => {
            let n = parse(b)?;
            if n == 0 || size == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            (size.saturating_sub(n), size - 1)
        }
        (false, true) => (parse(a)?, size.saturating_sub(1)),
        (false, false) => {
            let (s, e) = (parse(a)?, parse(b)?);
            if e < s {
                return Err(RangeError::Ignore);
            }
            (s, e.min(size.saturating_sub(1)))
        }
    };
    if start >= size {
        return Err(RangeError::Unsatisfiable);
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str, size: u64) -> Option<(u64, u64)> {
        parse_range(h, size).ok()
    }

    #[test]
    fn ranges() {
        assert_eq!(ok("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(ok("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(ok("bytes=10-", 100), Some((10, 99)));
        assert_eq!(ok("bytes=-10", 100), Some((90, 99)));
        assert_eq!(ok("bytes=-500", 100), Some((0, 99)));
        assert!(matches!(
            parse_range("bytes=100-", 100),
            Err(RangeError::Unsatisfiable)
        ));
        assert!(matches!(
            parse_range("bytes=0-1,5-6", 100),
            Err(RangeError::Ignore)
        ));
        assert!(matches!(
            parse_range("items=0-1", 100),
            Err(RangeError::Ignore)
        ));
        assert!(matches!(
            parse_range("bytes=5-1", 100),
            Err(RangeError::Ignore)
        ));
        assert!(matches!(
            parse_range("bytes=-0", 100),
            Err(RangeError::Unsatisfiable)
        ));
    }
}
