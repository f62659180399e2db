//! The wasmtime engine: pooling allocator, epoch-based yielding, and an
//! on-disk cache of compiled components keyed by content hash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances. Guests yield to the async executor at each
/// tick so one busy component cannot starve others on the same thread.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource limits for instances, applied through the pooling allocator.
#[derive(Debug, Clone)]
pub struct InstanceLimits {
    /// Largest linear memory one instance may grow to.
    pub max_memory_bytes: usize,
    /// Instances that may exist at once (requests and messages in flight).
    pub max_instances: u32,
    /// Wall-clock budget per invocation, if any.
    pub max_execution_time: Option<Duration>,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            max_instances: 1000,
            max_execution_time: None,
        }
    }
}

pub fn build_engine(limits: &InstanceLimits) -> Result<Engine> {
    let mut config = Config::new();
    // `FADO_PROFILE=perfmap` names compiled wasm functions for `perf`
    // (/tmp/perf-PID.map), so profiles of the host show guest code by name.
    if std::env::var("FADO_PROFILE").as_deref() == Ok("perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);

    let mut pool = PoolingAllocationConfig::default();
    let instances = limits.max_instances;
    pool.total_component_instances(instances);
    // A spin-sdk component holds a handful of core instances (the app, the
    // WASI adapter, shims); allow several per component instance.
    pool.total_core_instances(instances.saturating_mul(8));
    pool.total_memories(instances.saturating_mul(4));
    pool.total_tables(instances.saturating_mul(4));
    pool.max_memories_per_component(8);
    pool.max_tables_per_component(8);
    pool.max_memory_size(limits.max_memory_bytes);
    pool.max_core_instances_per_component(32);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    // Keep freed memories and tables mapped, and reset only the pages an
    // instance dirtied (found with Linux's PAGEMAP_SCAN where the kernel has
    // it, 6.7+): the next instance in the slot then takes no page faults and
    // no madvise is needed. Page faults and decommits were about a tenth of
    // the host's CPU time under `fado-bench replication`'s upload load with
    // 64 KiB kept (measured with perf).
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(4 << 20);
    pool.table_keep_resident(256 << 10);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the process ends.
pub fn spawn_epoch_ticker(engine: Engine) {
    std::thread::Builder::new()
        .name("fado-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch thread");
}

/// Compiles components once and reuses the result across restarts.
#[derive(Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// `None` disables the on-disk cache.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    pub fn load(&self, engine: &Engine, bytes: &[u8], name: &str) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return compile(engine, bytes, name);
        };
        let key = cache_key(engine, bytes);
        let path = dir.join(format!("{key}.cwasm"));
        if let Some(c) = cached(engine, &path, name) {
            return Ok(c);
        }
        // Processes starting together (the demo's clusters all run the same
        // functions) compile a component once: the first takes the lock,
        // the others wait for it and load what it stored.
        let _lock = match lock(dir, &key) {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::warn!(component = name, "compiling without the cache lock: {e:#}");
                None
            }
        };
        if let Some(c) = cached(engine, &path, name) {
            return Ok(c);
        }
        let component = compile(engine, bytes, name)?;
        if let Err(e) = store(&component, dir, &path) {
            tracing::warn!(component = name, "could not write compile cache: {e:#}");
        }
        Ok(component)
    }
}

/// The compiled component stored at `path`, if there is a usable one.
fn cached(engine: &Engine, path: &Path, name: &str) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    match deserialize(engine, path) {
        Ok(c) => {
            tracing::debug!(component = name, path = %path.display(), "using cached compiled component");
            Some(c)
        }
        Err(e) => {
            tracing::warn!(component = name, path = %path.display(), "ignoring unusable compile cache entry: {e:#}");
            None
        }
    }
}

/// An exclusive lock on `<key>.lock` in the cache directory, held until the
/// file is dropped.
fn lock(dir: &Path, key: &str) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{key}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn compile(engine: &Engine, bytes: &[u8], name: &str) -> Result<Component> {
    let started = std::time::Instant::now();
    let c = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling component {name:?}"))?;
    tracing::info!(
        component = name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compiled component"
    );
    Ok(c)
}

/// The key covers the component bytes and everything about the engine that
/// affects compiled code (wasmtime version, target, settings).
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut h = Sha256::new();
    h.update(bytes);
    h.update(engine_hash.finish().to_le_bytes());
    hex::encode(h.finalize())
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> Result<Component> {
    // SAFETY: the file was written by `store` below from a component this
    // engine configuration compiled, in a cache directory only this user
    // writes; wasmtime still checks its header for engine compatibility.
    unsafe { Component::deserialize_file(engine, path) }.map_err(anyhow::Error::from)
}

fn store(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bytes = component.serialize().map_err(anyhow::Error::from)?;
    // Write then rename so a concurrent reader never sees a partial file.
    let tmp = tempfile_in(dir)?;
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> Result<PathBuf> {
    let nonce: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Ok(dir.join(format!(".tmp-{}-{nonce}", std::process::id())))
}
