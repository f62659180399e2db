//! The Spin application manifest, version 2, as `fado up` and `fado serve`
//! read it: parsed, validated, and turned into a model the host runs.
//!
//! Every error names the file and the field (a dotted path such as
//! `component.catalog.allowed_outbound_hosts[1]`) so a user can fix it
//! without guessing.

pub mod allowed_hosts;
pub mod routes;
pub mod runtime_config;
pub mod template;

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use allowed_hosts::{AllowedHost, AllowedHosts};
pub use routes::{RouteMatch, Router};
pub use runtime_config::{
    KeyValueStoreConfig, OutboundMqttConfig, OutboundMysqlConfig, RuntimeConfig,
    SqliteDatabaseConfig,
};
pub use template::Template;

/// A problem with a manifest or runtime-config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    /// Dotted path of the offending field; empty for whole-file problems.
    pub field: String,
    pub message: String,
}

impl ManifestError {
    pub fn new(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: field `{}`: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ManifestError {}

/// A validated Spin application.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub file: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    pub application: Application,
    pub variables: IndexMap<String, Variable>,
    pub http_triggers: Vec<HttpTrigger>,
    pub redis_triggers: Vec<RedisTrigger>,
    pub components: IndexMap<String, Component>,
    /// Periodic wake-ups the host publishes (`[application.tool.fado] sweeps`).
    pub sweeps: Vec<Sweep>,
    /// Key-value store backends the application asks of a fado host
    /// (`[application.tool.fado.key_value_stores]`); a runtime-config file
    /// overrides them label by label.
    pub key_value_stores: IndexMap<String, KeyValueStoreConfig<Template>>,
    /// Non-fatal findings (e.g. duplicated routes), to be logged.
    pub warnings: Vec<String>,
}

/// A periodic Redis publish that drives a component's sweep. Spin ignores
/// `tool` tables, so under Spin the same wake-up comes from elsewhere (a
/// Kubernetes CronJob, see infra/k8s).
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub every: std::time::Duration,
    pub channel: String,
    pub payload: String,
    pub address: Template,
}

#[derive(Debug, Clone, Default)]
pub struct Application {
    pub name: String,
    pub version: String,
    pub description: String,
    pub authors: Vec<String>,
    /// `[application.trigger.redis] address`
    pub redis_address: Option<Template>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variable {
    pub description: Option<String>,
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Path(String),
    /// Reachable only from other components (`http://<id>.spin.internal`).
    Private,
}

#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub id: String,
    pub route: Route,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct RedisTrigger {
    pub id: String,
    pub channel: String,
    /// The trigger's own address, else the application's.
    pub address: Template,
    pub component: String,
}

#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// An absolute path to a `.wasm` file.
    Local(PathBuf),
    /// A remote component, fetched and checked against its SHA-256 digest.
    Remote { url: String, digest: String },
}

#[derive(Debug, Clone)]
pub enum FileMount {
    /// A glob relative to the manifest directory, mounted at the same relative path under `/`.
    Pattern(String),
    /// A directory (relative to the manifest directory) mounted at an absolute guest path.
    Directory {
        source: PathBuf,
        destination: String,
    },
}

#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    pub source: ComponentSource,
    pub description: String,
    /// Component variables: name → template over application variables.
    pub variables: IndexMap<String, Template>,
    pub environment: IndexMap<String, String>,
    pub files: Vec<FileMount>,
    pub exclude_files: Vec<String>,
    /// Rules, possibly templated; resolved once variables are known.
    pub allowed_outbound_hosts: Vec<Template>,
    pub key_value_stores: Vec<String>,
    /// SQLite database labels the component may open (`sqlite_databases`).
    pub sqlite_databases: Vec<String>,
    pub build: Option<BuildConfig>,
    /// How many HTTP requests one instance may serve, one after another
    /// (`[component.<id>.tool.fado] instance_reuse`; 1, Spin's behaviour,
    /// unless set). Only for components that keep no state between
    /// requests: a reused instance keeps its memory.
    pub instance_reuse: u32,
}

#[derive(Debug, Clone)]
pub struct BuildConfig {
    pub commands: Vec<String>,
    pub workdir: Option<String>,
    pub watch: Vec<String>,
}

// ---- raw TOML shapes ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: IndexMap<String, RawVariable>,
    #[serde(default)]
    trigger: IndexMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: IndexMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    targets: Vec<toml::Value>,
    #[serde(default)]
    trigger: IndexMap<String, toml::Table>,
    #[serde(default)]
    tool: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    description: Option<String>,
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFadoTool {
    #[serde(default)]
    sweeps: Vec<RawSweep>,
    #[serde(default)]
    key_value_stores: IndexMap<String, runtime_config::RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    name: String,
    every: String,
    channel: String,
    #[serde(default = "default_sweep_payload")]
    payload: String,
    address: Option<String>,
}

fn default_sweep_payload() -> String {
    "sweep".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisAppConfig {
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    id: Option<String>,
    route: RawRoute,
    component: toml::Value,
    executor: Option<RawExecutor>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    id: Option<String>,
    channel: String,
    address: Option<String>,
    component: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    description: String,
    #[serde(default)]
    variables: IndexMap<String, String>,
    #[serde(default)]
    environment: IndexMap<String, String>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    targets: Option<Vec<toml::Value>>,
    build: Option<RawBuild>,
    #[serde(default)]
    tool: toml::Table,
    dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    dependencies: toml::Table,
}

/// `[component.<id>.tool.fado]`: fado's own settings for one component
/// (Spin ignores `tool` tables).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponentTool {
    instance_reuse: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: toml::Value,
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteSource {
    url: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    source: String,
    destination: String,
}

/// Deserializes `value` into `T`, reporting the failing field under `prefix`.
pub(crate) fn deserialize_value<T: DeserializeOwned>(
    file: &Path,
    prefix: &str,
    value: toml::Value,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let field = match (prefix.is_empty(), inner == ".") {
            (_, true) => prefix.to_string(),
            (true, false) => inner,
            (false, false) => format!("{prefix}.{inner}"),
        };
        ManifestError::new(file, field, e.into_inner().message().to_string())
    })
}

impl Manifest {
    /// Reads and validates a manifest file.
    pub fn load(file: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ManifestError::new(file, "", format!("cannot read manifest: {e}")))?;
        Self::parse(file, &text)
    }

    /// Parses manifest text; `file` names it in errors and anchors relative paths.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ManifestError> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ManifestError::new(file, "", format!("invalid TOML: {e}")))?;
        match table.get("spin_manifest_version") {
            Some(toml::Value::Integer(2)) => {}
            Some(toml::Value::Integer(1)) | Some(toml::Value::String(_)) => {
                return Err(ManifestError::new(
                    file,
                    "spin_manifest_version",
                    "only manifest version 2 is supported (run `spin doctor` to upgrade a version 1 manifest)",
                ));
            }
            Some(other) => {
                return Err(ManifestError::new(
                    file,
                    "spin_manifest_version",
                    format!("expected 2, found {other}"),
                ));
            }
            None => {
                return Err(ManifestError::new(
                    file,
                    "spin_manifest_version",
                    "missing; a Spin manifest starts with `spin_manifest_version = 2`",
                ));
            }
        }
        let raw: RawManifest = deserialize_value(file, "", toml::Value::Table(table))?;
        let dir = file
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let _ = (
            &raw.spin_manifest_version,
            &raw.application.targets,
            &raw.application.tool,
        );
        Loader {
            file,
            dir: &dir,
            components: IndexMap::new(),
            inline_count: 0,
        }
        .load(raw)
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.get(id)
    }

    /// The HTTP router over public routes.
    pub fn http_router(&self) -> Result<(Router, Vec<String>), ManifestError> {
        let public = self.http_triggers.iter().filter_map(|t| match &t.route {
            Route::Path(p) => Some((p.as_str(), t.component.as_str())),
            Route::Private => None,
        });
        Router::build(public)
            .map_err(|e| ManifestError::new(&self.file, "trigger.http", e.to_string()))
    }
}

struct Loader<'a> {
    file: &'a Path,
    dir: &'a Path,
    components: IndexMap<String, Component>,
    inline_count: usize,
}

impl Loader<'_> {
    fn err(&self, field: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError::new(self.file, field, message)
    }

    fn load(mut self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        if raw.application.name.trim().is_empty() {
            return Err(self.err("application.name", "must not be empty"));
        }
        let mut variables = IndexMap::new();
        for (name, v) in raw.variables {
            let field = format!("variables.{name}");
            template::validate_variable_name(&name)
                .map_err(|reason| self.err(&field, format!("invalid variable name: {reason}")))?;
            if v.required && v.default.is_some() {
                return Err(self.err(
                    &field,
                    "a variable cannot be both required and have a default",
                ));
            }
            if !v.required && v.default.is_none() {
                return Err(self.err(
                    &field,
                    "a variable needs either `default = \"...\"` or `required = true`",
                ));
            }
            variables.insert(
                name,
                Variable {
                    description: v.description,
                    default: v.default,
                    required: v.required,
                    secret: v.secret,
                },
            );
        }

        let mut redis_address = None;
        for (kind, cfg) in raw.application.trigger {
            let field = format!("application.trigger.{kind}");
            match kind.as_str() {
                "redis" => {
                    let cfg: RawRedisAppConfig =
                        deserialize_value(self.file, &field, toml::Value::Table(cfg))?;
                    if let Some(a) = cfg.address {
                        redis_address =
                            Some(self.template(&format!("{field}.address"), &a, &variables)?);
                    }
                }
                // Spin 3 ignores these global HTTP settings; accepting them keeps old manifests working.
                "http" => {}
                other => {
                    return Err(self.err(
                        field,
                        format!("trigger type {other:?} is not supported by fado (supported: http, redis)"),
                    ));
                }
            }
        }

        for (id, table) in raw.component {
            let field = format!("component.{id}");
            template::validate_component_id(&id)
                .map_err(|reason| self.err(&field, format!("invalid component id: {reason}")))?;
            let c: RawComponent = deserialize_value(self.file, &field, toml::Value::Table(table))?;
            let component = self.component(&id, &field, c, &variables)?;
            self.components.insert(id, component);
        }

        let mut http_triggers = Vec::new();
        let mut redis_triggers = Vec::new();
        for (kind, entries) in raw.trigger {
            for (i, table) in entries.into_iter().enumerate() {
                let field = format!("trigger.{kind}[{i}]");
                match kind.as_str() {
                    "http" => {
                        let t: RawHttpTrigger =
                            deserialize_value(self.file, &field, toml::Value::Table(table))?;
                        if let Some(exec) = &t.executor
                            && exec.kind != "spin"
                        {
                            return Err(self.err(
                                format!("{field}.executor.type"),
                                format!(
                                    "executor {:?} is not supported by fado (supported: \"spin\")",
                                    exec.kind
                                ),
                            ));
                        }
                        let route = match t.route {
                            RawRoute::Path(p) => Route::Path(routes::normalize(&p)),
                            RawRoute::Private { private: true } => Route::Private,
                            RawRoute::Private { private: false } => {
                                return Err(self.err(
                                    format!("{field}.route"),
                                    "must be a route string or `{ private = true }`",
                                ));
                            }
                        };
                        let component = self.component_ref(
                            &format!("{field}.component"),
                            t.component,
                            &variables,
                        )?;
                        http_triggers.push(HttpTrigger {
                            id: t.id.unwrap_or_else(|| format!("http-{i}")),
                            route,
                            component,
                        });
                    }
                    "redis" => {
                        let t: RawRedisTrigger =
                            deserialize_value(self.file, &field, toml::Value::Table(table))?;
                        if t.channel.is_empty() {
                            return Err(self.err(format!("{field}.channel"), "must not be empty"));
                        }
                        let address = match t.address {
                            Some(a) => self.template(&format!("{field}.address"), &a, &variables)?,
                            None => redis_address.clone().ok_or_else(|| {
                                self.err(
                                    format!("{field}.address"),
                                    "no Redis address: set this trigger's `address` or `[application.trigger.redis] address`",
                                )
                            })?,
                        };
                        let component = self.component_ref(
                            &format!("{field}.component"),
                            t.component,
                            &variables,
                        )?;
                        redis_triggers.push(RedisTrigger {
                            id: t.id.unwrap_or_else(|| format!("redis-{i}")),
                            channel: t.channel,
                            address,
                            component,
                        });
                    }
                    other => {
                        return Err(self.err(
                            format!("trigger.{other}"),
                            format!("trigger type {other:?} is not supported by fado (supported: http, redis)"),
                        ));
                    }
                }
            }
        }
        let (sweeps, key_value_stores) = self.fado_tool(
            raw.application.tool.get("fado").cloned(),
            &redis_address,
            &variables,
        )?;

        if http_triggers.is_empty() && redis_triggers.is_empty() {
            return Err(self.err("trigger", "the application has no triggers"));
        }

        // Private routes and service chaining must name real components.
        for (id, c) in &self.components {
            for (i, rule) in c.allowed_outbound_hosts.iter().enumerate() {
                if !rule.is_literal() {
                    continue;
                }
                let parsed = AllowedHost::parse(rule.as_str()).expect("validated when loaded");
                if let Some(target) = parsed.service_chaining_target()
                    && target != "*"
                    && !self.components.contains_key(target)
                {
                    return Err(self.err(
                        format!("component.{id}.allowed_outbound_hosts[{i}]"),
                        format!("service chaining to {target:?}, which is not a component of this application"),
                    ));
                }
            }
        }

        let mut manifest = Manifest {
            file: self.file.to_path_buf(),
            dir: self.dir.to_path_buf(),
            application: Application {
                name: raw.application.name,
                version: raw.application.version,
                description: raw.application.description,
                authors: raw.application.authors,
                redis_address,
            },
            variables,
            http_triggers,
            redis_triggers,
            components: self.components,
            sweeps,
            key_value_stores,
            warnings: Vec::new(),
        };
        let (router, mut warnings) = manifest.http_router()?;
        if router.entries().any(|(route, _)| {
            route.starts_with(routes::WELL_KNOWN_PREFIX) || route == "/.well-known/spin/..."
        }) {
            warnings.push(format!(
                "routes under {} are answered by the host and never reach components",
                routes::WELL_KNOWN_PREFIX
            ));
        }
        manifest.warnings = warnings;
        Ok(manifest)
    }

    /// `[application.tool.fado]`: sweeps and key-value store backends.
    #[allow(clippy::type_complexity)]
    fn fado_tool(
        &self,
        tool: Option<toml::Value>,
        app_redis: &Option<Template>,
        variables: &IndexMap<String, Variable>,
    ) -> Result<(Vec<Sweep>, IndexMap<String, KeyValueStoreConfig<Template>>), ManifestError> {
        let Some(tool) = tool else {
            return Ok((Vec::new(), IndexMap::new()));
        };
        let raw: RawFadoTool = deserialize_value(self.file, "application.tool.fado", tool)?;
        let mut stores = IndexMap::new();
        for (label, store) in raw.key_value_stores {
            let field = format!("application.tool.fado.key_value_stores.{label}");
            let checked = store.check(self.file, &field, self.dir, true)?;
            let templated = checked
                .try_map_url(|url| self.template(&format!("{field}.url"), &url, variables))?;
            stores.insert(label, templated);
        }
        Ok((self.sweeps(raw.sweeps, app_redis, variables)?, stores))
    }

    fn sweeps(
        &self,
        raw: Vec<RawSweep>,
        app_redis: &Option<Template>,
        variables: &IndexMap<String, Variable>,
    ) -> Result<Vec<Sweep>, ManifestError> {
        let mut out: Vec<Sweep> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let field = format!("application.tool.fado.sweeps[{i}]");
            if out.iter().any(|o| o.name == s.name) {
                return Err(self.err(
                    format!("{field}.name"),
                    format!("sweep {:?} is declared twice", s.name),
                ));
            }
            let every = humantime::parse_duration(&s.every).map_err(|e| {
                self.err(
                    format!("{field}.every"),
                    format!("{:?}: {e} (e.g. \"30s\", \"5m\")", s.every),
                )
            })?;
            if every < std::time::Duration::from_millis(100) {
                return Err(self.err(format!("{field}.every"), "must be at least 100ms"));
            }
            if s.channel.is_empty() {
                return Err(self.err(format!("{field}.channel"), "must not be empty"));
            }
            let address = match s.address {
                Some(a) => self.template(&format!("{field}.address"), &a, variables)?,
                None => app_redis.clone().ok_or_else(|| {
                    self.err(
                        format!("{field}.address"),
                        "no Redis address: set it here or in [application.trigger.redis] address",
                    )
                })?,
            };
            out.push(Sweep {
                name: s.name,
                every,
                channel: s.channel,
                payload: s.payload,
                address,
            });
        }
        Ok(out)
    }

    fn template(
        &self,
        field: &str,
        text: &str,
        variables: &IndexMap<String, Variable>,
    ) -> Result<Template, ManifestError> {
        let t = Template::parse(text).map_err(|e| self.err(field, e.to_string()))?;
        for name in t.references() {
            if !variables.contains_key(name) {
                return Err(self.err(
                    field,
                    format!("refers to variable {name:?}, which is not declared in [variables]"),
                ));
            }
        }
        Ok(t)
    }

    fn component_ref(
        &mut self,
        field: &str,
        value: toml::Value,
        variables: &IndexMap<String, Variable>,
    ) -> Result<String, ManifestError> {
        match value {
            toml::Value::String(id) => {
                if self.components.contains_key(&id) {
                    Ok(id)
                } else {
                    Err(self.err(
                        field,
                        format!("no component named {id:?} (declare it as [component.{id}])"),
                    ))
                }
            }
            toml::Value::Table(table) => {
                self.inline_count += 1;
                let id = format!("inline-component{}", self.inline_count);
                let c: RawComponent =
                    deserialize_value(self.file, field, toml::Value::Table(table))?;
                let component = self.component(&id, field, c, variables)?;
                self.components.insert(id.clone(), component);
                Ok(id)
            }
            _ => Err(self.err(
                field,
                "expected a component id or an inline component table",
            )),
        }
    }

    fn component(
        &self,
        id: &str,
        field: &str,
        c: RawComponent,
        variables: &IndexMap<String, Variable>,
    ) -> Result<Component, ManifestError> {
        let unsupported = |name: &str, present: bool| -> Result<(), ManifestError> {
            if present {
                Err(self.err(format!("{field}.{name}"), "is not supported by fado"))
            } else {
                Ok(())
            }
        };
        unsupported("ai_models", !c.ai_models.is_empty())?;
        unsupported("dependencies", !c.dependencies.is_empty())?;
        let _ = (&c.targets, &c.dependencies_inherit_configuration);
        let instance_reuse = match c.tool.get("fado").cloned() {
            None => 1,
            Some(t) => {
                let tool_field = format!("{field}.tool.fado");
                let raw: RawComponentTool = deserialize_value(self.file, &tool_field, t)?;
                match raw.instance_reuse {
                    None => 1,
                    Some(0) => {
                        return Err(self.err(
                            format!("{tool_field}.instance_reuse"),
                            "must be at least 1 (1: a fresh instance for every request)",
                        ));
                    }
                    Some(n) => n,
                }
            }
        };

        let source = match c.source {
            toml::Value::String(p) if !p.is_empty() => ComponentSource::Local(self.dir.join(p)),
            toml::Value::Table(t) if t.contains_key("url") => {
                let r: RawRemoteSource = deserialize_value(
                    self.file,
                    &format!("{field}.source"),
                    toml::Value::Table(t),
                )?;
                if !r.digest.starts_with("sha256:") {
                    return Err(self.err(
                        format!("{field}.source.digest"),
                        "must be of the form \"sha256:<hex>\"",
                    ));
                }
                ComponentSource::Remote {
                    url: r.url,
                    digest: r.digest,
                }
            }
            toml::Value::Table(_) => {
                return Err(self.err(
                    format!("{field}.source"),
                    "registry sources are not supported by fado; use a path or { url, digest }",
                ));
            }
            _ => {
                return Err(self.err(
                    format!("{field}.source"),
                    "expected a path to a .wasm file or { url = \"...\", digest = \"sha256:...\" }",
                ));
            }
        };

        let mut component_vars = IndexMap::new();
        for (name, text) in c.variables {
            let vfield = format!("{field}.variables.{name}");
            template::validate_variable_name(&name)
                .map_err(|reason| self.err(&vfield, format!("invalid variable name: {reason}")))?;
            component_vars.insert(name, self.template(&vfield, &text, variables)?);
        }

        let mut files = Vec::new();
        for (i, f) in c.files.into_iter().enumerate() {
            let ffield = format!("{field}.files[{i}]");
            let mount = match f {
                toml::Value::String(pattern) => {
                    check_relative(&pattern).map_err(|m| self.err(&ffield, m))?;
                    FileMount::Pattern(pattern)
                }
                toml::Value::Table(t) => {
                    let p: RawPlacement =
                        deserialize_value(self.file, &ffield, toml::Value::Table(t))?;
                    check_relative(&p.source)
                        .map_err(|m| self.err(format!("{ffield}.source"), m))?;
                    if !p.destination.starts_with('/') {
                        return Err(self.err(
                            format!("{ffield}.destination"),
                            "must be an absolute guest path",
                        ));
                    }
                    FileMount::Directory {
                        source: self.dir.join(p.source),
                        destination: p.destination,
                    }
                }
                _ => {
                    return Err(self.err(
                        &ffield,
                        "expected a glob string or { source = \"dir\", destination = \"/path\" }",
                    ));
                }
            };
            files.push(mount);
        }

        let mut rules = Vec::new();
        // `allowed_http_hosts` is Spin 1's spelling; convert like Spin does.
        for (i, host) in c.allowed_http_hosts.iter().enumerate() {
            let rule = if host == "insecure:allow-all" {
                "*://*:*".to_string()
            } else if host.contains("://") {
                host.clone()
            } else {
                format!("https://{host}")
            };
            AllowedHost::parse(&rule)
                .map_err(|e| self.err(format!("{field}.allowed_http_hosts[{i}]"), e.to_string()))?;
            rules.push(Template::parse(&rule).map_err(|e| {
                self.err(format!("{field}.allowed_http_hosts[{i}]"), e.to_string())
            })?);
        }
        for (i, rule) in c.allowed_outbound_hosts.iter().enumerate() {
            let rfield = format!("{field}.allowed_outbound_hosts[{i}]");
            let t = self.template(&rfield, rule, variables)?;
            if t.is_literal() {
                AllowedHost::parse(rule).map_err(|e| self.err(&rfield, e.to_string()))?;
            }
            rules.push(t);
        }

        for (i, label) in c.key_value_stores.iter().enumerate() {
            if label.is_empty() {
                return Err(self.err(
                    format!("{field}.key_value_stores[{i}]"),
                    "must not be empty",
                ));
            }
        }
        for (i, label) in c.sqlite_databases.iter().enumerate() {
            check_database_label(label)
                .map_err(|m| self.err(format!("{field}.sqlite_databases[{i}]"), m))?;
        }
        for (name, _) in &c.environment {
            if name.is_empty() || name.contains('=') {
                return Err(self.err(
                    format!("{field}.environment.{name}"),
                    "environment variable names must be non-empty and contain no '='",
                ));
            }
        }

        let build = match c.build {
            None => None,
            Some(b) => {
                let commands = match b.command {
                    toml::Value::String(s) => vec![s],
                    toml::Value::Array(a) => a
                        .into_iter()
                        .map(|v| match v {
                            toml::Value::String(s) => Ok(s),
                            _ => {
                                Err(self.err(format!("{field}.build.command"), "expected strings"))
                            }
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(self.err(
                            format!("{field}.build.command"),
                            "expected a string or a list of strings",
                        ));
                    }
                };
                Some(BuildConfig {
                    commands,
                    workdir: b.workdir,
                    watch: b.watch,
                })
            }
        };

        Ok(Component {
            id: id.to_string(),
            source,
            description: c.description,
            variables: component_vars,
            environment: c.environment,
            files,
            exclude_files: c.exclude_files,
            allowed_outbound_hosts: rules,
            key_value_stores: c.key_value_stores,
            sqlite_databases: c.sqlite_databases,
            build,
            instance_reuse,
        })
    }
}

/// A `sqlite_databases` label as Spin accepts it: words of lowercase
/// letters and digits (and `:` after a word's first character) joined by
/// `-` or by `_`, not both; the first word starts with a letter.
fn check_database_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("must not be empty".into());
    }
    if label.contains('-') && label.contains('_') {
        return Err(format!(
            "{label:?}: join words with '-' or with '_', not both"
        ));
    }
    for (i, word) in label.split(['-', '_']).enumerate() {
        let mut chars = word.chars();
        let first_ok = match chars.next() {
            Some(c) => c.is_ascii_lowercase() || (i > 0 && c.is_ascii_digit()),
            None => false,
        };
        if !first_ok || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':') {
            return Err(format!(
                "{label:?} is not a database label: lowercase letters and digits in words \
                 joined by '-' or '_', starting with a letter (e.g. \"default\", \"orders-v2\")"
            ));
        }
    }
    Ok(())
}

fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if p.is_absolute() {
        return Err("must be relative to the manifest directory".into());
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err("must not leave the manifest directory ('..')".into());
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
