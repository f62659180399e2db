//! Spin's runtime-config file (`--runtime-config-file`), the parts a FaDO
//! host understands: key-value store backends.
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//!
//! [key_value_store.cache]
//! type = "spin"            # local file, like the built-in default store
//! path = "cache.db"        # relative to the runtime-config file
//! ```

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::ManifestError;

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub key_value_stores: IndexMap<String, KeyValueStoreConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueStoreConfig {
    /// A local persistent store; `None` means the host's default location.
    Local {
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    #[serde(default)]
    key_value_store: IndexMap<String, RawStore>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum RawStore {
    Spin { path: Option<PathBuf> },
    Redis { url: String },
}

/// Top-level tables Spin accepts that this host does not implement; named
/// in the error so users know why their file is refused.
const UNSUPPORTED: &[&str] = &[
    "sqlite_database",
    "llm_compute",
    "config_provider",
    "variables_provider",
    "vault_variables_provider",
    "outbound_networking",
    "client_tls",
    "outbound_mqtt",
    "otel",
];

impl RuntimeConfig {
    pub fn load(file: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ManifestError::new(file, "", format!("cannot read file: {e}")))?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self, ManifestError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ManifestError::new(file, "", format!("invalid TOML: {e}")))?;
        for key in table.keys() {
            if UNSUPPORTED.contains(&key.as_str()) {
                return Err(ManifestError::new(
                    file,
                    key,
                    "is a Spin runtime-config section that fado does not support (supported: key_value_store)",
                ));
            }
        }
        let raw: RawRuntimeConfig = crate::deserialize_value(file, "", toml::Value::Table(table))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut key_value_stores = IndexMap::new();
        for (label, store) in raw.key_value_store {
            let cfg = match store {
                RawStore::Spin { path } => KeyValueStoreConfig::Local {
                    path: path.map(|p| base.join(p)),
                },
                RawStore::Redis { url } => {
                    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                        return Err(ManifestError::new(
                            file,
                            format!("key_value_store.{label}.url"),
                            format!("{url:?} is not a redis:// or rediss:// URL"),
                        ));
                    }
                    KeyValueStoreConfig::Redis { url }
                }
            };
            key_value_stores.insert(label, cfg);
        }
        Ok(Self { key_value_stores })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stores() {
        let cfg = RuntimeConfig::parse(
            Path::new("/etc/fado/rt.toml"),
            r#"
            [key_value_store.default]
            type = "redis"
            url = "redis://127.0.0.1:6379"
            [key_value_store.local]
            type = "spin"
            path = "kv.db"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.key_value_stores["default"],
            KeyValueStoreConfig::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(
            cfg.key_value_stores["local"],
            KeyValueStoreConfig::Local {
                path: Some("/etc/fado/kv.db".into())
            }
        );
    }

    #[test]
    fn errors_name_file_and_field() {
        let err = RuntimeConfig::parse(
            Path::new("rt.toml"),
            "[key_value_store.default]\ntype = \"dynamo\"\n",
        )
        .unwrap_err();
        assert_eq!(err.file, Path::new("rt.toml"));
        assert!(err.field.starts_with("key_value_store.default"), "{err}");
        let err =
            RuntimeConfig::parse(Path::new("rt.toml"), "[sqlite_database.default]\n").unwrap_err();
        assert_eq!(err.field, "sqlite_database");
        let err = RuntimeConfig::parse(
            Path::new("rt.toml"),
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"http://a\"\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "key_value_store.x.url");
    }
}
