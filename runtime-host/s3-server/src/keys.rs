//! Which object keys this server can store, and where s3s-fs keeps them.
//!
//! s3s-fs stores object `key` of `bucket` as the file `<root>/<bucket>/<key>`
//! and its attributes in sidecar files at the root named after the base64 of
//! bucket and key. So a key must be a relative path whose segments are plain
//! file names (no empty, `.` or `..` segment, which the file system would fold
//! into another key), and the sidecar names must fit the file system's 255
//! bytes. Keys that fail are refused on write with a clear error, instead of
//! being stored under another name or failing deep inside s3s-fs.

/// The longest file name Linux file systems take.
pub const NAME_MAX: usize = 255;

/// Why a key cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unstorable {
    #[error(
        "key {0:?} has an empty, \".\" or \"..\" path segment (or starts or ends with \"/\"); this server keeps keys as file paths and could not tell it from another key"
    )]
    Segment(String),
    #[error("key {0:?} contains a NUL byte")]
    Nul(String),
    #[error(
        "a path segment of key {key:?} is {len} bytes; this server's file names hold at most {NAME_MAX}"
    )]
    LongSegment { key: String, len: usize },
    #[error(
        "key {key:?} is {len} bytes; in bucket {bucket:?} this server stores keys of at most {max} bytes"
    )]
    TooLong {
        key: String,
        bucket: String,
        len: usize,
        max: usize,
    },
}

/// Length of unpadded base64 of `n` bytes.
fn b64_len(n: usize) -> usize {
    (4 * n).div_ceil(3)
}

/// The longest key (in bytes) whose sidecar names fit in [`NAME_MAX`] for
/// `bucket`. The longest sidecar is the one of a multipart upload in
/// progress: `.bucket-B.object-K.upload-<uuid>.metadata.json`.
pub fn max_key_len(bucket: &str) -> usize {
    const FIXED: usize =
        ".bucket-".len() + ".object-".len() + ".upload-".len() + 36 + ".metadata.json".len();
    let room = NAME_MAX.saturating_sub(FIXED + b64_len(bucket.len()));
    // The largest n with b64_len(n) <= room.
    room * 3 / 4
}

/// Whether `key` of `bucket` can be stored under its own name.
pub fn check(bucket: &str, key: &str) -> Result<(), Unstorable> {
    if key.contains('\0') {
        return Err(Unstorable::Nul(key.to_string()));
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Unstorable::Segment(key.to_string()));
    }
    if let Some(len) = key.split('/').map(str::len).find(|&l| l > NAME_MAX) {
        return Err(Unstorable::LongSegment {
            key: key.to_string(),
            len,
        });
    }
    let max = max_key_len(bucket);
    if key.len() > max {
        return Err(Unstorable::TooLong {
            key: key.to_string(),
            bucket: bucket.to_string(),
            len: key.len(),
            max,
        });
    }
    Ok(())
}

/// The prefix of every sidecar file of `bucket`'s objects.
pub fn bucket_sidecar_prefix(bucket: &str) -> String {
    format!(".bucket-{}.object-", b64(bucket))
}

/// The sidecar files s3s-fs 0.14.1 keeps for a stored object: its
/// attributes (user metadata, content type) and its internal info (ETag,
/// checksums).
pub fn sidecar_names(bucket: &str, key: &str) -> [String; 2] {
    let base = format!("{}{}", bucket_sidecar_prefix(bucket), b64(key));
    [
        format!("{base}.metadata.json"),
        format!("{base}.internal.json"),
    ]
}

fn b64(s: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(s)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_keys_are_storable() {
        for key in [
            "a",
            "dir/big.bin",
            "with space/ünïcödé ✓.txt",
            "percent%20and+plus",
            "deep/er/and/deeper",
            ".hidden",
        ] {
            assert_eq!(check("images", key), Ok(()), "{key}");
        }
    }

    #[test]
    fn keys_the_file_system_would_fold_are_refused() {
        for key in ["/abs", "a//b", "a/./b", "a/../b", "..", ".", "dir/", ""] {
            assert!(
                matches!(check("b", key), Err(Unstorable::Segment(_))),
                "{key}"
            );
        }
        assert!(matches!(check("b", "a\0b"), Err(Unstorable::Nul(_))));
    }

    #[test]
    fn sidecar_names_fit_the_file_system() {
        for bucket in ["b", "images", &"x".repeat(63)] {
            let max = max_key_len(bucket);
            let key = "k".repeat(max);
            assert_eq!(check(bucket, &key), Ok(()));
            let upload = format!(
                ".bucket-{}.object-{}.upload-{}.metadata.json",
                b64(bucket),
                b64(&key),
                "0".repeat(36)
            );
            assert!(upload.len() <= NAME_MAX, "{bucket}: {}", upload.len());
            let longer = "k".repeat(max + 3);
            let upload = format!(
                ".bucket-{}.object-{}.upload-{}.metadata.json",
                b64(bucket),
                b64(&longer),
                "0".repeat(36)
            );
            assert!(upload.len() > NAME_MAX);
            assert!(matches!(
                check(bucket, &longer),
                Err(Unstorable::TooLong { .. })
            ));
        }
        // A bucket name of ordinary length leaves room for keys of well over 100 bytes.
        assert!(max_key_len("images") >= 120, "{}", max_key_len("images"));
        let segment = "s".repeat(NAME_MAX + 1);
        assert!(matches!(
            check("b", &segment),
            Err(Unstorable::LongSegment { .. } | Unstorable::TooLong { .. })
        ));
    }

    #[test]
    fn sidecars_are_named_as_s3s_fs_names_them() {
        // base64url("b") = "Yg", base64url("k/1") = "ay8x"
        assert_eq!(
            sidecar_names("b", "k/1"),
            [
                ".bucket-Yg.object-ay8x.metadata.json".to_string(),
                ".bucket-Yg.object-ay8x.internal.json".to_string()
            ]
        );
        assert!(sidecar_names("b", "k")[0].starts_with(&bucket_sidecar_prefix("b")));
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&md5_of(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    }

    fn md5_of(data: &[u8]) -> [u8; 16] {
        use s3s::crypto::{Checksum, Md5};
        let mut md5 = Md5::new();
        md5.update(data);
        md5.finalize()
    }
}
