//! FaDO itself under test: the root `spin.toml` served by `fado up` against
//! a fresh database on the shared PostgreSQL and a Redis of its own.

use anyhow::{Context, Result};
use serde_json::Value;

use crate::{AppDir, Fado, FadoOptions, Redis, shared_postgres, target_dir, workspace};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ENCRYPTION_KEY: &str = "test-encryption-key";

/// How to start an [`Orchestrator`] differently from the tests' default.
pub struct Options {
    /// Extra environment for `fado up` (e.g. `RUST_LOG`).
    pub env: Vec<(&'static str, String)>,
    /// Keep the periodic sweeps of spin.toml (on by default); benchmarks
    /// turn them off so a sweep does not land inside a measurement.
    pub sweeps: bool,
    /// Run the data plane's background components: the replicator, storage
    /// health checks and reconcile sweeps (off by default). Tests that
    /// register real storage turn them on; with the made-up endpoints of the
    /// catalog tests they would only fail jobs (racing with tests that edit
    /// the ledger themselves) and mark every storage deployment unhealthy.
    pub replicator: bool,
    /// Extra Spin variables (`--variable name=value`), after the defaults.
    pub variables: Vec<(&'static str, String)>,
    /// Back the key-value stores as under Spin: the runtime-config file
    /// `infra/spin/runtime-config.toml` (every label plain Redis), pointed
    /// at this orchestrator's Redis.
    pub spin_runtime_config: bool,
    /// The PostgreSQL server holding `database`, when not the shared one
    /// (a test that stops its server has one of its own).
    pub postgres_port: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            sweeps: true,
            replicator: false,
            variables: Vec::new(),
            spin_runtime_config: false,
            postgres_port: None,
        }
    }
}

/// Serialises orchestrator start-ups (see `start_with`).
static FIRST_START: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Redis channels of the data plane's background components.
const DATA_PLANE_CHANNELS: [(&str, &str); 3] = [
    (fado_model::channels::REPLICATOR, "replicator"),
    (fado_model::channels::HEALTH, "health-checker"),
    (fado_model::channels::RECONCILER, "reconciler"),
];

/// The manifest without the data plane's Redis triggers and sweeps.
fn without_replicator(manifest: &str) -> String {
    let mut text = manifest.to_string();
    for (channel, component) in DATA_PLANE_CHANNELS {
        text = text.replace(
            &format!("[[trigger.redis]]\nchannel = \"{channel}\"\ncomponent = \"{component}\"\n"),
            "",
        );
    }
    text.lines()
        .filter(|l| {
            !DATA_PLANE_CHANNELS
                .iter()
                .any(|(c, _)| l.contains(&format!("channel = \"{c}\" }}")))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The manifest without its `[application.tool.fado] sweeps`.
fn without_sweeps(manifest: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in manifest.lines() {
        if line.starts_with("sweeps = [") {
            skipping = true;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
        if skipping && line.trim() == "]" {
            skipping = false;
        }
    }
    out
}

pub struct Orchestrator {
    pub fado: Fado,
    pub redis: Redis,
    /// The test's database on the shared server.
    pub database: String,
    /// The port of the PostgreSQL server holding it.
    pub pg_port: u16,
    pub app: AppDir,
    /// How `fado` was started, to start it again or beside itself.
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

/// The root manifest with component paths made absolute.
pub fn manifest() -> Result<String> {
    let text =
        std::fs::read_to_string(workspace().join("spin.toml")).context("reading spin.toml")?;
    Ok(text.replace(
        "source = \"target/",
        &format!("source = \"{}/", target_dir().display()),
    ))
}

impl Orchestrator {
    pub async fn start() -> Result<Self> {
        Self::start_on(shared_postgres().create_database().await?).await
    }

    /// Starts on an existing database of the shared server.
    pub async fn start_on(database: String) -> Result<Self> {
        Self::start_with(database, Options::default()).await
    }

    pub async fn start_with(database: String, opts: Options) -> Result<Self> {
        let pg_port = opts.postgres_port.unwrap_or_else(|| shared_postgres().port);
        let redis = Redis::start()?;
        let mut text = manifest()?;
        if !opts.sweeps {
            text = without_sweeps(&text);
        }
        if !opts.replicator {
            text = without_replicator(&text);
            for (channel, _) in DATA_PLANE_CHANNELS {
                assert!(
                    !text.contains(&format!("\"{channel}\"")),
                    "spin.toml changed shape: update without_replicator"
                );
            }
        }
        let app = AppDir::new(&text)?;
        let vars = [
            ("pg_host", "127.0.0.1".to_string()),
            ("pg_port", pg_port.to_string()),
            ("pg_user", "postgres".into()),
            ("pg_password", "unused".into()),
            ("pg_database", database.clone()),
            ("redis_host", "127.0.0.1".into()),
            ("redis_port", redis.port.to_string()),
            ("admin_token", ADMIN_TOKEN.into()),
            ("encryption_key", ENCRYPTION_KEY.into()),
        ];
        let mut args = Vec::new();
        for (k, v) in vars.into_iter().chain(opts.variables.iter().cloned()) {
            args.push("--variable".to_string());
            args.push(format!("{k}={v}"));
        }
        if opts.spin_runtime_config {
            let example =
                std::fs::read_to_string(workspace().join("infra/spin/runtime-config.toml"))
                    .context("reading infra/spin/runtime-config.toml")?;
            let ours = example.replace("redis://127.0.0.1:6379", &redis.url());
            anyhow::ensure!(
                ours != example,
                "the example names no Redis at 127.0.0.1:6379"
            );
            let path = app.write("spin-runtime-config.toml", &ours)?;
            args.push("--runtime-config-file".to_string());
            args.push(path.display().to_string());
        }
        // Start-ups take turns: the first compiles the components into the
        // shared cache, and the later ones (a second or so each) find them
        // there instead of compiling the same components side by side.
        let fado = {
            let _first = FIRST_START.lock().unwrap_or_else(|e| e.into_inner());
            Fado::start_with(
                &app,
                FadoOptions {
                    args: args.clone(),
                    env: opts.env.clone(),
                    ..Default::default()
                },
            )?
        };
        Ok(Self {
            fado,
            redis,
            database,
            pg_port,
            app,
            args,
            env: opts.env,
        })
    }

    /// Another `fado` serving the same app on the same database and Redis,
    /// as a second replica of the deployment would.
    pub fn peer(&self) -> Result<Fado> {
        Fado::start_with(
            &self.app,
            FadoOptions {
                args: self.args.clone(),
                env: self.env.clone(),
                ..Default::default()
            },
        )
    }

    /// Kills `fado` with SIGKILL (no chance to finish anything) and starts
    /// it again; the new process listens on new ports.
    pub fn crash_and_restart(&mut self) -> Result<()> {
        self.fado.kill();
        self.fado = self.peer()?;
        Ok(())
    }

    /// (key, size, ETag) of every object the catalog lists for `bucket`
    /// (first 1000).
    pub async fn object_listing(&self, bucket: &str) -> Vec<(String, i64, String)> {
        let (s, page) = self
            .api(
                "GET",
                &format!("/api/buckets/{bucket}/objects?limit=1000"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{page}");
        page["items"]
            .as_array()
            .expect("a page")
            .iter()
            .map(|o| {
                (
                    o["key"].as_str().unwrap_or_default().to_string(),
                    o["size"].as_i64().unwrap_or(-1),
                    o["etag"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub async fn db(&self) -> Result<tokio_postgres::Client> {
        crate::postgres_client(self.pg_port, &self.database).await
    }

    /// Calls the API with the admin token; returns the status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = crate::http().request(method, self.fado.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("the API answers");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("a body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    /// POSTs `body` to `path` and returns the created resource; panics with
    /// the answer when it is not a 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (status, v) = self.api("POST", path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {v}");
        v
    }

    /// Waits until the planner has planned every catalog change and returns
    /// the published route table (`GET /api/routes`).
    pub async fn settled(&self) -> Value {
        let db = self.db().await.expect("database");
        let done = crate::eventually(std::time::Duration::from_secs(20), || async {
            let row = db
                .query_one(
                    "SELECT planned_generation >= catalog_generation AS done FROM planner_state",
                    &[],
                )
                .await
                .ok()?;
            row.get::<_, bool>("done").then_some(())
        })
        .await;
        assert!(
            done.is_some(),
            "the planner did not catch up within 20 s:\n{}",
            self.fado.log()
        );
        let (status, routes) = self.api("GET", "/api/routes?limit=1000", None).await;
        assert_eq!(status, 200, "{routes}");
        routes
    }

    /// The FaaS deployment names the published route table sends `bucket`
    /// to, sorted (after the planner caught up).
    pub async fn route_targets(&self, bucket: &str) -> Vec<String> {
        let routes = self.settled().await;
        let route = routes["items"]
            .as_array()
            .expect("a page")
            .iter()
            .find(|r| r["bucket"] == bucket)
            .unwrap_or_else(|| panic!("no route for {bucket}: {routes}"));
        let mut names: Vec<String> = route["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| t["name"].as_str().expect("a name").to_string())
            .collect();
        names.sort();
        names
    }

    /// (storage name, state) of every replica of `bucket`, sorted.
    pub async fn replica_states(&self, bucket: &str) -> Vec<(String, String)> {
        let (status, page) = self
            .api("GET", &format!("/api/buckets/{bucket}/replicas"), None)
            .await;
        assert_eq!(status, 200, "{page}");
        let mut out: Vec<(String, String)> = page["items"]
            .as_array()
            .expect("a page")
            .iter()
            .map(|r| {
                (
                    r["storage"].as_str().expect("a storage").to_string(),
                    r["state"].as_str().expect("a state").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Publishes a planner wake-up, as a catalog change does.
    pub async fn wake_planner(&self) {
        self.publish_planner("test").await
    }

    /// Publishes what the periodic sweep publishes on its timer.
    pub async fn sweep(&self) {
        self.publish_planner("sweep").await
    }

    async fn publish_planner(&self, payload: &str) {
        self.publish(fado_model::channels::PLANNER, payload).await
    }

    /// Publishes `payload` on `channel` of the orchestrator's Redis.
    pub async fn publish(&self, channel: &str, payload: &str) {
        let mut conn = self.redis.conn().await.expect("redis");
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .expect("publish");
    }
}
