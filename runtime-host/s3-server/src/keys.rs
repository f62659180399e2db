//! Object keys: S3's own rule for them, and the file name a key is kept under.
//!
//! S3 takes any UTF-8 string of 1 to 1024 bytes as a key (`a/../b`, `/x`,
//! `.` and a key that is a path prefix of another are all distinct, ordinary
//! keys), so a key never becomes a path. Each object lives in a file named
//! after the SHA-256 of its key, which every key maps to, is always 64 bytes
//! long and cannot escape its directory; the key itself is kept inside the
//! file (see `object.rs`).

use s3s::crypto::{Checksum, Sha256};

/// S3's longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Why S3 refuses a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("an object key must not be empty")]
    Empty,
    #[error("the key is {len} bytes; S3 keys are at most {MAX_KEY_LEN}")]
    TooLong { len: usize },
}

/// Whether S3 accepts `key` (s3s has already decoded it as UTF-8).
pub fn check(key: &str) -> Result<(), InvalidKey> {
    match key.len() {
        0 => Err(InvalidKey::Empty),
        len if len > MAX_KEY_LEN => Err(InvalidKey::TooLong { len }),
        _ => Ok(()),
    }
}

/// The name of the file that holds `key`'s object: the SHA-256 of the key
/// in hex.
pub fn file_name(key: &str) -> String {
    let mut sha = Sha256::new();
    sha.update(key.as_bytes());
    hex(sha.finalize().as_ref())
}

/// The directory (under a bucket's `objects/`) that `file_name` goes in:
/// its first two hex digits, so no directory holds more than a 256th of a
/// bucket.
pub fn fan_out(file_name: &str) -> &str {
    &file_name[..2]
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The bytes of lower- or upper-case hex; `None` if `s` is not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_key_of_1_to_1024_bytes_is_valid() {
        for key in [
            "a",
            "a/../b",
            "./x",
            "a//b",
            "/lead",
            "trail/",
            ".",
            "..",
            "\u{1}",
            "a\0b",
            "ünïcödé ✓",
            &"k".repeat(MAX_KEY_LEN),
            &format!("{}/x", "s".repeat(300)),
        ] {
            assert_eq!(check(key), Ok(()), "{key:?}");
        }
        assert_eq!(check(""), Err(InvalidKey::Empty));
        assert_eq!(
            check(&"k".repeat(MAX_KEY_LEN + 1)),
            Err(InvalidKey::TooLong { len: 1025 })
        );
        // 1024 bytes, not characters.
        assert!(check(&"é".repeat(513)).is_err());
    }

    #[test]
    fn file_names_are_fixed_length_hex_and_differ_per_key() {
        let names: Vec<String> = ["a", "a/", "a/b", ".", "..", "A"]
            .iter()
            .map(|k| file_name(k))
            .collect();
        for n in &names {
            assert_eq!(n.len(), 64);
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len());
        // SHA-256("a")
        assert_eq!(
            file_name("a"),
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
        assert_eq!(fan_out(&file_name("a")), "ca");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00abFF"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
