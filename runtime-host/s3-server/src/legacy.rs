//! The import of data written by earlier versions, which stored through
//! s3s-fs 0.14: bucket `b` was the directory `<root>/b`, object `k` the file
//! `<root>/b/k`, and its attributes lived in files at the root named
//! `.bucket-<base64url(b)>.object-<base64url(k)>.metadata.json` (content
//! type, user metadata) and `….internal.json` (ETag, checksums). Multipart
//! uploads in progress were `.upload-<uuid>.json`, `.upload_id-<uuid>.part-<n>`
//! and `.bucket-….upload-<uuid>.metadata.json`; temporary files
//! `.tmp.<n>.internal.part`.
//!
//! Each object is written into the new layout (a rename makes it appear),
//! then its old file is removed, then its attribute files. A crash at any
//! point leaves either the old file, which the next start imports again
//! (replacing the identical copy), or attribute files without an object,
//! which are removed. Uploads in progress are not carried over: their ids
//! are unknown afterwards (`NoSuchUpload`), as after an abort.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use s3s::crypto::{Checksum, Md5};

use crate::disk::Layout;
use crate::keys;
use crate::object::{self, Attrs, ObjectMeta};

/// What an import did, for the log and the tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub buckets: usize,
    pub objects: usize,
}

/// Imports every bucket and object of the old layout under `root` into
/// `layout`, and removes the old files. Does nothing when there are none.
pub fn import(root: &Path, layout: &Layout) -> io::Result<Imported> {
    let mut done = Imported::default();
    let mut old_buckets = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_dir()
            && let Some(name) = entry.file_name().to_str()
            && s3s::path::check_bucket_name(name)
        {
            old_buckets.push(name.to_string());
        }
    }
    old_buckets.sort();
    for bucket in &old_buckets {
        let objects = import_bucket(root, layout, bucket)?;
        tracing::info!("imported bucket {bucket} ({objects} objects) from the old storage layout");
        done.buckets += 1;
        done.objects += objects;
    }
    remove_leftovers(root)?;
    Ok(done)
}

fn import_bucket(root: &Path, layout: &Layout, bucket: &str) -> io::Result<usize> {
    let old = root.join(bucket);
    if !layout.bucket(bucket).exists() {
        let created = std::fs::metadata(&old)?.modified()?;
        layout.create_bucket(bucket, created)?;
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    walk(&old, &mut files, &mut dirs)?;
    let mut imported = 0;
    for path in files {
        let Some(key) = key_of(&old, &path) else {
            tracing::warn!(
                "{} is not an object of the old layout; left in place",
                path.display()
            );
            continue;
        };
        import_object(root, layout, bucket, &key, &path)?;
        imported += 1;
    }
    // Deepest first; a directory still holding something is kept.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs.iter().chain([&old]) {
        let _ = std::fs::remove_dir(dir);
    }
    Ok(imported)
}

/// Files and directories under `dir`; symbolic links are neither.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            dirs.push(entry.path());
            walk(&entry.path(), files, dirs)?;
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// The key s3s-fs stored at `path`: its segments under the bucket, joined by `/`.
fn key_of(bucket_dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(bucket_dir).ok()?;
    let segments: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let key = segments?.join("/");
    keys::check(&key).ok()?;
    Some(key)
}

fn b64(s: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(s)
}

/// The attribute files s3s-fs kept for `key`: `[attributes, internal]`.
pub fn sidecar_names(bucket: &str, key: &str) -> [String; 2] {
    let base = format!(".bucket-{}.object-{}", b64(bucket), b64(key));
    [
        format!("{base}.metadata.json"),
        format!("{base}.internal.json"),
    ]
}

fn import_object(
    root: &Path,
    layout: &Layout,
    bucket: &str,
    key: &str,
    path: &Path,
) -> io::Result<()> {
    let [attrs_file, internal_file] = sidecar_names(bucket, key).map(|n| root.join(n));
    let data = std::fs::metadata(path)?;
    let modified = data.modified()?;
    let etag = match recorded_etag(&internal_file, modified) {
        Some(etag) => etag,
        None => md5_of(path)?,
    };
    let attrs = std::fs::read(&attrs_file)
        .ok()
        .and_then(|text| attrs_of(&text))
        .unwrap_or_default();
    let meta = ObjectMeta {
        key: key.to_string(),
        size: data.len(),
        etag,
        modified_ms: object::millis(modified),
        attrs,
        // Checksums s3s-fs recorded could belong to an earlier version of the
        // object (a multipart upload kept them); they are not carried over.
        checksums: object::Checksums::default(),
    };
    layout.write_object(bucket, &meta, &mut std::fs::File::open(path)?)?;
    // The object first: until it is gone, a new start imports it again.
    remove_if_present(path)?;
    remove_if_present(&attrs_file)?;
    remove_if_present(&internal_file)
}

/// The ETag s3s-fs recorded, unless the record is older than the bytes (a
/// crash between writing the two): then it may describe other bytes.
fn recorded_etag(internal_file: &Path, data_modified: SystemTime) -> Option<String> {
    let recorded_at = std::fs::metadata(internal_file).ok()?.modified().ok()?;
    if recorded_at < data_modified {
        return None;
    }
    let text = std::fs::read(internal_file).ok()?;
    let info: serde_json::Value = serde_json::from_slice(&text).ok()?;
    info.get("e_tag")?.as_str().map(str::to_string)
}

fn md5_of(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            return Ok(keys::hex(&md5.finalize()));
        }
        md5.update(&buf[..n]);
    }
}

/// An old attribute file: s3s-fs 0.14 wrote an object of attributes;
/// earlier versions a bare map of user metadata.
fn attrs_of(text: &[u8]) -> Option<Attrs> {
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    let map = value.as_object()?;
    const FIELDS: [&str; 8] = [
        "user_metadata",
        "content_type",
        "content_encoding",
        "content_disposition",
        "content_language",
        "cache_control",
        "expires",
        "website_redirect_location",
    ];
    let string = |name: &str| map.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let strings = |v: &serde_json::Value| {
        v.as_object().map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
    };
    if !map.keys().any(|k| FIELDS.contains(&k.as_str())) {
        return Some(Attrs {
            metadata: strings(&value)?,
            ..Attrs::default()
        });
    }
    Some(Attrs {
        content_type: string("content_type"),
        content_encoding: string("content_encoding"),
        content_disposition: string("content_disposition"),
        content_language: string("content_language"),
        cache_control: string("cache_control"),
        expires: string("expires"),
        website_redirect_location: string("website_redirect_location"),
        metadata: map
            .get("user_metadata")
            .and_then(strings)
            .unwrap_or_default(),
    })
}

/// Removes what s3s-fs left at the root that describes nothing any more:
/// attribute files whose object is gone, uploads in progress, temporary files.
fn remove_leftovers(root: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = if name.starts_with(".upload-") || name.starts_with(".upload_id-") {
            true
        } else if name.starts_with(".tmp.") {
            name.ends_with(".internal.part")
        } else if name.starts_with(".bucket-") {
            // Kept only while the object it describes is still to be imported.
            match sidecar_object(name) {
                Some((bucket, Some(key))) => !root.join(bucket).join(key).is_file(),
                Some((_, None)) => true, // an upload's attributes
                None => false,
            }
        } else {
            false
        };
        if stale {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// Bucket and key of an attribute file's name (key `None` for an upload's).
fn sidecar_object(name: &str) -> Option<(String, Option<String>)> {
    let decode = |s: &str| {
        base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    // Base64url has no '.', so the parts split cleanly.
    let mut parts = name.strip_prefix('.')?.split('.');
    let bucket = decode(parts.next()?.strip_prefix("bucket-")?)?;
    let key = decode(parts.next()?.strip_prefix("object-")?)?;
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        ["metadata" | "internal", "json"] => Some((bucket, Some(key))),
        [upload, "metadata", "json"] if upload.starts_with("upload-") => Some((bucket, None)),
        _ => None,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// Writes an object as s3s-fs 0.14.1 did: the file under the bucket
    /// directory, its attributes and ETag beside the buckets.
    fn old_object(
        root: &Path,
        bucket: &str,
        key: &str,
        body: &[u8],
        attrs: Option<&str>,
        etag: Option<&str>,
    ) {
        let path = root.join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        let [a, i] = sidecar_names(bucket, key);
        if let Some(attrs) = attrs {
            std::fs::write(root.join(a), attrs).unwrap();
        }
        if let Some(etag) = etag {
            std::fs::write(
                root.join(i),
                format!(r#"{{"e_tag":"{etag}","checksum_crc32":"AAAAAA=="}}"#),
            )
            .unwrap();
        }
    }

    fn read(layout: &Layout, bucket: &str, key: &str) -> (Vec<u8>, ObjectMeta) {
        let path = layout.object(bucket, key);
        let meta = object::read_object_meta(&mut std::fs::File::open(&path).unwrap()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(meta.size as usize);
        (bytes, meta)
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sidecars_are_named_as_s3s_fs_named_them() {
        // base64url("b") = "Yg", base64url("k/1") = "ay8x"
        assert_eq!(
            sidecar_names("b", "k/1"),
            [
                ".bucket-Yg.object-ay8x.metadata.json".to_string(),
                ".bucket-Yg.object-ay8x.internal.json".to_string()
            ]
        );
        assert_eq!(
            sidecar_object(".bucket-Yg.object-ay8x.internal.json"),
            Some(("b".to_string(), Some("k/1".to_string())))
        );
        assert_eq!(
            sidecar_object(
                ".bucket-Yg.object-ay8x.upload-0b9c5ed4-8c56-4a2c-9c53-1c1f4e0f4b5e.metadata.json"
            ),
            Some(("b".to_string(), None))
        );
        assert_eq!(sidecar_object(".bucket-Yg.something"), None);
    }

    #[test]
    fn old_attribute_files_of_both_shapes_are_read() {
        let attrs = attrs_of(
            br#"{"user_metadata":{"fado-source-etag":"e1"},"content_type":"image/png","cache_control":"no-cache"}"#,
        )
        .unwrap();
        assert_eq!(attrs.content_type.as_deref(), Some("image/png"));
        assert_eq!(attrs.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(
            attrs.metadata,
            BTreeMap::from([("fado-source-etag".to_string(), "e1".to_string())])
        );
        let bare = attrs_of(br#"{"owner":"zoe"}"#).unwrap();
        assert_eq!(bare.content_type, None);
        assert_eq!(
            bare.metadata,
            BTreeMap::from([("owner".to_string(), "zoe".to_string())])
        );
        assert_eq!(attrs_of(b"not json"), None);
    }

    #[test]
    fn an_old_layout_is_imported_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        old_object(
            root,
            "images",
            "2026/cat.png",
            b"meow",
            Some(r#"{"user_metadata":{"fado-source-etag":"e1"},"content_type":"image/png"}"#),
            Some("5bc1f3c2ad5f2a5f0ddbb9bd0e2a4a7a"),
        );
        // A multipart object: its ETag can only come from the record.
        old_object(
            root,
            "images",
            "big",
            &[7u8; 1000],
            None,
            Some("0123456789abcdef0123456789abcdef-3"),
        );
        // No records at all: the ETag is the MD5.
        old_object(root, "other", "plain", b"hello", None, None);
        // An empty bucket.
        std::fs::create_dir(root.join("empty")).unwrap();
        // An upload in progress, temporary files, and an orphan record.
        for name in [
            ".upload-0b9c5ed4-8c56-4a2c-9c53-1c1f4e0f4b5e.json",
            ".upload_id-0b9c5ed4-8c56-4a2c-9c53-1c1f4e0f4b5e.part-1",
            ".tmp.3.internal.part",
            &sidecar_names("images", "deleted long ago")[0],
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        // Not ours: left alone.
        std::fs::write(root.join("README"), b"mine").unwrap();

        let layout = Layout::create(root).unwrap();
        let done = import(root, &layout).unwrap();
        assert_eq!(
            done,
            Imported {
                buckets: 3,
                objects: 3
            }
        );

        let (bytes, meta) = read(&layout, "images", "2026/cat.png");
        assert_eq!(bytes, b"meow");
        assert_eq!(meta.etag, "5bc1f3c2ad5f2a5f0ddbb9bd0e2a4a7a");
        assert_eq!(meta.attrs.content_type.as_deref(), Some("image/png"));
        assert_eq!(
            meta.attrs
                .metadata
                .get("fado-source-etag")
                .map(String::as_str),
            Some("e1")
        );
        assert!(meta.checksums.is_empty());
        let (bytes, meta) = read(&layout, "images", "big");
        assert_eq!(bytes, vec![7u8; 1000]);
        assert_eq!(meta.etag, "0123456789abcdef0123456789abcdef-3");
        let (bytes, meta) = read(&layout, "other", "plain");
        assert_eq!(bytes, b"hello");
        assert_eq!(meta.etag, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(meta.attrs, Attrs::default());
        assert!(layout.bucket("empty").join("bucket.json").is_file());

        // Only the new store and what was not ours remain.
        assert_eq!(names_in(root), ["README", crate::disk::STORE_DIR]);
        // Running again finds nothing to do.
        assert_eq!(
            import(root, &layout).unwrap(),
            Imported {
                buckets: 0,
                objects: 0
            }
        );
    }

    #[test]
    fn a_stale_etag_record_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        old_object(
            root,
            "b1b",
            "k",
            b"new bytes",
            None,
            Some("0123456789abcdef0123456789abcdef"),
        );
        // The record predates the bytes: a crash came between the two writes.
        let [_, internal] = sidecar_names("b1b", "k");
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(root.join(internal))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let layout = Layout::create(root).unwrap();
        import(root, &layout).unwrap();
        let (_, meta) = read(&layout, "b1b", "k");
        assert_eq!(meta.etag, md5_of_bytes(b"new bytes"));
    }

    fn md5_of_bytes(b: &[u8]) -> String {
        let mut md5 = Md5::new();
        md5.update(b);
        keys::hex(&md5.finalize())
    }

    #[test]
    fn an_import_cut_short_runs_again_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        old_object(
            root,
            "b1b",
            "a/1",
            b"one",
            Some(r#"{"content_type":"text/x-one"}"#),
            None,
        );
        old_object(
            root,
            "b1b",
            "a/2",
            b"two",
            Some(r#"{"content_type":"text/x-two"}"#),
            None,
        );
        old_object(root, "b1b", "a/3", b"three", None, None);
        let layout = Layout::create(root).unwrap();
        // As if the last start stopped: a/1 was imported and its file
        // removed but not its records; a/2 was written to the new layout
        // but its old file is still there; a temporary file was half written.
        layout.create_bucket("b1b", SystemTime::now()).unwrap();
        import_object(root, &layout, "b1b", "a/1", &root.join("b1b/a/1")).unwrap();
        let [a1_attrs, _] = sidecar_names("b1b", "a/1");
        std::fs::write(root.join(&a1_attrs), br#"{"content_type":"text/x-one"}"#).unwrap();
        let meta = ObjectMeta {
            key: "a/2".into(),
            size: 3,
            etag: md5_of_bytes(b"two"),
            ..ObjectMeta::default()
        };
        layout.write_object("b1b", &meta, &mut &b"two"[..]).unwrap();
        std::fs::write(layout.temp_path(), b"half").unwrap();

        layout.clear_tmp().unwrap();
        assert_eq!(
            import(root, &layout).unwrap(),
            Imported {
                buckets: 1,
                objects: 2
            }
        );
        for (key, body, ty) in [
            ("a/1", &b"one"[..], Some("text/x-one")),
            ("a/2", b"two", Some("text/x-two")),
            ("a/3", b"three", None),
        ] {
            let (bytes, meta) = read(&layout, "b1b", key);
            assert_eq!(bytes, body, "{key}");
            assert_eq!(meta.attrs.content_type.as_deref(), ty, "{key}");
            assert_eq!(meta.etag, md5_of_bytes(body), "{key}");
        }
        assert_eq!(names_in(root), [crate::disk::STORE_DIR]);
        assert_eq!(names_in(&layout.tmp()), Vec::<String>::new());
    }
}
