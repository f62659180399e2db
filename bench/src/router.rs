//! The invocation router against Caddy 2.6 configured as the thesis
//! configured it (one header-matched `reverse_proxy` route per bucket,
//! reconfigured through the admin API), side by side in one run:
//!
//! 1. overhead: direct to an upstream, through FaDO's router, through Caddy,
//!    both with `round_robin` and `least_conn` over three instant upstreams,
//!    and FaDO's floor: `fado serve` running a component that only makes
//!    one outbound call (no route lookup), the least any router component
//!    costs on this host;
//! 2. reconfiguration under load: one bucket's route moves to the next
//!    upstream once per second, then 100 times per second, while load runs;
//!    failed requests, latency, and the time from each change to the first
//!    request served by the new upstream;
//! 3. policies on a heterogeneous platform (the thesis's section 7.4): three
//!    upstreams of unequal speed and capacity, mean and p99 per policy;
//! 4. Redis restarted under load: failed invocations, and route changes
//!    made once it is back;
//! 5. memory: each peer's peak and, after the load, settled resident set.
//!
//! FaDO's reconfiguration is also measured across two `fado up` processes
//! sharing PostgreSQL and Redis: the change sent to one, its effect seen
//! through the other.
//!
//! Upstreams are in-process hyper servers (`upstream.rs`) that name
//! themselves in `x-served-by`, so where a request went is seen the same way
//! through either proxy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use harness::orchestrator::Orchestrator;
use serde::Serialize;
use serde_json::{Value, json};

use crate::load::{self, LoadResult, LoadSpec};
use crate::peers::{self, Peer, Spinners};
use crate::replication::Dist;
use crate::report::min_max;
use crate::upstream::{SERVED_BY, Upstream, UpstreamSpec};
use crate::{cpu, report};

/// The header both proxies match buckets on (FaDO's default).
const BUCKET_HEADER: &str = "X-FaDO-Bucket";
/// The function path every request calls.
const PATH: &str = "/bench/invoke";

#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Buckets in both route tables; requests name the middle one.
    pub buckets: u32,
    pub runs: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub concurrency: Vec<u32>,
    /// Connections of the load running during reconfiguration.
    pub reconfig_concurrency: u32,
    /// Requests per second of that load (open loop); 0: closed loop.
    pub reconfig_load_rate: f64,
    /// Times each reconfiguration measurement is repeated, one after the
    /// other.
    pub reconfig_runs: u32,
    /// Route changes per second, each measured for `reconfig_duration`.
    pub reconfig_rates: Vec<f64>,
    pub reconfig_duration: Duration,
    /// Service time (ms) of each upstream of the policy experiment.
    pub policy_service_ms: Vec<u64>,
    /// Requests each of those upstreams serves at once.
    pub policy_workers: usize,
    pub policy_concurrency: u32,
    pub policy_duration: Duration,
    pub caddy: PathBuf,
    /// How long load runs around the Redis restart.
    pub restart_duration: Duration,
    /// How long the peers rest before their settled memory is read.
    pub memory_settle: Duration,
    pub quiet_wait: Duration,
    pub keep_cpus_awake: bool,
}

#[derive(Debug, Serialize)]
pub struct OverheadCell {
    pub variant: String,
    pub concurrency: u32,
    pub runs: Vec<LoadResult>,
}

#[derive(Debug, Serialize)]
pub struct ChangeStats {
    /// Changes made (each acknowledged by the API or admin endpoint).
    pub changes: usize,
    /// Changes per second achieved (a change waits for the previous one to
    /// be seen in effect).
    pub achieved_rate: f64,
    /// Changes not seen in effect within `EFFECT_TIMEOUT`.
    pub not_in_effect: usize,
    /// Changes seen in effect later than `LATE` after they were sent.
    pub late: usize,
    /// Failed change requests (non-2xx or no answer).
    pub change_errors: usize,
    pub first_change_error: Option<String>,
    /// Time from sending a change to its acknowledgement, ms.
    pub ack_ms: Option<Dist>,
    /// Time from sending a change to the start of the first probe request
    /// the new upstream answered, ms.
    pub effect_ms: Option<Dist>,
}

#[derive(Debug, Serialize)]
pub struct ReconfigRun {
    pub peer: String,
    /// Which of the `reconfig_runs` runs (from 1).
    pub run: u32,
    /// Changes per second asked for (0: the baseline without changes).
    pub rate: f64,
    pub load: LoadResult,
    pub changes: Option<ChangeStats>,
}

#[derive(Debug, Serialize)]
pub struct PolicyRun {
    pub peer: String,
    pub policy: String,
    pub runs: Vec<LoadResult>,
}

#[derive(Debug, Serialize)]
pub struct RedisRestart {
    /// From stopping Redis to its answering again, ms.
    pub down_ms: f64,
    /// From Redis answering again to the route table being back in it, ms.
    pub republished_ms: Option<f64>,
    /// The load through FaDO, before, during and after.
    pub load: LoadResult,
    /// Route changes made once the table was back.
    pub changes: ChangeStats,
}

#[derive(Debug, Serialize)]
pub struct PeerMemory {
    pub peer: String,
    /// Right after the last measurement.
    pub after_load: crate::memory::Resident,
    /// After resting `memory_settle`.
    pub settled: crate::memory::Resident,
}

#[derive(Debug, Serialize)]
pub struct RouterResults {
    pub caddy_version: String,
    pub fado_version: String,
    pub upstream_names: Vec<String>,
    pub overhead: Vec<OverheadCell>,
    pub reconfig: Vec<ReconfigRun>,
    pub policies: Vec<PolicyRun>,
    pub redis_restart: Option<RedisRestart>,
    pub memory: Vec<PeerMemory>,
    /// Time spent waiting for other processes to go quiet.
    pub quiet_waits_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct RouterReport {
    pub experiment: &'static str,
    pub started_utc: String,
    pub finished_utc: String,
    pub elapsed_seconds: f64,
    pub command: String,
    pub workspace_head: Option<String>,
    pub machine: report::Machine,
    pub config: Value,
    pub results: RouterResults,
}

/// A change not seen in effect within this is counted as not in effect.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The goal: every change in effect within 10 ms.
const LATE: Duration = Duration::from_millis(10);

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("creating the runtime")
}

fn bucket_name(i: u32) -> String {
    format!("bench-{i:04}")
}

/// One of the two proxies under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proxy {
    Fado,
    /// A second `fado up` on the same PostgreSQL and Redis: changes go to
    /// the first, requests to this one.
    FadoPeer,
    Caddy,
}

impl Proxy {
    fn name(self) -> &'static str {
        match self {
            Proxy::Fado => "fado",
            Proxy::FadoPeer => "fado, 2nd process",
            Proxy::Caddy => "caddy",
        }
    }
}

/// Where an overhead measurement sends its load.
#[derive(Clone, Copy)]
enum Via {
    /// Straight to upstream `u0`.
    Direct,
    Proxy(Proxy),
    /// The floor component (`probe`'s `/fetch`) forwarding to `u0`.
    Floor,
}

/// Everything running: upstreams, FaDO, Caddy.
struct Bench<'a> {
    cfg: &'a RouterConfig,
    rt: tokio::runtime::Runtime,
    o: Orchestrator,
    caddy: Caddy,
    /// `fado serve` with the test `probe` component only: the floor.
    floor: Peer,
    /// A second `fado up` beside the orchestrator's, same database and Redis.
    peer: harness::Fado,
    /// Instant upstreams `u0`..`u2` (deployments `f0`..`f2`).
    fast: Vec<Upstream>,
    /// Upstreams of unequal speed `h0`.. (deployments `h0`..).
    slow: Vec<Upstream>,
    /// The bucket every request names.
    bucket: String,
    http: reqwest::Client,
}

pub fn run(cfg: &RouterConfig) -> Result<RouterResults> {
    ensure!(
        cfg.caddy.exists(),
        "{} is missing: apt-get install -y caddy",
        cfg.caddy.display()
    );
    let caddy_version = peers::output_of(&cfg.caddy, &["version"])
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let fast = (0..3)
        .map(|i| {
            Upstream::start_with(UpstreamSpec {
                name: format!("u{i}"),
                service: Duration::ZERO,
                workers: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let slow = cfg
        .policy_service_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            Upstream::start_with(UpstreamSpec {
                name: format!("h{i}"),
                service: Duration::from_millis(*ms),
                workers: Some(cfg.policy_workers),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rt = runtime()?;
    let o = rt.block_on(peers::orchestrator(false))?;
    let logs = tempfile::Builder::new()
        .prefix("fado-bench-caddy-")
        .tempdir()
        .context("creating Caddy's directory")?;
    let caddy = Caddy::start(&cfg.caddy, logs.path())?;
    let floor = start_floor(logs.path(), fast[0].addr)?;
    let peer = o.peer().context("starting a second fado up")?;
    let mut bench = Bench {
        cfg,
        rt,
        o,
        caddy,
        floor,
        peer,
        fast,
        slow,
        bucket: bucket_name(cfg.buckets / 2),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTP client")?,
    };
    eprintln!("fado-bench: registering {} buckets", cfg.buckets);
    bench.rt.block_on(bench.catalog())?;
    let _spinners = if cfg.keep_cpus_awake {
        Some(Spinners::start(2)?)
    } else {
        None
    };
    let mut quiet = Duration::ZERO;
    let overhead = bench.overhead(&mut quiet)?;
    let reconfig = bench.reconfiguration(&mut quiet)?;
    let policies = bench.policies(&mut quiet)?;
    let redis_restart = Some(bench.redis_restart(&mut quiet)?);
    let memory = bench.memory()?;
    let upstream_names = bench
        .fast
        .iter()
        .chain(&bench.slow)
        .map(|u| u.addr.to_string())
        .collect();
    drop(bench);
    drop(logs);
    Ok(RouterResults {
        caddy_version,
        fado_version: format!("fado {}", env!("CARGO_PKG_VERSION")),
        upstream_names,
        overhead,
        reconfig,
        policies,
        redis_restart,
        memory,
        quiet_waits_seconds: quiet.as_secs_f64(),
    })
}

impl Bench<'_> {
    /// Clusters `c0`..: one FaaS deployment each (`f0`..`f2` on the instant
    /// upstreams, `h0`.. on the slow ones) and made-up storage; `buckets`
    /// buckets mastered round the first three. Caddy gets the same buckets
    /// as routes.
    async fn catalog(&self) -> Result<()> {
        let targets: Vec<(String, SocketAddr)> = self
            .fast
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("f{i}"), u.addr))
            .chain(
                self.slow
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (format!("h{i}"), u.addr)),
            )
            .collect();
        for (i, (name, addr)) in targets.iter().enumerate() {
            self.create(
                "/api/clusters",
                json!({"name": format!("c{i}"), "zones": ["bench"]}),
            )
            .await?;
            self.create(
                "/api/faas-deployments",
                json!({"name": name, "cluster": format!("c{i}"), "platform": "spin",
                       "base_url": format!("http://{addr}"), "timeout_ms": 30_000}),
            )
            .await?;
            self.create(
                "/api/storage-deployments?verify=false",
                json!({"name": format!("s{i}"), "cluster": format!("c{i}"),
                       "endpoint": format!("http://10.9.0.{i}:3900"), "access_key": "a", "secret_key": "b"}),
            )
            .await?;
        }
        for b in 0..self.cfg.buckets {
            self.create(
                "/api/buckets",
                json!({"name": bucket_name(b), "master_storage": format!("s{}", b % 3),
                       "target_replicas": 0}),
            )
            .await?;
        }
        self.o.settled().await;
        self.caddy
            .load(&self.http, &self.caddy_config(&[0, 1, 2], "round_robin"))
            .await
    }

    async fn create(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.o.api("POST", path, Some(body)).await;
        ensure!(status == 201, "POST {path}: {status} {v}");
        Ok(v)
    }

    /// Caddy's whole configuration: every bucket routed to its master's
    /// upstream, as FaDO's planner routes them, except the measured bucket,
    /// routed over `upstreams` (indexes into fast, then slow) with `policy`.
    fn caddy_config(&self, upstreams: &[usize], policy: &str) -> Value {
        let all: Vec<SocketAddr> = self.fast.iter().chain(&self.slow).map(|u| u.addr).collect();
        let routes: Vec<Value> = (0..self.cfg.buckets)
            .map(|b| {
                let name = bucket_name(b);
                let (ups, policy) = if name == self.bucket {
                    (upstreams.iter().map(|&i| all[i]).collect(), policy)
                } else {
                    (vec![all[(b % 3) as usize]], "round_robin")
                };
                caddy_route(&name, &ups, policy)
            })
            .collect();
        self.caddy.config(routes)
    }

    /// Routes the measured bucket over `upstreams` with `policy` in FaDO
    /// (waiting until the planner published it) and, when `caddy`, in Caddy
    /// (which lacks FaDO's `p2c` and `least_latency`).
    fn route(&self, upstreams: &[usize], policy: &str, caddy: bool) -> Result<()> {
        let names = self.deployment_names(upstreams);
        self.rt.block_on(async {
            let (s, b) = self
                .o
                .api(
                    "PUT",
                    &format!("/api/buckets/{}/route-override", self.bucket),
                    Some(json!({"faas": names, "policy": policy})),
                )
                .await;
            ensure!(s == 200, "route override: {s} {b}");
            self.o.settled().await;
            if caddy {
                self.caddy
                    .load(&self.http, &self.caddy_config(upstreams, policy))
                    .await?;
            }
            Ok(())
        })
    }

    fn deployment_names(&self, upstreams: &[usize]) -> Vec<String> {
        let fast = self.fast.len();
        upstreams
            .iter()
            .map(|&i| {
                if i < fast {
                    format!("f{i}")
                } else {
                    format!("h{}", i - fast)
                }
            })
            .collect()
    }

    fn addr(&self, proxy: Proxy) -> SocketAddr {
        match proxy {
            Proxy::Fado => self.o.fado.addr,
            Proxy::FadoPeer => self.peer.addr,
            Proxy::Caddy => self.caddy.listen,
        }
    }

    fn spec(&self, addr: SocketAddr, concurrency: u32, duration: Duration) -> LoadSpec {
        self.spec_at(addr, PATH, concurrency, duration)
    }

    fn spec_at(
        &self,
        addr: SocketAddr,
        path: &str,
        concurrency: u32,
        duration: Duration,
    ) -> LoadSpec {
        LoadSpec {
            addr,
            path: path.into(),
            concurrency,
            warmup: self.cfg.warmup,
            duration,
            headers: vec![(BUCKET_HEADER.into(), self.bucket.clone())],
            tally_header: Some(SERVED_BY.into()),
            rate: None,
        }
    }

    fn settle(&self, quiet: &mut Duration) {
        if !self.cfg.quiet_wait.is_zero() {
            *quiet +=
                cpu::wait_quiet_with(|| cpu::CpuSnapshot::take_tree(&[]), self.cfg.quiet_wait);
        }
    }

    /// Each variant at each concurrency, runs interleaved so drift hits all.
    fn overhead(&self, quiet: &mut Duration) -> Result<Vec<OverheadCell>> {
        // `direct` runs while the round_robin route is set (it uses none).
        let variants = [
            ("direct", Via::Direct, "round_robin"),
            (FLOOR, Via::Floor, "round_robin"),
            ("fado round_robin", Via::Proxy(Proxy::Fado), "round_robin"),
            ("caddy round_robin", Via::Proxy(Proxy::Caddy), "round_robin"),
            ("fado least_conn", Via::Proxy(Proxy::Fado), "least_conn"),
            ("caddy least_conn", Via::Proxy(Proxy::Caddy), "least_conn"),
        ];
        let floor_path = format!("/fetch?url=http://{}{PATH}", self.fast[0].addr);
        let mut cells: Vec<OverheadCell> = Vec::new();
        for run in 0..self.cfg.runs {
            for policy in ["round_robin", "least_conn"] {
                self.route(&[0, 1, 2], policy, true)?;
                for (variant, via, p) in variants {
                    if p != policy {
                        continue;
                    }
                    for &c in &self.cfg.concurrency {
                        self.settle(quiet);
                        eprintln!("fado-bench: overhead run {} {variant} c={c}", run + 1);
                        let spec = match via {
                            Via::Direct => self.spec(self.fast[0].addr, c, self.cfg.duration),
                            Via::Proxy(p) => self.spec(self.addr(p), c, self.cfg.duration),
                            Via::Floor => {
                                self.spec_at(self.floor.addr, &floor_path, c, self.cfg.duration)
                            }
                        };
                        let result = measure(&spec, &format!("{variant} at concurrency {c}"))?;
                        match cells
                            .iter_mut()
                            .find(|x| x.variant == variant && x.concurrency == c)
                        {
                            Some(cell) => cell.runs.push(result),
                            None => cells.push(OverheadCell {
                                variant: variant.into(),
                                concurrency: c,
                                runs: vec![result],
                            }),
                        }
                    }
                }
            }
        }
        Ok(cells)
    }

    /// For each proxy: a baseline without changes, then each change rate.
    fn reconfiguration(&self, quiet: &mut Duration) -> Result<Vec<ReconfigRun>> {
        let mut out = Vec::new();
        for proxy in [Proxy::Fado, Proxy::FadoPeer, Proxy::Caddy] {
            let rates = std::iter::once(&0.0).chain(&self.cfg.reconfig_rates);
            for (run, &rate) in (1..=self.cfg.reconfig_runs)
                .flat_map(|run| rates.clone().map(move |r| (run, r)))
                .filter(|(run, r)| *run == 1 || **r > 0.0)
            {
                self.route(&[0], "first", true)?;
                self.settle(quiet);
                eprintln!(
                    "fado-bench: reconfiguration {} at {rate} changes/s (run {run})",
                    proxy.name()
                );
                let spec = LoadSpec {
                    rate: (self.cfg.reconfig_load_rate > 0.0)
                        .then_some(self.cfg.reconfig_load_rate),
                    ..self.spec(
                        self.addr(proxy),
                        self.cfg.reconfig_concurrency,
                        self.cfg.reconfig_duration,
                    )
                };
                let loader = std::thread::spawn(move || load::run(&spec));
                let changes = if rate > 0.0 {
                    // Changes start when the load's window does.
                    std::thread::sleep(self.cfg.warmup);
                    Some(
                        self.rt
                            .block_on(self.changes(proxy, rate, self.cfg.reconfig_duration))?,
                    )
                } else {
                    None
                };
                let load = loader
                    .join()
                    .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
                out.push(ReconfigRun {
                    peer: proxy.name().into(),
                    run,
                    rate,
                    load,
                    changes,
                });
            }
        }
        self.route(&[0], "first", true)?;
        Ok(out)
    }

    /// Moves the measured bucket to the next instant upstream `rate` times
    /// a second for the load's duration; after each change a probe (its own
    /// connection through the proxy) calls until the new upstream answers.
    async fn changes(&self, proxy: Proxy, rate: f64, window: Duration) -> Result<ChangeStats> {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let addr = self.addr(proxy);
        let headers = vec![(BUCKET_HEADER.to_string(), self.bucket.clone())];
        let mut probe = load::connect(addr).await?;
        let start = Instant::now();
        let until = start + window;
        let (mut acks, mut effects) = (Vec::new(), Vec::new());
        let (mut not_in_effect, mut errors, mut first_error) = (0, 0, None);
        let mut k: u32 = 0;
        loop {
            let due = start + interval * k;
            if due >= until {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            k += 1;
            let target = (k % 3) as usize;
            let want = format!("u{target}");
            let t0 = Instant::now();
            let change = self.change(proxy, target);
            let observe = async {
                loop {
                    if t0.elapsed() > EFFECT_TIMEOUT {
                        return None;
                    }
                    if probe.is_closed() {
                        probe = load::connect(addr).await.ok()?;
                    }
                    let sent = Instant::now();
                    match load::send(&mut probe, addr, PATH, &headers, Some(SERVED_BY)).await {
                        Ok(a) if a.tallied.as_deref() == Some(want.as_str()) => {
                            return Some(sent - t0);
                        }
                        Ok(_) => {}
                        Err(_) => {
                            probe = load::connect(addr).await.ok()?;
                        }
                    }
                }
            };
            let (acked, seen) = tokio::join!(
                async {
                    let r = change.await;
                    (r, t0.elapsed())
                },
                observe
            );
            let ack_ms = acked.1.as_secs_f64() * 1e3;
            match acked {
                (Ok(()), _) => acks.push(ack_ms),
                (Err(e), _) => {
                    errors += 1;
                    first_error.get_or_insert(format!("{e:#}"));
                }
            }
            // Named on stderr with the time, to match against the peers' logs.
            let at = chrono::Utc::now().format("%H:%M:%S%.3f");
            match seen {
                Some(d) => {
                    if d > LATE {
                        eprintln!(
                            "fado-bench: {at} change {k} to {want} ({}) in effect after {:.1} ms \
                             (acknowledged after {ack_ms:.1} ms)",
                            proxy.name(),
                            d.as_secs_f64() * 1e3
                        );
                    }
                    effects.push(d.as_secs_f64() * 1e3);
                }
                None => {
                    eprintln!(
                        "fado-bench: {at} change {k} to {want} ({}) not seen within {} s",
                        proxy.name(),
                        EFFECT_TIMEOUT.as_secs()
                    );
                    not_in_effect += 1;
                }
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let late_ms = LATE.as_secs_f64() * 1e3;
        Ok(ChangeStats {
            changes: k as usize,
            achieved_rate: f64::from(k) / elapsed,
            not_in_effect,
            late: effects.iter().filter(|ms| **ms > late_ms).count(),
            change_errors: errors,
            first_change_error: first_error,
            ack_ms: Dist::of(acks),
            effect_ms: Dist::of(effects),
        })
    }

    /// One route change: FaDO through its API (Postgres, then the catalog's
    /// express route in Redis), Caddy by loading its whole new configuration
    /// through the admin endpoint, as the thesis's FaDO did.
    async fn change(&self, proxy: Proxy, target: usize) -> Result<()> {
        match proxy {
            Proxy::Fado | Proxy::FadoPeer => {
                let put = self
                    .http
                    .put(
                        self.o
                            .fado
                            .url(&format!("/api/buckets/{}/route-override", self.bucket)),
                    )
                    .bearer_auth(harness::orchestrator::ADMIN_TOKEN)
                    .json(&json!({"faas": [format!("f{target}")], "policy": "first"}));
                succeeds("PUT route-override", put).await
            }
            Proxy::Caddy => {
                self.caddy
                    .load(&self.http, &self.caddy_config(&[target], "round_robin"))
                    .await
            }
        }
    }

    /// Every FaDO policy, and Caddy's, over the slow upstreams.
    fn policies(&self, quiet: &mut Duration) -> Result<Vec<PolicyRun>> {
        let slow: Vec<usize> = (0..self.slow.len()).map(|i| self.fast.len() + i).collect();
        let mut out: Vec<PolicyRun> = Vec::new();
        let cases = [
            (Proxy::Fado, "round_robin"),
            (Proxy::Fado, "random"),
            (Proxy::Fado, "least_conn"),
            (Proxy::Fado, "p2c"),
            (Proxy::Fado, "least_latency"),
            (Proxy::Fado, "first"),
            (Proxy::Caddy, "round_robin"),
            (Proxy::Caddy, "random"),
            (Proxy::Caddy, "least_conn"),
        ];
        for run in 0..self.cfg.runs {
            for (proxy, policy) in cases {
                self.route(&slow, policy, proxy == Proxy::Caddy)?;
                self.settle(quiet);
                eprintln!(
                    "fado-bench: policies run {} {} {policy}",
                    run + 1,
                    proxy.name()
                );
                let result = measure(
                    &self.spec(
                        self.addr(proxy),
                        self.cfg.policy_concurrency,
                        self.cfg.policy_duration,
                    ),
                    &format!("{} {policy}", proxy.name()),
                )?;
                match out
                    .iter_mut()
                    .find(|x| x.peer == proxy.name() && x.policy == policy)
                {
                    Some(p) => p.runs.push(result),
                    None => out.push(PolicyRun {
                        peer: proxy.name().into(),
                        policy: policy.into(),
                        runs: vec![result],
                    }),
                }
            }
        }
        Ok(out)
    }
}

impl Bench<'_> {
    /// Load through FaDO while Redis restarts (empty: it keeps nothing on
    /// disk); once the route table is back in Redis, route changes at 10
    /// a second for the rest of the window.
    fn redis_restart(&mut self, quiet: &mut Duration) -> Result<RedisRestart> {
        self.route(&[0, 1, 2], "round_robin", false)?;
        self.settle(quiet);
        eprintln!("fado-bench: Redis restart under load");
        let spec = LoadSpec {
            rate: (self.cfg.reconfig_load_rate > 0.0).then_some(self.cfg.reconfig_load_rate),
            ..self.spec(
                self.o.fado.addr,
                self.cfg.reconfig_concurrency,
                self.cfg.restart_duration,
            )
        };
        let started = Instant::now();
        let loader = std::thread::spawn(move || load::run(&spec));
        std::thread::sleep(self.cfg.warmup + self.cfg.restart_duration / 5);
        let stopped = Instant::now();
        self.o.redis.restart().context("restarting Redis")?;
        let down_ms = stopped.elapsed().as_secs_f64() * 1e3;
        let back = Instant::now();
        let republished = self.rt.block_on(async {
            harness::eventually(Duration::from_secs(10), || async {
                let mut c = self.o.redis.conn().await.ok()?;
                let n: i64 = redis::cmd("EXISTS")
                    .arg(fado_model::route_keys::META)
                    .query_async(&mut c)
                    .await
                    .ok()?;
                (n == 1).then_some(back.elapsed())
            })
            .await
        });
        let left = (self.cfg.warmup + self.cfg.restart_duration).saturating_sub(started.elapsed());
        let changes = self.rt.block_on(self.changes(
            Proxy::Fado,
            10.0,
            left.saturating_sub(Duration::from_millis(500)),
        ))?;
        let load = loader
            .join()
            .map_err(|_| anyhow::anyhow!("the load generator panicked"))??;
        self.route(&[0], "first", false)?;
        Ok(RedisRestart {
            down_ms,
            republished_ms: republished.map(|d| d.as_secs_f64() * 1e3),
            load,
            changes,
        })
    }

    /// Each peer's resident memory right after the load and after resting.
    fn memory(&self) -> Result<Vec<PeerMemory>> {
        let peers: Vec<(&str, u32)> = vec![
            ("fado up", self.o.fado.pid()),
            ("fado up, 2nd process", self.peer.pid()),
            (FLOOR, self.floor.pid()),
            ("caddy", self.caddy.peer.pid()),
        ];
        let after: Vec<crate::memory::Resident> = peers
            .iter()
            .map(|(_, pid)| crate::memory::resident(*pid))
            .collect::<Result<_>>()?;
        eprintln!(
            "fado-bench: resting {:.0} s before reading settled memory",
            self.cfg.memory_settle.as_secs_f64()
        );
        std::thread::sleep(self.cfg.memory_settle);
        peers
            .iter()
            .zip(after)
            .map(|((name, pid), after_load)| {
                Ok(PeerMemory {
                    peer: name.to_string(),
                    after_load,
                    settled: crate::memory::resident(*pid)?,
                })
            })
            .collect()
    }
}

/// One measurement that must see no failed request.
fn measure(spec: &LoadSpec, what: &str) -> Result<LoadResult> {
    let result = load::run(spec).with_context(|| what.to_string())?;
    ensure!(
        result.errors == 0,
        "{what}: {} errors, first: {:?}",
        result.errors,
        result.first_error
    );
    Ok(result)
}

/// The overhead variant of the floor component.
const FLOOR: &str = "fado floor";
/// Requests one floor instance serves in turn, as the router's do (the
/// root spin.toml).
const REUSE: u32 = 1000;

/// `fado serve` running only the test `probe` component, allowed to call
/// `upstream`: its `/fetch` makes one outbound GET and streams the body
/// back, the least a component that forwards a request does.
fn start_floor(dir: &std::path::Path, upstream: SocketAddr) -> Result<Peer> {
    let target = crate::prepare::target_dir(&harness::workspace())?;
    let fado = target.join("release").join("fado");
    let probe = target
        .join("wasm32-wasip2")
        .join("release")
        .join("probe.wasm");
    ensure!(
        probe.exists(),
        "{} is missing: run ./infra/build --all",
        probe.display()
    );
    let manifest = dir.join("floor.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"bench-floor\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n\
             [component.probe]\nsource = \"{}\"\nallowed_outbound_hosts = [\"http://{upstream}\"]\n\
             [component.probe.tool.fado]\ninstance_reuse = {REUSE}\n",
            probe.display()
        ),
    )
    .with_context(|| format!("writing {}", manifest.display()))?;
    Peer::fado_serve(
        "fado-floor",
        &fado,
        &manifest,
        &[],
        dir,
        Duration::from_secs(120),
    )
}

fn caddy_route(bucket: &str, upstreams: &[SocketAddr], policy: &str) -> Value {
    json!({
        "match": [{"header": {BUCKET_HEADER: [bucket]}}],
        "handle": [{
            "handler": "reverse_proxy",
            "load_balancing": {"selection_policy": {"policy": policy}},
            "upstreams": upstreams.iter().map(|a| json!({"dial": a.to_string()})).collect::<Vec<_>>(),
        }],
    })
}

/// Caddy, started with an empty server and configured through its admin
/// endpoint only.
struct Caddy {
    peer: Peer,
    listen: SocketAddr,
}

impl Caddy {
    fn start(program: &std::path::Path, dir: &std::path::Path) -> Result<Caddy> {
        let admin = peers::free_addr()?;
        let listen = peers::free_addr()?;
        let boot = dir.join("caddy.json");
        let config = Self::config_on(admin, listen, Vec::new());
        std::fs::write(&boot, serde_json::to_vec_pretty(&config)?)
            .context("writing Caddy's first configuration")?;
        let peer = Peer::start(
            "caddy",
            program,
            vec!["run".into(), "--config".into(), boot.display().to_string()],
            admin,
            "/config/",
            dir,
            Duration::from_secs(30),
        )?;
        Ok(Caddy { peer, listen })
    }

    fn config(&self, routes: Vec<Value>) -> Value {
        Self::config_on(self.peer.addr, self.listen, routes)
    }

    /// Access logs off (Caddy's default), errors only, no automatic HTTPS:
    /// a plain HTTP reverse proxy like FaDO's ingress here.
    fn config_on(admin: SocketAddr, listen: SocketAddr, routes: Vec<Value>) -> Value {
        json!({
            "admin": {"listen": admin.to_string()},
            "logging": {"logs": {"default": {"level": "ERROR"}}},
            "apps": {"http": {"servers": {"lb": {
                "listen": [listen.to_string()],
                "automatic_https": {"disable": true},
                "routes": routes,
            }}}},
        })
    }

    /// `POST /load`: Caddy answers once the new configuration runs.
    async fn load(&self, http: &reqwest::Client, config: &Value) -> Result<()> {
        let post = http
            .post(format!("http://{}/load", self.peer.addr))
            .json(config);
        succeeds("POST /load to Caddy's admin endpoint", post).await
    }
}

/// Sends `request`; an answer other than 2xx is an error naming `what`
/// with the answer's body.
async fn succeeds(what: &str, request: reqwest::RequestBuilder) -> Result<()> {
    let r = request.send().await.context(what.to_string())?;
    let status = r.status();
    if !status.is_success() {
        bail!("{what}: {status} {}", r.text().await.unwrap_or_default());
    }
    Ok(())
}

fn ms(us: f64) -> String {
    let v = us / 1000.0;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The median of `v` (of the runs' values).
fn median(v: Vec<f64>) -> f64 {
    crate::host::median(&v)
}

/// Shares of successful responses per upstream, as `u0 34% · u1 33% …`.
fn shares(runs: &[LoadResult]) -> String {
    let mut tally: BTreeMap<&str, u64> = BTreeMap::new();
    for r in runs {
        for (k, n) in &r.tally {
            *tally.entry(k.as_str()).or_insert(0) += n;
        }
    }
    let total: u64 = tally.values().sum();
    tally
        .iter()
        .map(|(k, n)| format!("{k} {:.0}%", 100.0 * *n as f64 / total.max(1) as f64))
        .collect::<Vec<_>>()
        .join(" · ")
}

pub fn markdown(r: &RouterReport, json_name: &str, cfg: &RouterConfig) -> String {
    let res = &r.results;
    let mut out = String::new();
    let _ = writeln!(out, "## Router\n");
    let _ = writeln!(
        out,
        "`{}` — {:.0} s, raw results in [`benchmarks/{json_name}`](benchmarks/{json_name}).\n",
        r.command, r.elapsed_seconds
    );
    report::provenance(
        &mut out,
        &r.started_utc,
        &r.machine,
        r.workspace_head.as_deref(),
    );
    let _ = writeln!(
        out,
        "\nPeers: FaDO's `router` component under `fado up` (the root spin.toml; route table \
         read through `wasi:keyvalue` from process memory, a near-cache of Redis; counters per \
         process; catalog in PostgreSQL committing to disk: fsync and synchronous commit on, as \
         in production) and Caddy {} configured as the thesis configured it: one \
         `reverse_proxy` route per bucket matching `{BUCKET_HEADER}`, loaded through the admin \
         endpoint (`POST /load` of the whole configuration). Both hold {} buckets; requests name \
         `{}` (the middle one). Upstreams are in-process hyper servers that name themselves in \
         `x-served-by`. Load: fado-bench's closed-loop HTTP/1.1 client (keep-alive, one connection \
         per unit of concurrency, one thread). Everything shares the machine's cores{}; \
         {:.0} s were spent waiting for other processes to go quiet.\n",
        res.caddy_version,
        cfg.buckets,
        bucket_name(cfg.buckets / 2),
        if cfg.keep_cpus_awake {
            " (with one nice-19 spin loop per core keeping idle vCPUs awake)"
        } else {
            ""
        },
        res.quiet_waits_seconds
    );

    // 1. Overhead.
    let _ = writeln!(out, "### Overhead\n");
    let _ = writeln!(
        out,
        "Three instant upstreams; `direct` calls one of them. `{FLOOR}` is `fado serve` (same \
         binary, default settings) running only the test component `probe`, whose `/fetch` makes \
         one outbound GET to `u0` and streams the body back: no route lookup, no Redis, no \
         header handling, so it is the least a forwarding component costs (its instances serve up \
         to {REUSE} requests in turn, as the router's do). {} runs of {:.0} s (after {:.0} s \
         warm-up) per cell, interleaved; medians of the runs, range of requests/s in brackets; \
         no errors in any run.\n",
        cfg.runs,
        cfg.duration.as_secs_f64(),
        cfg.warmup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| connections | variant | requests/s | p50 ms | p99 ms | added p99 ms | spread |\n|---|---|---|---|---|---|---|"
    );
    for &c in &cfg.concurrency {
        let direct_p99 = res
            .overhead
            .iter()
            .find(|x| x.variant == "direct" && x.concurrency == c)
            .map(|x| median(x.runs.iter().map(|r| r.latency_us.p99).collect()))
            .unwrap_or(0.0);
        for cell in res.overhead.iter().filter(|x| x.concurrency == c) {
            let rps: Vec<f64> = cell.runs.iter().map(|r| r.rps).collect();
            let (lo, hi) = min_max(&rps);
            let p99 = median(cell.runs.iter().map(|r| r.latency_us.p99).collect());
            let _ = writeln!(
                out,
                "| {c} | {} | {:.0} [{lo:.0}–{hi:.0}] | {} | {} | {} | {} |",
                cell.variant,
                median(rps.clone()),
                ms(median(cell.runs.iter().map(|r| r.latency_us.p50).collect())),
                ms(p99),
                if cell.variant == "direct" {
                    "—".to_string()
                } else {
                    ms(p99 - direct_p99)
                },
                shares(&cell.runs),
            );
        }
    }
    let _ = writeln!(out);
    for &c in &cfg.concurrency {
        let get = |v: &str| {
            res.overhead
                .iter()
                .find(|x| x.variant == v && x.concurrency == c)
                .map(|x| {
                    (
                        median(x.runs.iter().map(|r| r.rps).collect()),
                        median(x.runs.iter().map(|r| r.latency_us.p99).collect()),
                    )
                })
        };
        let direct = get("direct").map_or(0.0, |d| d.1);
        if let (Some(f), Some(k)) = (get(FLOOR), get("caddy round_robin")) {
            let _ = writeln!(
                out,
                "- {c} connection(s), floor: {:.2}× Caddy round_robin's requests/s; added p99 \
                 {} ms vs Caddy {} ms.",
                f.0 / k.0,
                ms(f.1 - direct),
                ms(k.1 - direct)
            );
        }
        for policy in ["round_robin", "least_conn"] {
            if let (Some(f), Some(k)) = (
                get(&format!("fado {policy}")),
                get(&format!("caddy {policy}")),
            ) {
                let _ = writeln!(
                    out,
                    "- {c} connection(s), {policy}: FaDO {:.2}× Caddy's requests/s; added p99 \
                     FaDO {} ms vs Caddy {} ms.",
                    f.0 / k.0,
                    ms(f.1 - direct),
                    ms(k.1 - direct)
                );
            }
        }
    }

    // 2. Reconfiguration.
    let _ = writeln!(out, "\n### Reconfiguration under load\n");
    let _ = writeln!(
        out,
        "{} connections call the measured bucket{} for {:.0} s while its route moves to the next \
         upstream (u0 → u1 → u2 → u0 …) at the given rate: for FaDO `PUT \
         /api/buckets/{{bucket}}/route-override` (committed in PostgreSQL, then written to the \
         bucket's route key in Redis through the process's near-cache before it answers; the \
         planner folds it into its next table), for Caddy `POST /load` of the whole new \
         configuration. *fado, 2nd process* is a second `fado up` on the same PostgreSQL and \
         Redis: the change goes to the first, the load and the probe to the second, which learns \
         of it from Redis's invalidation. After each change \
         a probe (its own connection through the proxy) calls until the new upstream answers; \
         *effect* is the time from sending the change to sending the first request the new \
         upstream answered (resolution: one probe round trip). A change is sent when it is due \
         or, if later, once the previous one was seen in effect, so the achieved rate can fall \
         short of the asked one. Rate 0 is the same load without changes. Each rate is \
         measured {} times in a row.\n",
        cfg.reconfig_concurrency,
        if cfg.reconfig_load_rate > 0.0 {
            format!(
                " at {:.0} requests/s in all (open loop: latency counts from each request's \
                 scheduled time)",
                cfg.reconfig_load_rate
            )
        } else {
            " as fast as they are answered (closed loop)".to_string()
        },
        cfg.reconfig_duration.as_secs_f64(),
        cfg.reconfig_runs
    );
    let _ = writeln!(
        out,
        "| proxy | run | changes/s asked | achieved | changes | in effect > 10 ms | never seen | change errors | ack p50 / p99 ms | effect p50 / p99 / max ms | requests/s | failed requests | p50 / p99 ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for run in &res.reconfig {
        let l = &run.load;
        let (ach, n, late, miss, cerr, ack, eff) = match &run.changes {
            Some(c) => (
                format!("{:.1}", c.achieved_rate),
                c.changes.to_string(),
                c.late.to_string(),
                c.not_in_effect.to_string(),
                c.change_errors.to_string(),
                c.ack_ms
                    .as_ref()
                    .map_or("—".into(), |d| format!("{:.1} / {:.1}", d.p50, d.p99)),
                c.effect_ms.as_ref().map_or("—".into(), |d| {
                    format!("{:.1} / {:.1} / {:.1}", d.p50, d.p99, d.max)
                }),
            ),
            None => Default::default(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ach} | {n} | {late} | {miss} | {cerr} | {ack} | {eff} | {:.0} | {} | {} / {} |",
            run.peer,
            run.run,
            run.rate,
            l.rps,
            l.errors,
            ms(l.latency_us.p50),
            ms(l.latency_us.p99)
        );
    }
    let errors: Vec<String> = res
        .reconfig
        .iter()
        .filter_map(|r| {
            let load = r
                .load
                .first_error
                .as_ref()
                .map(|e| format!("{} at {}/s, load: {e}", r.peer, r.rate));
            let change = r
                .changes
                .as_ref()
                .and_then(|c| c.first_change_error.as_ref())
                .map(|e| format!("{} at {}/s, change: {e}", r.peer, r.rate));
            match (load, change) {
                (None, None) => None,
                (a, b) => Some(a.into_iter().chain(b).collect::<Vec<_>>().join("; ")),
            }
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nFirst errors: {}", errors.join(" · "));
    }

    // 3. Policies.
    let _ = writeln!(out, "\n### Policies on a heterogeneous platform\n");
    let desc: Vec<String> = cfg
        .policy_service_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| format!("h{i} {ms} ms"))
        .collect();
    let _ = writeln!(
        out,
        "Three upstreams of unequal speed, each serving {} requests at once (the rest queue): {}. \
         {} connections, {} run(s) of {:.0} s per policy (medians), after {:.0} s warm-up. The \
         thesis's figure 7.6 compared least connections, round robin and random this way.\n",
        cfg.policy_workers,
        desc.join(", "),
        cfg.policy_concurrency,
        cfg.runs,
        cfg.policy_duration.as_secs_f64(),
        cfg.warmup.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| proxy | policy | requests/s | mean ms | p50 ms | p99 ms | served by |\n|---|---|---|---|---|---|---|"
    );
    for p in &res.policies {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            p.peer,
            p.policy,
            median(p.runs.iter().map(|r| r.rps).collect()),
            ms(median(p.runs.iter().map(|r| r.latency_us.mean).collect())),
            ms(median(p.runs.iter().map(|r| r.latency_us.p50).collect())),
            ms(median(p.runs.iter().map(|r| r.latency_us.p99).collect())),
            shares(&p.runs)
        );
    }
    // 4. Redis restart.
    if let Some(r) = &res.redis_restart {
        let _ = writeln!(out, "\n### Redis restarted under load\n");
        let _ = writeln!(
            out,
            "The reconfiguration load ({} connections{}) runs for {:.0} s through FaDO while \
             Redis is stopped and started again, empty (it keeps nothing on disk); once the \
             planner has republished the route table (woken by the first router that finds it \
             missing), the bucket's route changes 10 times a second for the rest of the \
             window, measured as above.\n",
            cfg.reconfig_concurrency,
            if cfg.reconfig_load_rate > 0.0 {
                format!(", {:.0} requests/s", cfg.reconfig_load_rate)
            } else {
                String::new()
            },
            cfg.restart_duration.as_secs_f64()
        );
        let c = &r.changes;
        let _ = writeln!(
            out,
            "| Redis down ms | table back after ms | requests | failed requests | p50 / p99 ms | changes | in effect > 10 ms | never seen | effect p50 / p99 / max ms |\n|---|---|---|---|---|---|---|---|---|"
        );
        let _ = writeln!(
            out,
            "| {:.0} | {} | {} | {} | {} / {} | {} | {} | {} | {} |",
            r.down_ms,
            r.republished_ms
                .map_or("never".into(), |m| format!("{m:.0}")),
            r.load.requests,
            r.load.errors,
            ms(r.load.latency_us.p50),
            ms(r.load.latency_us.p99),
            c.changes,
            c.late,
            c.not_in_effect,
            c.effect_ms.as_ref().map_or("—".into(), |d| {
                format!("{:.1} / {:.1} / {:.1}", d.p50, d.p99, d.max)
            }),
        );
        if let Some(e) = &r.load.first_error {
            let _ = writeln!(out, "\nFirst failed request: {e}");
        }
    }

    // 5. Memory.
    if !res.memory.is_empty() {
        let _ = writeln!(out, "\n### Memory\n");
        let _ = writeln!(
            out,
            "Resident memory of each peer (`/proc/PID/status`): its peak over the whole run \
             (`VmHWM`), right after the last load, and after resting {:.0} s with no load (the \
             host drops instances idle for 10 s). MiB.\n",
            cfg.memory_settle.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| peer | peak | after load | settled | settled, anonymous |\n|---|---|---|---|---|"
        );
        for m in &res.memory {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                m.peer,
                m.settled.peak_mib,
                m.after_load.rss_mib,
                m.settled.rss_mib,
                m.settled.anon_mib
            );
        }
    }
    goals(&mut out, res, cfg);
    out
}

/// The two goals, checked against the figures above.
fn goals(out: &mut String, res: &RouterResults, cfg: &RouterConfig) {
    let _ = writeln!(out, "\n### Against the goals\n");
    let cell = |v: &str, c: u32| {
        res.overhead
            .iter()
            .find(|x| x.variant == v && x.concurrency == c)
            .map(|x| {
                (
                    median(x.runs.iter().map(|r| r.rps).collect()),
                    median(x.runs.iter().map(|r| r.latency_us.p99).collect()),
                )
            })
    };
    let mut ratios = Vec::new();
    let (mut above, mut cells) = (0, 0);
    for &c in &cfg.concurrency {
        let direct = cell("direct", c).map_or(0.0, |d| d.1);
        for policy in ["round_robin", "least_conn"] {
            if let (Some(f), Some(k)) = (
                cell(&format!("fado {policy}"), c),
                cell(&format!("caddy {policy}"), c),
            ) {
                ratios.push(f.0 / k.0);
                cells += 1;
                if f.1 - direct > k.1 - direct {
                    above += 1;
                }
            }
        }
    }
    // The floor against Caddy (round_robin, the cheaper Caddy cell aside).
    let floor: Vec<f64> = cfg
        .concurrency
        .iter()
        .filter_map(|&c| Some(cell(FLOOR, c)?.0 / cell("caddy round_robin", c)?.0))
        .collect();
    let (lo, hi) = min_max(&ratios);
    let met = |ok: bool| if ok { "met" } else { "**not met**" };
    let _ = writeln!(
        out,
        "- Overhead — FaDO's throughput at least Caddy's, its added p99 at most Caddy's: {}. \
         FaDO forwarded {lo:.2}–{hi:.2}× Caddy's requests/s; its added p99 was above Caddy's in \
         {above} of {cells} cells.",
        met(lo >= 1.0 && above == 0)
    );
    if !floor.is_empty() {
        let (flo, fhi) = min_max(&floor);
        let _ = writeln!(
            out,
            "  The floor, a component that makes one outbound call and nothing else, served \
             {flo:.2}–{fhi:.2}× Caddy's requests/s under the same host."
        );
    }
    let fastest = cfg.reconfig_rates.iter().copied().fold(0.0, f64::max);
    for (peer, what) in [
        (
            "fado",
            "Reconfiguration — zero failed requests and every change in effect within 10 ms",
        ),
        (
            Proxy::FadoPeer.name(),
            "The same across two `fado up` processes (change to one, effect through the other)",
        ),
    ] {
        let runs: Vec<&ReconfigRun> = res
            .reconfig
            .iter()
            .filter(|r| r.peer == peer && r.rate == fastest && r.changes.is_some())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let ok = runs.iter().all(|r| {
            let c = r.changes.as_ref().expect("filtered");
            r.load.errors == 0 && c.late == 0 && c.not_in_effect == 0
        });
        let each: Vec<String> = runs
            .iter()
            .map(|r| {
                let c = r.changes.as_ref().expect("filtered");
                let max = c.effect_ms.as_ref().map_or(0.0, |d| d.max);
                format!(
                    "run {}: {} failed requests, {} of {} changes later than 10 ms (max {max:.1} ms), {} never seen",
                    r.run, r.load.errors, c.late, c.changes, c.not_in_effect
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "- {what} at {fastest} changes/s, in {} consecutive runs: {}. {}.",
            runs.len(),
            met(ok),
            each.join("; ")
        );
    }
    if let Some(r) = &res.redis_restart {
        let c = &r.changes;
        let ok = r.load.errors == 0 && c.late == 0 && c.not_in_effect == 0 && c.changes > 0;
        let _ = writeln!(
            out,
            "- Redis restarted under load — no failed invocation, and route changes in effect \
             within 10 ms once it is back: {}. {} of {} requests failed; {} of {} changes later \
             than 10 ms, {} never seen.",
            met(ok),
            r.load.errors,
            r.load.requests,
            c.late,
            c.changes,
            c.not_in_effect
        );
    }
    if let Some(m) = res.memory.iter().find(|m| m.peer == "fado up") {
        let caddy = res.memory.iter().find(|m| m.peer == "caddy");
        let _ = writeln!(
            out,
            "- Memory — `fado up` settles under 200 MB after the load: {}. It peaked at {:.0} MiB \
             and settled at {:.0} MiB{}.",
            met(m.settled.rss_mib < 200.0),
            m.settled.peak_mib,
            m.settled.rss_mib,
            caddy.map_or(String::new(), |c| format!(
                " (Caddy: peak {:.0}, settled {:.0} MiB)",
                c.settled.peak_mib, c.settled.rss_mib
            ))
        );
    }
}
