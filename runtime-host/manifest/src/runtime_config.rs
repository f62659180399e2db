//! Spin's runtime-config file (`--runtime-config-file`), the parts a FaDO
//! host understands: key-value store backends, SQLite database files and
//! the limits of outbound MQTT and MySQL.
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//!
//! [key_value_store.cache]
//! type = "spin"            # local file, like the built-in default store
//! path = "cache.db"        # relative to the runtime-config file
//!
//! [key_value_store.counters]
//! type = "memory"          # fado only: process-local, gone at exit
//!
//! [key_value_store.routes]
//! type = "redis_near_cache"  # fado only: Redis, reads from process memory
//! url = "redis://127.0.0.1:6379"
//!
//! [sqlite_database.orders]
//! type = "spin"            # a local SQLite file
//! path = "orders.db"       # relative to the runtime-config file
//!
//! [outbound_mqtt]
//! max_payload_size_bytes = 65536   # larger publishes fail
//! max_connections = 10             # open connections; more wait
//!
//! [outbound_mysql]
//! max_connections = 10
//! ```

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;

use crate::ManifestError;

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    pub key_value_stores: IndexMap<String, KeyValueStoreConfig>,
    pub sqlite_databases: IndexMap<String, SqliteDatabaseConfig>,
    pub outbound_mqtt: OutboundMqttConfig,
    pub outbound_mysql: OutboundMysqlConfig,
}

/// `[outbound_mqtt]`, with Spin's fields; unset means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundMqttConfig {
    /// Largest payload one publish may carry.
    pub max_payload_size_bytes: Option<usize>,
    /// Connections open at once across the application; `open` waits for
    /// one to close beyond that.
    pub max_connections: Option<usize>,
}

/// `[outbound_mysql]`, with Spin's field; unset means no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundMysqlConfig {
    /// Connections open at once across the application; `open` waits for
    /// one to close beyond that.
    pub max_connections: Option<usize>,
}

/// Where one `[sqlite_database.<label>]` keeps its data: a local file
/// (Spin's `spin` type, the only one fado implements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDatabaseConfig {
    /// Absolute, or resolved against the runtime-config file's directory.
    pub path: PathBuf,
}

/// Where a key-value store label keeps its data. `U` is how a URL is
/// written: literal in a runtime-config file, a `{{ variable }}` template
/// in the manifest's `[application.tool.fado.key_value_stores]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueStoreConfig<U = String> {
    /// A local persistent store; `None` means the host's default location.
    Local { path: Option<PathBuf> },
    /// Every operation a Redis command (Spin's `redis` type).
    Redis { url: U },
    /// Process-local memory: shared by the process's instances, gone when
    /// it exits (fado only).
    Memory,
    /// Redis, with reads served from process memory and kept fresh by
    /// Redis's client-side-caching invalidations (fado only).
    RedisNearCache {
        url: U,
        /// Most memory the cached keys and values take (0: the host's
        /// default).
        max_bytes: usize,
    },
}

impl<U> KeyValueStoreConfig<U> {
    /// The same store with its URL turned into another form.
    pub fn try_map_url<V, E>(
        self,
        f: impl FnOnce(U) -> Result<V, E>,
    ) -> Result<KeyValueStoreConfig<V>, E> {
        Ok(match self {
            KeyValueStoreConfig::Local { path } => KeyValueStoreConfig::Local { path },
            KeyValueStoreConfig::Redis { url } => KeyValueStoreConfig::Redis { url: f(url)? },
            KeyValueStoreConfig::Memory => KeyValueStoreConfig::Memory,
            KeyValueStoreConfig::RedisNearCache { url, max_bytes } => {
                KeyValueStoreConfig::RedisNearCache {
                    url: f(url)?,
                    max_bytes,
                }
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    #[serde(default)]
    key_value_store: IndexMap<String, RawStore>,
    /// Checked by hand ([`sqlite_database`]) so each mistake names its field.
    #[serde(default)]
    sqlite_database: IndexMap<String, toml::Value>,
    #[serde(default)]
    outbound_mqtt: OutboundMqttConfig,
    #[serde(default)]
    outbound_mysql: OutboundMysqlConfig,
}

/// One `[key_value_store.<label>]` table (and one entry of the manifest's
/// `[application.tool.fado.key_value_stores]`).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RawStore {
    Spin {
        path: Option<PathBuf>,
    },
    Redis {
        url: String,
    },
    Memory {},
    RedisNearCache {
        url: String,
        #[serde(default)]
        max_bytes: usize,
    },
}

impl RawStore {
    /// Checks the store; `field` names it in errors, `base` resolves a
    /// relative path; `templated`: the URL may start with a `{{ variable }}`.
    pub(crate) fn check(
        self,
        file: &Path,
        field: &str,
        base: &Path,
        templated: bool,
    ) -> Result<KeyValueStoreConfig, ManifestError> {
        let url_ok = |url: String| {
            let bare = url.trim_start();
            if bare.starts_with("redis://")
                || bare.starts_with("rediss://")
                || (templated && bare.starts_with("{{"))
            {
                Ok(url)
            } else {
                Err(ManifestError::new(
                    file,
                    format!("{field}.url"),
                    format!("{url:?} is not a redis:// or rediss:// URL"),
                ))
            }
        };
        Ok(match self {
            RawStore::Spin { path } => KeyValueStoreConfig::Local {
                path: path.map(|p| base.join(p)),
            },
            RawStore::Redis { url } => KeyValueStoreConfig::Redis { url: url_ok(url)? },
            RawStore::Memory {} => KeyValueStoreConfig::Memory,
            RawStore::RedisNearCache { url, max_bytes } => KeyValueStoreConfig::RedisNearCache {
                url: url_ok(url)?,
                max_bytes,
            },
        })
    }
}

/// Top-level tables Spin accepts that this host does not implement; named
/// in the error so users know why their file is refused.
const UNSUPPORTED: &[&str] = &[
    "llm_compute",
    "config_provider",
    "variables_provider",
    "vault_variables_provider",
    "outbound_networking",
    "client_tls",
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
                    "is a Spin runtime-config section that fado does not support (supported: key_value_store, sqlite_database, outbound_mqtt, outbound_mysql)",
                ));
            }
        }
        let raw: RawRuntimeConfig = crate::deserialize_value(file, "", toml::Value::Table(table))?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut key_value_stores = IndexMap::new();
        for (label, store) in raw.key_value_store {
            let field = format!("key_value_store.{label}");
            key_value_stores.insert(label, store.check(file, &field, base, false)?);
        }
        let mut sqlite_databases = IndexMap::new();
        for (label, value) in raw.sqlite_database {
            let field = format!("sqlite_database.{label}");
            sqlite_databases.insert(label, sqlite_database(file, &field, base, value)?);
        }
        for (field, max) in [
            (
                "outbound_mqtt.max_connections",
                raw.outbound_mqtt.max_connections,
            ),
            (
                "outbound_mysql.max_connections",
                raw.outbound_mysql.max_connections,
            ),
        ] {
            if max == Some(0) {
                return Err(ManifestError::new(
                    file,
                    field,
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
        Ok(Self {
            key_value_stores,
            sqlite_databases,
            outbound_mqtt: raw.outbound_mqtt,
            outbound_mysql: raw.outbound_mysql,
        })
    }
}

/// One `[sqlite_database.<label>]` table: `type = "spin"` and a `path`.
/// Spin's other type (`libsql`, a remote server) is refused by name, and a
/// missing `path` is an error here, where Spin would use a database in
/// memory (gone at exit) that a user rarely means to ask for.
fn sqlite_database(
    file: &Path,
    field: &str,
    base: &Path,
    value: toml::Value,
) -> Result<SqliteDatabaseConfig, ManifestError> {
    let err = |sub: &str, message: String| {
        let f = if sub.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{sub}")
        };
        ManifestError::new(file, f, message)
    };
    let toml::Value::Table(mut table) = value else {
        return Err(err(
            "",
            "expected a table with type = \"spin\" and path = \"<file>\"".into(),
        ));
    };
    match table.remove("type") {
        Some(toml::Value::String(t)) if t == "spin" => {}
        Some(toml::Value::String(t)) if t == "libsql" => {
            return Err(err(
                "type",
                "\"libsql\" (a remote libSQL server) is not supported by fado; use type = \"spin\", a local file".into(),
            ));
        }
        Some(toml::Value::String(t)) => {
            return Err(err(
                "type",
                format!("unknown database type {t:?}; fado supports type = \"spin\", a local file"),
            ));
        }
        Some(_) => return Err(err("type", "expected a string: \"spin\"".into())),
        None => return Err(err("type", "missing; fado supports type = \"spin\"".into())),
    }
    let path = match table.remove("path") {
        Some(toml::Value::String(p)) if !p.trim().is_empty() => base.join(p),
        Some(toml::Value::String(_)) => return Err(err("path", "must not be empty".into())),
        Some(_) => return Err(err("path", "expected a string: the database file".into())),
        None => {
            return Err(err(
                "path",
                "missing: the database file, relative to this runtime-config file's directory"
                    .into(),
            ));
        }
    };
    if let Some(key) = table.keys().next() {
        return Err(err(key, "unknown field (expected type and path)".into()));
    }
    Ok(SqliteDatabaseConfig { path })
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
        let err = RuntimeConfig::parse(Path::new("rt.toml"), "[llm_compute]\ntype = \"spin\"\n")
            .unwrap_err();
        assert_eq!(err.field, "llm_compute");
        let err = RuntimeConfig::parse(
            Path::new("rt.toml"),
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"http://a\"\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "key_value_store.x.url");
    }

    #[test]
    fn parses_sqlite_databases() {
        let cfg = RuntimeConfig::parse(
            Path::new("/etc/fado/rt.toml"),
            r#"
            [sqlite_database.default]
            type = "spin"
            path = "data/main.db"
            [sqlite_database.orders]
            type = "spin"
            path = "/var/lib/orders.db"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.sqlite_databases["default"].path,
            Path::new("/etc/fado/data/main.db")
        );
        assert_eq!(
            cfg.sqlite_databases["orders"].path,
            Path::new("/var/lib/orders.db")
        );
        assert!(cfg.key_value_stores.is_empty());
    }

    #[test]
    fn sqlite_database_errors_name_the_field() {
        let field_of = |text: &str| {
            let e = RuntimeConfig::parse(Path::new("rt.toml"), text).unwrap_err();
            assert_eq!(e.file, Path::new("rt.toml"));
            (e.field.clone(), e.to_string())
        };
        let (f, m) = field_of("[sqlite_database.x]\ntype = \"mysql\"\npath = \"a.db\"\n");
        assert_eq!(f, "sqlite_database.x.type");
        assert!(m.contains("\"mysql\"") && m.contains("\"spin\""), "{m}");
        let (f, m) = field_of("[sqlite_database.x]\ntype = \"libsql\"\nurl = \"https://a\"\n");
        assert_eq!(f, "sqlite_database.x.type");
        assert!(m.contains("not supported"), "{m}");
        let (f, _) = field_of("[sqlite_database.x]\npath = \"a.db\"\n");
        assert_eq!(f, "sqlite_database.x.type");
        let (f, m) = field_of("[sqlite_database.x]\ntype = \"spin\"\n");
        assert_eq!(f, "sqlite_database.x.path");
        assert!(m.contains("missing"), "{m}");
        let (f, _) = field_of("[sqlite_database.x]\ntype = \"spin\"\npath = 3\n");
        assert_eq!(f, "sqlite_database.x.path");
        let (f, _) = field_of("[sqlite_database.x]\ntype = \"spin\"\npath = \"\"\n");
        assert_eq!(f, "sqlite_database.x.path");
        let (f, _) = field_of("[sqlite_database.x]\ntype = \"spin\"\npath = \"a.db\"\nsize = 1\n");
        assert_eq!(f, "sqlite_database.x.size");
        let (f, _) = field_of("sqlite_database = { x = 1 }\n");
        assert_eq!(f, "sqlite_database.x");
    }

    #[test]
    fn parses_outbound_limits_as_spin_does() {
        let cfg = RuntimeConfig::parse(
            Path::new("rt.toml"),
            "[outbound_mqtt]\nmax_payload_size_bytes = 1024\nmax_connections = 4\n\
             [outbound_mysql]\nmax_connections = 2\n",
        )
        .unwrap();
        assert_eq!(
            cfg.outbound_mqtt,
            OutboundMqttConfig {
                max_payload_size_bytes: Some(1024),
                max_connections: Some(4)
            }
        );
        assert_eq!(cfg.outbound_mysql.max_connections, Some(2));
        let empty = RuntimeConfig::parse(Path::new("rt.toml"), "[outbound_mqtt]\n").unwrap();
        assert_eq!(empty.outbound_mqtt, OutboundMqttConfig::default());
        let err =
            RuntimeConfig::parse(Path::new("rt.toml"), "[outbound_mysql]\npool = 3\n").unwrap_err();
        assert!(err.to_string().contains("pool"), "{err}");
        let err = RuntimeConfig::parse(
            Path::new("rt.toml"),
            "[outbound_mqtt]\nmax_connections = 0\n",
        )
        .unwrap_err();
        assert_eq!(err.field, "outbound_mqtt.max_connections");
    }
}
