//! Storage I/O: reading the input from the first storage holding its
//! bucket, writing the thumbnail back.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use fado_api::{ApiError, ApiResult};

use thumbnail::Storage;

use crate::config::Config;

/// An input object and where it was read.
pub struct Read {
    pub storage: Storage,
    /// A client of that storage, to write the thumbnail back.
    pub client: fado_s3::Client,
    pub bytes: Vec<u8>,
}

/// Reads `bucket/key` from the own storage or, when the bucket is not
/// there, from the first fallback that has it. A storage that fails is
/// skipped too (the bucket may be elsewhere); if no storage has the bucket
/// and one failed, the answer is 502 naming the failure.
pub async fn read(config: &Config, bucket: &str, key: &str) -> ApiResult<Read> {
    let mut failures = Vec::new();
    for storage in &config.storages {
        let client = config.endpoint(storage).client();
        let out = match client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => out,
            Err(e) => {
                match e.code() {
                    Some("NoSuchBucket") => continue,
                    // The bucket is here, so this storage is the authority.
                    Some("NoSuchKey") => {
                        return Err(ApiError {
                            field: Some("key".into()),
                            ..ApiError::not_found(format!(
                                "object {key:?} in bucket {bucket:?} (on {})",
                                storage.endpoint
                            ))
                        });
                    }
                    _ => {
                        failures.push(format!("{}: {}", storage.endpoint, DisplayErrorContext(&e)));
                        continue;
                    }
                }
            }
        };
        let size = u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0);
        if size > config.max_input {
            return Err(too_large(bucket, key, size, config.max_input));
        }
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                ApiError::new(
                    502,
                    "storage_error",
                    format!("reading {bucket}/{key} from {}: {e}", storage.endpoint),
                )
            })?
            .to_vec();
        // The length header may be absent; what arrived is what counts.
        if bytes.len() as u64 > config.max_input {
            return Err(too_large(bucket, key, bytes.len() as u64, config.max_input));
        }
        return Ok(Read {
            storage: storage.clone(),
            client,
            bytes,
        });
    }
    if !failures.is_empty() {
        return Err(ApiError::new(
            502,
            "storage_error",
            format!(
                "bucket {bucket:?} was not found, and storage failed: {}",
                failures.join("; ")
            ),
        ));
    }
    let searched: Vec<&str> = config
        .storages
        .iter()
        .map(|s| s.endpoint.as_str())
        .collect();
    Err(ApiError {
        field: Some("bucket".into()),
        ..ApiError::not_found(format!(
            "bucket {bucket:?} on this cluster's storage or a fallback ({})",
            searched.join(", ")
        ))
    })
}

fn too_large(bucket: &str, key: &str, size: u64, max: u64) -> ApiError {
    ApiError {
        field: Some("key".into()),
        ..ApiError::new(
            413,
            "too_large",
            format!(
                "{bucket}/{key} is {size} bytes; this function reads at most {} MiB (variable max_input_mib)",
                max >> 20
            ),
        )
    }
}

/// Writes the thumbnail. Through FaDO's object API when `fado_api` is set,
/// so it lands on the bucket's master and is replicated; otherwise on the
/// storage the input came from (on a replica, the next sync removes it).
/// Returns where it went: `fado_api` or the storage endpoint.
pub async fn write(
    config: &Config,
    read: &Read,
    bucket: &str,
    key: &str,
    png: Vec<u8>,
) -> ApiResult<String> {
    let failed =
        |e: String| ApiError::new(502, "storage_error", format!("writing {bucket}/{key}: {e}"));
    let Some((api, token)) = &config.fado_api else {
        fado_s3::put(
            &read.client,
            bucket,
            key,
            png.into(),
            None,
            Some("image/png".into()),
        )
        .await
        .map_err(|e| failed(format!("{e:#}")))?;
        return Ok(read.storage.endpoint.clone());
    };
    let url = thumbnail::object_api_url(api, bucket, key);
    let request = wstd::http::Request::put(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "image/png")
        .body(wstd::http::Body::from(png))
        .map_err(|e| failed(format!("building the request to {url}: {e}")))?;
    let mut response = wstd::http::Client::new()
        .send(request)
        .await
        .map_err(|e| failed(format!("FaDO's API at {api} did not answer: {e:?}")))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.body_mut().str_contents().await.unwrap_or_default();
        return Err(failed(format!(
            "FaDO's API answered {status}: {}",
            body.chars().take(500).collect::<String>()
        )));
    }
    Ok("fado_api".into())
}
