//! The storage behind the S3 API: buckets and objects in files under one
//! root (layout in `disk.rs`, file format in `object.rs`), and
//! per bucket an in-memory index of its keys, sorted as S3 sorts them, that
//! listings page through (`listing.rs`).
//!
//! What it does as S3 does, and FaDO relies on:
//!
//! - **Any key.** Every UTF-8 key of 1 to 1024 bytes is stored and read
//!   back exactly (`a/../b`, `/x`, `a` next to `a/b`, control characters):
//!   files are named by the key's hash, and the key is kept inside.
//! - **One version at a time.** A write goes to a temporary file that is
//!   renamed over the object only when it is complete and verified
//!   (`Content-MD5`, `x-amz-checksum-*`): a failed or corrupted upload
//!   leaves the old object, a crash leaves no half object, and a reader that
//!   opened the object reads one version, bytes and ETag together.
//!   `If-Match`/`If-None-Match` (and the modified-since pair) are evaluated
//!   on GET and HEAD, and on copy sources: FaDO reads objects in ranged parts
//!   with `If-Match` so an overwrite fails the read instead of mixing versions.
//! - **Listings** (V1 and V2) carry sizes and ETags, page by `max-keys` (at
//!   most 1000), continuation token, `start-after`/marker, group by
//!   delimiter, and honour `encoding-type=url`.
//! - **Buckets**: writes to a missing bucket are `NoSuchBucket`, creating an
//!   existing one is `BucketAlreadyOwnedByYou` (there is one key, so one
//!   owner), deleting a non-empty one `BucketNotEmpty`; deleting an absent
//!   object succeeds.
//! - **Multipart uploads** keep their parts under the bucket until
//!   completed (ETag: MD5 of the parts' MD5s, `-N`) or aborted.
//!
//! Writes of one bucket are committed (renamed into place and indexed) one
//! at a time; the bytes themselves are received concurrently.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::disk::{self, Layout, TempPath};
use crate::keys::{self, InvalidKey};
use crate::listing;
use crate::object::{self, Attrs, Checksums, ObjectMeta, PartMeta, UploadMeta};

/// S3's largest page of a listing (and of ListParts).
const MAX_KEYS: i32 = 1000;
/// S3's smallest part, except the last.
const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's highest part number.
const MAX_PART_NUMBER: i32 = 10_000;
/// Bytes read or written at a time.
const CHUNK: usize = 256 << 10;

pub struct DiskStore {
    layout: Arc<Layout>,
    region: String,
    buckets: RwLock<BTreeMap<String, Arc<BucketState>>>,
    /// Serialises CreateBucket and DeleteBucket.
    bucket_ops: tokio::sync::Mutex<()>,
    /// Held (locked) while the store is open: one server per directory.
    _lock: std::fs::File,
}

struct BucketState {
    name: String,
    created: SystemTime,
    /// Every object's key, in S3's order, with what listings show.
    index: RwLock<BTreeMap<String, Entry>>,
    /// Held while a write is renamed into place and indexed, and while the
    /// bucket is deleted, so the index always describes the files.
    writer: tokio::sync::Mutex<()>,
    /// Deleted: no write may land in it any more.
    gone: AtomicBool,
}

#[derive(Debug, Clone)]
struct Entry {
    size: u64,
    etag: String,
    modified: SystemTime,
}

impl Entry {
    fn of(meta: &ObjectMeta) -> Self {
        Self {
            size: meta.size,
            etag: meta.etag.clone(),
            modified: object::from_millis(meta.modified_ms),
        }
    }
}

impl DiskStore {
    /// Opens the store in `root` (which must exist): takes its lock, imports
    /// data of the old s3s-fs layout, empties `tmp/` and indexes every
    /// bucket. Blocking.
    pub fn open(root: &Path, region: String) -> Result<Self, crate::Error> {
        let root = root.canonicalize().map_err(|source| crate::Error::Root {
            path: root.to_path_buf(),
            source,
        })?;
        let storage = |message: String| crate::Error::Storage {
            path: root.clone(),
            message,
        };
        let layout =
            Layout::create(&root).map_err(|e| storage(format!("creating its directories: {e}")))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(layout.lock_file())
            .map_err(|e| storage(format!("opening its lock file: {e}")))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => storage(format!(
                "another server uses this directory (it holds {})",
                layout.lock_file().display()
            )),
            std::fs::TryLockError::Error(e) => {
                storage(format!("locking {}: {e}", layout.lock_file().display()))
            }
        })?;
        layout
            .clear_tmp()
            .map_err(|e| storage(format!("emptying {}: {e}", layout.tmp().display())))?;
        crate::legacy::import(&root, &layout)
            .map_err(|e| storage(format!("importing objects of the old layout: {e}")))?;
        let mut buckets = BTreeMap::new();
        for entry in std::fs::read_dir(layout.buckets())
            .map_err(|e| storage(format!("reading {}: {e}", layout.buckets().display())))?
        {
            let entry = entry.map_err(|e| storage(e.to_string()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !s3s::path::check_bucket_name(&name) {
                continue;
            }
            let bucket = load_bucket(&layout, &name)
                .map_err(|e| storage(format!("reading bucket {name}: {e}")))?;
            buckets.insert(name, Arc::new(bucket));
        }
        Ok(Self {
            layout: Arc::new(layout),
            region,
            buckets: RwLock::new(buckets),
            bucket_ops: tokio::sync::Mutex::new(()),
            _lock: lock,
        })
    }

    fn bucket(&self, name: &str) -> S3Result<Arc<BucketState>> {
        self.buckets
            .read()
            .expect("bucket map lock")
            .get(name)
            .filter(|b| !b.gone.load(Ordering::SeqCst))
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist: {name}"))
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Layout) -> S3Result<T> + Send + 'static,
    ) -> S3Result<T> {
        let layout = Arc::clone(&self.layout);
        tokio::task::spawn_blocking(move || f(&layout))
            .await
            .map_err(S3Error::internal_error)?
    }

    /// Opens `key`'s object for reading: the file, positioned anywhere, and
    /// its description. `NoSuchKey` when there is none.
    async fn open_object(&self, bucket: &str, key: &str) -> S3Result<(std::fs::File, ObjectMeta)> {
        self.bucket(bucket)?;
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.blocking(move |layout| {
            let path = layout.object(&bucket, &key);
            let missing = || s3_error!(NoSuchKey, "The specified key does not exist.");
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                Err(e) => return Err(internal(&format!("opening {}", path.display()), e)),
            };
            let meta = object::read_object_meta(&mut file)
                .map_err(|e| internal(&format!("reading {}", path.display()), e))?;
            // Only a SHA-256 collision could make this differ.
            if meta.key != key {
                return Err(missing());
            }
            Ok((file, meta))
        })
        .await
    }

    /// Receives a request body into a temporary file, checking `Content-MD5`
    /// and any `x-amz-checksum-*` the client sent.
    async fn receive(
        &self,
        body: Option<StreamingBlob>,
        content_md5: Option<&str>,
        checksums: ChecksumRequest,
    ) -> S3Result<Received> {
        let mut body = body.ok_or_else(|| s3_error!(IncompleteBody))?;
        let expected_md5 = content_md5.map(parse_content_md5).transpose()?;
        let temp = TempPath::new(self.layout.temp_path());
        let file = tokio::fs::File::create(temp.path())
            .await
            .map_err(|e| internal("creating a temporary file", e))?;
        let mut file = BufWriter::with_capacity(CHUNK, file);
        let mut md5 = Md5::new();
        let mut hasher = checksums.hasher();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            // A body cut off, malformed, or whose chunk signatures fail.
            let chunk = chunk.map_err(|e| {
                tracing::debug!("reading a request body: {e}");
                s3_error!(
                    IncompleteBody,
                    "The request body could not be read to its end"
                )
            })?;
            md5.update(&chunk);
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| internal("writing a temporary file", e))?;
        }
        let md5 = md5.finalize();
        if expected_md5.is_some_and(|e| e != md5) {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what was received."
            ));
        }
        let checksums = checksums.verify(hasher)?;
        Ok(Received {
            temp,
            file,
            size,
            md5: keys::hex(&md5),
            checksums,
        })
    }

    /// Renames a complete object file into place and indexes it, if the
    /// bucket still exists and the write's conditions hold.
    async fn commit(
        &self,
        bucket: &BucketState,
        temp: TempPath,
        meta: &ObjectMeta,
        conditions: &WriteConditions,
    ) -> S3Result<()> {
        let _writing = bucket.writer.lock().await;
        if bucket.gone.load(Ordering::SeqCst) {
            return Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {}",
                bucket.name
            ));
        }
        {
            let index = bucket.index.read().expect("index lock");
            conditions.check(index.get(&meta.key))?;
        }
        let target = self.layout.object(&bucket.name, &meta.key);
        let from = temp.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            disk::create_parent(&target)?;
            std::fs::rename(&from, &target)
        })
        .await
        .map_err(S3Error::internal_error)?
        .map_err(|e| internal("moving an object into place", e))?;
        temp.keep();
        bucket
            .index
            .write()
            .expect("index lock")
            .insert(meta.key.clone(), Entry::of(meta));
        Ok(())
    }

    /// Removes `key`'s object; an absent one is not an error.
    async fn remove_object(&self, bucket: &BucketState, key: &str) -> S3Result<()> {
        let _writing = bucket.writer.lock().await;
        if bucket.gone.load(Ordering::SeqCst) {
            return Err(s3_error!(NoSuchBucket));
        }
        let path = self.layout.object(&bucket.name, key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(internal(&format!("removing {}", path.display()), e)),
        }
        bucket.index.write().expect("index lock").remove(key);
        Ok(())
    }

    /// The record of upload `id` of `key`; `NoSuchUpload` unless it exists
    /// for that key.
    async fn upload(&self, bucket: &str, key: &str, id: &str) -> S3Result<UploadMeta> {
        self.bucket(bucket)?;
        let no_such = || s3_error!(NoSuchUpload, "The specified upload does not exist.");
        if !disk::valid_upload_id(id) {
            return Err(no_such());
        }
        let path = self.layout.upload(bucket, id).join("upload.json");
        let record = match tokio::fs::read(&path).await {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_such()),
            Err(e) => return Err(internal(&format!("reading {}", path.display()), e)),
        };
        let upload: UploadMeta = serde_json::from_slice(&record)
            .map_err(|e| internal(&format!("reading {}", path.display()), e))?;
        if upload.key != key {
            return Err(no_such());
        }
        Ok(upload)
    }

    /// Moves a finished part file into its upload.
    async fn place_part(&self, temp: TempPath, bucket: &str, id: &str, n: i32) -> S3Result<()> {
        let target = self.layout.part(bucket, id, n);
        match tokio::fs::rename(temp.path(), &target).await {
            Ok(()) => {
                temp.keep();
                Ok(())
            }
            // Aborted, completed or its bucket deleted meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist."
            )),
            Err(e) => Err(internal("moving a part into place", e)),
        }
    }

    /// The parts of upload `id`, by number.
    async fn parts(&self, bucket: &str, id: &str) -> S3Result<Vec<PartMeta>> {
        let (bucket, id) = (bucket.to_string(), id.to_string());
        self.blocking(move |layout| {
            let dir = layout.upload(&bucket, &id);
            let mut parts = Vec::new();
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Aborted or completed meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(s3_error!(
                        NoSuchUpload,
                        "The specified upload does not exist."
                    ));
                }
                Err(e) => return Err(internal("listing parts", e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| internal("listing parts", e))?;
                if !entry.file_name().to_string_lossy().starts_with("part-") {
                    continue;
                }
                let mut file = match std::fs::File::open(entry.path()) {
                    Ok(f) => f,
                    // Replaced by a new upload of the same part meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(internal("opening a part", e)),
                };
                let part = object::read_part_meta(&mut file)
                    .map_err(|e| internal(&format!("reading {}", entry.path().display()), e))?;
                parts.push(part);
            }
            parts.sort_by_key(|p| p.part_number);
            Ok(parts)
        })
        .await
    }

    /// The objects, common prefixes and truncation of one listing page.
    fn page(&self, bucket: &str, q: &ListRequest) -> S3Result<ListedPage> {
        let bucket = self.bucket(bucket)?;
        let index = bucket.index.read().expect("index lock");
        let page = listing::list(
            &index,
            &listing::Query {
                prefix: &q.prefix,
                delimiter: q.delimiter.as_deref(),
                after: q.after.as_deref(),
                max: usize::try_from(q.max_keys).unwrap_or(0),
            },
        );
        let mut out = ListedPage {
            truncated: page.truncated,
            next: page.entries.last().map(|e| e.name().to_string()),
            ..ListedPage::default()
        };
        for e in &page.entries {
            match e {
                listing::Entry::Object(key, entry) => out.objects.push(Object {
                    key: Some(q.encode(key)),
                    size: Some(i64::try_from(entry.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(entry.etag.clone())),
                    last_modified: Some(Timestamp::from(entry.modified)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }),
                listing::Entry::CommonPrefix(p) => out.prefixes.push(CommonPrefix {
                    prefix: Some(q.encode(p)),
                }),
            }
        }
        Ok(out)
    }
}

/// Reads a bucket's record and indexes its objects.
fn load_bucket(layout: &Layout, name: &str) -> io::Result<BucketState> {
    let dir = layout.bucket(name);
    let created = match std::fs::read(dir.join("bucket.json")) {
        Ok(record) => serde_json::from_slice::<disk::BucketMeta>(&record)
            .map(|m| object::from_millis(m.created_ms))
            .map_err(io::Error::other)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::metadata(&dir)?.modified()?,
        Err(e) => return Err(e),
    };
    for sub in ["objects", "uploads"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let mut index = BTreeMap::new();
    for fan in std::fs::read_dir(dir.join("objects"))? {
        let fan = fan?;
        if !fan.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(fan.path())? {
            let file = file?;
            let path = file.path();
            let meta =
                std::fs::File::open(&path).and_then(|mut f| object::read_object_meta(&mut f));
            match meta {
                Ok(meta) if file.file_name().to_str() == Some(&keys::file_name(&meta.key)) => {
                    index.insert(meta.key.clone(), Entry::of(&meta));
                }
                Ok(meta) => tracing::warn!(
                    "{} holds key {:?}, which belongs under another name; ignored",
                    path.display(),
                    meta.key
                ),
                Err(e) => {
                    tracing::warn!("{} is not a readable object: {e}; ignored", path.display())
                }
            }
        }
    }
    Ok(BucketState {
        name: name.to_string(),
        created,
        index: RwLock::new(index),
        writer: tokio::sync::Mutex::new(()),
        gone: AtomicBool::new(false),
    })
}

/// An S3 InternalError whose detail goes to the log, not to the client.
fn internal(what: &str, e: impl std::fmt::Display) -> S3Error {
    tracing::error!("S3 storage: {what}: {e}");
    s3_error!(
        InternalError,
        "{what} failed; the server log has the detail"
    )
}

/// A key S3 itself would refuse.
fn writable_key(key: &str) -> S3Result<()> {
    keys::check(key).map_err(|e| match e {
        InvalidKey::TooLong { .. } => s3_error!(KeyTooLongError, "Your key is too long: {e}"),
        InvalidKey::Empty => s3_error!(InvalidArgument, "{e}"),
    })
}

/// A body received into `tmp/`, not yet described or closed.
struct Received {
    temp: TempPath,
    file: BufWriter<tokio::fs::File>,
    size: u64,
    md5: String,
    checksums: Checksums,
}

impl Received {
    /// Appends the description and closes the file.
    async fn finish(mut self, trailer: &[u8]) -> S3Result<TempPath> {
        self.file
            .write_all(trailer)
            .await
            .map_err(|e| internal("writing a temporary file", e))?;
        // tokio writes in the background: flushing waits for the bytes.
        self.file
            .flush()
            .await
            .map_err(|e| internal("writing a temporary file", e))?;
        Ok(self.temp)
    }
}

/// The checksums a request asked to be verified: named by
/// `x-amz-sdk-checksum-algorithm`, given as headers, or announced in
/// `x-amz-trailer` and sent after the body.
#[derive(Default)]
struct ChecksumRequest {
    algorithm: Option<String>,
    announced: Vec<String>,
    given: Checksums,
    trailers: Option<s3s::TrailingHeaders>,
}

const CHECKSUM_HEADERS: [&str; 5] = [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

fn checksum_slot<'a>(c: &'a mut Checksums, header: &str) -> Option<&'a mut Option<String>> {
    match header {
        "x-amz-checksum-crc32" => Some(&mut c.crc32),
        "x-amz-checksum-crc32c" => Some(&mut c.crc32c),
        "x-amz-checksum-crc64nvme" => Some(&mut c.crc64nvme),
        "x-amz-checksum-sha1" => Some(&mut c.sha1),
        "x-amz-checksum-sha256" => Some(&mut c.sha256),
        _ => None,
    }
}

impl ChecksumRequest {
    fn new<T>(req: &S3Request<T>, algorithm: Option<&ChecksumAlgorithm>, given: Checksums) -> Self {
        let announced = req
            .headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        Self {
            algorithm: algorithm.map(|a| a.as_str().to_ascii_uppercase()),
            announced,
            given,
            trailers: req.trailing_headers.clone(),
        }
    }

    fn wants(&self, header: &str, given: &Option<String>) -> bool {
        let algorithm = header
            .trim_start_matches("x-amz-checksum-")
            .to_ascii_uppercase();
        given.is_some()
            || self.announced.iter().any(|a| a == header)
            || self.algorithm.as_deref() == Some(algorithm.as_str())
    }

    fn hasher(&self) -> ChecksumHasher {
        let g = &self.given;
        ChecksumHasher {
            crc32: self
                .wants(CHECKSUM_HEADERS[0], &g.crc32)
                .then(Default::default),
            crc32c: self
                .wants(CHECKSUM_HEADERS[1], &g.crc32c)
                .then(Default::default),
            crc64nvme: self
                .wants(CHECKSUM_HEADERS[2], &g.crc64nvme)
                .then(Default::default),
            sha1: self
                .wants(CHECKSUM_HEADERS[3], &g.sha1)
                .then(Default::default),
            sha256: self
                .wants(CHECKSUM_HEADERS[4], &g.sha256)
                .then(Default::default),
        }
    }

    /// Compares what was computed with what the client sent (in headers or
    /// trailers); returns what was computed.
    fn verify(self, hasher: ChecksumHasher) -> S3Result<Checksums> {
        let mut expected = self.given;
        if let Some(trailers) = self.trailers.and_then(|t| t.take()) {
            for header in CHECKSUM_HEADERS {
                if let Some(v) = trailers.get(header).and_then(|v| v.to_str().ok())
                    && let Some(slot) = checksum_slot(&mut expected, header)
                {
                    *slot = Some(v.to_string());
                }
            }
        }
        let got = hasher.finalize();
        let got = Checksums {
            crc32: got.checksum_crc32,
            crc32c: got.checksum_crc32c,
            crc64nvme: got.checksum_crc64nvme,
            sha1: got.checksum_sha1,
            sha256: got.checksum_sha256,
        };
        let pairs = [
            ("CRC32", &expected.crc32, &got.crc32),
            ("CRC32C", &expected.crc32c, &got.crc32c),
            ("CRC64NVME", &expected.crc64nvme, &got.crc64nvme),
            ("SHA1", &expected.sha1, &got.sha1),
            ("SHA256", &expected.sha256, &got.sha256),
        ];
        for (name, want, have) in pairs {
            if let (Some(want), Some(have)) = (want, have)
                && want != have
            {
                return Err(s3_error!(
                    BadDigest,
                    "The {name} you specified did not match the calculated checksum."
                ));
            }
        }
        Ok(got)
    }
}

/// The expected MD5 of a body from its `Content-MD5` header.
fn parse_content_md5(value: &str) -> S3Result<[u8; 16]> {
    base64_simd::STANDARD
        .decode_to_vec(value)
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))
}

/// `If-Match` / `If-None-Match` of a write (PutObject, CompleteMultipartUpload).
#[derive(Default)]
struct WriteConditions {
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
}

impl WriteConditions {
    fn check(&self, current: Option<&Entry>) -> S3Result<()> {
        if let Some(c) = &self.if_match {
            let ok = current.is_some_and(|e| etag_matches(c, &e.etag));
            if !ok {
                return Err(s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold (If-Match)"
                ));
            }
        }
        if let Some(c) = &self.if_none_match
            && current.is_some_and(|e| etag_matches(c, &e.etag))
        {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold (If-None-Match)"
            ));
        }
        Ok(())
    }
}

fn etag_matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// The conditions of a read (GET, HEAD) or of a copy source.
struct ReadConditions<'a> {
    if_match: Option<&'a ETagCondition>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    if_unmodified_since: Option<&'a Timestamp>,
    /// Copy sources answer 412 where reads answer 304.
    copy_source: bool,
}

impl ReadConditions<'_> {
    /// RFC 9110's order: a matching `If-Match` overrides
    /// `If-Unmodified-Since`, a present `If-None-Match` `If-Modified-Since`.
    fn check(&self, meta: &ObjectMeta) -> S3Result<()> {
        // HTTP dates have whole seconds.
        let modified = Timestamp::from(object::from_millis(meta.modified_ms / 1000 * 1000));
        let failed = |which: &str| {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold ({which}; the object's ETag is \"{}\")",
                meta.etag
            )
        };
        match (self.if_match, self.if_unmodified_since) {
            (Some(c), _) if !etag_matches(c, &meta.etag) => return Err(failed("If-Match")),
            (None, Some(since)) if modified > *since => {
                return Err(failed("If-Unmodified-Since"));
            }
            _ => {}
        }
        let not_modified = match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => etag_matches(c, &meta.etag),
            (None, Some(since)) => modified <= *since,
            (None, None) => false,
        };
        if not_modified {
            return Err(if self.copy_source {
                failed("If-None-Match or If-Modified-Since")
            } else {
                s3_error!(NotModified)
            });
        }
        Ok(())
    }
}

/// The attributes an object is written with, from a request that has the
/// usual fields (PutObject, CopyObject, CreateMultipartUpload).
macro_rules! attrs_of {
    ($input:expr) => {
        Attrs {
            content_type: $input.content_type,
            content_encoding: $input.content_encoding,
            content_disposition: $input.content_disposition,
            content_language: $input.content_language,
            cache_control: $input.cache_control,
            expires: $input.expires.and_then(|t| {
                let mut buf = Vec::new();
                t.format(TimestampFormat::DateTime, &mut buf).ok()?;
                String::from_utf8(buf).ok()
            }),
            website_redirect_location: $input.website_redirect_location,
            metadata: $input.metadata.unwrap_or_default().into_iter().collect(),
        }
    };
}

fn expires_of(attrs: &Attrs) -> Option<Timestamp> {
    attrs
        .expires
        .as_deref()
        .and_then(|s| Timestamp::parse(TimestampFormat::DateTime, s).ok())
}

fn metadata_of(attrs: &Attrs) -> Option<Metadata> {
    (!attrs.metadata.is_empty()).then(|| attrs.metadata.clone().into_iter().collect())
}

fn content_type_of(attrs: &Attrs) -> Option<ContentType> {
    attrs.content_type.clone()
}

fn now_ms() -> u64 {
    object::millis(SystemTime::now())
}

/// A `Copy-Source-Range` (`bytes=first-last`) within an object of `size` bytes.
fn copy_range(header: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(header) = header else {
        return Ok((0, size));
    };
    let invalid = || {
        s3_error!(
            InvalidRange,
            "The requested range {header:?} is not satisfiable"
        )
    };
    let (first, last) = header
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The x-amz-copy-source-range {header:?} is not bytes=first-last"
            )
        })?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(invalid());
    }
    Ok((first, last - first + 1))
}

/// Copies `len` bytes of `from` (from its current position) to `to`,
/// returning their MD5.
fn copy_with_md5(from: &mut impl Read, to: &mut impl Write, len: u64) -> io::Result<[u8; 16]> {
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the source ended early",
            ));
        }
        md5.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(md5.finalize())
}

/// A body served from `len` bytes of a file, from its current position.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
}

impl Stream for FileBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut buf = vec![0u8; want];
        let mut read = tokio::io::ReadBuf::new(&mut buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.file), cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    self.left = 0;
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the object file ended early",
                    ))));
                }
                self.left -= n as u64;
                buf.truncate(n);
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
        }
    }
}

/// Percent-encodes a key for `encoding-type=url` listings (slashes stay, as S3 does).
fn url_encode(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// A continuation token: the last entry of the page, opaque to clients
/// (and safe in XML whatever the key holds).
fn token_of(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last)
}

fn entry_of_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

struct ListRequest {
    prefix: String,
    delimiter: Option<String>,
    after: Option<String>,
    max_keys: i32,
    url: bool,
}

impl ListRequest {
    fn encode(&self, s: &str) -> String {
        if self.url {
            url_encode(s)
        } else {
            s.to_string()
        }
    }

    fn encode_opt(&self, s: Option<String>) -> Option<String> {
        s.map(|s| self.encode(&s))
    }
}

#[derive(Default)]
struct ListedPage {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    /// The page's last key or common prefix, unencoded.
    next: Option<String>,
}

impl ListedPage {
    fn count(&self) -> i32 {
        i32::try_from(self.objects.len() + self.prefixes.len()).unwrap_or(i32::MAX)
    }
}

fn is_url(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn max_keys(requested: Option<i32>) -> i32 {
    requested.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS)
}

fn some_if_any<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Copies exactly `n` bytes of `from` to `to`; a shorter `from` (`what`)
/// is an error, never a short object.
fn copy_exactly(from: &mut impl Read, n: u64, to: &mut impl Write, what: &str) -> io::Result<()> {
    if io::copy(&mut from.take(n), to)? != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what} ended early"),
        ));
    }
    Ok(())
}

/// The checksums a request states, from either input that carries them
/// (PutObject's and UploadPart's share the five fields, not a trait).
macro_rules! stated_checksums {
    ($req:expr) => {
        ChecksumRequest::new(
            &$req,
            $req.input.checksum_algorithm.as_ref(),
            Checksums {
                crc32: $req.input.checksum_crc32.clone(),
                crc32c: $req.input.checksum_crc32c.clone(),
                crc64nvme: $req.input.checksum_crc64nvme.clone(),
                sha1: $req.input.checksum_sha1.clone(),
                sha256: $req.input.checksum_sha256.clone(),
            },
        )
    };
}

#[async_trait::async_trait]
impl S3 for DiskStore {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let name = req.input.bucket;
        let _ops = self.bucket_ops.lock().await;
        if self.bucket(&name).is_ok() {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            ));
        }
        let created = SystemTime::now();
        let n = name.clone();
        self.blocking(move |layout| {
            layout
                .create_bucket(&n, created)
                .map_err(|e| internal(&format!("creating bucket {n}"), e))
        })
        .await?;
        self.buckets.write().expect("bucket map lock").insert(
            name.clone(),
            Arc::new(BucketState {
                name: name.clone(),
                created,
                index: RwLock::new(BTreeMap::new()),
                writer: tokio::sync::Mutex::new(()),
                gone: AtomicBool::new(false),
            }),
        );
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let name = req.input.bucket;
        let _ops = self.bucket_ops.lock().await;
        let bucket = self.bucket(&name)?;
        {
            let _writing = bucket.writer.lock().await;
            if !bucket.index.read().expect("index lock").is_empty() {
                return Err(s3_error!(
                    BucketNotEmpty,
                    "The bucket you tried to delete is not empty"
                ));
            }
            bucket.gone.store(true, Ordering::SeqCst);
            let dir = self.layout.bucket(&name);
            let grave = self.layout.temp_path();
            if let Err(e) = tokio::fs::rename(&dir, &grave).await {
                bucket.gone.store(false, Ordering::SeqCst);
                return Err(internal(&format!("deleting bucket {name}"), e));
            }
            self.buckets.write().expect("bucket map lock").remove(&name);
            // Uploads in progress go with it; what is left in tmp/ after a
            // crash is removed at the next start.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = std::fs::remove_dir_all(&grave) {
                    tracing::warn!("removing {}: {e}", grave.display());
                }
            });
        }
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .buckets
            .read()
            .expect("bucket map lock")
            .values()
            .filter(|b| !b.gone.load(Ordering::SeqCst))
            .map(|b| Bucket {
                name: Some(b.name.clone()),
                creation_date: Some(Timestamp::from(b.created)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.bucket(&req.input.bucket)?;
        // S3 names no location for us-east-1.
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        // A continuation token takes over from start-after.
        let after = match input.continuation_token.as_deref() {
            Some(token) => Some(entry_of_token(token)?),
            None => input.start_after.clone(),
        };
        let q = ListRequest {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after,
            max_keys: max_keys(input.max_keys),
            url: is_url(input.encoding_type.as_ref()),
        };
        let page = self.page(&input.bucket, &q)?;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            key_count: Some(page.count()),
            max_keys: Some(q.max_keys),
            is_truncated: Some(page.truncated),
            next_continuation_token: page
                .next
                .as_deref()
                .filter(|_| page.truncated)
                .map(token_of),
            continuation_token: input.continuation_token,
            contents: some_if_any(page.objects),
            common_prefixes: some_if_any(page.prefixes),
            prefix: q.encode_opt(input.prefix),
            delimiter: q.encode_opt(input.delimiter),
            start_after: q.encode_opt(input.start_after),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let q = ListRequest {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone(),
            after: input.marker.clone(),
            max_keys: max_keys(input.max_keys),
            url: is_url(input.encoding_type.as_ref()),
        };
        let page = self.page(&input.bucket, &q)?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            max_keys: Some(q.max_keys),
            is_truncated: Some(page.truncated),
            // V1 clients go on from the marker: the page's last entry.
            next_marker: q.encode_opt(page.next.filter(|_| page.truncated)),
            contents: some_if_any(page.objects),
            common_prefixes: some_if_any(page.prefixes),
            marker: q.encode_opt(input.marker),
            prefix: q.encode_opt(input.prefix),
            delimiter: q.encode_opt(input.delimiter),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let (_file, meta) = self.open_object(&input.bucket, &input.key).await?;
        ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            copy_source: false,
        }
        .check(&meta)?;
        let full = input
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let c = if full {
            meta.checksums.clone()
        } else {
            Checksums::default()
        };
        let a = &meta.attrs;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            e_tag: Some(ETag::Strong(meta.etag.clone())),
            last_modified: Some(Timestamp::from(object::from_millis(meta.modified_ms))),
            accept_ranges: Some("bytes".to_string()),
            content_type: content_type_of(a),
            content_encoding: a.content_encoding.clone(),
            content_disposition: a.content_disposition.clone(),
            content_language: a.content_language.clone(),
            cache_control: a.cache_control.clone(),
            expires: expires_of(a),
            website_redirect_location: a.website_redirect_location.clone(),
            metadata: metadata_of(a),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        // The file opened is one version, whatever is written meanwhile: its
        // description (ETag, conditions) and its bytes agree.
        let (mut file, meta) = self.open_object(&input.bucket, &input.key).await?;
        ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            copy_source: false,
        }
        .check(&meta)?;
        let (range, content_range) = match input.range {
            None => (0..meta.size, None),
            Some(r) => {
                let range = r.check(meta.size).map_err(|_| {
                    s3_error!(InvalidRange, "The requested range is not satisfiable")
                })?;
                let content_range =
                    format!("bytes {}-{}/{}", range.start, range.end - 1, meta.size);
                (range, Some(content_range))
            }
        };
        file.seek(SeekFrom::Start(range.start))
            .map_err(|e| internal("seeking in an object", e))?;
        let len = range.end - range.start;
        let whole = len == meta.size;
        let checksums_wanted = input
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        // S3 gives whole-object checksums only with whole objects.
        let c = if checksums_wanted && whole {
            meta.checksums.clone()
        } else {
            Checksums::default()
        };
        let a = &meta.attrs;
        let body = FileBody {
            file: tokio::fs::File::from_std(file),
            left: len,
        };
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            accept_ranges: Some("bytes".to_string()),
            e_tag: Some(ETag::Strong(meta.etag.clone())),
            last_modified: Some(Timestamp::from(object::from_millis(meta.modified_ms))),
            content_type: input.response_content_type.or_else(|| content_type_of(a)),
            content_encoding: input
                .response_content_encoding
                .or_else(|| a.content_encoding.clone()),
            content_disposition: input
                .response_content_disposition
                .or_else(|| a.content_disposition.clone()),
            content_language: input
                .response_content_language
                .or_else(|| a.content_language.clone()),
            cache_control: input
                .response_cache_control
                .or_else(|| a.cache_control.clone()),
            expires: input.response_expires.or_else(|| expires_of(a)),
            website_redirect_location: a.website_redirect_location.clone(),
            metadata: metadata_of(a),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let checksums = stated_checksums!(req);
        let input = req.input;
        writable_key(&input.key)?;
        let bucket = self.bucket(&input.bucket)?;
        let received = self
            .receive(input.body, input.content_md5.as_deref(), checksums)
            .await?;
        let meta = ObjectMeta {
            key: input.key,
            size: received.size,
            etag: received.md5.clone(),
            modified_ms: now_ms(),
            attrs: attrs_of!(input),
            checksums: received.checksums.clone(),
        };
        let trailer = object::trailer(&meta).map_err(|e| internal("describing an object", e))?;
        let temp = received.finish(&trailer).await?;
        let conditions = WriteConditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
        };
        self.commit(&bucket, temp, &meta, &conditions).await?;
        let c = meta.checksums;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(meta.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket copy sources are supported"
            ));
        };
        let (mut source, src) = self.open_object(src_bucket, src_key).await?;
        ReadConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
            copy_source: true,
        }
        .check(&src)?;
        writable_key(&input.key)?;
        let bucket = self.bucket(&input.bucket)?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let attrs = if replace {
            attrs_of!(input)
        } else {
            src.attrs.clone()
        };
        // The same bytes: the same ETag and checksums.
        let meta = ObjectMeta {
            key: input.key,
            size: src.size,
            etag: src.etag.clone(),
            modified_ms: now_ms(),
            attrs,
            checksums: src.checksums.clone(),
        };
        let described = meta.clone();
        let temp = self
            .blocking(move |layout| {
                let temp = TempPath::new(layout.temp_path());
                let mut write = || -> io::Result<()> {
                    let mut out = io::BufWriter::new(std::fs::File::create(temp.path())?);
                    source.seek(SeekFrom::Start(0))?;
                    copy_exactly(&mut source, described.size, &mut out, "the source")?;
                    out.write_all(&object::trailer(&described)?)?;
                    out.into_inner().map_err(io::IntoInnerError::into_error)?;
                    Ok(())
                };
                write().map_err(|e| internal("copying an object", e))?;
                Ok(temp)
            })
            .await?;
        self.commit(&bucket, temp, &meta, &WriteConditions::default())
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(meta.etag)),
                last_modified: Some(Timestamp::from(object::from_millis(meta.modified_ms))),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let bucket = self.bucket(&req.input.bucket)?;
        self.remove_object(&bucket, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let DeleteObjectsInput { bucket, delete, .. } = req.input;
        let bucket = self.bucket(&bucket)?;
        let quiet = delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for object in delete.objects {
            match self.remove_object(&bucket, &object.key).await {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    version_id: object.version_id,
                    ..Default::default()
                }),
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(object.key),
                    message: e.message().map(str::to_string),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: some_if_any(deleted),
            errors: some_if_any(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        writable_key(&input.key)?;
        self.bucket(&input.bucket)?;
        let upload = UploadMeta {
            key: input.key.clone(),
            initiated_ms: now_ms(),
            attrs: attrs_of!(input),
        };
        let bucket = input.bucket.clone();
        let id = self
            .blocking(move |layout| {
                let id = disk::new_upload_id(layout);
                let staging = TempPath::new(layout.temp_path());
                let create = || -> io::Result<()> {
                    std::fs::create_dir(staging.path())?;
                    let record = serde_json::to_vec(&upload).map_err(io::Error::other)?;
                    std::fs::write(staging.path().join("upload.json"), record)?;
                    std::fs::rename(staging.path(), layout.upload(&bucket, &id))
                };
                match create() {
                    Ok(()) => {
                        staging.keep();
                        Ok(id)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(s3_error!(
                        NoSuchBucket,
                        "The specified bucket does not exist: {bucket}"
                    )),
                    Err(e) => Err(internal("creating an upload", e)),
                }
            })
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let checksums = stated_checksums!(req);
        let input = req.input;
        let n = input.part_number;
        if !(1..=MAX_PART_NUMBER).contains(&n) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let received = self
            .receive(input.body, input.content_md5.as_deref(), checksums)
            .await?;
        let part = PartMeta {
            part_number: n,
            size: received.size,
            etag: received.md5.clone(),
            modified_ms: now_ms(),
        };
        let trailer = object::trailer(&part).map_err(|e| internal("describing a part", e))?;
        let c = received.checksums.clone();
        let temp = received.finish(&trailer).await?;
        self.place_part(temp, &input.bucket, &input.upload_id, n)
            .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: c.crc32,
            checksum_crc32c: c.crc32c,
            checksum_crc64nvme: c.crc64nvme,
            checksum_sha1: c.sha1,
            checksum_sha256: c.sha256,
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let n = input.part_number;
        if !(1..=MAX_PART_NUMBER).contains(&n) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket copy sources are supported"
            ));
        };
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let (mut source, src) = self.open_object(src_bucket, src_key).await?;
        ReadConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
            copy_source: true,
        }
        .check(&src)?;
        let (start, len) = copy_range(input.copy_source_range.as_deref(), src.size)?;
        let (temp, part) = self
            .blocking(move |layout| {
                let temp = TempPath::new(layout.temp_path());
                let mut write = || -> io::Result<PartMeta> {
                    let mut out = io::BufWriter::new(std::fs::File::create(temp.path())?);
                    source.seek(SeekFrom::Start(start))?;
                    let md5 = copy_with_md5(&mut source, &mut out, len)?;
                    let part = PartMeta {
                        part_number: n,
                        size: len,
                        etag: keys::hex(&md5),
                        modified_ms: now_ms(),
                    };
                    out.write_all(&object::trailer(&part)?)?;
                    out.into_inner().map_err(io::IntoInnerError::into_error)?;
                    Ok(part)
                };
                let part = write().map_err(|e| internal("copying a part", e))?;
                Ok((temp, part))
            })
            .await?;
        self.place_part(temp, &input.bucket, &input.upload_id, n)
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(Timestamp::from(object::from_millis(part.modified_ms))),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let max = input.max_parts.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS);
        let marker = input.part_number_marker.unwrap_or(0);
        let after: Vec<PartMeta> = self
            .parts(&input.bucket, &input.upload_id)
            .await?
            .into_iter()
            .filter(|p| p.part_number > marker)
            .collect();
        let shown = &after[..after.len().min(usize::try_from(max).unwrap_or(0))];
        let truncated = shown.len() < after.len();
        let parts = shown
            .iter()
            .map(|p| Part {
                part_number: Some(p.part_number),
                size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                e_tag: Some(ETag::Strong(p.etag.clone())),
                last_modified: Some(Timestamp::from(object::from_millis(p.modified_ms))),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: shown.last().map(|p| p.part_number).filter(|_| truncated),
            is_truncated: Some(truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let bucket = self.bucket(&input.bucket)?;
        let upload = self
            .upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let requested = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "You must specify at least one part"
            ));
        }
        let stored: BTreeMap<i32, PartMeta> = self
            .parts(&input.bucket, &input.upload_id)
            .await?
            .into_iter()
            .map(|p| (p.part_number, p))
            .collect();
        let mut chosen = Vec::with_capacity(requested.len());
        let mut previous = 0;
        for (i, part) in requested.iter().enumerate() {
            let n = part
                .part_number
                .ok_or_else(|| s3_error!(InvalidPart, "A part has no part number"))?;
            if n <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. The parts list must be specified in order by part number."
                ));
            }
            previous = n;
            let stored = stored
                .get(&n)
                .filter(|s| part.e_tag.as_ref().is_none_or(|e| e.value() == s.etag));
            let Some(stored) = stored else {
                return Err(s3_error!(
                    InvalidPart,
                    "Part {n} was not uploaded or its ETag does not match"
                ));
            };
            if i + 1 < requested.len() && stored.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Part {n} is smaller than the minimum allowed size of 5 MiB"
                ));
            }
            chosen.push(stored.clone());
        }
        let mut md5s = Md5::new();
        for p in &chosen {
            let digest =
                keys::unhex(&p.etag).ok_or_else(|| internal("reading a part's ETag", &p.etag))?;
            md5s.update(&digest);
        }
        let meta = ObjectMeta {
            key: input.key.clone(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: format!("{}-{}", keys::hex(&md5s.finalize()), chosen.len()),
            modified_ms: now_ms(),
            attrs: upload.attrs,
            checksums: Checksums::default(),
        };
        let described = meta.clone();
        let (b, id) = (input.bucket.clone(), input.upload_id.clone());
        let temp = self
            .blocking(move |layout| {
                let temp = TempPath::new(layout.temp_path());
                let write = || -> io::Result<()> {
                    let mut out = io::BufWriter::new(std::fs::File::create(temp.path())?);
                    for p in &chosen {
                        let mut part = std::fs::File::open(layout.part(&b, &id, p.part_number))?;
                        copy_exactly(&mut part, p.size, &mut out, "a part")?;
                    }
                    out.write_all(&object::trailer(&described)?)?;
                    out.into_inner().map_err(io::IntoInnerError::into_error)?;
                    Ok(())
                };
                match write() {
                    Ok(()) => Ok(temp),
                    // Replaced or aborted while assembling.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(s3_error!(
                        InvalidPart,
                        "A part went away while the upload was completed"
                    )),
                    Err(e) => Err(internal("assembling an upload", e)),
                }
            })
            .await?;
        let conditions = WriteConditions {
            if_match: input.if_match,
            if_none_match: input.if_none_match,
        };
        self.commit(&bucket, temp, &meta, &conditions).await?;
        let dir = self.layout.upload(&input.bucket, &input.upload_id);
        self.blocking(move |layout| {
            if let Err(e) = layout.remove_dir(&dir) {
                tracing::warn!("removing the completed upload {}: {e}", dir.display());
            }
            Ok(())
        })
        .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(meta.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let dir = self.layout.upload(&input.bucket, &input.upload_id);
        self.blocking(move |layout| match layout.remove_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(s3_error!(
                NoSuchUpload,
                "The specified upload does not exist."
            )),
            Err(e) => Err(internal("aborting an upload", e)),
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/ü+%.txt"), "a%20b/%C3%BC%2B%25.txt");
        assert_eq!(url_encode("plain-key_1.~"), "plain-key_1.~");
        assert_eq!(url_encode("\u{1}"), "%01");
    }

    fn meta(etag: &str, modified_ms: u64) -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            etag: etag.into(),
            modified_ms,
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn read_conditions() {
        let tag = |s: &str| ETagCondition::ETag(ETag::Strong(s.to_string()));
        let m = meta("abc", 10_500);
        let read = |if_match: Option<&ETagCondition>, if_none_match: Option<&ETagCondition>| {
            ReadConditions {
                if_match,
                if_none_match,
                if_modified_since: None,
                if_unmodified_since: None,
                copy_source: false,
            }
            .check(&m)
        };
        assert!(read(Some(&tag("abc")), None).is_ok());
        assert!(read(Some(&ETagCondition::Any), None).is_ok());
        let e = read(Some(&tag("old")), None).unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::PreconditionFailed);
        let e = read(None, Some(&tag("abc"))).unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::NotModified);
        assert!(read(None, Some(&tag("old"))).is_ok());
        // A copy source answers 412 where a read answers 304.
        let e = ReadConditions {
            if_match: None,
            if_none_match: Some(&tag("abc")),
            if_modified_since: None,
            if_unmodified_since: None,
            copy_source: true,
        }
        .check(&m)
        .unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::PreconditionFailed);
    }

    #[test]
    fn modified_since_compares_whole_seconds() {
        let at = |s: u64| Timestamp::from(object::from_millis(s * 1000));
        let m = meta("abc", 10_500); // 10.5 s, which HTTP sees as 10 s
        let since = |modified: Option<&Timestamp>, unmodified: Option<&Timestamp>| {
            ReadConditions {
                if_match: None,
                if_none_match: None,
                if_modified_since: modified,
                if_unmodified_since: unmodified,
                copy_source: false,
            }
            .check(&m)
        };
        assert!(since(Some(&at(9)), None).is_ok());
        assert_eq!(
            since(Some(&at(10)), None).unwrap_err().code(),
            &s3s::S3ErrorCode::NotModified
        );
        assert!(since(None, Some(&at(10))).is_ok());
        assert_eq!(
            since(None, Some(&at(9))).unwrap_err().code(),
            &s3s::S3ErrorCode::PreconditionFailed
        );
    }

    #[test]
    fn write_conditions() {
        let tag = |s: &str| ETagCondition::ETag(ETag::Strong(s.to_string()));
        let entry = Entry {
            size: 1,
            etag: "abc".into(),
            modified: SystemTime::now(),
        };
        let only_new = WriteConditions {
            if_match: None,
            if_none_match: Some(ETagCondition::Any),
        };
        assert!(only_new.check(None).is_ok());
        assert!(only_new.check(Some(&entry)).is_err());
        let swap = WriteConditions {
            if_match: Some(tag("abc")),
            if_none_match: None,
        };
        assert!(swap.check(Some(&entry)).is_ok());
        assert!(swap.check(None).is_err());
        let stale = WriteConditions {
            if_match: Some(tag("old")),
            if_none_match: None,
        };
        assert!(stale.check(Some(&entry)).is_err());
    }

    #[test]
    fn content_md5_must_be_a_base64_md5() {
        assert_eq!(
            keys::hex(&parse_content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(parse_content_md5("not base64!").is_err());
        assert!(parse_content_md5("AAAA").is_err());
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), (0, 10));
        for bad in ["bytes=5-2", "bytes=0-10", "bytes=a-b", "bytes=-3"] {
            assert!(copy_range(Some(bad), 10).is_err(), "{bad}");
        }
        assert!(copy_range(Some("0-3"), 10).is_err());
    }

    #[test]
    fn one_server_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = DiskStore::open(dir.path(), "us-east-1".into()).unwrap();
        let second = DiskStore::open(dir.path(), "us-east-1".into())
            .err()
            .expect("a second store on the same directory");
        assert!(
            second
                .to_string()
                .contains("another server uses this directory"),
            "{second}"
        );
        drop(first);
        DiskStore::open(dir.path(), "us-east-1".into()).unwrap();
    }

    #[test]
    fn reopening_indexes_every_object_and_skips_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), "us-east-1".into()).unwrap();
        let layout = Arc::clone(&store.layout);
        drop(store);
        layout.create_bucket("bkt", SystemTime::now()).unwrap();
        let keys = ["a", "a/b", "/x", "..", "a//b"];
        for key in keys {
            let meta = ObjectMeta {
                key: key.into(),
                size: key.len() as u64,
                etag: "e".into(),
                ..ObjectMeta::default()
            };
            layout
                .write_object("bkt", &meta, &mut key.as_bytes())
                .unwrap();
        }
        // Not an object file; an object file under another key's name; a
        // write a crash cut short.
        let objects = layout.objects("bkt");
        std::fs::create_dir_all(objects.join("00")).unwrap();
        std::fs::write(objects.join("00").join("junk"), b"junk").unwrap();
        let misplaced = objects.join("ff").join("f".repeat(64));
        std::fs::create_dir_all(misplaced.parent().unwrap()).unwrap();
        std::fs::copy(layout.object("bkt", "a"), &misplaced).unwrap();
        std::fs::write(layout.temp_path(), b"half").unwrap();

        let store = DiskStore::open(dir.path(), "us-east-1".into()).unwrap();
        let bucket = store.bucket("bkt").unwrap();
        let index = bucket.index.read().unwrap();
        let mut expected: Vec<&str> = keys.to_vec();
        expected.sort();
        assert_eq!(
            index.keys().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(index["a/b"].size, 3);
        assert_eq!(std::fs::read_dir(layout.tmp()).unwrap().count(), 0);
    }

    #[test]
    fn tokens_are_opaque_and_round_trip() {
        for entry in ["a", "a/", "\u{1}<&>", &"k".repeat(1024)] {
            let t = token_of(entry);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(entry_of_token(&t).unwrap(), entry);
        }
        assert!(entry_of_token("!!").is_err());
    }
}
