//! The storage: s3s-fs's `FileSystem` (objects as files under the root),
//! wrapped where FaDO, or S3's own behaviour, needs more than s3s-fs 0.14.1
//! does. Operations delegate to s3s-fs; what the wrapper adds, and why:
//!
//! - **ETags in listings.** s3s-fs lists keys and sizes only; FaDO's
//!   replicator and reconciler compare ETags, so every listed object gets its
//!   ETag. `max-keys` is capped at S3's 1000, and `encoding-type=url` is
//!   honoured (s3s-fs echoes it but sends keys raw).
//! - **Keys.** A key the file system would fold into another (`a//b`,
//!   `a/../b`, a leading `/`) or whose attribute files' names would be too
//!   long is refused on write, instead of being stored under another name;
//!   one key cannot be a path prefix of another (`a` and `a/b`), which is
//!   refused with a clear error instead of a 500. See [`crate::keys`].
//! - **Writes need their bucket.** s3s-fs creates missing directories, so a
//!   PUT to a deleted bucket would bring it back; S3 answers `NoSuchBucket`.
//! - **`Content-MD5` is checked before the object is replaced.** s3s-fs
//!   checks it after moving the new bytes into place, so a corrupted upload
//!   would replace a good object.
//! - **Stale attributes.** s3s-fs leaves an object's attribute files behind
//!   on delete, and a multipart upload over an object kept the old object's
//!   checksums, which S3 clients then validate against the new bytes. Deletes
//!   remove them; a completed upload's record holds its ETag only. An ETag
//!   record older than its object's bytes (a crash between the two writes)
//!   is ignored and the MD5 computed again.
//! - **Conditional reads.** `If-Match`/`If-None-Match` on GET and HEAD and
//!   `x-amz-copy-source-if-match` on UploadPartCopy are evaluated (s3s-fs
//!   ignores them): FaDO reads objects in ranged parts with `If-Match` so a
//!   concurrent overwrite fails the read instead of mixing versions.
//! - **S3's answers for buckets**: creating an existing bucket is
//!   `BucketAlreadyOwnedByYou` (there is one key, so one owner), deleting a
//!   non-empty one is `BucketNotEmpty` (s3s-fs deleted everything in it),
//!   and deletes of absent objects or buckets answer as S3 does.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::crypto::{Checksum, Md5};
use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;
use tokio::io::AsyncReadExt;

use crate::keys::{self, Unstorable};

/// S3's largest page of a listing.
const MAX_KEYS: i32 = 1000;

pub struct DiskStore {
    fs: FileSystem,
    root: PathBuf,
    region: String,
    tmp_counter: AtomicU64,
}

impl DiskStore {
    /// Opens (and cleans up after a crash) the store in `root`, which must exist.
    pub fn open(root: &Path, region: String) -> Result<Self, crate::Error> {
        let root = root.canonicalize().map_err(|source| crate::Error::Root {
            path: root.to_path_buf(),
            source,
        })?;
        let fs = FileSystem::new(&root).map_err(|e| crate::Error::Storage {
            path: root.clone(),
            message: format!("{e:?}"),
        })?;
        Ok(Self {
            fs,
            root,
            region,
            tmp_counter: AtomicU64::new(0),
        })
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.join(bucket)
    }

    /// The file of `key`; only for keys that passed [`keys::check`].
    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.bucket_dir(bucket).join(key)
    }

    async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match tokio::fs::metadata(self.bucket_dir(bucket)).await {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist: {bucket}"
            )),
        }
    }

    /// Refuses keys this server cannot store under their own name.
    fn writable_key(bucket: &str, key: &str) -> S3Result<()> {
        keys::check(bucket, key).map_err(|e| match e {
            Unstorable::TooLong { .. } | Unstorable::LongSegment { .. } => {
                s3_error!(KeyTooLongError, "{e}")
            }
            Unstorable::Segment(_) | Unstorable::Nul(_) => s3_error!(InvalidArgument, "{e}"),
        })
    }

    /// Refuses a key whose file cannot be created because another key is a
    /// path prefix of it (`a` for `a/b`) or it is a path prefix of others.
    async fn check_no_conflict(&self, bucket: &str, key: &str) -> S3Result<()> {
        let mut path = self.bucket_dir(bucket);
        let segments: Vec<&str> = key.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            path.push(segment);
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                return Ok(());
            };
            let last = i + 1 == segments.len();
            if !last && meta.is_file() {
                let other = segments[..=i].join("/");
                return Err(s3_error!(
                    InvalidArgument,
                    "key {key:?} cannot be stored while object {other:?} exists: this server keeps keys as file paths, so one key cannot be a path prefix of another"
                ));
            }
            if last && meta.is_dir() {
                return Err(s3_error!(
                    InvalidArgument,
                    "key {key:?} cannot be stored while objects under \"{key}/\" exist: this server keeps keys as file paths, so one key cannot be a path prefix of another"
                ));
            }
        }
        Ok(())
    }

    /// The metadata of `key`'s file; `NoSuchKey` when the key cannot exist
    /// here, is missing or names a directory (a path prefix of other keys).
    async fn stored_file(&self, bucket: &str, key: &str) -> S3Result<std::fs::Metadata> {
        self.require_bucket(bucket).await?;
        let missing = || s3_error!(NoSuchKey, "The specified key does not exist: {key}");
        if keys::check(bucket, key).is_err() {
            return Err(missing());
        }
        match tokio::fs::metadata(self.object_path(bucket, key)).await {
            Ok(m) if m.is_file() => Ok(m),
            _ => Err(missing()),
        }
    }

    /// The ETag of a stored object: the one s3s-fs recorded, unless that
    /// record is older than the bytes (then the MD5 of the bytes).
    async fn etag_of(&self, bucket: &str, key: &str, data: &std::fs::Metadata) -> S3Result<String> {
        let [_, internal] = keys::sidecar_names(bucket, key);
        let internal = self.root.join(internal);
        if let Ok(meta) = tokio::fs::metadata(&internal).await
            && let (Ok(recorded_at), Ok(written_at)) = (meta.modified(), data.modified())
            && recorded_at >= written_at
            && let Ok(text) = tokio::fs::read(&internal).await
            && let Ok(info) = serde_json::from_slice::<serde_json::Value>(&text)
            && let Some(etag) = info.get("e_tag").and_then(|v| v.as_str())
        {
            return Ok(etag.to_string());
        }
        let mut file = tokio::fs::File::open(self.object_path(bucket, key))
            .await
            .map_err(|e| s3_error!(e, NoSuchKey))?;
        let mut md5 = Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).await.map_err(S3Error::internal_error)?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
        }
        Ok(keys::hex(md5.finalize().as_ref()))
    }

    /// Replaces `key`'s internal record with its ETag alone, atomically.
    async fn record_etag_only(&self, bucket: &str, key: &str, etag: &str) -> S3Result<()> {
        let [_, internal] = keys::sidecar_names(bucket, key);
        let body = serde_json::to_vec(&serde_json::json!({ "e_tag": etag }))
            .map_err(S3Error::internal_error)?;
        // Named like s3s-fs's temporary files, so its start-up clean-up
        // removes one a crash left behind.
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join(format!(".tmp.fado-{n}.internal.part"));
        tokio::fs::write(&tmp, body)
            .await
            .map_err(S3Error::internal_error)?;
        tokio::fs::rename(&tmp, self.root.join(internal))
            .await
            .map_err(S3Error::internal_error)
    }

    /// Removes `key`'s file and attribute files, then the directories the
    /// removal left empty. An absent object is not an error.
    async fn remove_object(&self, bucket: &str, key: &str) -> std::io::Result<()> {
        if keys::check(bucket, key).is_err() {
            return Ok(()); // it cannot have been stored
        }
        let path = self.object_path(bucket, key);
        match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.is_file() => match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            // A directory is a path prefix of other keys, not an object.
            _ => return Ok(()),
        }
        for name in keys::sidecar_names(bucket, key) {
            match tokio::fs::remove_file(self.root.join(name)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        // Empty directories would block a later key of the same name (`a`
        // after `a/b` is deleted); S3 has no directories to keep.
        let bucket_dir = self.bucket_dir(bucket);
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == bucket_dir || tokio::fs::remove_dir(&d).await.is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    /// Whether any object is stored in `bucket`.
    async fn has_objects(&self, bucket: &str) -> S3Result<bool> {
        let mut dirs = vec![self.bucket_dir(bucket)];
        while let Some(dir) = dirs.pop() {
            let mut entries = tokio::fs::read_dir(&dir)
                .await
                .map_err(S3Error::internal_error)?;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(S3Error::internal_error)?
            {
                let kind = entry.file_type().await.map_err(S3Error::internal_error)?;
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Removes the attribute files of all of `bucket`'s objects.
    async fn remove_bucket_sidecars(&self, bucket: &str) -> S3Result<()> {
        let prefix = keys::bucket_sidecar_prefix(bucket);
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(S3Error::internal_error)?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(S3Error::internal_error)?
        {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }
}

/// `If-Match` / `If-None-Match` of a read against the object's ETag.
fn check_read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    etag: &str,
) -> S3Result<()> {
    let matches = |c: &ETagCondition| match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    };
    if let Some(c) = if_match
        && !matches(c)
    {
        return Err(s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold (If-Match; the object's ETag is \"{etag}\")"
        ));
    }
    if let Some(c) = if_none_match
        && matches(c)
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
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

/// The expected MD5 of a body from its `Content-MD5` header.
fn content_md5(value: &str) -> S3Result<[u8; 16]> {
    base64_simd::STANDARD
        .decode_to_vec(value)
        .ok()
        .and_then(|v| <[u8; 16]>::try_from(v).ok())
        .ok_or_else(|| s3_error!(InvalidDigest, "Content-MD5 {value:?} is not a base64 MD5"))
}

/// A body whose MD5 is checked against `Content-MD5` as it ends: on a
/// mismatch the stream fails, so s3s-fs discards its temporary file and the
/// object keeps its old bytes.
struct Md5Checked {
    inner: StreamingBlob,
    md5: Option<Md5>,
    expected: [u8; 16],
    mismatch: Arc<AtomicBool>,
}

impl Stream for Md5Checked {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(md5) = this.md5.as_mut() {
                    md5.update(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Body(e)))),
            Poll::Ready(None) => match this.md5.take().map(Md5::finalize) {
                Some(digest) if digest != this.expected => {
                    this.mismatch.store(true, Ordering::SeqCst);
                    Poll::Ready(Some(Err(BodyError::Mismatch)))
                }
                _ => Poll::Ready(None),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the body does not match its Content-MD5")]
    Mismatch,
    #[error("reading the body: {0}")]
    Body(s3s::StdError),
}

/// Takes a request's Content-MD5 header and, when there was one, wraps its
/// body so the digest is checked while streaming; returns the flag that
/// tells, after a failed write, whether the digest was the reason (`None`:
/// nothing to check).
fn check_md5(
    header: &mut Option<String>,
    body: &mut Option<StreamingBlob>,
) -> S3Result<Option<Arc<AtomicBool>>> {
    let Some(header) = header.take() else {
        return Ok(None);
    };
    let inner = body.take().ok_or_else(|| s3_error!(IncompleteBody))?;
    let mismatch = Arc::new(AtomicBool::new(false));
    let checked = Md5Checked {
        inner,
        md5: Some(Md5::new()),
        expected: content_md5(&header)?,
        mismatch: Arc::clone(&mismatch),
    };
    *body = Some(StreamingBlob::wrap(checked));
    Ok(Some(mismatch))
}

/// `e`, or BadDigest when the checked body did not match its Content-MD5.
fn bad_digest_or(e: S3Error, mismatch: Option<&AtomicBool>) -> S3Error {
    if mismatch.is_some_and(|m| m.load(Ordering::SeqCst)) {
        s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what was received."
        )
    } else {
        e
    }
}

#[async_trait::async_trait]
impl S3 for DiskStore {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        if self.require_bucket(&req.input.bucket).await.is_ok() {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            ));
        }
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        self.require_bucket(&bucket).await?;
        if self.has_objects(&bucket).await? {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty"
            ));
        }
        let out = self.fs.delete_bucket(req).await?;
        self.remove_bucket_sidecars(&bucket).await?;
        Ok(out)
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let mut out = self.fs.get_bucket_location(req).await?;
        // S3 names no location for us-east-1.
        if self.region != "us-east-1" {
            out.output.location_constraint =
                Some(BucketLocationConstraint::from(self.region.clone()));
        }
        Ok(out)
    }

    async fn list_objects_v2(
        &self,
        mut req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let bucket = req.input.bucket.clone();
        self.require_bucket(&bucket).await?;
        let max_keys = req.input.max_keys.unwrap_or(MAX_KEYS).clamp(0, MAX_KEYS);
        req.input.max_keys = Some(max_keys);
        let mut out = self.fs.list_objects_v2(req).await?;
        let o = &mut out.output;
        if let Some(contents) = o.contents.take() {
            let mut listed = Vec::with_capacity(contents.len());
            let mut dropped = 0;
            for mut object in contents {
                let key = object.key.clone().unwrap_or_default();
                // An object deleted since it was listed is left out.
                let etag = match self.stored_file(&bucket, &key).await {
                    Ok(meta) => self.etag_of(&bucket, &key, &meta).await,
                    Err(e) => Err(e),
                };
                let Ok(etag) = etag else {
                    dropped += 1;
                    continue;
                };
                object.e_tag = Some(ETag::Strong(etag));
                object.storage_class = Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                ));
                listed.push(object);
            }
            o.key_count = o.key_count.map(|n| n - dropped);
            o.contents = Some(listed);
        }
        let url = o
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == EncodingType::URL);
        if url {
            let enc = |s: &mut Option<String>| {
                if let Some(v) = s.as_mut() {
                    *v = url_encode(v);
                }
            };
            for object in o.contents.iter_mut().flatten() {
                enc(&mut object.key);
            }
            for p in o.common_prefixes.iter_mut().flatten() {
                enc(&mut p.prefix);
            }
            enc(&mut o.prefix);
            enc(&mut o.delimiter);
            enc(&mut o.start_after);
        }
        Ok(out)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let v2 = self.list_objects_v2(req.map_input(Into::into)).await?;
        Ok(v2.map_output(|v2| ListObjectsOutput {
            contents: v2.contents,
            common_prefixes: v2.common_prefixes,
            delimiter: v2.delimiter,
            encoding_type: v2.encoding_type,
            name: v2.name,
            prefix: v2.prefix,
            marker: v2.start_after,
            max_keys: v2.max_keys,
            is_truncated: v2.is_truncated,
            next_marker: v2.next_continuation_token,
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let (if_match, if_none_match) =
            (req.input.if_match.clone(), req.input.if_none_match.clone());
        let meta = self.stored_file(&bucket, &key).await?;
        let etag = self.etag_of(&bucket, &key, &meta).await?;
        check_read_conditions(if_match.as_ref(), if_none_match.as_ref(), &etag)?;
        let mut out = self.fs.head_object(req).await?;
        out.output.e_tag = Some(ETag::Strong(etag));
        Ok(out)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let (if_match, if_none_match) =
            (req.input.if_match.clone(), req.input.if_none_match.clone());
        // The ETag is read before and after s3s-fs opens the file: when they
        // agree, the bytes served are the version the ETag (and If-Match)
        // describe; when an overwrite came between, try again.
        for _ in 0..3 {
            let meta = self.stored_file(&bucket, &key).await?;
            let before = self.etag_of(&bucket, &key, &meta).await?;
            check_read_conditions(if_match.as_ref(), if_none_match.as_ref(), &before)?;
            let mut out = self.fs.get_object(req.clone()).await?;
            let meta = self.stored_file(&bucket, &key).await?;
            if self.etag_of(&bucket, &key, &meta).await? == before {
                out.output.e_tag = Some(ETag::Strong(before));
                return Ok(out);
            }
        }
        Err(s3_error!(
            SlowDown,
            "object {key:?} kept changing while it was read; try again"
        ))
    }

    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        Self::writable_key(&bucket, &key)?;
        self.require_bucket(&bucket).await?;
        self.check_no_conflict(&bucket, &key).await?;
        let mismatch = check_md5(&mut req.input.content_md5, &mut req.input.body)?;
        self.fs
            .put_object(req)
            .await
            .map_err(|e| bad_digest_or(e, mismatch.as_deref()))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let CopySource::Bucket {
            bucket: src_bucket,
            key: src_key,
            ..
        } = &req.input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket copy sources are supported"
            ));
        };
        let (src_bucket, src_key) = (src_bucket.to_string(), src_key.to_string());
        let meta = self.stored_file(&src_bucket, &src_key).await?;
        if let Some(c) = &req.input.copy_source_if_match {
            let etag = self.etag_of(&src_bucket, &src_key, &meta).await?;
            check_read_conditions(Some(c), None, &etag)?;
        }
        Self::writable_key(&bucket, &key)?;
        self.require_bucket(&bucket).await?;
        if (src_bucket.as_str(), src_key.as_str()) != (bucket.as_str(), key.as_str()) {
            self.check_no_conflict(&bucket, &key).await?;
        }
        let replace = req
            .input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let out = self.fs.copy_object(req).await?;
        // With COPY, s3s-fs copies the source's attribute file only when
        // there is one, which would leave the destination's old one.
        let [src_attrs, _] = keys::sidecar_names(&src_bucket, &src_key);
        if !replace && !self.root.join(src_attrs).exists() {
            let [dst_attrs, _] = keys::sidecar_names(&bucket, &key);
            let _ = tokio::fs::remove_file(self.root.join(dst_attrs)).await;
        }
        Ok(out)
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let DeleteObjectInput { bucket, key, .. } = req.input;
        self.require_bucket(&bucket).await?;
        self.remove_object(&bucket, &key)
            .await
            .map_err(S3Error::internal_error)?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let DeleteObjectsInput { bucket, delete, .. } = req.input;
        self.require_bucket(&bucket).await?;
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
                    code: Some("InternalError".to_string()),
                    key: Some(object.key),
                    message: Some(e.to_string()),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Self::writable_key(&req.input.bucket, &req.input.key)?;
        self.require_bucket(&req.input.bucket).await?;
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let mismatch = check_md5(&mut req.input.content_md5, &mut req.input.body)?;
        self.fs
            .upload_part(req)
            .await
            .map_err(|e| bad_digest_or(e, mismatch.as_deref()))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let CopySource::Bucket { bucket, key, .. } = &req.input.copy_source else {
            return Err(s3_error!(
                NotImplemented,
                "only bucket copy sources are supported"
            ));
        };
        let (bucket, key) = (bucket.to_string(), key.to_string());
        let meta = self.stored_file(&bucket, &key).await?;
        if let Some(c) = &req.input.copy_source_if_match {
            let etag = self.etag_of(&bucket, &key, &meta).await?;
            check_read_conditions(Some(c), None, &etag)?;
        }
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        Self::writable_key(&bucket, &key)?;
        self.require_bucket(&bucket).await?;
        self.check_no_conflict(&bucket, &key).await?;
        let mut out = self.fs.complete_multipart_upload(req).await?;
        // s3s-fs has done the work already; its future only hands over the
        // result (keep-alive is for servers that assemble while answering).
        let done = match out.output.future.take() {
            Some(f) => f.await?,
            None => std::mem::take(&mut out.output),
        };
        if let Some(etag) = done.e_tag.as_ref() {
            self.record_etag_only(&bucket, &key, etag.value()).await?;
        }
        out.output = done;
        Ok(out)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/ü+%.txt"), "a%20b/%C3%BC%2B%25.txt");
        assert_eq!(url_encode("plain-key_1.~"), "plain-key_1.~");
    }

    #[test]
    fn read_conditions() {
        let tag = |s: &str| ETagCondition::ETag(ETag::Strong(s.to_string()));
        assert!(check_read_conditions(Some(&tag("abc")), None, "abc").is_ok());
        assert!(check_read_conditions(Some(&ETagCondition::Any), None, "abc").is_ok());
        let e = check_read_conditions(Some(&tag("old")), None, "abc").unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::PreconditionFailed);
        let e = check_read_conditions(None, Some(&tag("abc")), "abc").unwrap_err();
        assert_eq!(e.code(), &s3s::S3ErrorCode::NotModified);
        assert!(check_read_conditions(None, Some(&tag("old")), "abc").is_ok());
    }

    #[test]
    fn content_md5_must_be_a_base64_md5() {
        assert_eq!(
            keys::hex(&content_md5("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(content_md5("not base64!").is_err());
        assert!(content_md5("AAAA").is_err());
    }
}
