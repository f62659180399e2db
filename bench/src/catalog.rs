//! `fado-bench catalog`: the planner and the catalog API at scale.
//!
//! A. Planning rounds over 10,000 buckets and 50 storage deployments, end to
//!    end (wake-up published → desired state, jobs and route table written
//!    to Postgres → table swapped into Redis), next to the same snapshot
//!    loaded and evaluated natively by `fado-placement` in this process.
//! B. API latency of bucket listings and the dashboard summary with 10,000
//!    buckets and 1,000,000 object rows, next to the same requests against
//!    a small catalog (100 buckets of 100 objects: every page has the same
//!    size) served by a second, identical `fado up`.
//!
//! Everything runs against real PostgreSQL and Redis started by the test
//! harness (`tests/harness`), with the root spin.toml's components.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde::Serialize;
use serde_json::json;

use crate::host::median;
use crate::load::{self, LoadResult, LoadSpec};

pub struct CatalogConfig {
    pub buckets: u32,
    pub storage: u32,
    pub objects_per_bucket: u32,
    pub planner_runs: u32,
    pub runs: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub concurrency: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub name: &'static str,
    pub description: &'static str,
    /// Wall-clock milliseconds of each run.
    pub ms: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiMeasurement {
    pub endpoint: &'static str,
    pub path: String,
    pub catalog: &'static str,
    pub concurrency: u32,
    pub runs: Vec<LoadResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogResults {
    pub seed_seconds: f64,
    pub replicas: i64,
    pub routes: i64,
    pub rounds: Vec<Round>,
    pub api: Vec<ApiMeasurement>,
}

/// Buckets of the peer catalog: one full page.
const SMALL_BUCKETS: u32 = 100;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("creating the runtime")
}

pub fn run(cfg: &CatalogConfig) -> Result<CatalogResults> {
    let rt = runtime()?;
    let (big, small) = rt.block_on(async {
        let big = crate::peers::orchestrator(false).await?;
        let small = crate::peers::orchestrator(false).await?;
        anyhow::Ok((big, small))
    })?;

    let seed_started = Instant::now();
    rt.block_on(seed(&big, cfg))?;
    rt.block_on(seed(
        &small,
        &CatalogConfig {
            buckets: SMALL_BUCKETS,
            objects_per_bucket: 100,
            ..cfg.clone_shape()
        },
    ))?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    eprintln!("fado-bench: seeded in {seed_seconds:.1} s");

    let mut rounds = rt.block_on(planner_rounds(&big, cfg))?;
    rounds.push(rt.block_on(native_rounds(&big, cfg))?);
    let (replicas, routes) = rt.block_on(async {
        let db = big.db().await?;
        let replicas: i64 = db
            .query_one("SELECT count(*) FROM replicas", &[])
            .await?
            .get(0);
        let mut redis = big.redis.conn().await?;
        // One route key per bucket, and `*` (the route over every deployment).
        let routes: i64 = redis::cmd("SCARD")
            .arg(fado_model::route_keys::INDEX)
            .query_async(&mut redis)
            .await?;
        anyhow::Ok((replicas, routes - 1))
    })?;
    if routes != i64::from(cfg.buckets) {
        bail!(
            "Redis holds {routes} bucket routes, expected {}",
            cfg.buckets
        );
    }

    let api = api_latency(&rt, &big, &small, cfg)?;
    drop(rt);
    Ok(CatalogResults {
        seed_seconds,
        replicas,
        routes,
        rounds,
        api,
    })
}

impl CatalogConfig {
    fn clone_shape(&self) -> CatalogConfig {
        CatalogConfig {
            buckets: self.buckets,
            storage: self.storage,
            objects_per_bucket: self.objects_per_bucket,
            planner_runs: self.planner_runs,
            runs: self.runs,
            duration: self.duration,
            warmup: self.warmup,
            concurrency: self.concurrency.clone(),
        }
    }
}

/// `storage / 2` clusters in five zones, two storage and two FaaS
/// deployments per cluster (through the API), then buckets and objects in
/// bulk SQL: bucket i has its master on storage i mod S, asks for i mod 4
/// replicas, and 30% of buckets are limited to their master's zone.
async fn seed(o: &Orchestrator, cfg: &CatalogConfig) -> Result<()> {
    let clusters = cfg.storage.div_ceil(2);
    for c in 0..clusters {
        o.create(
            "/api/clusters",
            json!({"name": format!("c{c}"), "zones": [format!("z{}", c % 5)]}),
        )
        .await;
    }
    for s in 0..cfg.storage {
        let cluster = format!("c{}", s / 2);
        // Made-up endpoints: registered unchecked.
        o.create(
            "/api/storage-deployments?verify=false",
            json!({"name": format!("s{s}"), "cluster": cluster,
                   "endpoint": format!("http://10.0.{s}.1:3900"), "access_key": "GK", "secret_key": "secret"}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{s}"), "cluster": cluster, "platform": "openfaas",
                   "base_url": format!("http://10.0.{s}.2:8080")}),
        )
        .await;
    }
    let db = o.db().await?;
    db.execute(
        "INSERT INTO buckets (name, master_storage_id, allowed_zones, target_replicas)
         SELECT 'bucket-' || g, s.id, CASE WHEN g % 10 < 3 THEN c.zones ELSE '{}' END, g % 4
         FROM generate_series(0, $1::int - 1) g
         JOIN storage_deployments s ON s.name = 's' || (g % $2::int)
         JOIN clusters c ON c.id = s.cluster_id",
        &[&(cfg.buckets as i32), &(cfg.storage as i32)],
    )
    .await
    .context("seeding buckets")?;
    if cfg.objects_per_bucket > 0 {
        db.execute(
            "INSERT INTO objects (bucket_id, key, size, etag, content_type)
             SELECT b.id, 'data/' || lpad(k::text, 6, '0'), 1000 + k, md5(b.id || '/' || k), 'application/octet-stream'
             FROM buckets b, generate_series(0, $1::int - 1) k",
            &[&(cfg.objects_per_bucket as i32)],
        )
        .await
        .context("seeding objects")?;
    }
    db.batch_execute("ANALYZE; UPDATE catalog_generation SET value = value + 1")
        .await?;
    Ok(())
}

/// Planner bookkeeping read by the waits below.
async fn planned(o: &Orchestrator) -> Result<(Option<String>, i64, bool)> {
    let db = o.db().await?;
    let row = db
        .query_one(
            "SELECT planned_at::text, routes_version, planned_generation >= catalog_generation FROM planner_state",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// Waits until a round finished after `before` (its `planned_at`) and
/// Redis holds the version Postgres recorded; returns when that was seen.
async fn wait_round(o: &Orchestrator, before: &Option<String>) -> Result<Instant> {
    let db = o.db().await?;
    let mut redis = o.redis.conn().await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let row = db
            .query_one(
                "SELECT planned_at::text, routes_version, planned_generation >= catalog_generation FROM planner_state",
                &[],
            )
            .await?;
        let (at, version, caught_up): (Option<String>, i64, bool) =
            (row.get(0), row.get(1), row.get(2));
        if caught_up && &at != before {
            let published: Option<i64> = redis::cmd("HGET")
                .arg(fado_model::route_keys::VERSION)
                .arg("version")
                .query_async(&mut redis)
                .await?;
            if published == Some(version) {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the planner did not finish a round within 300 s:\n{}",
                o.fado.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn publish(o: &Orchestrator, payload: &str) -> Result<()> {
    let mut conn = o.redis.conn().await?;
    let _: i64 = redis::cmd("PUBLISH")
        .arg(fado_model::channels::PLANNER)
        .arg(payload)
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// Forgets everything the planner wrote, as on a fresh installation.
async fn reset_plan(o: &Orchestrator) -> Result<()> {
    let db = o.db().await?;
    db.batch_execute(
        "BEGIN;
         DELETE FROM replicas; DELETE FROM jobs; DELETE FROM route_tables;
         UPDATE buckets SET replica_shortfall = 0, plan_notes = '{}';
         UPDATE planner_progress SET routes_version = 0, planned_generation = 0;
         UPDATE catalog_generation SET value = value + 1;
         COMMIT;",
    )
    .await?;
    // The route table goes too, so the round writes every route.
    let mut redis = o.redis.conn().await?;
    let _: () = redis::cmd("FLUSHDB").query_async(&mut redis).await?;
    Ok(())
}

async fn timed_round(
    o: &Orchestrator,
    trigger: impl std::future::Future<Output = Result<()>>,
) -> Result<f64> {
    let before = planned(o).await?.0;
    let t0 = Instant::now();
    trigger.await?;
    let t1 = wait_round(o, &before).await?;
    Ok((t1 - t0).as_secs_f64() * 1000.0)
}

async fn planner_rounds(o: &Orchestrator, cfg: &CatalogConfig) -> Result<Vec<Round>> {
    let mut initial = Vec::new();
    let mut ready = Vec::new();
    for run in 0..cfg.planner_runs {
        reset_plan(o).await?;
        initial.push(timed_round(o, publish(o, "wake")).await?);
        // What the replicator records when every first sync is done.
        ready.push(
            timed_round(o, async {
                let db = o.db().await?;
                db.batch_execute(
                    "BEGIN; UPDATE replicas SET state = 'ready', last_sync_at = now();
                     UPDATE catalog_generation SET value = value + 1; COMMIT;",
                )
                .await?;
                publish(o, "wake").await
            })
            .await?,
        );
        eprintln!(
            "fado-bench: planner run {}: initial {:.0} ms, all ready {:.0} ms",
            run + 1,
            initial.last().unwrap(),
            ready.last().unwrap()
        );
    }
    let mut sweep = Vec::new();
    let mut one_change = Vec::new();
    for run in 0..cfg.planner_runs {
        sweep.push(timed_round(o, publish(o, "sweep")).await?);
        let bucket = format!("bucket-{}", 1 + 4 * run);
        one_change.push(
            timed_round(o, async {
                let (s, b) = o
                    .api(
                        "PATCH",
                        &format!("/api/buckets/{bucket}"),
                        Some(json!({"target_replicas": 2})),
                    )
                    .await;
                if s != 200 {
                    bail!("PATCH {bucket}: {s} {b}");
                }
                Ok(())
            })
            .await?,
        );
    }
    Ok(vec![
        Round {
            name: "initial",
            description: "first plan of every bucket: replica rows, create jobs, route table written and published",
            ms: initial,
        },
        Round {
            name: "all_ready",
            description: "every replica reported ready at once: routes of every replicated bucket change and are republished",
            ms: ready,
        },
        Round {
            name: "steady_sweep",
            description: "periodic sweep over an unchanged catalog: evaluate, write nothing, check Redis",
            ms: sweep,
        },
        Round {
            name: "one_change",
            description: "PATCH of one bucket's replica count through the API until its plan and routes are published",
            ms: one_change,
        },
    ])
}

/// The same snapshot loaded from Postgres and evaluated natively.
async fn native_rounds(o: &Orchestrator, cfg: &CatalogConfig) -> Result<Round> {
    let mut ms = Vec::new();
    for _ in 0..cfg.planner_runs {
        let t0 = Instant::now();
        let snapshot = load_snapshot(o).await?;
        let plans = fado_placement::plan(&snapshot);
        let routes = fado_placement::routes(&snapshot);
        std::hint::black_box((&plans, &routes));
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Round {
        name: "native_evaluate",
        description: "peer: the same snapshot loaded from Postgres with tokio-postgres and evaluated by fado-placement natively in fado-bench (no writes, no publish)",
        ms,
    })
}

async fn load_snapshot(o: &Orchestrator) -> Result<fado_placement::Snapshot> {
    use fado_placement::{Bucket, Cluster, ExistingReplica, Faas, ReplicaState, Snapshot, Storage};
    let db = o.db().await?;
    let clusters = db
        .query("SELECT id, name, zones FROM clusters", &[])
        .await?
        .iter()
        .map(|r| Cluster {
            id: r.get(0),
            name: r.get(1),
            zones: r.get(2),
        })
        .collect();
    let storage = db
        .query(
            "SELECT id, cluster_id, health <> 'unhealthy' FROM storage_deployments",
            &[],
        )
        .await?
        .iter()
        .map(|r| Storage {
            id: r.get(0),
            cluster_id: r.get(1),
            healthy: r.get(2),
        })
        .collect();
    let faas = db
        .query("SELECT id, cluster_id FROM faas_deployments", &[])
        .await?
        .iter()
        .map(|r| Faas {
            id: r.get(0),
            cluster_id: r.get(1),
        })
        .collect();
    let mut replicas: HashMap<i64, Vec<ExistingReplica>> = HashMap::new();
    for r in db
        .query("SELECT bucket_id, storage_id, state FROM replicas", &[])
        .await?
    {
        let state = match r.get::<_, &str>(2) {
            "ready" => ReplicaState::Ready,
            "syncing" => ReplicaState::Syncing,
            "deleting" => ReplicaState::Deleting,
            "failed" => ReplicaState::Failed,
            _ => ReplicaState::Pending,
        };
        replicas.entry(r.get(0)).or_default().push(ExistingReplica {
            storage_id: r.get(1),
            state,
        });
    }
    let buckets = db
        .query(
            "SELECT id, name, master_storage_id, allowed_zones, target_replicas FROM buckets",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            Bucket {
                id,
                name: r.get(1),
                master_storage_id: r.get(2),
                allowed_zones: r.get(3),
                target_replicas: r.get::<_, i32>(4) as u32,
                replica_override: None,
                route_override: None,
                replicas: replicas.remove(&id).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Snapshot {
        clusters,
        storage,
        faas,
        buckets,
        default_policy: "round_robin".into(),
    })
}

fn api_latency(
    rt: &tokio::runtime::Runtime,
    big: &Orchestrator,
    small: &Orchestrator,
    cfg: &CatalogConfig,
) -> Result<Vec<ApiMeasurement>> {
    // A cursor in the middle of the bucket list (deep pages cost the same),
    // as the API hands it out: cursors are opaque and name their list.
    let middle = rt.block_on(async {
        let mut cursor: Option<String> = None;
        let mut left = i64::from(cfg.buckets) / 2;
        while left > 0 {
            let limit = left.min(1000);
            let path = match &cursor {
                Some(c) => format!("/api/buckets?limit={limit}&cursor={c}"),
                None => format!("/api/buckets?limit={limit}"),
            };
            let (s, page) = big.api("GET", &path, None).await;
            anyhow::ensure!(s == 200, "GET {path}: {s} {page}");
            cursor = page["next_cursor"].as_str().map(str::to_string);
            left -= limit;
        }
        cursor.context("the bucket list has no middle page")
    })?;
    let first = "/api/buckets?limit=100".to_string();
    // (endpoint, path on the big catalog, path on the small one)
    let endpoints: [(&'static str, String, String); 4] = [
        ("buckets, first page", first.clone(), first.clone()),
        (
            "buckets, page in the middle",
            format!("/api/buckets?limit=100&cursor={middle}"),
            first,
        ),
        (
            "objects of one bucket, first page",
            "/api/buckets/bucket-0/objects?limit=100".into(),
            "/api/buckets/bucket-0/objects?limit=100".into(),
        ),
        (
            "dashboard summary",
            "/api/resources".into(),
            "/api/resources".into(),
        ),
    ];
    // A page that came back short (a cursor the API refused or misread)
    // would be measured as a fast page.
    rt.block_on(async {
        for (endpoint, big_path, small_path) in &endpoints {
            for (o, path) in [(big, big_path), (small, small_path)] {
                let (s, body) = o.api("GET", path, None).await;
                anyhow::ensure!(s == 200, "{endpoint}: GET {path}: {s} {body}");
                if let Some(items) = body["items"].as_array() {
                    anyhow::ensure!(
                        items.len() == 100,
                        "{endpoint}: GET {path} listed {} items, not a full page of 100",
                        items.len()
                    );
                }
            }
        }
        anyhow::Ok(())
    })?;
    let mut out = Vec::new();
    for (endpoint, big_path, small_path) in &endpoints {
        for &c in &cfg.concurrency {
            let mut measurements = [
                ApiMeasurement {
                    endpoint,
                    path: big_path.clone(),
                    catalog: "big",
                    concurrency: c,
                    runs: vec![],
                },
                ApiMeasurement {
                    endpoint,
                    path: small_path.clone(),
                    catalog: "small",
                    concurrency: c,
                    runs: vec![],
                },
            ];
            for _ in 0..cfg.runs {
                // Interleaved: a drift of the machine hits both alike.
                for (m, o) in measurements.iter_mut().zip([big, small]) {
                    let result = load::run(&LoadSpec {
                        addr: o.fado.addr,
                        path: m.path.clone(),
                        concurrency: c,
                        warmup: cfg.warmup,
                        duration: cfg.duration,
                        headers: vec![("authorization".into(), format!("Bearer {ADMIN_TOKEN}"))],
                        tally_header: None,
                        rate: None,
                    })?;
                    if result.errors > 0 {
                        bail!(
                            "{}: {} errors, first: {:?}",
                            m.path,
                            result.errors,
                            result.first_error
                        );
                    }
                    m.runs.push(result);
                }
            }
            eprintln!(
                "fado-bench: {endpoint} c={c}: p50 {:.0} µs (small catalog {:.0} µs)",
                p50s(&measurements[0]),
                p50s(&measurements[1]),
            );
            out.extend(measurements);
        }
    }
    Ok(out)
}

fn p50s(m: &ApiMeasurement) -> f64 {
    median(&m.runs.iter().map(|r| r.latency_us.p50).collect::<Vec<_>>())
}

/// Everything about one `fado-bench catalog` run, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogReport {
    pub experiment: &'static str,
    pub started_utc: String,
    pub elapsed_seconds: f64,
    pub command: String,
    pub workspace_head: Option<String>,
    pub machine: crate::report::Machine,
    pub config: serde_json::Value,
    pub results: CatalogResults,
}

pub fn markdown(r: &CatalogReport, json_name: &str, cfg: &CatalogConfig) -> String {
    use std::fmt::Write as _;
    let m = &r.machine;
    let res = &r.results;
    let mut out = String::new();
    let _ = writeln!(out, "## Catalog and planner at scale\n");
    crate::report::provenance(&mut out, &r.started_utc, m, r.workspace_head.as_deref());
    let _ = writeln!(
        out,
        "Run took {:.0} s. Raw results: [`benchmarks/{json_name}`](benchmarks/{json_name}).\n",
        r.elapsed_seconds
    );
    let _ = writeln!(
        out,
        "Command (from the workspace root):\n\n```sh\n{}\n```\n",
        r.command
    );
    let _ = writeln!(
        out,
        "Set-up: `fado up` on the root spin.toml (catalog and planner components, `RUST_LOG=warn`, \
         periodic sweeps off so none lands inside a measurement) against PostgreSQL {pg} and Redis started by \
         the test harness on this machine. The catalog: {clusters} clusters in 5 zones, {s} storage and {s} FaaS \
         deployments, {b} buckets (bucket i: master on storage i mod {s}, i mod 4 replicas asked for, 30% limited \
         to their master's zone) and {o} object rows ({opb} per bucket), seeded in {seed:.0} s. After planning \
         it holds {rep} replicas and Redis {routes} routes.\n",
        pg = pg_version(),
        clusters = cfg.storage.div_ceil(2),
        s = cfg.storage,
        b = cfg.buckets,
        o = u64::from(cfg.buckets) * u64::from(cfg.objects_per_bucket),
        opb = cfg.objects_per_bucket,
        seed = res.seed_seconds,
        rep = res.replicas,
        routes = res.routes,
    );
    let _ = writeln!(
        out,
        "### A. Planning rounds: placement evaluated, written and published\n"
    );
    let _ = writeln!(
        out,
        "Wall-clock time from the wake-up (a Redis message, or the API call) until Postgres records the round \
         and Redis holds the route table version it wrote; {} runs each.\n",
        cfg.planner_runs
    );
    let _ = writeln!(out, "| round | what it does | median ms | min–max ms |");
    let _ = writeln!(out, "|---|---|---:|---:|");
    for round in &res.rounds {
        let (lo, hi) = crate::report::min_max(&round.ms);
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0}–{:.0} |",
            round.name,
            round.description,
            median(&round.ms),
            lo,
            hi
        );
    }
    let _ = writeln!(
        out,
        "\n### B. API latency with {} buckets and {} object rows\n",
        cfg.buckets,
        u64::from(cfg.buckets) * u64::from(cfg.objects_per_bucket)
    );
    let _ = writeln!(
        out,
        "Closed-loop load (fado-bench's HTTP/1.1 client, keep-alive, admin token) for {:.1} s after {:.1} s of \
         warm-up, {} runs per row, interleaved with the peer: the same request against a small catalog \
         ({SMALL_BUCKETS} buckets of 100 objects; its \"middle page\" is its only page), so every page has \
         the same size and the ratio shows what the catalog's size costs. Medians over runs.\n",
        cfg.duration.as_secs_f64(),
        cfg.warmup.as_secs_f64(),
        cfg.runs
    );
    let _ = writeln!(
        out,
        "| request | concurrency | req/s | p50 µs | p99 µs | small catalog p50 µs | p99 µs | p50 ratio | p99 ratio |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for pair in res.api.chunks(2) {
        let (big, small) = (&pair[0], &pair[1]);
        let med = |m: &ApiMeasurement, f: fn(&LoadResult) -> f64| {
            median(&m.runs.iter().map(f).collect::<Vec<_>>())
        };
        let (bp50, bp99) = (
            med(big, |r| r.latency_us.p50),
            med(big, |r| r.latency_us.p99),
        );
        let (sp50, sp99) = (
            med(small, |r| r.latency_us.p50),
            med(small, |r| r.latency_us.p99),
        );
        let _ = writeln!(
            out,
            "| {} `{}` | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× | {:.2}× |",
            big.endpoint,
            big.path,
            big.concurrency,
            med(big, |r| r.rps),
            bp50,
            bp99,
            sp50,
            sp99,
            bp50 / sp50,
            bp99 / sp99
        );
    }
    out
}

fn pg_version() -> String {
    std::process::Command::new("psql")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "(unknown version)".into())
}
