//! Key-value stores, through both interfaces Spin 3.x gives components:
//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue/{store,atomics,batch}`
//! at `0.2.0-draft2`. A component opens the labels its manifest lists in
//! `key_value_stores`; what backs each label comes from the runtime-config
//! file, else from the manifest's `[application.tool.fado.key_value_stores]`,
//! else (for `default` only) a local file under the state directory:
//!
//! - [`local`]: a persistent file (Spin's `spin` type);
//! - [`redis_store`]: Redis, a command per operation (Spin's `redis` type);
//! - [`memory`]: process-local memory (fado's `memory` type);
//! - [`near_cache`]: Redis with reads from process memory, kept fresh by
//!   Redis's invalidation pushes (fado's `redis_near_cache` type).

mod local;
mod memory;
pub mod near_cache;
mod redis_store;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use fado_manifest::KeyValueStoreConfig;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::key_value as v2;
use crate::bindings::wasi::keyvalue::{atomics, batch, store as wasi_store};

/// Keys one `list-keys` page (or one Redis SCAN step) returns.
const PAGE: usize = 1000;

/// Open stores one instance may hold at once.
const MAX_OPEN_STORES: usize = 64;

/// What can go wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("{0}")]
    Backend(String),
    #[error("key-value store {0:?}: Redis is unreachable and the key is not cached")]
    Unreachable(String),
    #[error("the value at {0:?} is not a whole number")]
    NotANumber(String),
    #[error("the number at {0:?} would overflow")]
    Overflow(String),
    #[error("{0:?} is not a cursor this store gave")]
    BadCursor(String),
}

pub type KvResult<T> = std::result::Result<T, KvError>;

/// A counter's value, stored as decimal text (as Redis stores it).
fn parse_counter(key: &str, bytes: &[u8]) -> KvResult<i64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| KvError::NotANumber(key.to_string()))
}

/// What backs one label.
#[derive(Clone)]
pub enum Backend {
    Local(Arc<local::LocalStore>),
    Redis(Arc<redis_store::RedisStore>),
    Memory(Arc<memory::MemoryStore>),
    NearCache(Arc<near_cache::NearCache>),
}

impl Backend {
    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        match self {
            Backend::Memory(m) => Ok(m.get(key)),
            Backend::NearCache(c) => c.get(key).await,
            _ => Ok(self
                .get_many(std::slice::from_ref(&key.to_string()))
                .await?
                .pop()
                .flatten()),
        }
    }

    pub async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        match self {
            Backend::Local(l) => l.get_many(keys.to_vec()).await,
            Backend::Redis(r) => r.get_many(keys).await,
            Backend::Memory(m) => Ok(m.get_many(keys)),
            Backend::NearCache(c) => c.get_many(keys).await,
        }
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> KvResult<()> {
        match self {
            Backend::Memory(m) => {
                m.set(key, value);
                Ok(())
            }
            Backend::NearCache(c) => c.set(key, value).await,
            _ => self.set_many(vec![(key, value)]).await,
        }
    }

    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        match self {
            Backend::Local(l) => l.set_many(pairs).await,
            Backend::Redis(r) => r.set_many(pairs).await,
            Backend::Memory(m) => {
                m.set_many(pairs);
                Ok(())
            }
            Backend::NearCache(c) => c.set_many(pairs).await,
        }
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        match self {
            Backend::Local(l) => l.delete_many(keys).await,
            Backend::Redis(r) => r.delete_many(keys).await,
            Backend::Memory(m) => {
                m.delete_many(&keys);
                Ok(())
            }
            Backend::NearCache(c) => c.delete_many(keys).await,
        }
    }

    pub async fn exists(&self, key: &str) -> KvResult<bool> {
        match self {
            Backend::Memory(m) => Ok(m.exists(key)),
            _ => Ok(self.get(key).await?.is_some()),
        }
    }

    /// One page of keys and the cursor of the next, if any.
    pub async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> KvResult<(Vec<String>, Option<String>)> {
        match self {
            Backend::Local(l) => {
                let (keys, more) = l.list_keys(cursor).await?;
                let next = if more { keys.last().cloned() } else { None };
                Ok((keys, next))
            }
            Backend::Memory(m) => {
                let (keys, more) = m.list_keys(cursor.as_deref());
                let next = if more { keys.last().cloned() } else { None };
                Ok((keys, next))
            }
            Backend::Redis(r) => r.list_keys(cursor).await,
            Backend::NearCache(c) => c.list_keys(cursor).await,
        }
    }

    /// Every key (Spin 2's `get-keys`).
    pub async fn all_keys(&self) -> KvResult<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let (keys, next) = self.list_keys(cursor).await?;
            out.extend(keys);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // SCAN may return a key twice; Spin's answer has each once.
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub async fn increment(&self, key: String, delta: i64) -> KvResult<i64> {
        match self {
            Backend::Local(l) => l.increment(key, delta).await,
            Backend::Redis(r) => r.increment(key, delta).await,
            Backend::Memory(m) => m.increment(&key, delta),
            Backend::NearCache(c) => c.increment(key, delta).await,
        }
    }

    /// The value a compare-and-swap starts from. A near-cache's copy will
    /// do (the swap fails if it was stale), saving a round trip when it is
    /// fresh, as it nearly always is.
    async fn read_for_swap(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.get(key).await
    }

    /// The value after a failed swap: the store's own, never a cached copy.
    async fn read_after_failed_swap(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        match self {
            Backend::NearCache(c) => c.read_through(key).await,
            _ => self.get(key).await,
        }
    }

    pub async fn compare_and_swap(
        &self,
        key: String,
        seen: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> KvResult<bool> {
        match self {
            Backend::Local(l) => l.compare_and_swap(key, seen, value).await,
            Backend::Redis(r) => r.compare_and_swap(key, seen, value).await,
            Backend::Memory(m) => Ok(m.compare_and_swap(&key, seen.as_deref(), value)),
            Backend::NearCache(c) => c.compare_and_swap(key, seen, value).await,
        }
    }
}

pub struct KeyValue {
    stores: Arc<HashMap<String, Backend>>,
    allowed: Vec<Arc<Vec<String>>>,
}

impl KeyValue {
    /// The backend of `label`, for host code (tests, diagnostics).
    pub fn backend(&self, label: &str) -> Option<&Backend> {
        self.stores.get(label)
    }
}

pub struct InstanceKeyValue {
    stores: Arc<HashMap<String, Backend>>,
    allowed: Arc<Vec<String>>,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's open store (Spin 2's `store`, WASI's `bucket`).
pub struct KeyValueHandle {
    backend: Backend,
}

/// The host side of a guest's `cas`: the key and the value it saw.
pub struct CasHandle {
    backend: Backend,
    key: String,
    seen: Option<Vec<u8>>,
}

impl Capability for KeyValue {
    type InstanceState = InstanceKeyValue;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceKeyValue,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceKeyValue>>(linker, get)?;
        wasi_store::add_to_linker::<StoreData, HasSelf<InstanceKeyValue>>(linker, get)?;
        atomics::add_to_linker::<StoreData, HasSelf<InstanceKeyValue>>(linker, get)?;
        batch::add_to_linker::<StoreData, HasSelf<InstanceKeyValue>>(linker, get)?;
        Ok(())
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let file = app.manifest.file.display();
        // Manifest defaults first, then the runtime-config file label by label.
        let mut configs: HashMap<String, KeyValueStoreConfig> = HashMap::new();
        for (label, cfg) in &app.manifest.key_value_stores {
            let rendered = cfg.clone().try_map_url(|t| {
                app.resolver.render(&t).map_err(|e| {
                    anyhow::anyhow!(
                        "{file}: field `application.tool.fado.key_value_stores.{label}.url`: {e:#}"
                    )
                })
            })?;
            configs.insert(label.clone(), rendered);
        }
        for (label, cfg) in &app.runtime_config.key_value_stores {
            configs.insert(label.clone(), cfg.clone());
        }
        configs
            .entry("default".to_string())
            .or_insert(KeyValueStoreConfig::Local { path: None });
        // Check every label before opening anything, so configuration
        // mistakes are reported ahead of I/O problems.
        for c in &app.components {
            for (i, label) in c.manifest.key_value_stores.iter().enumerate() {
                if !configs.contains_key(label) {
                    anyhow::bail!(
                        "{file}: field `component.{}.key_value_stores[{i}]`: no key-value store {label:?}; \
                         only \"default\" exists unless a runtime-config file defines [key_value_store.{label}] \
                         or the manifest [application.tool.fado.key_value_stores.{label}]",
                        c.id
                    );
                }
            }
        }
        let mut stores = HashMap::new();
        let mut allowed = Vec::new();
        for c in &app.components {
            for label in &c.manifest.key_value_stores {
                if stores.contains_key(label) {
                    continue;
                }
                let backend = match &configs[label] {
                    KeyValueStoreConfig::Local { path } => {
                        let path = path.clone().unwrap_or_else(|| {
                            app.state_dir
                                .join("key_value")
                                .join(format!("{label}.redb"))
                        });
                        Backend::Local(Arc::new(local::LocalStore::open(&path)?))
                    }
                    KeyValueStoreConfig::Redis { url } => Backend::Redis(Arc::new(
                        redis_store::RedisStore::new(app.redis_pool.clone(), url.clone()),
                    )),
                    KeyValueStoreConfig::Memory => Backend::Memory(Arc::default()),
                    KeyValueStoreConfig::RedisNearCache { url, max_bytes } => Backend::NearCache(
                        Arc::new(near_cache::NearCache::start(label, url, *max_bytes)?),
                    ),
                };
                stores.insert(label.clone(), backend);
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

/// Why a label cannot be opened.
enum Refused {
    NotListed,
    Missing,
    TooMany,
}

impl InstanceKeyValue {
    fn open_label(
        &mut self,
        label: &str,
    ) -> std::result::Result<Resource<KeyValueHandle>, Refused> {
        if !self.allowed.iter().any(|l| l == label) {
            return Err(Refused::NotListed);
        }
        let backend = self.stores.get(label).cloned().ok_or(Refused::Missing)?;
        if self.open >= MAX_OPEN_STORES {
            return Err(Refused::TooMany);
        }
        let r = self
            .table
            .push(KeyValueHandle { backend })
            .map_err(|_| Refused::TooMany)?;
        self.open += 1;
        Ok(r)
    }

    fn backend(&self, r: &Resource<KeyValueHandle>) -> std::result::Result<Backend, String> {
        self.table
            .get(r)
            .map(|h| h.backend.clone())
            .map_err(|e| e.to_string())
    }

    fn close<T: 'static>(&mut self, r: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

// ---- fermyon:spin/key-value@2.0.0 ----------------------------------------

fn v2_error(e: KvError) -> v2::Error {
    v2::Error::Other(e.to_string())
}

impl v2::Host for InstanceKeyValue {}

impl v2::HostStore for InstanceKeyValue {
    async fn open(
        &mut self,
        label: String,
    ) -> std::result::Result<Resource<KeyValueHandle>, v2::Error> {
        self.open_label(&label).map_err(|r| match r {
            Refused::NotListed => v2::Error::AccessDenied,
            Refused::Missing => v2::Error::NoSuchStore,
            Refused::TooMany => v2::Error::StoreTableFull,
        })
    }

    async fn get(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<Option<Vec<u8>>, v2::Error> {
        let b = self.backend(&r).map_err(v2::Error::Other)?;
        b.get(&key).await.map_err(v2_error)
    }

    async fn set(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> std::result::Result<(), v2::Error> {
        let b = self.backend(&r).map_err(v2::Error::Other)?;
        b.set(key, value).await.map_err(v2_error)
    }

    async fn delete(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<(), v2::Error> {
        let b = self.backend(&r).map_err(v2::Error::Other)?;
        b.delete_many(vec![key]).await.map_err(v2_error)
    }

    async fn exists(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<bool, v2::Error> {
        let b = self.backend(&r).map_err(v2::Error::Other)?;
        b.exists(&key).await.map_err(v2_error)
    }

    async fn get_keys(
        &mut self,
        r: Resource<KeyValueHandle>,
    ) -> std::result::Result<Vec<String>, v2::Error> {
        let b = self.backend(&r).map_err(v2::Error::Other)?;
        b.all_keys().await.map_err(v2_error)
    }

    async fn drop(&mut self, r: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.close(r)
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 ------------------------------------------

fn wasi_error(e: KvError) -> wasi_store::Error {
    wasi_store::Error::Other(e.to_string())
}

impl wasi_store::Host for InstanceKeyValue {
    async fn open(
        &mut self,
        identifier: String,
    ) -> std::result::Result<Resource<KeyValueHandle>, wasi_store::Error> {
        self.open_label(&identifier).map_err(|r| match r {
            Refused::NotListed => wasi_store::Error::AccessDenied,
            Refused::Missing => wasi_store::Error::NoSuchStore,
            Refused::TooMany => wasi_store::Error::Other(format!(
                "at most {MAX_OPEN_STORES} stores may be open at once"
            )),
        })
    }
}

impl wasi_store::HostBucket for InstanceKeyValue {
    async fn get(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<Option<Vec<u8>>, wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.get(&key).await.map_err(wasi_error)
    }

    async fn set(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> std::result::Result<(), wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.set(key, value).await.map_err(wasi_error)
    }

    async fn delete(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<(), wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.delete_many(vec![key]).await.map_err(wasi_error)
    }

    async fn exists(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<bool, wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.exists(&key).await.map_err(wasi_error)
    }

    async fn list_keys(
        &mut self,
        r: Resource<KeyValueHandle>,
        cursor: Option<String>,
    ) -> std::result::Result<wasi_store::KeyResponse, wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        let (keys, cursor) = b.list_keys(cursor).await.map_err(wasi_error)?;
        Ok(wasi_store::KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, r: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.close(r)
    }
}

impl atomics::Host for InstanceKeyValue {
    async fn increment(
        &mut self,
        r: Resource<KeyValueHandle>,
        key: String,
        delta: i64,
    ) -> std::result::Result<i64, wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.increment(key, delta).await.map_err(wasi_error)
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> std::result::Result<(), atomics::CasError> {
        let store_error = |e: String| atomics::CasError::StoreError(wasi_store::Error::Other(e));
        let (backend, key, seen) = {
            let h = self
                .table
                .get(&cas)
                .map_err(|e| store_error(e.to_string()))?;
            (h.backend.clone(), h.key.clone(), h.seen.clone())
        };
        match backend.compare_and_swap(key.clone(), seen, value).await {
            Ok(true) => {
                self.table
                    .delete(cas)
                    .map_err(|e| store_error(e.to_string()))?;
                Ok(())
            }
            // The guest gets its `cas` back, holding the value there now,
            // so it can try again from it.
            Ok(false) => {
                let now = backend
                    .read_after_failed_swap(&key)
                    .await
                    .map_err(|e| store_error(e.to_string()))?;
                self.table
                    .get_mut(&cas)
                    .map_err(|e| store_error(e.to_string()))?
                    .seen = now;
                Err(atomics::CasError::CasFailed(cas))
            }
            Err(e) => Err(atomics::CasError::StoreError(wasi_error(e))),
        }
    }
}

impl atomics::HostCas for InstanceKeyValue {
    async fn new(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> std::result::Result<Resource<CasHandle>, wasi_store::Error> {
        let backend = self.backend(&bucket).map_err(wasi_store::Error::Other)?;
        let seen = backend.read_for_swap(&key).await.map_err(wasi_error)?;
        self.table
            .push(CasHandle { backend, key, seen })
            .map_err(|e| wasi_store::Error::Other(e.to_string()))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> std::result::Result<Option<Vec<u8>>, wasi_store::Error> {
        let h = self
            .table
            .get(&cas)
            .map_err(|e| wasi_store::Error::Other(e.to_string()))?;
        Ok(h.seen.clone())
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for InstanceKeyValue {
    async fn get_many(
        &mut self,
        r: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> std::result::Result<Vec<(String, Option<Vec<u8>>)>, wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        let values = b.get_many(&keys).await.map_err(wasi_error)?;
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn set_many(
        &mut self,
        r: Resource<KeyValueHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> std::result::Result<(), wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.set_many(key_values).await.map_err(wasi_error)
    }

    async fn delete_many(
        &mut self,
        r: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> std::result::Result<(), wasi_store::Error> {
        let b = self.backend(&r).map_err(wasi_store::Error::Other)?;
        b.delete_many(keys).await.map_err(wasi_error)
    }
}
