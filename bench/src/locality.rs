//! The locality experiment: how much routing invocations to the cluster
//! holding their data saves, against routing without regard to data.
//!
//! Three clusters as in the thesis testbed, each a network namespace with
//! its own S3 storage (`fado s3 serve`) and FaaS endpoint (`fado serve` on
//! the example functions), its functions held to a CPU share by a cgroup.
//! Every path between places crosses an emulated link (`wan.rs`): 1 ms
//! inside a cluster, tens of ms between clusters, the same RTT from the
//! ingress to every cluster. Three buckets, one mastered in each cluster and
//! not replicated, each holding one photo; every call asks the `image`
//! function for a thumbnail of one of them (in turn), through FaDO's ingress.
//!
//! Strategies, switched through FaDO's own route overrides:
//! - `fado`: the route table as the planner makes it, by bucket;
//! - `round_robin`: every bucket over all three clusters;
//! - `most_powerful`: every call to `hpc-cluster`.
//!
//! A function whose bucket is elsewhere reads it the way a data-unaware
//! function must: its own storage first, then the other clusters' storage,
//! nearest first; and writes the thumbnail back where it found the photo.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde::Serialize;
use serde_json::{Value, json};

use crate::netns::{CpuLimit, Sites, host_side, inside};
use crate::peers::{self, Peer};
use crate::replication::Dist;
use crate::wan::{self, Link, LinkSpec};
use crate::{cpu, plot, report};

/// The thesis testbed's clusters, most powerful first.
pub const CLUSTERS: [(&str, &[&str]); 3] = [
    ("hpc-cluster", &["germany", "high-performance"]),
    ("cloud-cluster-1", &["germany", "high-performance"]),
    ("cloud-cluster-2", &["germany"]),
];
const KEY: &str = "photo.jpg";
const BUCKET_HEADER: &str = "X-FaDO-Bucket";
const STORAGE_PORT: u16 = 3900;
const FAAS_PORT: u16 = 8080;
/// Host-side port of the link from a cluster to cluster `j`'s storage.
const LINK_PORT_BASE: u16 = 4100;
const ACCESS_KEY: &str = "GKlocalitybench";
const SECRET_KEY: &str = "locality-bench-secret-key-0123456789";
const NAMESPACE_PREFIX: &str = "fadoloc";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Fado,
    RoundRobin,
    MostPowerful,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Fado, Strategy::RoundRobin, Strategy::MostPowerful];

    pub fn label(self) -> &'static str {
        match self {
            Strategy::Fado => "FaDO (by bucket)",
            Strategy::RoundRobin => "round robin",
            Strategy::MostPowerful => "most powerful (hpc)",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalityConfig {
    /// RTT inside a cluster (function to its own storage).
    pub intra_rtt_ms: f64,
    /// RTT between clusters 1–2, 1–3, 2–3.
    pub inter_rtt_ms: [f64; 3],
    /// RTT from the ingress to every cluster.
    pub ingress_rtt_ms: f64,
    /// WAN bandwidths, Mbit/s each way per link (0: unlimited).
    pub wan_mbit: Vec<f64>,
    /// CPU profiles: the cores each cluster's functions may use (0: no
    /// limit). Every bandwidth is measured with every profile.
    pub cores: Vec<[f64; 3]>,
    pub image_width: u32,
    pub image_height: u32,
    pub runs: u32,
    pub warmup: Duration,
    /// Measured time of the one-call-at-a-time phase.
    pub sequential_duration: Duration,
    /// Calls in flight in the loaded phase.
    pub concurrency: u32,
    pub loaded_duration: Duration,
    pub quiet_wait: Duration,
}

impl LocalityConfig {
    /// RTT between clusters `a` and `b` (0-based).
    fn rtt(&self, a: usize, b: usize) -> f64 {
        match (a.min(b), a.max(b)) {
            (x, y) if x == y => self.intra_rtt_ms,
            (0, 1) => self.inter_rtt_ms[0],
            (0, 2) => self.inter_rtt_ms[1],
            _ => self.inter_rtt_ms[2],
        }
    }

    /// The other clusters from `a`, nearest first (ties by index): the
    /// order a data-unaware function searches them.
    fn fallbacks(&self, a: usize) -> Vec<usize> {
        let mut others: Vec<usize> = (0..3).filter(|&b| b != a).collect();
        others.sort_by(|&x, &y| self.rtt(a, x).total_cmp(&self.rtt(a, y)).then(x.cmp(&y)));
        others
    }
}

/// One measured phase of one strategy, all runs pooled.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub strategy: Strategy,
    pub phase: &'static str,
    pub concurrency: u32,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Completed calls per second, median over runs, and every run's.
    pub rps: f64,
    pub rps_runs: Vec<f64>,
    /// Completion time seen by the caller, ms.
    pub latency_ms: Option<Dist>,
    /// Calls whose input was read from the serving cluster's own storage.
    pub local_share: f64,
    pub served_by: BTreeMap<String, usize>,
    /// Means of what the function reported, ms.
    pub read_ms: f64,
    pub resize_ms: f64,
    pub write_ms: f64,
    /// Share of the machine's CPU time in use during the window, mean over
    /// runs: near 1, the clusters' shared cores and not the network
    /// decided the result.
    pub machine_busy: f64,
    /// Every call's completion time, ms, in start order (the plot's data).
    #[serde(rename = "latencies_ms")]
    pub latencies: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub wan_mbit: f64,
    pub cores: [f64; 3],
    pub cells: Vec<Cell>,
    /// Seconds each cluster's functions were held back by their CPU limit.
    pub throttled_seconds: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalityResults {
    pub image_bytes: usize,
    pub links: Vec<LinkRow>,
    pub scenarios: Vec<Scenario>,
    pub quiet_waits_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkRow {
    pub name: String,
    pub rtt_ms: f64,
    /// TCP connections it carried over the whole run (few: clients pool).
    pub connections: u64,
}

#[derive(Serialize)]
pub struct LocalityReport {
    pub experiment: &'static str,
    pub started_utc: String,
    pub finished_utc: String,
    pub elapsed_seconds: f64,
    pub command: String,
    pub workspace_head: Option<String>,
    pub machine: report::Machine,
    pub config: LocalityConfig,
    pub results: LocalityResults,
}

/// One call's outcome.
struct Sample {
    start: Instant,
    end: Instant,
    outcome: Result<Facts, String>,
}

struct Facts {
    cluster: String,
    local: bool,
    read_ms: f64,
    resize_ms: f64,
    write_ms: f64,
}

struct Cluster {
    name: &'static str,
    faas: String,
    storage: String,
    bucket: String,
    _storage_peer: Peer,
    _faas_peer: Peer,
    cpu: CpuLimit,
}

struct Bench<'a> {
    cfg: &'a LocalityConfig,
    rt: tokio::runtime::Runtime,
    o: Orchestrator,
    clusters: Vec<Cluster>,
    /// Function → storage links, `[from][to]`.
    storage_links: Vec<Vec<Link>>,
    ingress_links: Vec<Link>,
    http: reqwest::Client,
    _sites: Sites,
}

pub fn run(cfg: &LocalityConfig, workspace: &Path) -> Result<LocalityResults> {
    ensure!(
        !cfg.wan_mbit.is_empty(),
        "--wan-mbit: give at least one scenario"
    );
    let fado = harness::fado_bin();
    ensure!(
        fado.exists(),
        "{} is missing: run infra/build --all (or drop --skip-build)",
        fado.display()
    );
    let manifest = workspace.join("examples/functions/spin.toml");
    let logs = tempfile::Builder::new()
        .prefix("fado-bench-locality-")
        .tempdir()
        .context("creating the log directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("creating the runtime")?;

    let sites = Sites::create(NAMESPACE_PREFIX, 3)?;
    eprintln!("fado-bench: three sites up (namespaces {NAMESPACE_PREFIX}1..3)");

    // Links first: the functions are configured with their addresses.
    let mut storage_links = Vec::new();
    for (a, (from, _)) in CLUSTERS.iter().enumerate() {
        let mut row = Vec::new();
        for (b, (to, _)) in CLUSTERS.iter().enumerate() {
            row.push(rt.block_on(wan::start(LinkSpec {
                name: format!("{from}→{to}-s3"),
                listen: SocketAddr::from((host_side(a + 1), LINK_PORT_BASE + b as u16)),
                target: SocketAddr::from((inside(b + 1), STORAGE_PORT)),
                rtt: Duration::from_secs_f64(cfg.rtt(a, b) / 1e3),
                rate: None,
            }))?);
        }
        storage_links.push(row);
    }
    let ingress_links = (0..3)
        .map(|i| {
            rt.block_on(wan::start(LinkSpec {
                name: format!("ingress→{}", CLUSTERS[i].0),
                listen: "127.0.0.1:0".parse().expect("an address"),
                target: SocketAddr::from((inside(i + 1), FAAS_PORT)),
                rtt: Duration::from_secs_f64(cfg.ingress_rtt_ms / 1e3),
                rate: None,
            }))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut clusters = Vec::new();
    for (i, (name, _)) in CLUSTERS.iter().enumerate() {
        let site = i + 1;
        let dir = logs.path().join(format!("{name}-s3"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let storage_addr = SocketAddr::from((inside(site), STORAGE_PORT));
        let args = sites.exec_args(site, &fado);
        let storage_peer = Peer::start_answering(
            &format!("{name}-s3"),
            Path::new("ip"),
            args.iter()
                .cloned()
                .chain(
                    [
                        "s3",
                        "serve",
                        "--dir",
                        &dir.display().to_string(),
                        "--listen",
                        &storage_addr.to_string(),
                        "--access-key",
                        ACCESS_KEY,
                        "--secret-key",
                        SECRET_KEY,
                    ]
                    .map(String::from),
                )
                .collect(),
            storage_addr,
            logs.path(),
            Duration::from_secs(60),
        )?;

        let own = &storage_links[i][i];
        let fallbacks: Vec<String> = cfg
            .fallbacks(i)
            .into_iter()
            .map(|b| format!("http://{}", storage_links[i][b].addr))
            .collect();
        let faas_addr = SocketAddr::from((inside(site), FAAS_PORT));
        let vars = [
            ("cluster", name.to_string()),
            ("deployment", format!("{name}-spin")),
            ("s3_endpoint", format!("http://{}", own.addr)),
            ("s3_region", "us-east-1".into()),
            ("s3_access_key", ACCESS_KEY.into()),
            ("s3_secret_key", SECRET_KEY.into()),
            ("s3_fallback_endpoints", fallbacks.join(",")),
            ("s3_fallback_hosts", format!("http://{}:*", host_side(site))),
        ];
        let mut faas_args = args.clone();
        faas_args.extend(
            [
                "serve",
                "--manifest",
                &manifest.display().to_string(),
                "--listen",
                &faas_addr.to_string(),
                "--admin-listen",
                "none",
                "--state-dir",
                &logs
                    .path()
                    .join(format!("{name}-spin"))
                    .display()
                    .to_string(),
            ]
            .map(String::from),
        );
        for (k, v) in vars {
            faas_args.push("--variable".into());
            faas_args.push(format!("{k}={v}"));
        }
        let faas_peer = Peer::start(
            &format!("{name}-spin"),
            Path::new("ip"),
            faas_args,
            faas_addr,
            "/nodeinfo",
            logs.path(),
            Duration::from_secs(300),
        )?;
        let cpu = CpuLimit::create(&format!("fado-bench-{name}"))?;
        cpu.add(faas_peer.pid())?;
        clusters.push(Cluster {
            name,
            faas: format!("{name}-spin"),
            storage: format!("{name}-s3"),
            bucket: format!("photos-{}", name.trim_end_matches("-cluster")),
            _storage_peer: storage_peer,
            _faas_peer: faas_peer,
            cpu,
        });
    }
    eprintln!("fado-bench: storage and functions up in every site; starting FaDO");
    let o = rt.block_on(peers::orchestrator(true))?;
    let bench = Bench {
        cfg,
        rt,
        o,
        clusters,
        storage_links,
        ingress_links,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .context("building the HTTP client")?,
        _sites: sites,
    };
    let image = photo(cfg.image_width, cfg.image_height)?;
    bench
        .rt
        .block_on(bench.catalog(&bench.ingress_links, &image))?;

    let mut quiet = Duration::ZERO;
    let mut scenarios = Vec::new();
    for cores in &cfg.cores {
        for &mbit in &cfg.wan_mbit {
            scenarios.push(bench.scenario(mbit, *cores, &mut quiet)?);
        }
    }
    let links = bench
        .storage_links
        .iter()
        .flatten()
        .chain(&bench.ingress_links)
        .map(|l| LinkRow {
            name: l.spec.name.clone(),
            rtt_ms: l.spec.rtt.as_secs_f64() * 1e3,
            connections: l.connections.load(std::sync::atomic::Ordering::Relaxed),
        })
        .collect();
    drop(bench);
    drop(logs);
    Ok(LocalityResults {
        image_bytes: image.len(),
        links,
        scenarios,
        quiet_waits_seconds: quiet.as_secs_f64(),
    })
}

impl Bench<'_> {
    /// Clusters, their storage (reached directly: the control plane is not
    /// what is measured) and FaaS endpoints (through the ingress links), the
    /// three buckets and their photos.
    async fn catalog(&self, ingress: &[Link], image: &[u8]) -> Result<()> {
        for (i, c) in self.clusters.iter().enumerate() {
            let zones = CLUSTERS[i].1;
            self.create("/api/clusters", json!({"name": c.name, "zones": zones}))
                .await?;
            self.create(
                "/api/storage-deployments",
                json!({"name": c.storage, "cluster": c.name,
                       "endpoint": format!("http://{}", SocketAddr::from((inside(i + 1), STORAGE_PORT))),
                       "region": "us-east-1", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY}),
            )
            .await?;
            self.create(
                "/api/faas-deployments",
                json!({"name": c.faas, "cluster": c.name, "platform": "spin",
                       "base_url": format!("http://{}", ingress[i].addr), "timeout_ms": 60_000}),
            )
            .await?;
        }
        for c in &self.clusters {
            self.create(
                "/api/buckets",
                json!({"name": c.bucket, "master_storage": c.storage, "target_replicas": 0}),
            )
            .await?;
        }
        for c in &self.clusters {
            let url = self
                .o
                .fado
                .url(&format!("/api/buckets/{}/objects/{KEY}", c.bucket));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let r = self
                    .http
                    .put(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .header("content-type", "image/jpeg")
                    .body(image.to_vec())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => break,
                    other if Instant::now() > deadline => {
                        bail!("uploading {}/{KEY}: {other:?}", c.bucket)
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }
        Ok(())
    }

    async fn create(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.o.api("POST", path, Some(body)).await;
        ensure!(status == 201, "POST {path}: {status} {v}");
        Ok(v)
    }

    /// Points every bucket's route where `strategy` sends it and waits
    /// until the published route table says so.
    async fn route(&self, strategy: Strategy) -> Result<()> {
        for c in &self.clusters {
            let path = format!("/api/buckets/{}/route-override", c.bucket);
            let (s, b) = match strategy {
                Strategy::Fado => self.o.api("DELETE", &path, None).await,
                Strategy::RoundRobin => {
                    let all: Vec<&str> = self.clusters.iter().map(|c| c.faas.as_str()).collect();
                    self.o
                        .api(
                            "PUT",
                            &path,
                            Some(json!({"faas": all, "policy": "round_robin"})),
                        )
                        .await
                }
                Strategy::MostPowerful => {
                    self.o
                        .api(
                            "PUT",
                            &path,
                            Some(json!({"faas": [self.clusters[0].faas], "policy": "round_robin"})),
                        )
                        .await
                }
            };
            ensure!(
                (200..300).contains(&s) || (s == 404 && strategy == Strategy::Fado),
                "{strategy:?} route for {}: {s} {b}",
                c.bucket
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut ok = true;
            let mut last = Vec::new();
            for c in &self.clusters {
                let want: Vec<String> = match strategy {
                    Strategy::Fado => vec![c.faas.clone()],
                    Strategy::RoundRobin => {
                        let mut v: Vec<String> =
                            self.clusters.iter().map(|c| c.faas.clone()).collect();
                        v.sort();
                        v
                    }
                    Strategy::MostPowerful => vec![self.clusters[0].faas.clone()],
                };
                let got = self.o.route_targets(&c.bucket).await;
                if got != want {
                    ok = false;
                    last.push(format!("{}: {got:?}, want {want:?}", c.bucket));
                }
            }
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "routes for {strategy:?} not published after 60 s: {}",
                    last.join("; ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn scenario(&self, mbit: f64, cores: [f64; 3], quiet: &mut Duration) -> Result<Scenario> {
        for (c, n) in self.clusters.iter().zip(cores) {
            c.cpu.set(n)?;
        }
        let rate = (mbit > 0.0).then_some(mbit * 1e6 / 8.0);
        for (a, row) in self.storage_links.iter().enumerate() {
            for (b, link) in row.iter().enumerate() {
                // The bandwidth limit is the WAN's; inside a cluster it is unlimited.
                link.set_rate(if a == b { None } else { rate });
            }
        }
        let throttled_before = self.throttled();
        let mut pooled: BTreeMap<(Strategy, &'static str), Pool> = BTreeMap::new();
        for run in 0..self.cfg.runs {
            for strategy in Strategy::ALL {
                self.rt.block_on(self.route(strategy))?;
                if !self.cfg.quiet_wait.is_zero() {
                    *quiet += cpu::wait_quiet(&[], self.cfg.quiet_wait);
                }
                for (phase, concurrency, duration) in [
                    ("sequential", 1, self.cfg.sequential_duration),
                    ("loaded", self.cfg.concurrency, self.cfg.loaded_duration),
                ] {
                    eprintln!(
                        "fado-bench: {}, {}, run {}/{}, {}, {phase} ({concurrency} in flight)",
                        mbit_label(mbit),
                        cores_label(cores),
                        run + 1,
                        self.cfg.runs,
                        strategy.label()
                    );
                    let (samples, busy) = self.rt.block_on(self.load(concurrency, duration))?;
                    let pool = pooled.entry((strategy, phase)).or_insert_with(|| Pool {
                        concurrency,
                        ..Pool::default()
                    });
                    let ok = samples.iter().filter(|s| s.outcome.is_ok()).count();
                    pool.rps_runs.push(ok as f64 / duration.as_secs_f64());
                    pool.busy_runs.push(busy);
                    pool.samples.extend(samples);
                }
            }
        }
        let throttled_after = self.throttled();
        let throttled_seconds = throttled_after
            .into_iter()
            .map(|(k, v)| {
                let before = throttled_before.get(&k).copied().unwrap_or(0.0);
                (k, v - before)
            })
            .collect();
        let mut cells = Vec::new();
        for strategy in Strategy::ALL {
            for phase in ["sequential", "loaded"] {
                let pool = pooled
                    .remove(&(strategy, phase))
                    .context("a phase was not measured")?;
                cells.push(cell(strategy, phase, pool));
            }
        }
        Ok(Scenario {
            wan_mbit: mbit,
            cores,
            cells,
            throttled_seconds,
        })
    }

    fn throttled(&self) -> BTreeMap<String, f64> {
        self.clusters
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.cpu.throttled_seconds()?)))
            .collect()
    }

    /// `concurrency` callers in a closed loop: warm-up, then `duration`
    /// recorded; each caller takes the buckets in turn, starting at a
    /// different one. Returns the calls that started and ended inside the
    /// window, and the machine's busy share during it.
    async fn load(&self, concurrency: u32, duration: Duration) -> Result<(Vec<Sample>, f64)> {
        let start = Instant::now() + self.cfg.warmup;
        let end = start + duration;
        let busy = tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let a = cpu_times();
            tokio::time::sleep_until(end.into()).await;
            let b = cpu_times();
            let total = (b.0 - a.0).max(1) as f64;
            (total - (b.1 - a.1) as f64) / total
        });
        let ingress = self.o.fado.url("/image");
        let buckets: Arc<Vec<String>> =
            Arc::new(self.clusters.iter().map(|c| c.bucket.clone()).collect());
        let mut tasks = Vec::new();
        for w in 0..concurrency as usize {
            let http = self.http.clone();
            let buckets = buckets.clone();
            let ingress = ingress.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = w;
                while Instant::now() < end {
                    let bucket = &buckets[n % buckets.len()];
                    n += 1;
                    let t0 = Instant::now();
                    let outcome = call(&http, &ingress, bucket).await;
                    let t1 = Instant::now();
                    if t0 >= start && t1 <= end {
                        out.push(Sample {
                            start: t0,
                            end: t1,
                            outcome,
                        });
                    }
                }
                out
            }));
        }
        let mut samples = Vec::new();
        for t in tasks {
            samples.extend(t.await.context("a caller panicked")?);
        }
        samples.sort_by_key(|s| s.start);
        let busy = busy.await.context("the CPU sampler panicked")?;
        Ok((samples, busy))
    }
}

/// All CPUs' (total, idle + iowait) ticks; guest time is inside user.
fn cpu_times() -> (u64, u64) {
    let f = cpu::machine_ticks();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (f.iter().take(8).sum(), idle)
}

/// One strategy's phase, over runs.
#[derive(Default)]
struct Pool {
    concurrency: u32,
    samples: Vec<Sample>,
    rps_runs: Vec<f64>,
    busy_runs: Vec<f64>,
}

async fn call(http: &reqwest::Client, ingress: &str, bucket: &str) -> Result<Facts, String> {
    let r = http
        .get(ingress)
        .query(&[("bucket", bucket), ("key", KEY)])
        .header(BUCKET_HEADER, bucket)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = r.status();
    let body = r
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    Ok(Facts {
        cluster: v["cluster"].as_str().unwrap_or("?").to_string(),
        local: v["local"].as_bool().unwrap_or(false),
        read_ms: num("read_ms"),
        resize_ms: num("resize_ms"),
        write_ms: num("write_ms"),
    })
}

fn cell(strategy: Strategy, phase: &'static str, pool: Pool) -> Cell {
    let Pool {
        concurrency,
        samples,
        rps_runs,
        busy_runs,
    } = pool;
    let ok: Vec<(&Sample, &Facts)> = samples
        .iter()
        .filter_map(|s| s.outcome.as_ref().ok().map(|f| (s, f)))
        .collect();
    let latencies: Vec<f64> = ok
        .iter()
        .map(|(s, _)| (s.end - s.start).as_secs_f64() * 1e3)
        .collect();
    let mean = |f: fn(&Facts) -> f64| {
        if ok.is_empty() {
            0.0
        } else {
            ok.iter().map(|(_, x)| f(x)).sum::<f64>() / ok.len() as f64
        }
    };
    let mut served_by = BTreeMap::new();
    for (_, f) in &ok {
        *served_by.entry(f.cluster.clone()).or_insert(0) += 1;
    }
    let local = ok.iter().filter(|(_, f)| f.local).count();
    let mut sorted = rps_runs.clone();
    sorted.sort_by(f64::total_cmp);
    let rps = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let machine_busy = busy_runs.iter().sum::<f64>() / busy_runs.len().max(1) as f64;
    Cell {
        strategy,
        phase,
        concurrency,
        requests: ok.len(),
        errors: samples.len() - ok.len(),
        first_error: samples
            .iter()
            .find_map(|s| s.outcome.as_ref().err().cloned()),
        rps,
        rps_runs,
        latency_ms: Dist::of(latencies.clone()),
        local_share: if ok.is_empty() {
            0.0
        } else {
            local as f64 / ok.len() as f64
        },
        served_by,
        read_ms: mean(|f| f.read_ms),
        resize_ms: mean(|f| f.resize_ms),
        write_ms: mean(|f| f.write_ms),
        machine_busy,
        latencies,
    }
}

/// A photo-like JPEG: smooth gradients with fine texture, so it neither
/// compresses to nothing nor decodes unrealistically fast.
pub fn photo(width: u32, height: u32) -> Result<Vec<u8>> {
    let mut state: u32 = 0x9e37_79b9;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let grain = (state & 0x1f) as i32 - 16;
        let r = (x * 255 / width) as i32 + grain;
        let g = (y * 255 / height) as i32 + grain;
        let b = (((x / 40 + y / 40) % 2) * 120 + 60) as i32 + grain;
        image::Rgb([
            r.clamp(0, 255) as u8,
            g.clamp(0, 255) as u8,
            b.clamp(0, 255) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .context("encoding the photo")?;
    Ok(out)
}

fn mbit_label(mbit: f64) -> String {
    if mbit > 0.0 {
        format!("{mbit} Mbit/s WAN")
    } else {
        "unlimited WAN bandwidth".into()
    }
}

/// "hpc 2 (whole machine), cloud-1 1, cloud-2 1" style.
fn cores_label(cores: [f64; 3]) -> String {
    CLUSTERS
        .iter()
        .zip(cores)
        .map(|((n, _), c)| {
            let n = n.trim_end_matches("-cluster");
            if c == 1.0 {
                format!("{n} 1 core")
            } else if c > 0.0 {
                format!("{n} {c} cores")
            } else {
                format!("{n} unlimited")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn scenario_title(s: &Scenario) -> String {
    format!(
        "{}; functions' CPU: {}",
        mbit_label(s.wan_mbit),
        cores_label(s.cores)
    )
}

fn find<'a>(s: &'a Scenario, strategy: Strategy, phase: &str) -> Option<&'a Cell> {
    s.cells
        .iter()
        .find(|c| c.strategy == strategy && c.phase == phase)
}

/// What each phase can and cannot show, whatever the figures.
const READING: &str = "**Reading the results.** With one call at a time the machine is not saturated \
(the CPU busy column), so what separates the strategies is where the photo was: under FaDO every call \
reads from its own cluster, 1 ms away; under the others two calls in three read from 30 or 80 ms away, \
after asking the nearer storage that lacks the bucket. The steps of the CDFs are those distances. With \
calls in flight, the three clusters share this machine's two cores and the CPU busy column shows them \
near saturation: the throughput there measures the CPU each strategy spends per call on one machine \
(decoding the photo dominates; a remote read adds proxy and HTTP work), not the capacity that separate \
clusters would add, which a single machine cannot show. Where the cloud clusters' functions get half a \
core each, they decode at about half hpc's speed, and sending every call to hpc can then finish more \
calls per second than placing them by data.\n\n";

/// The markdown section for `fado-bench locality`.
pub fn markdown(r: &LocalityReport, json_name: &str, plot_name: &str) -> String {
    let cfg = &r.config;
    let res = &r.results;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Locality: routing by bucket vs routing without regard to data\n"
    );
    report::provenance(
        &mut out,
        &r.started_utc,
        &r.machine,
        r.workspace_head.as_deref(),
    );
    let _ = writeln!(
        out,
        "Command: `{}` ({:.0} s). Raw results: [`benchmarks/{json_name}`](benchmarks/{json_name}).\n",
        r.command, r.elapsed_seconds
    );
    let _ = writeln!(
        out,
        "**Set-up.** The thesis testbed's three clusters (`hpc-cluster`, `cloud-cluster-1`, \
         `cloud-cluster-2`), each a network namespace of its own holding one S3 storage (`fado s3 serve`) \
         and one FaaS endpoint (`fado serve` on `examples/functions/spin.toml`). The namespaces reach each \
         other only through TCP proxies run by the benchmark that delay every byte by half the RTT each \
         way and add one RTT for the handshake (`bench/src/wan.rs`; `tc netem` is unavailable here): \
         {:.0} ms RTT inside a cluster, hpc–cloud-1 {:.0} ms, hpc–cloud-2 {:.0} ms, cloud-1–cloud-2 \
         {:.0} ms, and {:.0} ms from FaDO's ingress to every cluster alike. No loss, jitter or slow \
         start is modelled. Each cluster's functions run in a CPU cgroup (limits per scenario below); storage, FaDO, the proxies \
         and the caller share the machine's {} cores without limit.\n",
        cfg.intra_rtt_ms,
        cfg.inter_rtt_ms[0],
        cfg.inter_rtt_ms[1],
        cfg.inter_rtt_ms[2],
        cfg.ingress_rtt_ms,
        r.machine.cores
    );
    let _ = writeln!(
        out,
        "**Workload.** Three buckets, one mastered in each cluster and not replicated, each holding one \
         {}×{} JPEG of {:.0} KiB. Every call is `GET /image?bucket=B&key={KEY}` with `{BUCKET_HEADER}: B` \
         through FaDO's ingress; the function reads the photo, makes a 128 px PNG thumbnail and writes it \
         back to the storage it read from. Callers take the three buckets in turn. A function whose bucket \
         is not in its cluster searches the other clusters' storage nearest first, as a function that does \
         not know where data lives must. Each strategy is measured {} times, interleaved, after {:.0} s of \
         warm-up: {:.0} s with one call at a time (completion time without queueing), then {:.0} s with \
         {} calls in flight (throughput). Strategies are switched with FaDO's route overrides:\n\
         - **FaDO (by bucket)**: the route table as FaDO's planner makes it, each bucket to its cluster;\n\
         - **round robin**: every bucket over all three clusters;\n\
         - **most powerful (hpc)**: every call to `hpc-cluster`.\n",
        cfg.image_width,
        cfg.image_height,
        res.image_bytes as f64 / 1024.0,
        cfg.runs,
        cfg.warmup.as_secs_f64(),
        cfg.sequential_duration.as_secs_f64(),
        cfg.loaded_duration.as_secs_f64(),
        cfg.concurrency,
    );
    let _ = writeln!(out, "![Completion time CDFs](benchmarks/{plot_name})\n");
    out.push_str(READING);

    for s in &res.scenarios {
        let _ = writeln!(out, "### {}\n", scenario_title(s));
        let _ = writeln!(
            out,
            "| strategy | phase | calls | errors | calls/s (runs) | p50 ms | p90 ms | p99 ms | local reads | read / resize / write ms | CPU busy | served by |"
        );
        let _ = writeln!(
            out,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
        );
        for c in &s.cells {
            let d = c.latency_ms.as_ref();
            let p = |f: fn(&Dist) -> f64| d.map_or("–".into(), |d| format!("{:.0}", f(d)));
            let runs: Vec<String> = c.rps_runs.iter().map(|r| format!("{r:.1}")).collect();
            let served: Vec<String> = c
                .served_by
                .iter()
                .map(|(k, v)| format!("{}: {v}", k.trim_end_matches("-cluster")))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {:.1} ({}) | {} | {} | {} | {:.0}% | {:.0} / {:.0} / {:.0} | {:.0}% | {} |",
                c.strategy.label(),
                c.phase,
                c.concurrency,
                c.requests,
                c.errors,
                c.rps,
                runs.join(", "),
                p(|d| d.p50),
                p(|d| d.p90),
                p(|d| d.p99),
                c.local_share * 100.0,
                c.read_ms,
                c.resize_ms,
                c.write_ms,
                c.machine_busy * 100.0,
                served.join(", ")
            );
        }
        let _ = writeln!(out);
        savings(&mut out, s);
        if !s.throttled_seconds.is_empty() {
            let t: Vec<String> = s
                .throttled_seconds
                .iter()
                .map(|(k, v)| format!("{k} {v:.0} s"))
                .collect();
            let _ = writeln!(
                out,
                "Time the capped clusters' functions spent held back by their CPU limit in this scenario: {}.\n",
                t.join(", ")
            );
        }
        for c in &s.cells {
            if let Some(e) = &c.first_error {
                let _ = writeln!(
                    out,
                    "First error of {} / {}: `{}`\n",
                    c.strategy.label(),
                    c.phase,
                    e.replace('`', "'")
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "Quiet waits before measurements: {:.0} s in all.\n",
        res.quiet_waits_seconds
    );
    out
}

fn savings(out: &mut String, s: &Scenario) {
    let get = |st, ph| find(s, st, ph);
    let mut lines = Vec::new();
    for other in [Strategy::RoundRobin, Strategy::MostPowerful] {
        if let (Some(f), Some(o)) = (get(Strategy::Fado, "sequential"), get(other, "sequential"))
            && let (Some(fd), Some(od)) = (&f.latency_ms, &o.latency_ms)
        {
            lines.push(format!(
                "against {}: one call at a time, p50 {:.0} → {:.0} ms ({:+.0}%), p99 {:.0} → {:.0} ms ({:+.0}%)",
                other.label(),
                od.p50,
                fd.p50,
                (fd.p50 / od.p50 - 1.0) * 100.0,
                od.p99,
                fd.p99,
                (fd.p99 / od.p99 - 1.0) * 100.0
            ));
        }
        if let (Some(f), Some(o)) = (get(Strategy::Fado, "loaded"), get(other, "loaded"))
            && o.rps > 0.0
        {
            let p50 = match (&f.latency_ms, &o.latency_ms) {
                (Some(fd), Some(od)) => format!(
                    ", p50 {:.0} → {:.0} ms, p99 {:.0} → {:.0} ms",
                    od.p50, fd.p50, od.p99, fd.p99
                ),
                _ => String::new(),
            };
            lines.push(format!(
                "against {} under load: {:.1} → {:.1} calls/s ({:.2}×){p50}",
                other.label(),
                o.rps,
                f.rps,
                f.rps / o.rps
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(out, "**Saving by FaDO** ({}):", scenario_title(s));
        for l in lines {
            let _ = writeln!(out, "- {l}");
        }
        let _ = writeln!(out);
    }
}

/// Writes the CDF plot next to the JSON results; returns its file name.
pub fn write_plot(docs: &Path, r: &LocalityReport) -> Result<String> {
    let name = "locality.svg".to_string();
    let dir = docs.join("benchmarks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path: PathBuf = dir.join(&name);
    let panels: Vec<plot::Panel> = r
        .results
        .scenarios
        .iter()
        .flat_map(|s| {
            ["sequential", "loaded"].map(|phase| plot::Panel {
                title: format!(
                    "{}, cores {}: {}",
                    if s.wan_mbit > 0.0 {
                        format!("{} Mbit/s WAN", s.wan_mbit)
                    } else {
                        "unlimited WAN".into()
                    },
                    s.cores
                        .map(|c| if c > 0.0 { c.to_string() } else { "all".into() })
                        .join("/"),
                    if phase == "sequential" {
                        "1 call at a time".to_string()
                    } else {
                        format!("{} in flight", r.config.concurrency)
                    }
                ),
                series: Strategy::ALL
                    .iter()
                    .filter_map(|&st| {
                        let c = find(s, st, phase)?;
                        Some((st.label().to_string(), c.latencies.clone()))
                    })
                    .collect(),
            })
        })
        .collect();
    plot::cdfs(&path, &panels, 2)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LocalityConfig {
        LocalityConfig {
            intra_rtt_ms: 1.0,
            inter_rtt_ms: [30.0, 80.0, 50.0],
            ingress_rtt_ms: 10.0,
            wan_mbit: vec![0.0],
            cores: vec![[0.0, 1.0, 1.0]],
            image_width: 64,
            image_height: 48,
            runs: 1,
            warmup: Duration::ZERO,
            sequential_duration: Duration::ZERO,
            concurrency: 1,
            loaded_duration: Duration::ZERO,
            quiet_wait: Duration::ZERO,
        }
    }

    #[test]
    fn rtts_are_symmetric_and_local_inside_a_cluster() {
        let c = config();
        for a in 0..3 {
            assert_eq!(c.rtt(a, a), 1.0);
            for b in 0..3 {
                assert_eq!(c.rtt(a, b), c.rtt(b, a));
            }
        }
        assert_eq!(c.rtt(0, 1), 30.0);
        assert_eq!(c.rtt(2, 0), 80.0);
        assert_eq!(c.rtt(1, 2), 50.0);
    }

    #[test]
    fn a_function_searches_the_other_clusters_nearest_first() {
        let c = config();
        assert_eq!(c.fallbacks(0), vec![1, 2]);
        assert_eq!(c.fallbacks(1), vec![0, 2]);
        // From cloud-2: cloud-1 at 50 ms before hpc at 80 ms.
        assert_eq!(c.fallbacks(2), vec![1, 0]);
    }

    #[test]
    fn the_photo_is_a_jpeg_of_the_asked_size() {
        let bytes = photo(160, 120).unwrap();
        let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((img.width(), img.height()), (160, 120));
    }
}
