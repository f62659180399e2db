//! The file format of a stored object (and of an uploaded part): the bytes,
//! then a trailer describing them.
//!
//! ```text
//! [ body: size bytes ][ JSON description ][ JSON length: u32 LE ][ MAGIC: 8 bytes ]
//! ```
//!
//! The description (key, size, ETag, attributes) is only known once the body
//! has been streamed in, so it goes after it: a PUT writes its temporary file
//! in one pass, with no buffering or rewriting, and byte `n` of the object is
//! byte `n` of the file, so ranged reads need no offset. Because the bytes and
//! their description share one file, which replaces the old one with a single
//! rename, a reader that opened it sees one version whole: no object is ever
//! half written or described by another's attributes.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Ends every object and part file.
pub const MAGIC: &[u8; 8] = b"FADOS3v1";
/// The fixed end of a file: the description's length and [`MAGIC`].
pub const FOOTER_LEN: u64 = 4 + MAGIC.len() as u64;
/// A description larger than this means the file is not ours (S3 allows
/// 2 KiB of user metadata and 1 KiB keys).
const MAX_DESCRIPTION: u32 = 1 << 20;

/// What is stored about an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The key, exactly as written: the file name is only its hash.
    pub key: String,
    pub size: u64,
    /// Without quotes: the hex MD5, or `<hex>-<parts>` for multipart uploads.
    pub etag: String,
    /// Milliseconds since the Unix epoch.
    pub modified_ms: u64,
    #[serde(default)]
    pub attrs: Attrs,
    #[serde(default, skip_serializing_if = "Checksums::is_empty")]
    pub checksums: Checksums,
}

/// The headers an object is served with, as its writer gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// An RFC 3339 date-time (the `Expires` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect_location: Option<String>,
    /// `x-amz-meta-*`, names without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Whole-object checksums a client sent and the server verified (base64, as
/// in the `x-amz-checksum-*` headers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64nvme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Checksums {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What is stored about an uploaded part besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    pub part_number: i32,
    pub size: u64,
    /// The hex MD5 of the part.
    pub etag: String,
    pub modified_ms: u64,
}

/// The record of a multipart upload in progress (`upload.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub key: String,
    pub initiated_ms: u64,
    #[serde(default)]
    pub attrs: Attrs,
}

/// The footer that follows the body: the description, its length, [`MAGIC`].
pub fn trailer<T: Serialize>(description: &T) -> io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(description).map_err(io::Error::other)?;
    let len = u32::try_from(out.len())
        .ok()
        .filter(|&l| l <= MAX_DESCRIPTION)
        .ok_or_else(|| io::Error::other("object description too large"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(MAGIC);
    Ok(out)
}

/// Reads the description at the end of `file` and returns it with the
/// length of the body before it. The file's position is left anywhere.
pub fn read_trailer<T: DeserializeOwned>(file: &mut (impl Read + Seek)) -> io::Result<(T, u64)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let total = file.seek(SeekFrom::End(0))?;
    if total < FOOTER_LEN {
        return Err(invalid("too short for an object file"));
    }
    file.seek(SeekFrom::Start(total - FOOTER_LEN))?;
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.read_exact(&mut footer)?;
    if &footer[4..] != MAGIC {
        return Err(invalid("not an object file (no trailer)"));
    }
    let len = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
    if len > MAX_DESCRIPTION || u64::from(len) > total - FOOTER_LEN {
        return Err(invalid("object file trailer has an impossible length"));
    }
    let body_len = total - FOOTER_LEN - u64::from(len);
    file.seek(SeekFrom::Start(body_len))?;
    let mut json = vec![0u8; len as usize];
    file.read_exact(&mut json)?;
    let description = serde_json::from_slice(&json)
        .map_err(|e| invalid(&format!("object file description: {e}")))?;
    Ok((description, body_len))
}

/// Reads an object file's description and checks it against the file.
pub fn read_object_meta(file: &mut (impl Read + Seek)) -> io::Result<ObjectMeta> {
    let (meta, body_len): (ObjectMeta, u64) = read_trailer(file)?;
    if meta.size != body_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "object file holds {body_len} bytes, its description says {}",
                meta.size
            ),
        ));
    }
    Ok(meta)
}

/// Reads a part file's description and checks it against the file.
pub fn read_part_meta(file: &mut (impl Read + Seek)) -> io::Result<PartMeta> {
    let (meta, body_len): (PartMeta, u64) = read_trailer(file)?;
    if meta.size != body_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "part file holds {body_len} bytes, its description says {}",
                meta.size
            ),
        ));
    }
    Ok(meta)
}

pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn meta(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size,
            etag: "d41d8cd98f00b204e9800998ecf8427e".to_string(),
            modified_ms: 1_700_000_000_123,
            attrs: Attrs {
                content_type: Some("text/plain".into()),
                metadata: BTreeMap::from([("owner".into(), "zoe".into())]),
                ..Attrs::default()
            },
            checksums: Checksums::default(),
        }
    }

    #[test]
    fn a_trailer_follows_the_body_and_reads_back() {
        for key in ["a", "a/../b", "\u{1}\0", &"k".repeat(1024)] {
            let body = b"hello, world".to_vec();
            let m = meta(key, body.len() as u64);
            let mut file = body.clone();
            file.extend(trailer(&m).unwrap());
            let mut cursor = Cursor::new(file.clone());
            assert_eq!(read_object_meta(&mut cursor).unwrap(), m);
            assert_eq!(&file[..body.len()], body.as_slice());
        }
    }

    #[test]
    fn an_empty_body_is_fine() {
        let m = meta("empty", 0);
        let file = trailer(&m).unwrap();
        assert_eq!(read_object_meta(&mut Cursor::new(file)).unwrap(), m);
    }

    #[test]
    fn damaged_files_are_refused() {
        let m = meta("k", 5);
        let mut file = b"12345".to_vec();
        file.extend(trailer(&m).unwrap());
        // Truncated, a byte short of its body, no magic, or too short.
        assert!(read_object_meta(&mut Cursor::new(file[..file.len() - 1].to_vec())).is_err());
        assert!(read_object_meta(&mut Cursor::new(file[1..].to_vec())).is_err());
        assert!(read_object_meta(&mut Cursor::new(b"just some bytes".to_vec())).is_err());
        assert!(read_object_meta(&mut Cursor::new(b"x".to_vec())).is_err());
        // A length pointing before the start.
        let mut bad = file.clone();
        let at = bad.len() - FOOTER_LEN as usize;
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_object_meta(&mut Cursor::new(bad)).is_err());
    }

    #[test]
    fn times_round_trip_in_milliseconds() {
        let t = from_millis(1_700_000_000_123);
        assert_eq!(millis(t), 1_700_000_000_123);
    }
}
