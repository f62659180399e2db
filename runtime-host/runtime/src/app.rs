//! Loading an application: manifest, runtime config, variables, component
//! binaries (compiled once, cached on disk) and the linker every instance
//! is made from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use fado_manifest::{AllowedHosts, ComponentSource, Manifest, RuntimeConfig};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store, StoreLimitsBuilder, UpdateDeadline};

use crate::capabilities::variables::VariableResolver;
use crate::capabilities::{Capabilities, ComponentIndex, StoreData};
use crate::engine::{ComponentCache, EPOCH_TICK, InstanceLimits};
use crate::redis_pool::RedisPool;

/// Host settings that are not part of the Spin manifest.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub manifest: PathBuf,
    /// `--variable name=value` pairs, in order (later wins).
    pub variables: Vec<(String, String)>,
    /// `--env NAME=VALUE` pairs given to every component's environment.
    pub env: Vec<(String, String)>,
    pub runtime_config_file: Option<PathBuf>,
    /// Where the default key-value store and staged files live.
    pub state_dir: Option<PathBuf>,
    /// Compiled-component cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    pub limits: InstanceLimits,
    /// Keep outbound HTTP connections alive between requests.
    pub outbound_http_pooling: bool,
}

/// What capabilities see when they configure themselves.
pub struct AppContext {
    pub manifest: Manifest,
    pub runtime_config: RuntimeConfig,
    pub resolver: VariableResolver,
    pub components: Vec<ComponentConfig>,
    pub state_dir: PathBuf,
    pub options: HostOptions,
    pub redis_pool: Arc<RedisPool>,
}

pub struct ComponentConfig {
    pub id: String,
    pub manifest: fado_manifest::Component,
    /// `allowed_outbound_hosts` with variables substituted.
    pub allowed_hosts: Arc<AllowedHosts>,
}

/// A loaded application, ready to instantiate components.
pub struct App {
    pub ctx: AppContext,
    pub engine: Engine,
    pub capabilities: Capabilities,
    components: Vec<LoadedComponent>,
    by_id: HashMap<String, ComponentIndex>,
}

pub struct LoadedComponent {
    pub id: String,
    pub component: Component,
    pub pre: InstancePre<StoreData>,
}

impl App {
    pub async fn load(options: HostOptions, engine: Engine) -> Result<Self> {
        let manifest = Manifest::load(&options.manifest)?;
        for w in &manifest.warnings {
            tracing::warn!("{}: {w}", manifest.file.display());
        }
        let runtime_config = match &options.runtime_config_file {
            Some(f) => RuntimeConfig::load(f)?,
            None => RuntimeConfig::default(),
        };
        let resolver =
            VariableResolver::new(&manifest, &options.variables, |k| std::env::var(k).ok())?;
        let state_dir = match &options.state_dir {
            Some(d) => d.clone(),
            None => manifest.dir.join(".fado"),
        };
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating state directory {}", state_dir.display()))?;

        let mut components = Vec::new();
        for (id, c) in &manifest.components {
            let mut rules = Vec::new();
            for (i, t) in c.allowed_outbound_hosts.iter().enumerate() {
                let field = || format!("component.{id}.allowed_outbound_hosts[{i}]");
                let rendered = resolver
                    .render(t)
                    .with_context(|| format!("{}: field `{}`", manifest.file.display(), field()))?;
                // A variable that renders empty drops the rule, as in Spin.
                if !rendered.trim().is_empty() {
                    fado_manifest::AllowedHost::parse(&rendered).map_err(|e| {
                        anyhow::anyhow!("{}: field `{}`: {e}", manifest.file.display(), field())
                    })?;
                    rules.push(rendered);
                }
            }
            components.push(ComponentConfig {
                id: id.clone(),
                manifest: c.clone(),
                allowed_hosts: Arc::new(AllowedHosts::parse(&rules)?),
            });
        }

        let ctx = AppContext {
            manifest,
            runtime_config,
            resolver,
            components,
            state_dir,
            options,
            redis_pool: Arc::new(RedisPool::default()),
        };
        let capabilities = Capabilities::configure(&ctx)?;
        let mut linker = Linker::new(&engine);
        Capabilities::add_to_linker(&mut linker)?;
        crate::triggers::redis::add_to_linker(&mut linker)?;

        let cache = ComponentCache::new(ctx.options.cache_dir.clone());
        let mut loaded = Vec::new();
        let mut by_id = HashMap::new();
        for c in &ctx.components {
            let bytes = read_source(&ctx.manifest, c).await?;
            let (engine2, cache2, id) = (engine.clone(), cache.clone(), c.id.clone());
            // Compilation is CPU-bound; keep it off the async executor.
            let component = tokio::task::spawn_blocking(move || cache2.load(&engine2, &bytes, &id))
                .await
                .context("compiling a component")??;
            let pre = linker.instantiate_pre(&component).map_err(|e| {
                anyhow::anyhow!(
                    "component {:?} cannot be linked: {e:#}\n(fado provides WASI 0.2, wasi:http, \
                     fermyon:spin/{{redis,mqtt,mysql,key-value,variables}}@2.0.0, \
                     spin:postgres/postgres@4.0.0 and wasi:keyvalue/*@0.2.0-draft2)",
                    c.id
                )
            })?;
            by_id.insert(c.id.clone(), loaded.len());
            loaded.push(LoadedComponent {
                id: c.id.clone(),
                component,
                pre,
            });
        }
        Ok(Self {
            ctx,
            engine,
            capabilities,
            components: loaded,
            by_id,
        })
    }

    pub fn component(&self, index: ComponentIndex) -> &LoadedComponent {
        &self.components[index]
    }

    pub fn component_index(&self, id: &str) -> Option<ComponentIndex> {
        self.by_id.get(id).copied()
    }

    /// A fresh store for one invocation of `component`, with memory limits
    /// and epoch-driven yielding (and the execution-time budget, if set).
    pub fn new_store(&self, component: ComponentIndex) -> Result<Store<StoreData>> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.ctx.options.limits.max_memory_bytes)
            .instances(64)
            .build();
        let data = self.capabilities.store_data(component, limits)?;
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| &mut d.limits);
        self.arm_deadline(&mut store);
        Ok(store)
    }

    /// Gives `store` a fresh execution-time budget (`--max-execution-time`)
    /// for its next call: a new store, or a reused instance's next request.
    pub fn arm_deadline(&self, store: &mut Store<StoreData>) {
        store.set_epoch_deadline(1);
        match self.ctx.options.limits.max_execution_time {
            None => store.epoch_deadline_async_yield_and_update(1),
            Some(budget) => {
                let ticks = (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
                let mut left = ticks;
                store.epoch_deadline_callback(move |_| {
                    left = left.saturating_sub(1);
                    if left == 0 {
                        Ok(UpdateDeadline::Interrupt)
                    } else {
                        Ok(UpdateDeadline::Yield(1))
                    }
                });
            }
        }
    }
}

async fn read_source(manifest: &Manifest, c: &ComponentConfig) -> Result<Vec<u8>> {
    let field = format!("component.{}.source", c.id);
    match &c.manifest.source {
        ComponentSource::Local(path) => read_local(manifest, &field, path),
        ComponentSource::Remote { url, digest } => fetch_remote(url, digest)
            .await
            .with_context(|| format!("{}: field `{field}`", manifest.file.display())),
    }
}

fn read_local(manifest: &Manifest, field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (has the component been built? see its [component.*.build] command)"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{}: field `{field}`: cannot read {}: {e}{hint}",
            manifest.file.display(),
            path.display()
        )
    })
}

async fn fetch_remote(url: &str, digest: &str) -> Result<Vec<u8>> {
    let expected = digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .to_ascii_lowercase();
    let bytes = reqwest::get(url)
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("downloading {url}"))?
        .bytes()
        .await
        .with_context(|| format!("downloading {url}"))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != expected {
        bail!("{url} has digest sha256:{actual}, but the manifest expects sha256:{expected}");
    }
    Ok(bytes.to_vec())
}
