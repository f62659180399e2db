//! Loading an application: manifest, runtime config, variables, component
//! binaries (compiled once, cached on disk) and the linker every instance
//! is made from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use fado_manifest::{AllowedHosts, ComponentSource, Manifest, RuntimeConfig};
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
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
    /// Where the default key-value store, the default SQLite database and
    /// staged files live.
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
            let pre = match linker.instantiate_pre(&component) {
                Ok(pre) => pre,
                Err(e) => match first_unprovided_import(&engine, &linker, &component) {
                    Some(interface) => {
                        return Err(UnprovidedImport {
                            component: c.id.clone(),
                            interface,
                        }
                        .into());
                    }
                    // Every interface is there, but something in one differs.
                    None => bail!(
                        "component {:?} cannot be linked: {e:#}\n(fado provides WASI 0.2, wasi:http, \
                         fermyon:spin/{{redis,mqtt,mysql,key-value,variables,sqlite}}@2.0.0, spin:postgres/postgres@4.0.0, \
                         spin:sqlite/sqlite@3.0.0 and wasi:keyvalue/{{store,atomics,batch}}@0.2.0-draft2)",
                        c.id
                    ),
                },
            };
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

/// A component imports an interface no capability provides (Spin's LLM,
/// SQLite, MQTT or MySQL interfaces, or anything else).
#[derive(Debug, thiserror::Error)]
#[error("component {component:?} imports {interface}, which fado does not provide")]
pub struct UnprovidedImport {
    pub component: String,
    pub interface: String,
}

/// The first interface `component` imports that `linker` has nothing under,
/// neither that name nor, for a versioned one, a version wasmtime links in
/// its place (`wasi:io/poll@0.2.0` is served by `@0.2.12`, as
/// `fermyon:spin/key-value@2.0.0` would be by `@2.1.0`).
fn first_unprovided_import(
    engine: &Engine,
    linker: &Linker<StoreData>,
    component: &Component,
) -> Option<String> {
    component
        .component_type()
        .imports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(name, _)| name)
        .find(|name| !provides(engine, linker, name))
        .map(str::to_string)
}

/// Whether `linker` has an instance `name` or one on its version track.
///
/// The linker cannot be asked directly. What it shows: defining a name it
/// already has fails (shadowing is off); and a name not defined exactly is
/// looked up on its track (`@2` for `2.x.y`, `@0.2` for `0.2.x`), where
/// the highest version defined wins. So, once a function is defined at the
/// track's lowest version, an empty instance imported at another version
/// links exactly when a higher version is on the track (an instance), not
/// just the function. An empty instance is no probe by itself: a missing
/// one links as empty.
fn provides(engine: &Engine, linker: &Linker<StoreData>, name: &str) -> bool {
    // Defines `name` as a function in a copy of `linker`: the copy, or
    // `None` if `name` was there already.
    let with_function = |name: &str| {
        let mut copy = linker.clone();
        copy.allow_shadowing(false);
        let added = copy.root().func_new(name, |_, _, _, _| Ok(())).is_ok();
        added.then_some(copy)
    };
    if with_function(name).is_none() {
        return true;
    }
    let Some((lowest, other)) = track_versions(name) else {
        return false;
    };
    if with_function(&other).is_none() {
        return true;
    }
    let Some(marked) = with_function(&lowest) else {
        return true;
    };
    match Component::new(engine, empty_instance_import(&other)) {
        Ok(probe) => marked.instantiate_pre(&probe).is_ok(),
        // Cannot tell; the caller's generic error is then the one shown.
        Err(_) => true,
    }
}

/// For `ns:pkg/iface@X.Y.Z` on a version track (no pre-release, not
/// `0.0.z`), two names on that track: its lowest version, and another.
fn track_versions(name: &str) -> Option<(String, String)> {
    let (base, version) = name.split_once('@')?;
    let core = version.split('+').next()?;
    if core.contains('-') {
        return None;
    }
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor)), Some(Some(_)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let (a, b) = match (major, minor) {
        (0, 0) => return None,
        (0, minor) => (0, minor),
        (major, _) => (major, 0),
    };
    Some((format!("{base}@{a}.{b}.0"), format!("{base}@{a}.{b}.1")))
}

/// The binary of a component whose one import is an instance named `name`
/// with no members.
fn empty_instance_import(name: &str) -> Vec<u8> {
    use wasm_encoder::{
        ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    let mut imports = ComponentImportSection::new();
    imports.import(name, ComponentTypeRef::Instance(0));
    let mut component = wasm_encoder::Component::new();
    component.section(&types).section(&imports);
    component.finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A component importing empty instances named `names`, in order.
    fn importing(engine: &Engine, names: &[&str]) -> Component {
        use wasm_encoder::{
            ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
        };
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        let mut imports = ComponentImportSection::new();
        for name in names {
            imports.import(*name, ComponentTypeRef::Instance(0));
        }
        let mut component = wasm_encoder::Component::new();
        component.section(&types).section(&imports);
        Component::new(engine, component.finish()).unwrap()
    }

    #[test]
    fn version_tracks() {
        assert_eq!(
            track_versions("a:b/c@2.3.4"),
            Some(("a:b/c@2.0.0".into(), "a:b/c@2.0.1".into()))
        );
        assert_eq!(
            track_versions("a:b/c@0.2.12+x"),
            Some(("a:b/c@0.2.0".into(), "a:b/c@0.2.1".into()))
        );
        for none in [
            "a:b/c",
            "a:b/c@0.0.3",
            "a:b/c@1.0.0-rc1",
            "a:b/c@1.0",
            "a:b/c@x.1.2",
        ] {
            assert_eq!(track_versions(none), None, "{none}");
        }
    }

    #[test]
    fn finds_the_first_interface_the_host_lacks() {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        Capabilities::add_to_linker(&mut linker).unwrap();
        let first =
            |names: &[&str]| first_unprovided_import(&engine, &linker, &importing(&engine, names));
        // Older and newer releases on a version track resolve to what the
        // host has.
        assert_eq!(
            first(&[
                "wasi:io/poll@0.2.0",
                "wasi:sockets/tcp@0.2.3",
                "wasi:cli/environment@0.2.99",
                "fermyon:spin/key-value@2.0.0",
                "fermyon:spin/variables@2.3.1",
                "spin:postgres/postgres@4.0.0",
                "fermyon:spin/sqlite@2.0.0",
                "spin:sqlite/sqlite@3.0.0",
                "fermyon:spin/mqtt@2.0.0",
                "fermyon:spin/mysql@2.0.0",
            ]),
            None
        );
        assert_eq!(
            first(&[
                "wasi:io/poll@0.2.0",
                "fermyon:spin/llm@2.0.0",
                "fermyon:spin/sqlite@2.0.0",
            ]),
            Some("fermyon:spin/llm@2.0.0".to_string())
        );
        for lacking in [
            "spin:mqtt/mqtt@3.0.0",
            "spin:mysql/mysql@3.0.0",
            "spin:sqlite/sqlite@4.0.0",
            "wasi:io/poll@0.3.0",
            "wasi:io/poll@0.2.0-rc",
            "fermyon:spin/key-value@3.0.0",
            "spin:postgres/postgres@3.0.0",
            "fermyon:spin/redis",
        ] {
            assert_eq!(first(&[lacking]), Some(lacking.to_string()));
        }
    }
}
