//! The objects component: FaDO's unified object API, the data plane beside
//! the catalog's control plane.
//!
//! - `GET /api/buckets/{bucket}/objects?prefix=&cursor=&limit=`: the objects
//!   catalog, in key order;
//! - `PUT /api/buckets/{bucket}/objects/{key...}`: streams the body to the
//!   bucket's master copy (one request up to a part, a multipart upload
//!   above), records it in the catalog and queues a copy for every replica;
//! - `GET`/`HEAD` of an object: streams it from a healthy copy (the master
//!   first), honouring a single `Range`;
//! - `DELETE` of an object: removes it from the master and queues the
//!   deletes.
//!
//! Bodies move through in parts of at most `upload_part_size_mib`, so memory
//! stays bounded whatever the object's size. Requests need the admin token,
//! like the rest of `/api`.

mod download;
mod list;
mod location;
mod upload;

use fado_api::{ApiError, ApiResult};
use fado_store::Db;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::variables;

/// What a request carries besides its body.
pub struct Ctx {
    pub db: Db,
    pub redis_address: String,
    pub encryption_key: String,
    pub part_size: u64,
}

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let method = req.method().to_string().to_ascii_uppercase();
    let path = req.path_with_query().unwrap_or_else(|| "/".into());
    let mut out = Some(out);
    if let Err(e) = serve(&method, &path, &req, &mut out) {
        match out.take() {
            Some(out) => {
                // A body nobody read yet (the request was refused first).
                if let Ok(body) = req.consume()
                    && let Ok(stream) = body.stream()
                {
                    drain(&stream);
                }
                respond_error(out, e)
            }
            // The response was under way: its status is sent, so the client
            // sees a truncated body; the log says why.
            None => eprintln!(
                "objects: {method} {path} failed mid-response: {}",
                e.message
            ),
        }
    }
}

/// The parsed target of a request.
struct Target {
    bucket: String,
    /// `None` for the listing.
    key: Option<String>,
    query: Vec<(String, String)>,
}

fn serve(method: &str, path: &str, req: &IncomingRequest, out: &mut Out) -> ApiResult<()> {
    // The token first: without it, nothing about the request is answered.
    authorize(header(req, "authorization").as_deref())?;
    let target = parse_target(path)?;
    let ctx = Ctx {
        db: Db::open(&var("pg_address")?)?,
        redis_address: var("redis_address")?,
        encryption_key: var("encryption_key")?,
        part_size: var("upload_part_size_mib")?
            .parse::<u64>()
            .map_err(|_| {
                ApiError::new(
                    500,
                    "misconfigured",
                    "variable upload_part_size_mib: expected a whole number of MiB",
                )
            })?
            .max(5)
            << 20,
    };
    fado_store::ensure_schema(&ctx.db)?;
    match (target.key.as_deref(), method) {
        (None, "GET") => list::objects(&ctx, &target.bucket, &target.query, out),
        (None, _) => Err(ApiError::method_not_allowed(&["GET"])),
        (Some(key), "PUT") => upload::put(&ctx, &target.bucket, key, req, out),
        (Some(key), "GET") => download::get(&ctx, &target.bucket, key, req, out, true),
        (Some(key), "HEAD") => download::get(&ctx, &target.bucket, key, req, out, false),
        (Some(key), "DELETE") => upload::delete(&ctx, &target.bucket, key, out),
        (Some(_), _) => Err(ApiError::method_not_allowed(&[
            "GET", "HEAD", "PUT", "DELETE",
        ])),
    }
}

/// Splits `/api/buckets/{bucket}/objects[/{key...}][?query]`; the key is
/// percent-decoded and must be valid UTF-8 and a valid S3 key.
fn parse_target(path_and_query: &str) -> ApiResult<Target> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let rest = path
        .strip_prefix("/api/buckets/")
        .ok_or_else(|| ApiError::new(404, "not_found", format!("no object API route {path}")))?;
    let (bucket, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let key = match rest {
        "objects" | "objects/" => None,
        r => match r.strip_prefix("objects/") {
            Some(raw) => Some(decode_key(raw)?),
            None => {
                return Err(ApiError::new(
                    404,
                    "not_found",
                    format!("no object API route {path}"),
                ));
            }
        },
    };
    let bucket = String::from_utf8(percent_decode(bucket.as_bytes()))
        .map_err(|_| ApiError::invalid("bucket", "is not valid UTF-8 once percent-decoded"))?;
    fado_model::validate::bucket_name("bucket", &bucket)
        .or_else(|e| {
            // Buckets are also addressed by id, as everywhere in the API.
            if bucket.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(ApiError::from)?;
    if let Some(k) = &key {
        fado_model::validate::object_key("key", k)?;
    }
    Ok(Target {
        bucket,
        key,
        query: form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    })
}

fn decode_key(raw: &str) -> ApiResult<String> {
    let bytes: Vec<u8> = percent_decode(raw.as_bytes());
    String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid("key", "is not valid UTF-8 once percent-decoded"))
}

/// `%XX` decoding of a path segment (`+` stays a plus, as in URL paths).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && i + 2 < input.len()
            && let (Some(h), Some(l)) = (hex_val(input[i + 1]), hex_val(input[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

pub fn header(req: &IncomingRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn var(name: &str) -> ApiResult<String> {
    variables::get(name).map_err(|e| {
        ApiError::new(
            500,
            "misconfigured",
            format!("the objects component's variable {name:?} is not available: {e:?}"),
        )
    })
}

fn authorize(auth: Option<&str>) -> ApiResult<()> {
    fado_api::authorize(auth, &var("admin_token")?)
}

/// The response slot, which a handler fills once (taking it): with a
/// streamed body (downloads) or a small JSON one. While it is still there,
/// an error can be answered properly.
pub type Out = Option<ResponseOutparam>;

/// Sends a JSON response.
pub fn respond_json(
    out: &mut Out,
    status: u16,
    body: &impl serde::Serialize,
    extra: &[(&str, String)],
) {
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    for (k, v) in extra {
        headers.push((k.to_string(), v.clone().into_bytes()));
    }
    let bytes = serde_json::to_vec(body).expect("a JSON answer serializes");
    send(out, status, headers, bytes);
}

/// Most of a refused request body that is read and dropped before the
/// answer: a client still sending it would otherwise have its connection
/// reset and could lose the answer (a 503 while PostgreSQL is down, say).
/// Bounded, so a refused client cannot keep a worker reading for long.
const DRAIN_REFUSED: u64 = 64 << 20;

/// Reads and drops up to [`DRAIN_REFUSED`] more bytes of `stream`.
pub fn drain(stream: &wasi::io::streams::InputStream) {
    let mut read = 0u64;
    while read < DRAIN_REFUSED {
        match stream.blocking_read((DRAIN_REFUSED - read).min(1 << 20)) {
            Ok(chunk) => read += chunk.len() as u64,
            Err(_) => return,
        }
    }
}

fn respond_error(out: ResponseOutparam, e: ApiError) {
    respond_json(&mut Some(out), e.status, &e.body(), &e.headers());
}

/// Sends a response with a small, fully known body.
pub fn send(out: &mut Out, status: u16, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) {
    let Some(out) = out.take() else {
        return;
    };
    let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid header names"));
    response.set_status_code(status).expect("a valid status");
    let Ok(outgoing) = response.body() else {
        return;
    };
    out.set(response);
    if !body.is_empty()
        && let Ok(stream) = outgoing.write()
    {
        let _ = download::write_stream(&stream, &body);
    }
    let _ = spin_sdk::http::OutgoingBody::finish(outgoing, None);
}

/// Publishes a wake-up; best effort (the replicator's sweep catches up).
pub fn wake(address: &str, channel: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(channel, b"objects".as_ref()));
    if let Err(e) = result {
        eprintln!("objects: could not publish on {channel}: {e:?}");
    }
}
