//! Example function `image`: makes a PNG thumbnail of an image object.
//!
//! `GET|POST /image?bucket=B&key=K[&width=W&height=H][&store=false]` (or the
//! same fields in a JSON body) reads `B/K` from this cluster's storage, or,
//! when the bucket is not there, from the first fallback storage that has
//! it; shrinks it into the box (128 px by default) keeping its aspect
//! ratio; and either writes `thumbnails/K.png` into the bucket and answers
//! JSON describing what it did, or answers the PNG itself (`store=false`)
//! with the same facts in `X-Image-*` headers.
//!
//! Everything about the cluster comes from Spin variables, so one build runs
//! in every cluster; the decisions live in the `thumbnail` crate.

mod config;
mod store;

use std::time::Instant;

use fado_api::{ApiError, ApiResult};
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use thumbnail::{ThumbnailError, ThumbnailRequest, thumbnail_key};

use crate::config::Config;

/// The largest JSON body a call may send.
const MAX_BODY: usize = 64 << 10;

#[http_component]
fn image(req: Request) -> Response {
    let cluster = spin_sdk::variables::get("cluster").unwrap_or_default();
    let mut response = match serve(&req) {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                eprintln!("image: {} {}: {}", req.method(), req.uri(), e.message);
            }
            Response::builder()
                .status(e.status)
                .header("content-type", "application/json")
                .body(e.body().to_string())
                .build()
        }
    };
    response.set_header("x-fado-cluster", cluster);
    response
}

fn serve(req: &Request) -> ApiResult<Response> {
    if !matches!(req.method(), Method::Get | Method::Post) {
        return Err(ApiError::method_not_allowed(&["GET", "POST"]));
    }
    if req.body().len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "too_large",
            format!("the request body exceeds {MAX_BODY} bytes"),
        ));
    }
    let call = ThumbnailRequest::parse(req.query(), req.body())?;
    let config = Config::load()?;
    fado_s3::block_on(thumbnail_of(&config, &call))
}

async fn thumbnail_of(config: &Config, call: &ThumbnailRequest) -> ApiResult<Response> {
    let started = Instant::now();
    let read = store::read(config, &call.bucket, &call.key).await?;
    let read_ms = ms_since(started);

    let started = Instant::now();
    let thumb = thumbnail::make(&read.bytes, call.bounds).map_err(|e| image_error(e, call))?;
    let resize_ms = ms_since(started);

    let source = &read.storage;
    let mut facts = json!({
        "cluster": config.cluster,
        "bucket": call.bucket,
        "key": call.key,
        "source": source.endpoint,
        "local": source.local,
        "source_format": thumb.source_format,
        "source_width": thumb.source_width,
        "source_height": thumb.source_height,
        "source_bytes": read.bytes.len(),
        "width": thumb.width,
        "height": thumb.height,
        "bytes": thumb.png.len(),
        "read_ms": read_ms,
        "resize_ms": resize_ms,
    });
    if !call.store {
        let mut builder = Response::builder();
        builder.status(200).header("content-type", "image/png");
        for (name, value) in facts.as_object().into_iter().flatten() {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            builder.header(format!("x-image-{}", name.replace('_', "-")), value);
        }
        return Ok(builder.body(thumb.png).build());
    }

    let key = thumbnail_key(&call.key);
    let started = Instant::now();
    let written_to = store::write(config, &read, &call.bucket, &key, thumb.png).await?;
    facts["thumbnail_key"] = json!(key);
    facts["written_to"] = json!(written_to);
    facts["write_ms"] = json!(ms_since(started));
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(facts.to_string())
        .build())
}

/// Milliseconds since `t`, to a microsecond.
fn ms_since(t: Instant) -> f64 {
    (t.elapsed().as_micros() as f64) / 1000.0
}

fn image_error(e: ThumbnailError, call: &ThumbnailRequest) -> ApiError {
    let what = format!("{}/{}: {e}", call.bucket, call.key);
    let (status, code) = match e {
        ThumbnailError::NotAnImage | ThumbnailError::Unsupported(_) => {
            (415, "unsupported_media_type")
        }
        ThumbnailError::Undecodable { .. } => (422, "undecodable_image"),
        ThumbnailError::TooLarge(_) => (413, "image_too_large"),
        ThumbnailError::Encode(_) => (500, "internal"),
    };
    ApiError {
        field: (status != 500).then(|| "key".to_string()),
        ..ApiError::new(status, code, what)
    }
}
