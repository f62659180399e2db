//! The object API and invocations: bodies stream from files (or any
//! reader) and to files (or any writer) chunk by chunk, so an object of
//! any size costs a few buffers of memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fado_model::ObjectInfo;
use futures::StreamExt;
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::{ApiError, Client, Error, ObjectHead, ObjectUpload, Result, key_path, segment};

/// Told how a transfer goes (a progress bar, or nothing: `()`).
pub trait Progress: Send + Sync {
    /// The transfer starts; `total` bytes when known.
    fn start(&self, _total: Option<u64>) {}
    /// `n` more bytes went through.
    fn advance(&self, _n: u64) {}
}

impl Progress for () {}

/// What an invocation sends.
pub enum InvokeBody {
    Empty,
    Bytes(Vec<u8>),
    /// Streamed from this file.
    File(PathBuf),
}

pub struct InvokeRequest<'a> {
    pub method: Method,
    /// `/<function>/…`, with any query.
    pub path: &'a str,
    /// The match header and its value (`X-FaDO-Bucket: images`).
    pub bucket: Option<(&'a str, &'a str)>,
    pub headers: &'a [(String, String)],
    pub body: InvokeBody,
}

/// How an invocation went; the body went to the writer given.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    /// The FaaS deployment that served it (`X-FaDO-Upstream`); `None` when
    /// FaDO answered itself (no route, a bad header, …).
    pub upstream: Option<String>,
    pub content_type: Option<String>,
    pub bytes: u64,
    /// From sending the request to the end of the response body.
    pub elapsed: Duration,
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/api/buckets/{}/objects/{}", segment(bucket), key_path(key))
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim_matches('"').to_string())
}

fn head_from(bucket: &str, key: &str, h: &HeaderMap) -> ObjectHead {
    ObjectHead {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: header(h, "content-length")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        etag: header(h, "etag"),
        content_type: header(h, "content-type"),
        last_modified: header(h, "last-modified"),
        storage: header(h, "x-fado-storage"),
    }
}

/// A request body streamed from `reader`, counted as it goes.
fn streamed<R: AsyncRead + Send + Sync + 'static>(
    reader: R,
    progress: Arc<dyn Progress>,
) -> reqwest::Body {
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10).inspect(move |chunk| {
            if let Ok(c) = chunk {
                progress.advance(c.len() as u64);
            }
        });
    reqwest::Body::wrap_stream(stream)
}

impl Client {
    /// Object metadata under `prefix` in key order, at most `max`.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        max: Option<usize>,
    ) -> Result<Vec<ObjectInfo>> {
        let path = format!("/api/buckets/{}/objects", segment(bucket));
        let query: Vec<(&str, String)> = if prefix.is_empty() {
            Vec::new()
        } else {
            vec![("prefix", prefix.to_string())]
        };
        self.list_path(&path, &query, max).await
    }

    /// Uploads the file at `file` as `bucket`/`key`, streamed, with its
    /// length announced (the object API sizes its parts by it).
    pub async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        file: &Path,
        content_type: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<ObjectUpload> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::file(file, e))?;
        let meta = f.metadata().await.map_err(|e| Error::file(file, e))?;
        if !meta.is_file() {
            return Err(Error::file(
                file,
                std::io::Error::other("not a regular file"),
            ));
        }
        self.put_reader(bucket, key, f, Some(meta.len()), content_type, progress)
            .await
    }

    /// Uploads what `reader` yields; `len` (when known) is sent as
    /// `Content-Length`, which the API checks against what arrives.
    pub async fn put_reader<R: AsyncRead + Send + Sync + 'static>(
        &self,
        bucket: &str,
        key: &str,
        reader: R,
        len: Option<u64>,
        content_type: Option<&str>,
        progress: Arc<dyn Progress>,
    ) -> Result<ObjectUpload> {
        let url = self.url(&object_path(bucket, key));
        progress.start(len);
        let mut req = self
            .request(Method::PUT, &url)
            .body(streamed(reader, progress));
        if let Some(n) = len {
            req = req.header(CONTENT_LENGTH, n);
        }
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let resp = self.send(&url, req).await?;
        resp.json().await.map_err(|e| Error::Protocol {
            url,
            reason: format!("the upload's answer does not parse: {e}"),
        })
    }

    /// `HEAD`: the object's size, ETag, type and the copy that would serve it.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<ObjectHead> {
        let url = self.url(&object_path(bucket, key));
        let resp = self.send(&url, self.request(Method::HEAD, &url)).await?;
        Ok(head_from(bucket, key, resp.headers()))
    }

    /// Downloads `bucket`/`key` into `writer`; fails when fewer bytes
    /// arrive than announced.
    pub async fn get_to_writer<W: AsyncWrite + Unpin>(
        &self,
        bucket: &str,
        key: &str,
        writer: &mut W,
        progress: &dyn Progress,
    ) -> Result<ObjectHead> {
        let url = self.url(&object_path(bucket, key));
        let resp = self.send(&url, self.request(Method::GET, &url)).await?;
        let head = head_from(bucket, key, resp.headers());
        let announced = resp.content_length();
        progress.start(announced);
        let mut got = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::connect(&url, &e))?;
            writer
                .write_all(&chunk)
                .await
                .map_err(|e| Error::Protocol {
                    url: url.clone(),
                    reason: format!("writing the download: {e}"),
                })?;
            got += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
        }
        writer.flush().await.map_err(|e| Error::Protocol {
            url: url.clone(),
            reason: format!("writing the download: {e}"),
        })?;
        if let Some(n) = announced
            && n != got
        {
            return Err(Error::Protocol {
                url,
                reason: format!("the download ended after {got} of {n} bytes"),
            });
        }
        Ok(head)
    }

    /// Downloads `bucket`/`key` to `file`: into a temporary file beside it,
    /// renamed over `file` only once every byte arrived, so a failed
    /// download never leaves a truncated file or clobbers an old one.
    pub async fn get_to_file(
        &self,
        bucket: &str,
        key: &str,
        file: &Path,
        progress: &dyn Progress,
    ) -> Result<ObjectHead> {
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".fado-download-")
            .tempfile_in(&dir)
            .map_err(|e| Error::file(&dir, e))?;
        let std_file = tmp.reopen().map_err(|e| Error::file(tmp.path(), e))?;
        let mut out =
            tokio::io::BufWriter::with_capacity(256 << 10, tokio::fs::File::from_std(std_file));
        let head = self.get_to_writer(bucket, key, &mut out, progress).await?;
        let f = out.into_inner();
        f.sync_all().await.map_err(|e| Error::file(tmp.path(), e))?;
        drop(f);
        tmp.persist(file).map_err(|e| Error::file(file, e.error))?;
        Ok(head)
    }

    /// Deletes `bucket`/`key` (also fine when it did not exist).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let url = self.url(&object_path(bucket, key));
        self.send(&url, self.request(Method::DELETE, &url)).await?;
        Ok(())
    }

    /// Calls a function through FaDO's ingress and streams the function's
    /// answer into `out`, whatever its status. When FaDO answers an error
    /// itself (no `X-FaDO-Upstream`: unknown bucket, no deployment, …), that
    /// is an [`Error::Api`].
    pub async fn invoke<W: AsyncWrite + Unpin>(
        &self,
        req: InvokeRequest<'_>,
        out: &mut W,
    ) -> Result<Invocation> {
        let url = self.url(req.path);
        // Invocations go to the function, not the API: no admin token.
        let mut r = self.http.request(req.method, &url);
        if let Some((name, value)) = req.bucket {
            r = r.header(name, value);
        }
        for (k, v) in req.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        r = match req.body {
            InvokeBody::Empty => r,
            InvokeBody::Bytes(b) => r.body(b),
            InvokeBody::File(path) => {
                let f = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| Error::file(&path, e))?;
                let len = f.metadata().await.map_err(|e| Error::file(&path, e))?.len();
                r.header(CONTENT_LENGTH, len)
                    .body(streamed(f, Arc::new(())))
            }
        };
        let started = Instant::now();
        let resp = r.send().await.map_err(|e| Error::connect(&url, &e))?;
        let status = resp.status().as_u16();
        let upstream = header(resp.headers(), "x-fado-upstream");
        let content_type = header(resp.headers(), "content-type");
        if status >= 400 && upstream.is_none() {
            // FaDO answered itself (no route, a bad bucket header, no
            // deployment reachable): its small JSON error becomes ours.
            let body = resp.bytes().await.map_err(|e| Error::connect(&url, &e))?;
            return Err(ApiError::from_response(status, &body).into());
        }
        let mut bytes = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::connect(&url, &e))?;
            out.write_all(&chunk).await.map_err(|e| Error::Protocol {
                url: url.clone(),
                reason: format!("writing the response: {e}"),
            })?;
            bytes += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| Error::Protocol {
            url: url.clone(),
            reason: format!("writing the response: {e}"),
        })?;
        Ok(Invocation {
            status,
            upstream,
            content_type,
            bytes,
            elapsed: started.elapsed(),
        })
    }
}
