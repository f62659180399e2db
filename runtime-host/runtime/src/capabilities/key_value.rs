//! `fermyon:spin/key-value@2.0.0`: the stores a component lists in
//! `key_value_stores`. `default` is a local persistent store under the state
//! directory (like Spin's `.spin/sqlite_key_value.db`); a runtime-config file
//! in Spin's format can back any label with Redis or another local file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use fado_manifest::KeyValueStoreConfig;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::key_value::{self as v2, Error};
use crate::redis_pool::RedisPool;

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

/// Open stores one instance may hold at once.
const MAX_OPEN_STORES: usize = 64;

#[derive(Clone)]
enum Backend {
    Local(Arc<redb::Database>),
    Redis { pool: Arc<RedisPool>, url: Arc<str> },
}

pub struct KeyValue {
    stores: Arc<HashMap<String, Backend>>,
    allowed: Vec<Arc<Vec<String>>>,
}

pub struct InstanceKeyValue {
    stores: Arc<HashMap<String, Backend>>,
    allowed: Arc<Vec<String>>,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's `store` resource.
pub struct KeyValueHandle {
    backend: Backend,
}

impl Capability for KeyValue {
    type InstanceState = InstanceKeyValue;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceKeyValue,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceKeyValue>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let mut configs = app.runtime_config.key_value_stores.clone();
        configs
            .entry("default".to_string())
            .or_insert(KeyValueStoreConfig::Local { path: None });
        // Check every label before opening anything, so configuration
        // mistakes are reported ahead of I/O problems.
        for c in &app.components {
            for (i, label) in c.manifest.key_value_stores.iter().enumerate() {
                if !configs.contains_key(label) {
                    anyhow::bail!(
                        "{}: field `component.{}.key_value_stores[{i}]`: no key-value store {label:?}; \
                         only \"default\" exists unless a runtime-config file defines [key_value_store.{label}]",
                        app.manifest.file.display(),
                        c.id
                    );
                }
            }
        }
        let mut stores = HashMap::new();
        let mut allowed = Vec::new();
        for c in &app.components {
            for label in &c.manifest.key_value_stores {
                let cfg = &configs[label];
                if !stores.contains_key(label) {
                    let backend = match cfg {
                        KeyValueStoreConfig::Local { path } => {
                            let path = path.clone().unwrap_or_else(|| {
                                app.state_dir
                                    .join("key_value")
                                    .join(format!("{label}.redb"))
                            });
                            Backend::Local(Arc::new(open_local(&path)?))
                        }
                        KeyValueStoreConfig::Redis { url } => Backend::Redis {
                            pool: app.redis_pool.clone(),
                            url: url.as_str().into(),
                        },
                    };
                    stores.insert(label.clone(), backend);
                }
            }
            allowed.push(Arc::new(c.manifest.key_value_stores.clone()));
        }
        Ok(Self {
            stores: Arc::new(stores),
            allowed,
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceKeyValue> {
        Ok(InstanceKeyValue {
            stores: self.stores.clone(),
            allowed: self.allowed[component].clone(),
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

fn open_local(path: &Path) -> Result<redb::Database> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    redb::Database::create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
            "key-value store {} is in use by another process (is another fado running on this state directory? pass --state-dir)",
            path.display()
        ),
        e => anyhow::Error::from(e).context(format!("opening key-value store {}", path.display())),
    })
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl InstanceKeyValue {
    fn backend(&self, r: &Resource<KeyValueHandle>) -> Result<Backend, Error> {
        Ok(self.table.get(r).map_err(other)?.backend.clone())
    }
}

/// Runs a redb operation off the async executor (commits fsync).
async fn local<T: Send + 'static>(
    db: Arc<redb::Database>,
    f: impl FnOnce(&redb::Database) -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(other)?
        .map_err(other)
}

fn read_table<T>(
    db: &redb::Database,
    f: impl FnOnce(&redb::ReadOnlyTable<&str, &[u8]>) -> Result<T, redb::Error>,
    empty: T,
) -> Result<T, redb::Error> {
    let txn = db.begin_read()?;
    match txn.open_table(TABLE) {
        Ok(t) => f(&t),
        // Nothing was ever written to this store.
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(empty),
        Err(e) => Err(e.into()),
    }
}

impl v2::Host for InstanceKeyValue {}

impl v2::HostStore for InstanceKeyValue {
    async fn open(&mut self, label: String) -> Result<Resource<KeyValueHandle>, Error> {
        if !self.allowed.contains(&label) {
            return Err(Error::AccessDenied);
        }
        let backend = self.stores.get(&label).cloned().ok_or(Error::NoSuchStore)?;
        if self.open >= MAX_OPEN_STORES {
            return Err(Error::StoreTableFull);
        }
        let r = self
            .table
            .push(KeyValueHandle { backend })
            .map_err(|_| Error::StoreTableFull)?;
        self.open += 1;
        Ok(r)
    }

    async fn get(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        match self.backend(&r)? {
            Backend::Local(db) => {
                local(db, move |db| {
                    read_table(
                        db,
                        |t| Ok(t.get(key.as_str())?.map(|v| v.value().to_vec())),
                        None,
                    )
                })
                .await
            }
            Backend::Redis { pool, url } => {
                let mut c = pool.get(&url).await.map_err(other)?;
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .map_err(other)
            }
        }
    }

    async fn set(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        match self.backend(&r)? {
            Backend::Local(db) => {
                local(db, move |db| {
                    let txn = db.begin_write()?;
                    txn.open_table(TABLE)?
                        .insert(key.as_str(), value.as_slice())?;
                    txn.commit()?;
                    Ok(())
                })
                .await
            }
            Backend::Redis { pool, url } => {
                let mut c = pool.get(&url).await.map_err(other)?;
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .query_async(&mut c)
                    .await
                    .map_err(other)
            }
        }
    }

    async fn delete(&mut self, r: Resource<KeyValueHandle>, key: String) -> Result<(), Error> {
        match self.backend(&r)? {
            Backend::Local(db) => {
                local(db, move |db| {
                    let txn = db.begin_write()?;
                    txn.open_table(TABLE)?.remove(key.as_str())?;
                    txn.commit()?;
                    Ok(())
                })
                .await
            }
            Backend::Redis { pool, url } => {
                let mut c = pool.get(&url).await.map_err(other)?;
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<i64>(&mut c)
                    .await
                    .map(drop)
                    .map_err(other)
            }
        }
    }

    async fn exists(&mut self, r: Resource<KeyValueHandle>, key: String) -> Result<bool, Error> {
        match self.backend(&r)? {
            Backend::Local(db) => {
                local(db, move |db| {
                    read_table(db, |t| Ok(t.get(key.as_str())?.is_some()), false)
                })
                .await
            }
            Backend::Redis { pool, url } => {
                let mut c = pool.get(&url).await.map_err(other)?;
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .map_err(other)
            }
        }
    }

    async fn get_keys(&mut self, r: Resource<KeyValueHandle>) -> Result<Vec<String>, Error> {
        match self.backend(&r)? {
            Backend::Local(db) => {
                local(db, |db| {
                    read_table(
                        db,
                        |t| {
                            let mut keys = Vec::new();
                            for item in t.iter()? {
                                keys.push(item?.0.value().to_string());
                            }
                            Ok(keys)
                        },
                        Vec::new(),
                    )
                })
                .await
            }
            Backend::Redis { pool, url } => {
                // SCAN rather than KEYS so a large keyspace does not block the server.
                let mut c = pool.get(&url).await.map_err(other)?;
                let mut cursor: u64 = 0;
                let mut keys = Vec::new();
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut c)
                        .await
                        .map_err(other)?;
                    keys.extend(batch);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(keys)
            }
        }
    }

    async fn drop(&mut self, r: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open -= 1;
        Ok(())
    }
}
