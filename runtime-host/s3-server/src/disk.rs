//! Where things live under the storage root, and the blocking file
//! operations the store (and the import of the old layout) share.
//!
//! ```text
//! <root>/fado_s3/
//!   lock                         held by the running server
//!   tmp/                         files being written; emptied at start
//!   buckets/<bucket>/
//!     bucket.json                its creation time
//!     objects/<hh>/<sha256(key)> one object: bytes, then its description
//!     uploads/<id>/upload.json   a multipart upload in progress
//!     uploads/<id>/part-<n>      its parts: bytes, then their description
//! ```
//!
//! `fado_s3` has an underscore, which no bucket name has, so it cannot be
//! mistaken for a bucket of the old layout (buckets as directories right
//! under the root). Everything appears under its final name by a rename
//! from `tmp/`, on the same file system, so it is there whole or not at all.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::keys;
use crate::object::{self, ObjectMeta};

/// The directory under the root that holds this store.
pub const STORE_DIR: &str = "fado_s3";

pub struct Layout {
    dir: PathBuf,
    counter: AtomicU64,
}

/// `bucket.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ms: u64,
}

impl Layout {
    /// The layout under `root` (the server's `--dir`); creates its directories.
    pub fn create(root: &Path) -> io::Result<Self> {
        let layout = Self {
            dir: root.join(STORE_DIR),
            counter: AtomicU64::new(0),
        };
        std::fs::create_dir_all(layout.buckets())?;
        std::fs::create_dir_all(layout.tmp())?;
        Ok(layout)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join("lock")
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    pub fn buckets(&self) -> PathBuf {
        self.dir.join("buckets")
    }

    pub fn bucket(&self, bucket: &str) -> PathBuf {
        self.buckets().join(bucket)
    }

    pub fn objects(&self, bucket: &str) -> PathBuf {
        self.bucket(bucket).join("objects")
    }

    pub fn object(&self, bucket: &str, key: &str) -> PathBuf {
        let name = keys::file_name(key);
        self.objects(bucket).join(keys::fan_out(&name)).join(&name)
    }

    pub fn uploads(&self, bucket: &str) -> PathBuf {
        self.bucket(bucket).join("uploads")
    }

    /// Only for ids that passed [`valid_upload_id`]: they name a directory.
    pub fn upload(&self, bucket: &str, id: &str) -> PathBuf {
        self.uploads(bucket).join(id)
    }

    pub fn part(&self, bucket: &str, id: &str, part_number: i32) -> PathBuf {
        self.upload(bucket, id)
            .join(format!("part-{part_number:05}"))
    }

    /// A fresh name in `tmp/`.
    pub fn temp_path(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.tmp().join(format!("{}-{n}", std::process::id()))
    }

    /// Empties `tmp/`: what a crash left half written, and deleted buckets
    /// and uploads not yet removed.
    pub fn clear_tmp(&self) -> io::Result<()> {
        for entry in std::fs::read_dir(self.tmp())? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Creates `bucket` with its directories and record, all at once.
    /// Fails if it exists.
    pub fn create_bucket(&self, bucket: &str, created: SystemTime) -> io::Result<()> {
        let staging = TempPath::new(self.temp_path());
        std::fs::create_dir(staging.path())?;
        std::fs::create_dir(staging.path().join("objects"))?;
        std::fs::create_dir(staging.path().join("uploads"))?;
        let record = serde_json::to_vec(&BucketMeta {
            created_ms: object::millis(created),
        })
        .map_err(io::Error::other)?;
        std::fs::write(staging.path().join("bucket.json"), record)?;
        let target = self.bucket(bucket);
        if target.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", target.display()),
            ));
        }
        std::fs::rename(staging.path(), &target)?;
        staging.keep();
        Ok(())
    }

    /// Moves `dir` into `tmp/` (atomically out of sight), then removes it.
    pub fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let grave = self.temp_path();
        std::fs::rename(dir, &grave)?;
        std::fs::remove_dir_all(&grave)
    }

    /// Writes an object whole from `body` (which must hold `meta.size`
    /// bytes) and renames it into place, replacing any object of its key.
    pub fn write_object(
        &self,
        bucket: &str,
        meta: &ObjectMeta,
        body: &mut impl Read,
    ) -> io::Result<()> {
        let temp = TempPath::new(self.temp_path());
        let mut file = io::BufWriter::new(std::fs::File::create(temp.path())?);
        let copied = io::copy(&mut body.take(meta.size), &mut file)?;
        if copied != meta.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("expected {} bytes, read {copied}", meta.size),
            ));
        }
        file.write_all(&object::trailer(meta)?)?;
        file.into_inner().map_err(io::IntoInnerError::into_error)?;
        let target = self.object(bucket, &meta.key);
        create_parent(&target)?;
        std::fs::rename(temp.path(), &target)?;
        temp.keep();
        Ok(())
    }
}

/// Creates the fan-out directory of `path` (its parent) if missing.
pub fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent().map(std::fs::create_dir) {
        Some(Err(e)) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Whether `id` is an upload id this server could have made (so it is safe
/// to use as a directory name).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new upload id: 32 hex digits, unique in this process and across restarts.
pub fn new_upload_id(layout: &Layout) -> String {
    use s3s::crypto::{Checksum, Sha256};
    let n = layout.counter.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut sha = Sha256::new();
    sha.update(format!("{}:{now}:{n}", std::process::id()).as_bytes());
    keys::hex(&sha.finalize().as_ref()[..16])
}

/// A path in `tmp/` removed when dropped, unless kept (renamed into place).
pub struct TempPath {
    path: PathBuf,
    keep: bool,
}

impl TempPath {
    pub fn new(path: PathBuf) -> Self {
        Self { path, keep: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// It has been renamed away: nothing to remove.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.keep {
            if self.path.is_dir() {
                let _ = std::fs::remove_dir_all(&self.path);
            } else {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_hex_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        let a = new_upload_id(&layout);
        let b = new_upload_id(&layout);
        assert_ne!(a, b);
        assert!(valid_upload_id(&a), "{a}");
        for bad in [
            "",
            "../../etc",
            &"A".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
        ] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_bucket_appears_whole_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        layout.create_bucket("b1", SystemTime::now()).unwrap();
        assert!(layout.objects("b1").is_dir());
        assert!(layout.uploads("b1").is_dir());
        assert!(layout.bucket("b1").join("bucket.json").is_file());
        let again = layout.create_bucket("b1", SystemTime::now()).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        // Nothing is left behind in tmp/.
        assert_eq!(std::fs::read_dir(layout.tmp()).unwrap().count(), 0);
    }

    #[test]
    fn objects_are_written_whole_under_the_hash_of_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path()).unwrap();
        layout.create_bucket("b1", SystemTime::now()).unwrap();
        let meta = ObjectMeta {
            key: "a/../b".into(),
            size: 3,
            etag: "x".into(),
            ..ObjectMeta::default()
        };
        layout
            .write_object("b1", &meta, &mut &b"abcdef"[..])
            .unwrap();
        let path = layout.object("b1", "a/../b");
        assert!(path.starts_with(layout.objects("b1")));
        let mut file = std::fs::File::open(&path).unwrap();
        assert_eq!(object::read_object_meta(&mut file).unwrap(), meta);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..3], b"abc");
        // A body shorter than the description says is not stored.
        let short = ObjectMeta {
            key: "short".into(),
            size: 10,
            ..ObjectMeta::default()
        };
        assert!(layout.write_object("b1", &short, &mut &b"abc"[..]).is_err());
        assert!(!layout.object("b1", "short").exists());
        assert_eq!(std::fs::read_dir(layout.tmp()).unwrap().count(), 0);
    }
}
