//! Object addresses and how they map to local files, without I/O: the
//! `BUCKET/KEY` notation, keys for files of an uploaded directory, and
//! local paths for downloaded keys (never outside the destination).

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} names no bucket: write BUCKET or BUCKET/KEY")]
    NoBucket(String),
    #[error("{}: the name is not valid UTF-8, so it cannot be an object key", .0.display())]
    NotUtf8(PathBuf),
    #[error("{}: not a plain relative path below the directory", .0.display())]
    NotRelative(PathBuf),
    #[error("key {key:?} has no place below the destination ({reason})")]
    UnsafeKey { key: String, reason: &'static str },
}

/// `BUCKET` or `BUCKET/KEY` (the key may itself contain `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    pub bucket: String,
    /// Empty when only the bucket was named.
    pub key: String,
}

impl ObjectPath {
    pub fn parse(s: &str) -> Result<Self, PathError> {
        let (bucket, key) = s.split_once('/').unwrap_or((s, ""));
        if bucket.is_empty() {
            return Err(PathError::NoBucket(s.to_string()));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// The key as a "directory": empty, or ending with `/`.
    pub fn dir_prefix(&self) -> String {
        dir_prefix(&self.key)
    }
}

impl std::fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.bucket)
        } else {
            write!(f, "{}/{}", self.bucket, self.key)
        }
    }
}

/// `prefix` as a directory: `""` stays empty, `a` becomes `a/`.
pub fn dir_prefix(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

/// The key one uploaded file gets: `key` itself, or, when `key` is empty
/// or ends with `/` (a "directory"), that prefix and the file's name.
pub fn key_for_file(key: &str, file: &Path) -> Result<String, PathError> {
    if !key.is_empty() && !key.ends_with('/') {
        return Ok(key.to_string());
    }
    let name = file
        .file_name()
        .ok_or_else(|| PathError::NotRelative(file.to_path_buf()))?;
    let name = name
        .to_str()
        .ok_or_else(|| PathError::NotUtf8(file.to_path_buf()))?;
    Ok(format!("{key}{name}"))
}

/// The key of a file at `relative` below an uploaded directory: the prefix
/// as a directory, then the relative path with `/` between its parts.
pub fn key_for_relative(prefix: &str, relative: &Path) -> Result<String, PathError> {
    let mut parts = Vec::new();
    for c in relative.components() {
        match c {
            Component::Normal(p) => parts.push(
                p.to_str()
                    .ok_or_else(|| PathError::NotUtf8(relative.to_path_buf()))?,
            ),
            _ => return Err(PathError::NotRelative(relative.to_path_buf())),
        }
    }
    if parts.is_empty() {
        return Err(PathError::NotRelative(relative.to_path_buf()));
    }
    Ok(format!("{}{}", dir_prefix(prefix), parts.join("/")))
}

/// Where `key`, listed under `prefix` (a directory prefix, see
/// [`dir_prefix`]), goes below `dest`. Keys that would leave `dest` (`..`),
/// name it twice (`a//b`) or are absolute are refused rather than
/// rewritten, so two keys never land on one file. A key ending with `/` (a
/// "directory marker") maps to a directory: the result ends with it.
pub fn local_path_for(dest: &Path, prefix: &str, key: &str) -> Result<PathBuf, PathError> {
    let unsafe_key = |reason| PathError::UnsafeKey {
        key: key.to_string(),
        reason,
    };
    let relative = key
        .strip_prefix(prefix)
        .ok_or(unsafe_key("it is not below the prefix"))?;
    let relative = relative.strip_suffix('/').unwrap_or(relative);
    if relative.is_empty() {
        return Ok(dest.to_path_buf());
    }
    let mut out = dest.to_path_buf();
    for part in relative.split('/') {
        match part {
            "" => return Err(unsafe_key("it has an empty path segment")),
            "." | ".." => return Err(unsafe_key("it has a `.` or `..` segment")),
            p if p.contains('\0') || p.contains('\\') => {
                return Err(unsafe_key("a segment holds a NUL or a backslash"));
            }
            p => out.push(p),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_split_at_the_first_slash() {
        let p = ObjectPath::parse("images/2026/a.jpg").unwrap();
        assert_eq!(
            (p.bucket.as_str(), p.key.as_str()),
            ("images", "2026/a.jpg")
        );
        assert_eq!(p.to_string(), "images/2026/a.jpg");
        let p = ObjectPath::parse("images").unwrap();
        assert_eq!(p.key, "");
        assert_eq!(p.dir_prefix(), "");
        assert_eq!(ObjectPath::parse("b/x").unwrap().dir_prefix(), "x/");
        assert!(matches!(
            ObjectPath::parse("/k"),
            Err(PathError::NoBucket(_))
        ));
    }

    #[test]
    fn single_files_take_their_name_under_a_directory_key() {
        let f = Path::new("/tmp/photo.jpg");
        assert_eq!(key_for_file("", f).unwrap(), "photo.jpg");
        assert_eq!(key_for_file("2026/", f).unwrap(), "2026/photo.jpg");
        assert_eq!(key_for_file("2026/x.jpg", f).unwrap(), "2026/x.jpg");
    }

    #[test]
    fn directory_files_keep_their_relative_paths() {
        assert_eq!(
            key_for_relative("backup", Path::new("a/b.txt")).unwrap(),
            "backup/a/b.txt"
        );
        assert_eq!(key_for_relative("", Path::new("b.txt")).unwrap(), "b.txt");
        assert!(key_for_relative("", Path::new("../b")).is_err());
        assert!(key_for_relative("", Path::new("")).is_err());
    }

    #[test]
    fn downloaded_keys_stay_below_the_destination() {
        let d = Path::new("/out");
        assert_eq!(
            local_path_for(d, "backup/", "backup/a/b.txt").unwrap(),
            Path::new("/out/a/b.txt")
        );
        assert_eq!(local_path_for(d, "", "x").unwrap(), Path::new("/out/x"));
        assert_eq!(
            local_path_for(d, "p/", "p/dir/").unwrap(),
            Path::new("/out/dir")
        );
        for bad in ["p/../etc/passwd", "p/a//b", "p/./a", "p/a\\b", "q/a"] {
            assert!(
                local_path_for(d, "p/", bad).is_err(),
                "{bad} should be refused"
            );
        }
        // An absolute-looking key: its leading slash is an empty segment.
        assert!(local_path_for(d, "", "/etc/passwd").is_err());
    }
}
