//! `fado-bench replication`: FaDO's data plane against real S3 storage.
//!
//! A. Full sync of a bucket to a new replica (the thesis' experiment): FaDO
//!    from the PATCH that raises `target_replicas` 0 → 1 until the replica is
//!    `ready`, next to `rclone sync` between the same two Garage instances,
//!    runs interleaved (FaDO, rclone, FaDO, …), each into an empty bucket.
//! B. Incremental: the bytes FaDO moves for one object uploaded through the
//!    object API to a bucket whose replica is already in sync.
//! C. Replication lag: uploads through the object API on a fixed schedule
//!    (open loop); per object, the time from the upload's acknowledgement to
//!    the end of the last replica's copy job.
//!
//! Everything runs on this machine: PostgreSQL, Redis and `fado up` started
//! by the test harness (`tests/harness`), and single-node Garage instances
//! (`infra/garage start`), one per simulated cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use harness::garage::Garage;
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cpu::{CpuSnapshot, CpuUse};
use crate::host::median;

#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// Runs of each side of the full sync, per data set.
    pub runs: u32,
    pub large_objects: u32,
    pub large_size: u64,
    pub small_objects: u32,
    pub small_size: u64,
    /// Size of the object uploaded for the incremental measurement.
    pub incremental_size: u64,
    /// Uploads per second offered during the lag measurement.
    pub lag_rate: f64,
    pub lag_duration: Duration,
    pub lag_size: u64,
    /// Replicas of the lag measurement's bucket (one Garage each).
    pub lag_replicas: u32,
    /// Most uploads in flight at once; a send waits for a free slot.
    pub lag_max_in_flight: usize,
    pub rclone: PathBuf,
    /// Longest wait for other processes to go quiet before a measurement.
    pub quiet_wait: Duration,
    /// Longest a full sync (either side) or a drain of the job queue may take.
    pub timeout: Duration,
    pub quick: bool,
}

impl ReplicationConfig {
    pub fn datasets(&self) -> Vec<(&'static str, u32, u64)> {
        [
            ("large", self.large_objects, self.large_size),
            ("small", self.small_objects, self.small_size),
        ]
        .into_iter()
        .filter(|(_, n, _)| *n > 0)
        .collect()
    }
}

/// A program measured beside FaDO, and how it was configured.
#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub name: &'static str,
    pub version: String,
    pub command: String,
}

/// Timings of one job from the ledger (`/api/jobs`).
#[derive(Debug, Clone, Serialize)]
pub struct JobTiming {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub attempts: i64,
    pub bytes_copied: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// created_at → started_at: waiting for a replicator to claim it.
    pub queued_seconds: Option<f64>,
    /// started_at → finished_at: the step itself.
    pub step_seconds: Option<f64>,
}

/// Where a FaDO full sync's time went, from the client's clock at the PATCH
/// and at the poll that saw the replica ready, and the job's timestamps
/// (PostgreSQL's clock, the same machine).
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// PATCH sent → the job row created (API call, planner round).
    pub patch_to_job_created: f64,
    /// created_at → started_at: wake-up and claim.
    pub job_waiting: f64,
    /// started_at → finished_at: the sync itself.
    pub job_step: f64,
    /// finished_at → the poll saw `ready` (includes up to one poll interval).
    pub job_finished_to_seen_ready: f64,
}

/// One full sync by one side.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRun {
    pub side: &'static str,
    pub run: u32,
    pub source_bucket: String,
    pub destination_bucket: String,
    pub seconds: f64,
    /// Objects and bytes listed in the destination afterwards.
    pub objects: u64,
    pub bytes: u64,
    pub mb_per_s: f64,
    pub objects_per_s: f64,
    /// FaDO: the full-sync job(s) of the replica.
    pub jobs: Vec<JobTiming>,
    /// FaDO: the time split by the job's timestamps.
    pub breakdown: Option<Breakdown>,
    /// FaDO: growth of `fado_replicated_bytes_total` over the run.
    pub replicated_bytes_metric: Option<u64>,
    pub load_average_before: [f64; 3],
    pub quiet_wait_seconds: f64,
    pub cpu: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub name: &'static str,
    pub objects: u32,
    pub object_size: u64,
    pub total_bytes: u64,
    /// Writing every source bucket of this data set to the master Garage.
    pub seed_seconds: f64,
    pub runs: Vec<SyncRun>,
}

impl Dataset {
    fn side(&self, side: &str) -> Vec<&SyncRun> {
        self.runs.iter().filter(|r| r.side == side).collect()
    }
}

/// One object uploaded through the object API to a bucket in sync.
#[derive(Debug, Clone, Serialize)]
pub struct IncrementalRun {
    pub bucket: String,
    /// Objects and bytes the replica already held.
    pub bucket_objects_before: u64,
    pub bucket_bytes_before: u64,
    pub key: String,
    pub object_size: u64,
    /// Growth of `fado_replicated_bytes_total` from before the upload until
    /// its copy job was done.
    pub replicated_bytes_metric: u64,
    /// `bytes_copied` of the object's copy job(s).
    pub job_bytes_copied: i64,
    pub jobs: Vec<JobTiming>,
    /// Jobs of the bucket other than this object's copy that ran meanwhile.
    pub other_jobs: usize,
    /// The replica's copy is byte for byte the upload.
    pub replica_matches: bool,
}

/// Percentiles of a sample, nearest rank.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    pub(crate) fn of(mut v: Vec<f64>) -> Option<Dist> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Some(Dist {
            count: v.len(),
            min: v[0],
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LagResult {
    pub bucket: String,
    pub replicas: u32,
    pub offered_rate: f64,
    pub duration_seconds: f64,
    pub object_size: u64,
    pub max_in_flight: usize,
    pub uploads: usize,
    pub uploads_ok: usize,
    pub upload_errors: usize,
    pub first_error: Option<String>,
    /// Acknowledged uploads / (last acknowledgement − first scheduled send).
    pub achieved_rate: f64,
    /// Sends that left more than 10 ms after their scheduled time (no free slot).
    pub late_sends: usize,
    pub max_late_ms: f64,
    pub upload_latency_ms: Option<Dist>,
    /// Per object: finished_at of its last replica's copy job − the client's
    /// acknowledgement time.
    pub lag_ms: Option<Dist>,
    /// Per job: created_at → started_at and started_at → finished_at.
    pub job_queued_ms: Option<Dist>,
    pub job_step_ms: Option<Dist>,
    /// Acknowledged uploads without a finished copy on every replica.
    pub objects_unreplicated: usize,
    pub jobs_total: usize,
    pub jobs_not_done: usize,
    /// Jobs that needed more than one attempt.
    pub jobs_retried: usize,
    /// Last copy job's finished_at − last acknowledgement.
    pub drain_ms: f64,
    pub replicated_bytes_metric: u64,
    pub expected_bytes: u64,
    pub load_average_before: [f64; 3],
    pub quiet_wait_seconds: f64,
    pub cpu: CpuUse,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicationResults {
    pub peers: Vec<PeerInfo>,
    /// `COPIES_AT_ONCE` of the replicator's full sync, read from its source
    /// when the run started.
    pub fado_copies_at_once: Option<usize>,
    /// Whether the replicator.wasm measured is newer than that source file
    /// and fado-s3's (which does the copying).
    pub replicator_wasm_current: bool,
    /// Default `copy_part_size_mib` of the root spin.toml when the run started.
    pub copy_part_size_mib: Option<u64>,
    pub garage_version: String,
    pub postgres: String,
    pub datasets: Vec<Dataset>,
    pub incremental: Vec<IncrementalRun>,
    pub lag: Option<LagResult>,
}

/// Everything about one `fado-bench replication` run, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    pub experiment: &'static str,
    pub started_utc: String,
    pub finished_utc: String,
    pub elapsed_seconds: f64,
    pub command: String,
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
    pub workspace_head: Option<String>,
    pub machine: crate::report::Machine,
    pub config: Value,
    pub results: ReplicationResults,
}

const MB: f64 = 1_000_000.0;
/// Concurrent PUTs when writing source data straight to Garage.
const SEED_WORKERS: usize = 8;
/// How often FaDO's replica state is polled during a full sync.
const POLL: Duration = Duration::from_millis(50);

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("creating the runtime")
}

pub fn run(cfg: &ReplicationConfig) -> Result<ReplicationResults> {
    ensure!(
        cfg.rclone.exists(),
        "{} is missing: apt-get install -y rclone",
        cfg.rclone.display()
    );
    // `garage cargo:2.5.0 [features: …]`: the version without the features.
    let garage_version = crate::peers::output_of(&harness::garage::garage_bin(), &["--version"])
        .map(|v| v.split(" [").next().unwrap_or_default().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let (fado_copies_at_once, replicator_wasm_current) = replicator_parallelism();
    let copy_part_size_mib = spin_default("copy_part_size_mib");
    let storages = 1 + cfg.lag_replicas.max(1) as usize;
    eprintln!("fado-bench: starting {storages} Garage instances");
    let garages = Garage::start_many(storages)?;
    let rt = runtime()?;
    let o = rt.block_on(crate::peers::orchestrator(true))?;
    let bench = Bench::new(&o, &garages, cfg)?;
    rt.block_on(bench.platform())?;

    let rclone_version = crate::peers::output_of(&cfg.rclone, &["version"])
        .map(|v| v.lines().next().unwrap_or_default().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let peers = vec![
        PeerInfo {
            name: "fado",
            version: format!("fado {}", env!("CARGO_PKG_VERSION")),
            command: "PATCH /api/buckets/$BUCKET {\"target_replicas\": 1}, then GET /api/buckets/$BUCKET/replicas \
                      every 50 ms until the replica is ready"
                .into(),
        },
        PeerInfo {
            name: "rclone",
            version: rclone_version,
            command: format!(
                "{} sync src:$SOURCE dst:$DESTINATION (remotes from RCLONE_CONFIG_SRC_*/RCLONE_CONFIG_DST_*: \
                 type s3, provider Other, endpoint, keys, region, force_path_style true; default flags)",
                cfg.rclone.display()
            ),
        },
    ];

    let mut datasets = Vec::new();
    for (i, (name, count, size)) in cfg.datasets().into_iter().enumerate() {
        datasets.push(rt.block_on(bench.full_sync(i as u64, name, count, size))?);
    }
    let incremental = rt.block_on(bench.incremental(&datasets))?;
    let lag = if cfg.lag_rate > 0.0 && !cfg.lag_duration.is_zero() {
        Some(rt.block_on(bench.lag())?)
    } else {
        None
    };
    drop(bench);
    drop(o);
    drop(rt);
    Ok(ReplicationResults {
        peers,
        fado_copies_at_once,
        replicator_wasm_current,
        copy_part_size_mib,
        garage_version,
        postgres: pg_version(),
        datasets,
        incremental,
        lag,
    })
}

/// The running set-up and its clients.
struct Bench<'a> {
    o: &'a Orchestrator,
    garages: &'a [Garage],
    s3: Vec<aws_sdk_s3::Client>,
    http: reqwest::Client,
    cfg: &'a ReplicationConfig,
}

impl<'a> Bench<'a> {
    fn new(o: &'a Orchestrator, garages: &'a [Garage], cfg: &'a ReplicationConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(cfg.lag_max_in_flight.max(8))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            o,
            garages,
            s3: garages.iter().map(Garage::client).collect(),
            http,
            cfg,
        })
    }

    /// One cluster per Garage, each with a storage deployment `sN` and a
    /// FaaS deployment `fN`. The first two clusters share the zone `pair`
    /// (full sync and incremental buckets are limited to it, so their
    /// replica is always on the second Garage); all share `bench`.
    async fn platform(&self) -> Result<()> {
        for (i, g) in self.garages.iter().enumerate() {
            let n = i + 1;
            let zones = if n <= 2 {
                json!(["bench", "pair"])
            } else {
                json!(["bench"])
            };
            self.create(
                "/api/clusters",
                json!({"name": format!("c{n}"), "zones": zones}),
            )
            .await?;
            // Never called: routes only name it.
            self.create(
                "/api/faas-deployments",
                json!({"name": format!("f{n}"), "cluster": format!("c{n}"), "platform": "spin",
                       "base_url": format!("http://10.0.0.{n}")}),
            )
            .await?;
            self.create(
                "/api/storage-deployments",
                json!({"name": format!("s{n}"), "cluster": format!("c{n}"), "endpoint": g.endpoint,
                       "region": g.region, "access_key": g.key_id, "secret_key": g.secret}),
            )
            .await?;
        }
        Ok(())
    }

    async fn create(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.o.api("POST", path, Some(body)).await;
        ensure!(status == 201, "POST {path}: {status} {v}");
        Ok(v)
    }

    /// A FaDO bucket mastered on `s1`, its master bucket created on the
    /// first Garage (by its create_bucket job), and its replicas ready.
    async fn fado_bucket(&self, name: &str, zone: &str, replicas: u32) -> Result<()> {
        self.create(
            "/api/buckets",
            json!({"name": name, "master_storage": "s1", "allowed_zones": [zone], "target_replicas": replicas}),
        )
        .await?;
        let master = &self.s3[0];
        let created = harness::eventually(Duration::from_secs(60), || async {
            master
                .head_bucket()
                .bucket(name)
                .send()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        if created.is_none() {
            bail!(
                "FaDO did not create the master bucket {name} within 60 s:\n{}",
                self.o.fado.log()
            );
        }
        if replicas > 0 {
            self.wait_ready(name, replicas as usize, Duration::from_secs(120))
                .await?;
        }
        Ok(())
    }

    /// (storage, state, last_error) of every replica of `bucket`.
    async fn replicas(&self, bucket: &str) -> Result<Vec<(String, String, Option<String>)>> {
        let (status, page) = self
            .o
            .api("GET", &format!("/api/buckets/{bucket}/replicas"), None)
            .await;
        ensure!(status == 200, "GET replicas of {bucket}: {status} {page}");
        Ok(page["items"]
            .as_array()
            .context("a page of replicas")?
            .iter()
            .map(|r| {
                (
                    r["storage"].as_str().unwrap_or_default().to_string(),
                    r["state"].as_str().unwrap_or_default().to_string(),
                    r["last_error"].as_str().map(str::to_string),
                )
            })
            .collect())
    }

    /// Polls until `n` replicas of `bucket` are ready; fails at once when
    /// one failed.
    async fn wait_ready(&self, bucket: &str, n: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let states = self.replicas(bucket).await?;
            if states.len() == n && states.iter().all(|(_, s, _)| s == "ready") {
                return Ok(());
            }
            if let Some((storage, _, error)) = states.iter().find(|(_, s, _)| s == "failed") {
                bail!("the replica of {bucket} on {storage} failed: {error:?}");
            }
            if Instant::now() > deadline {
                bail!(
                    "replicas of {bucket} not ready within {timeout:?}: {states:?}\n{}",
                    tail(&self.o.fado.log())
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until no job is queued or running.
    async fn wait_idle(&self, db: &tokio_postgres::Client) -> Result<()> {
        let deadline = Instant::now() + self.cfg.timeout;
        loop {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                    &[],
                )
                .await?
                .get(0);
            if n == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{n} jobs still queued or running after {:?}\n{}",
                    self.cfg.timeout,
                    tail(&self.o.fado.log())
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `fado_replicated_bytes_total` from `/api/metrics`.
    async fn replicated_bytes(&self) -> Result<u64> {
        let text = self
            .http
            .get(self.o.fado.url("/api/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let line = text
            .lines()
            .find(|l| l.starts_with("fado_replicated_bytes_total "))
            .with_context(|| format!("no fado_replicated_bytes_total in /api/metrics:\n{text}"))?;
        let v: f64 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("reading {line:?}"))?;
        Ok(v as u64)
    }

    /// Waits (up to 5 s) until the counter differs from `before` by at least
    /// `want`: the replicator counts right after it records the job done.
    async fn replicated_since(&self, before: u64, want: u64) -> Result<u64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let delta = self.replicated_bytes().await?.saturating_sub(before);
            if delta >= want || Instant::now() > deadline {
                return Ok(delta);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every job of `bucket` (of `kind`, if given), through `/api/jobs`.
    async fn jobs(&self, bucket: &str, kind: Option<&str>) -> Result<Vec<Job>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/jobs?bucket={bucket}&limit=1000");
            if let Some(k) = kind {
                path.push_str(&format!("&kind={k}"));
            }
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, page) = self.o.api("GET", &path, None).await;
            ensure!(status == 200, "GET {path}: {status} {page}");
            for j in page["items"].as_array().context("a page of jobs")? {
                out.push(Job::parse(j)?);
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Experiment A for one data set.
    async fn full_sync(
        &self,
        index: u64,
        name: &'static str,
        count: u32,
        size: u64,
    ) -> Result<Dataset> {
        let cfg = self.cfg;
        let db = self.o.db().await?;
        let total = u64::from(count) * size;
        eprintln!(
            "fado-bench: full sync, {name}: {count} objects of {size} bytes, {} run(s) per side",
            cfg.runs
        );
        // Every run copies bytes of its own: Garage deduplicates blocks by
        // content across buckets, so a run must not find its data already
        // stored by an earlier one.
        let seeded = Instant::now();
        for run in 0..cfg.runs {
            let fado = format!("fs-{name}-{run}");
            self.fado_bucket(&fado, "pair", 0).await?;
            seed(&self.s3[0], &fado, count, size, seed_base(index, 0, run)).await?;
            let src = format!("rc-src-{name}-{run}");
            create_bucket(&self.s3[0], &src).await?;
            seed(&self.s3[0], &src, count, size, seed_base(index, 1, run)).await?;
            eprintln!(
                "fado-bench: seeded run {} of {name} ({:.0} s so far)",
                run + 1,
                seeded.elapsed().as_secs_f64()
            );
        }
        let seed_seconds = seeded.elapsed().as_secs_f64();
        self.wait_idle(&db).await?;

        let mut runs = Vec::new();
        for run in 0..cfg.runs {
            for side in ["fado", "rclone"] {
                let (quiet, load) = settle(&self.own_extra(), cfg.quiet_wait);
                let r = match side {
                    "fado" => self.fado_sync(&db, name, run, count, total).await?,
                    _ => self.rclone_sync(name, run, count, total).await?,
                };
                let r = SyncRun {
                    load_average_before: load,
                    quiet_wait_seconds: quiet,
                    ..r
                };
                eprintln!(
                    "fado-bench: {name} run {} {side}: {:.2} s, {:.1} MB/s, {:.0} objects/s (other processes {:.2} cores)",
                    run + 1,
                    r.seconds,
                    r.mb_per_s,
                    r.objects_per_s,
                    r.cpu.other_seconds / r.cpu.wall_seconds
                );
                runs.push(r);
            }
        }
        Ok(Dataset {
            name,
            objects: count,
            object_size: size,
            total_bytes: total,
            seed_seconds,
            runs,
        })
    }

    async fn fado_sync(
        &self,
        db: &tokio_postgres::Client,
        name: &str,
        run: u32,
        count: u32,
        total: u64,
    ) -> Result<SyncRun> {
        let bucket = format!("fs-{name}-{run}");
        self.wait_idle(db).await?;
        let metric_before = self.replicated_bytes().await?;
        let extra = self.own_extra();
        let cpu0 = CpuSnapshot::take_tree(&extra);
        let t0 = Instant::now();
        let patched_at = Utc::now();
        let (status, b) = self
            .o
            .api(
                "PATCH",
                &format!("/api/buckets/{bucket}"),
                Some(json!({"target_replicas": 1})),
            )
            .await;
        ensure!(status == 200, "PATCH {bucket}: {status} {b}");
        self.wait_ready(&bucket, 1, self.cfg.timeout).await?;
        let seconds = t0.elapsed().as_secs_f64();
        let seen_at = Utc::now();
        let cpu = CpuUse::between(cpu0, CpuSnapshot::take_tree(&extra));
        let (objects, bytes) = list_all(&self.s3[1], &bucket).await?;
        ensure!(
            (objects, bytes) == (u64::from(count), total),
            "FaDO's replica of {bucket} holds {objects} objects, {bytes} bytes; expected {count}, {total}"
        );
        let metric = self.replicated_since(metric_before, total).await?;
        let jobs: Vec<Job> = self
            .jobs(&bucket, None)
            .await?
            .into_iter()
            .filter(|j| matches!(j.kind.as_str(), "create_replica" | "sync_replica"))
            .collect();
        let secs = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).as_seconds_f64();
        let breakdown = match jobs.as_slice() {
            [j] if j.state == "done" => {
                let (started, finished) = (
                    j.started_at.context("a done job without started_at")?,
                    j.finished_at.context("a done job without finished_at")?,
                );
                Some(Breakdown {
                    patch_to_job_created: secs(patched_at, j.created_at),
                    job_waiting: secs(j.created_at, started),
                    job_step: secs(started, finished),
                    job_finished_to_seen_ready: secs(finished, seen_at),
                })
            }
            _ => None,
        };
        let jobs = jobs.iter().map(Job::timing).collect();
        Ok(SyncRun {
            side: "fado",
            run,
            source_bucket: bucket.clone(),
            destination_bucket: bucket,
            seconds,
            objects,
            bytes,
            mb_per_s: bytes as f64 / MB / seconds,
            objects_per_s: objects as f64 / seconds,
            jobs,
            breakdown,
            replicated_bytes_metric: Some(metric),
            load_average_before: [0.0; 3],
            quiet_wait_seconds: 0.0,
            cpu,
        })
    }

    async fn rclone_sync(&self, name: &str, run: u32, count: u32, total: u64) -> Result<SyncRun> {
        let src = format!("rc-src-{name}-{run}");
        let dst = format!("rc-dst-{name}-{run}");
        create_bucket(&self.s3[1], &dst).await?;
        let mut cmd = tokio::process::Command::new(&self.cfg.rclone);
        // The remotes come from our variables only: the machine's AWS_*
        // (AWS_CA_BUNDLE makes rclone's S3 client refuse to start) and
        // RCLONE_* settings are not passed on.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("AWS_") || k.starts_with("RCLONE_") {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.arg("sync")
            .arg(format!("src:{src}"))
            .arg(format!("dst:{dst}"))
            .envs(rclone_remote("SRC", &self.garages[0]))
            .envs(rclone_remote("DST", &self.garages[1]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let extra = self.own_extra();
        let cpu0 = CpuSnapshot::take_tree(&extra);
        let t0 = Instant::now();
        let out = tokio::time::timeout(self.cfg.timeout, cmd.output())
            .await
            .with_context(|| format!("rclone sync took longer than {:?}", self.cfg.timeout))?
            .context("running rclone")?;
        let seconds = t0.elapsed().as_secs_f64();
        let cpu = CpuUse::between(cpu0, CpuSnapshot::take_tree(&extra));
        if !out.status.success() {
            bail!(
                "rclone sync src:{src} dst:{dst} exited with {}:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let (objects, bytes) = list_all(&self.s3[1], &dst).await?;
        ensure!(
            (objects, bytes) == (u64::from(count), total),
            "rclone's copy {dst} holds {objects} objects, {bytes} bytes; expected {count}, {total}"
        );
        Ok(SyncRun {
            side: "rclone",
            run,
            source_bucket: src,
            destination_bucket: dst,
            seconds,
            objects,
            bytes,
            mb_per_s: bytes as f64 / MB / seconds,
            objects_per_s: objects as f64 / seconds,
            jobs: Vec::new(),
            breakdown: None,
            replicated_bytes_metric: None,
            load_average_before: [0.0; 3],
            quiet_wait_seconds: 0.0,
            cpu,
        })
    }

    /// Experiment B: one object per run, uploaded through the object API to
    /// the last bucket FaDO synced in A (its replica ready and holding the
    /// whole data set), or to a fresh replicated bucket if A did not run.
    async fn incremental(&self, datasets: &[Dataset]) -> Result<Vec<IncrementalRun>> {
        let cfg = self.cfg;
        if cfg.incremental_size == 0 {
            return Ok(Vec::new());
        }
        let db = self.o.db().await?;
        let bucket = match datasets.first() {
            Some(d) => format!("fs-{}-{}", d.name, cfg.runs - 1),
            None => {
                self.fado_bucket("incremental", "pair", 1).await?;
                "incremental".to_string()
            }
        };
        let mut out = Vec::new();
        for run in 0..cfg.runs {
            self.wait_idle(&db).await?;
            let (objects_before, bytes_before) = list_all(&self.s3[1], &bucket).await?;
            let jobs_before: Vec<i64> = self
                .jobs(&bucket, None)
                .await?
                .iter()
                .map(|j| j.id)
                .collect();
            let key = format!("incremental-{run}");
            let data = random_bytes(seed_base(7, 0, run), cfg.incremental_size as usize);
            let before = self.replicated_bytes().await?;
            let resp = self
                .http
                .put(
                    self.o
                        .fado
                        .url(&format!("/api/buckets/{bucket}/objects/{key}")),
                )
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/octet-stream")
                .body(data.clone())
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            ensure!(status == 200, "PUT {bucket}/{key}: {status} {body}");
            self.wait_idle(&db).await?;
            let metric = self.replicated_since(before, cfg.incremental_size).await?;
            let new_jobs: Vec<Job> = self
                .jobs(&bucket, None)
                .await?
                .into_iter()
                .filter(|j| !jobs_before.contains(&j.id))
                .collect();
            let (mine, others): (Vec<Job>, Vec<Job>) = new_jobs
                .into_iter()
                .partition(|j| j.kind == "copy_object" && j.key.as_deref() == Some(key.as_str()));
            let copied = get(&self.s3[1], &bucket, &key).await?;
            let r = IncrementalRun {
                bucket: bucket.clone(),
                bucket_objects_before: objects_before,
                bucket_bytes_before: bytes_before,
                key,
                object_size: cfg.incremental_size,
                replicated_bytes_metric: metric,
                job_bytes_copied: mine.iter().map(|j| j.bytes_copied).sum(),
                jobs: mine.iter().map(Job::timing).collect(),
                other_jobs: others.len(),
                replica_matches: copied.as_deref() == Some(data.as_slice()),
            };
            eprintln!(
                "fado-bench: incremental {}: {} bytes uploaded, metric +{}, job bytes_copied {}, replica {}",
                run + 1,
                r.object_size,
                r.replicated_bytes_metric,
                r.job_bytes_copied,
                if r.replica_matches {
                    "matches"
                } else {
                    "DIFFERS"
                }
            );
            out.push(r);
        }
        Ok(out)
    }

    /// Experiment C.
    async fn lag(&self) -> Result<LagResult> {
        let cfg = self.cfg;
        let bucket = "lag";
        let replicas = cfg.lag_replicas.max(1);
        self.fado_bucket(bucket, "bench", replicas).await?;
        let db = self.o.db().await?;
        self.wait_idle(&db).await?;
        let n = (cfg.lag_rate * cfg.lag_duration.as_secs_f64()).round() as usize;
        // Bodies made before the clock starts.
        let bodies: Vec<bytes::Bytes> = (0..n)
            .map(|i| random_bytes(seed_base(9, 0, 0) | i as u64, cfg.lag_size as usize).into())
            .collect();
        let (quiet, load) = settle(&self.own_extra(), cfg.quiet_wait);
        let metric_before = self.replicated_bytes().await?;
        eprintln!(
            "fado-bench: lag: {n} uploads of {} bytes at {}/s to a bucket with {replicas} replica(s)",
            cfg.lag_size, cfg.lag_rate
        );
        let extra = self.own_extra();
        let cpu0 = CpuSnapshot::take_tree(&extra);
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.lag_max_in_flight.max(1)));
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let start_wall = Utc::now() + chrono::Duration::milliseconds(100);
        let mut tasks = tokio::task::JoinSet::new();
        let mut late = Vec::with_capacity(n);
        for (i, body) in bodies.into_iter().enumerate() {
            let at = start + Duration::from_secs_f64(i as f64 / cfg.lag_rate);
            tokio::time::sleep_until(at).await;
            let slot = slots.clone().acquire_owned().await?;
            late.push((tokio::time::Instant::now() - at).as_secs_f64() * 1000.0);
            let req = self
                .http
                .put(
                    self.o
                        .fado
                        .url(&format!("/api/buckets/{bucket}/objects/{}", lag_key(i))),
                )
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/octet-stream")
                .body(body);
            tasks.spawn(async move {
                let _slot = slot;
                let sent = Instant::now();
                let result = async {
                    let resp = req.send().await?;
                    let status = resp.status();
                    let text = resp.text().await?;
                    ensure!(status.as_u16() == 200, "{status}: {text}");
                    anyhow::Ok(())
                }
                .await;
                let acked = Utc::now();
                (i, sent.elapsed().as_secs_f64() * 1000.0, acked, result)
            });
        }
        let mut acks: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut first_error = None;
        let mut last_ack = start_wall;
        while let Some(done) = tasks.join_next().await {
            let (i, ms, acked, result) = done?;
            match result {
                Ok(()) => {
                    acks.insert(lag_key(i), acked);
                    latencies.push(ms);
                    last_ack = last_ack.max(acked);
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{}: {e:#}", lag_key(i)));
                }
            }
        }
        let load_seconds = (last_ack - start_wall).as_seconds_f64();
        self.wait_idle(&db).await?;
        let cpu = CpuUse::between(cpu0, CpuSnapshot::take_tree(&extra));
        let expected_bytes = acks.len() as u64 * cfg.lag_size * u64::from(replicas);
        let metric = self.replicated_since(metric_before, expected_bytes).await?;

        let jobs = self.jobs(bucket, Some("copy_object")).await?;
        let mut by_key: HashMap<&str, Vec<&Job>> = HashMap::new();
        for j in &jobs {
            if let Some(k) = &j.key {
                by_key.entry(k.as_str()).or_default().push(j);
            }
        }
        let mut lags = Vec::new();
        let mut unreplicated = 0;
        let mut last_finished = last_ack;
        for (key, acked) in &acks {
            let done: Vec<DateTime<Utc>> = by_key
                .get(key.as_str())
                .map(|js| {
                    js.iter()
                        .filter(|j| j.state == "done")
                        .filter_map(|j| j.finished_at)
                        .collect()
                })
                .unwrap_or_default();
            let storages = by_key.get(key.as_str()).map_or(0, |js| {
                let mut s: Vec<_> = js
                    .iter()
                    .filter(|j| j.state == "done")
                    .map(|j| j.storage_id)
                    .collect();
                s.sort_unstable();
                s.dedup();
                s.len()
            });
            if storages < replicas as usize {
                unreplicated += 1;
                continue;
            }
            let finished = done.into_iter().max().expect("a finished job");
            last_finished = last_finished.max(finished);
            lags.push((finished - *acked).as_seconds_f64() * 1000.0);
        }
        let ms = |a: DateTime<Utc>, b: Option<DateTime<Utc>>| {
            b.map(|b| (b - a).as_seconds_f64() * 1000.0)
        };
        let queued = jobs
            .iter()
            .filter_map(|j| ms(j.created_at, j.started_at))
            .collect();
        let step = jobs
            .iter()
            .filter_map(|j| ms(j.started_at?, j.finished_at))
            .collect();
        Ok(LagResult {
            bucket: bucket.into(),
            replicas,
            offered_rate: cfg.lag_rate,
            duration_seconds: cfg.lag_duration.as_secs_f64(),
            object_size: cfg.lag_size,
            max_in_flight: cfg.lag_max_in_flight,
            uploads: n,
            uploads_ok: acks.len(),
            upload_errors: errors,
            first_error,
            achieved_rate: acks.len() as f64 / load_seconds,
            late_sends: late.iter().filter(|&&l| l > 10.0).count(),
            max_late_ms: late.iter().copied().fold(0.0, f64::max),
            upload_latency_ms: Dist::of(latencies),
            lag_ms: Dist::of(lags),
            job_queued_ms: Dist::of(queued),
            job_step_ms: Dist::of(step),
            objects_unreplicated: unreplicated,
            jobs_total: jobs.len(),
            jobs_not_done: jobs.iter().filter(|j| j.state != "done").count(),
            jobs_retried: jobs.iter().filter(|j| j.attempts > 1).count(),
            drain_ms: (last_finished - last_ack).as_seconds_f64() * 1000.0,
            replicated_bytes_metric: metric,
            expected_bytes,
            load_average_before: load,
            quiet_wait_seconds: quiet,
            cpu,
        })
    }

    /// Processes that belong to the benchmark besides this one's
    /// descendants: the Garage servers (detached by infra/garage).
    fn own_extra(&self) -> Vec<u32> {
        self.garages
            .iter()
            .filter_map(|g| std::fs::read_to_string(g.dir.join("garage.pid")).ok())
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }
}

/// A job as `/api/jobs` shows it.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    kind: String,
    key: Option<String>,
    storage_id: Option<i64>,
    state: String,
    attempts: i64,
    bytes_copied: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl Job {
    fn parse(v: &Value) -> Result<Job> {
        let time = |k: &str| -> Result<Option<DateTime<Utc>>> {
            v[k].as_str()
                .map(|s| {
                    DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&Utc))
                        .with_context(|| format!("job {k} {s:?}"))
                })
                .transpose()
        };
        Ok(Job {
            id: v["id"]
                .as_i64()
                .with_context(|| format!("a job id in {v}"))?,
            kind: v["kind"].as_str().unwrap_or_default().to_string(),
            key: v["object_key"].as_str().map(str::to_string),
            storage_id: v["storage_id"].as_i64(),
            state: v["state"].as_str().unwrap_or_default().to_string(),
            attempts: v["attempts"].as_i64().unwrap_or(0),
            bytes_copied: v["bytes_copied"].as_i64().unwrap_or(0),
            created_at: time("created_at")?.with_context(|| format!("created_at of {v}"))?,
            started_at: time("started_at")?,
            finished_at: time("finished_at")?,
        })
    }

    fn timing(&self) -> JobTiming {
        let secs =
            |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| Some((b? - a?).as_seconds_f64());
        let text = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        JobTiming {
            id: self.id,
            kind: self.kind.clone(),
            state: self.state.clone(),
            attempts: self.attempts,
            bytes_copied: self.bytes_copied,
            created_at: self.created_at.to_rfc3339(),
            started_at: text(self.started_at),
            finished_at: text(self.finished_at),
            queued_seconds: secs(Some(self.created_at), self.started_at),
            step_seconds: secs(self.started_at, self.finished_at),
        }
    }
}

fn object_key(i: usize) -> String {
    format!("obj-{i:06}")
}

fn lag_key(i: usize) -> String {
    format!("lag-{i:06}")
}

/// A seed unique to (experiment or data set, side, run); objects add their index.
fn seed_base(set: u64, side: u64, run: u32) -> u64 {
    (set << 48) | (side << 40) | (u64::from(run) << 32)
}

/// Incompressible bytes, different for every seed (Garage compresses and
/// deduplicates blocks, so patterned or repeated data would flatter both
/// sides).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut next = || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn create_bucket(c: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    c.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .with_context(|| format!("creating bucket {bucket}"))?;
    Ok(())
}

/// Writes `count` objects of `size` bytes to `bucket`, `SEED_WORKERS` at a time.
async fn seed(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    count: u32,
    size: u64,
    base: u64,
) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..SEED_WORKERS {
        let (c, bucket, next) = (c.clone(), bucket.to_string(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count as usize {
                    return anyhow::Ok(());
                }
                let data = random_bytes(base | i as u64, size as usize);
                c.put_object()
                    .bucket(&bucket)
                    .key(object_key(i))
                    .body(ByteStream::from(data))
                    .send()
                    .await
                    .with_context(|| format!("PUT {bucket}/{}", object_key(i)))?;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    Ok(())
}

/// Objects and bytes in `bucket`, over every page of the listing.
async fn list_all(c: &aws_sdk_s3::Client, bucket: &str) -> Result<(u64, u64)> {
    let (mut objects, mut bytes) = (0, 0);
    let mut token: Option<String> = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .with_context(|| format!("listing {bucket}"))?;
        for o in out.contents() {
            objects += 1;
            bytes += o.size().unwrap_or(0) as u64;
        }
        match out.next_continuation_token() {
            Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => return Ok((objects, bytes)),
        }
    }
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(out.body.collect().await?.into_bytes().to_vec())),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("GET {bucket}/{key}")),
    }
}

/// rclone's remote `name` (SRC, DST) as environment variables.
fn rclone_remote(name: &str, g: &Garage) -> Vec<(String, String)> {
    [
        ("TYPE", "s3"),
        ("PROVIDER", "Other"),
        ("ENDPOINT", g.endpoint.as_str()),
        ("ACCESS_KEY_ID", g.key_id.as_str()),
        ("SECRET_ACCESS_KEY", g.secret.as_str()),
        ("REGION", g.region.as_str()),
        ("FORCE_PATH_STYLE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("RCLONE_CONFIG_{name}_{k}"), v.to_string()))
    .collect()
}

/// The replicator's full-sync parallelism as its source states it, and
/// whether the built component is newer than that source.
fn replicator_parallelism() -> (Option<usize>, bool) {
    let root = harness::workspace();
    let source = root.join("components/replicator/src/steps.rs");
    let wasm = harness::target_dir().join("wasm32-wasip2/release/replicator.wasm");
    let copies = std::fs::read_to_string(&source).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix("const COPIES_AT_ONCE: usize = ")?;
            v.trim_end_matches(';').trim().parse().ok()
        })
    });
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let sources = [
        source,
        root.join("components/fado-s3/src/lib.rs"),
        root.join("components/fado-s3/src/pipe.rs"),
    ];
    let current = match modified(&wasm) {
        Some(w) => sources.iter().all(|s| modified(s).is_some_and(|s| w >= s)),
        None => false,
    };
    (copies, current)
}

/// The default of a variable in the root spin.toml (`name = { default = "N" }`).
fn spin_default(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(harness::workspace().join("spin.toml")).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    doc.get("variables")?
        .get(name)?
        .get("default")?
        .as_str()?
        .parse()
        .ok()
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

/// The last lines of a log, for error messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN));
    [
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
    ]
}

/// Waits up to `max` for other processes to go quiet (under a fifth of a
/// core over half a second); returns the wait in seconds and the load
/// average at the end of it.
fn settle(extra: &[u32], max: Duration) -> (f64, [f64; 3]) {
    let waited = crate::cpu::wait_quiet_with(|| CpuSnapshot::take_tree(extra), max);
    (waited.as_secs_f64(), load_average())
}

// ---- the report --------------------------------------------------------

fn size_text(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

fn ms(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The markdown section for `fado-bench replication`.
pub fn markdown(r: &ReplicationReport, json_name: &str, cfg: &ReplicationConfig) -> String {
    use std::fmt::Write as _;
    let res = &r.results;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Replication: full sync vs `rclone sync`, incremental copies, lag\n"
    );
    crate::report::provenance(
        &mut out,
        &r.started_utc,
        &r.machine,
        r.workspace_head.as_deref(),
    );
    let runs = || {
        res.datasets
            .iter()
            .flat_map(|d| d.runs.iter().map(|s| s.cpu))
            .chain(res.lag.iter().map(|l| l.cpu))
    };
    let worst_other = runs()
        .map(|c| c.other_seconds / c.wall_seconds)
        .fold(0.0, f64::max);
    let worst_steal = runs()
        .map(|c| c.steal_seconds / c.wall_seconds)
        .fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "Run took {:.0} s; load average (1/5/15 min) {:.2}/{:.2}/{:.2} at the start and {:.2}/{:.2}/{:.2} at the end. \
         Before each measurement fado-bench waited up to {:.0} s for other processes to go quiet; during the worst \
         measurement processes other than the benchmark's own (fado-bench, fado, PostgreSQL, Redis, Garage, rclone) \
         still used {:.2} of a core, and the worst hypervisor steal was {:.2} of a core. \
         Raw results: [`benchmarks/{json_name}`](benchmarks/{json_name}).\n",
        r.elapsed_seconds,
        r.load_average_start[0],
        r.load_average_start[1],
        r.load_average_start[2],
        r.load_average_end[0],
        r.load_average_end[1],
        r.load_average_end[2],
        cfg.quiet_wait.as_secs_f64(),
        worst_other,
        worst_steal,
    );
    let _ = writeln!(
        out,
        "Command (from the workspace root, with `CARGO_TARGET_DIR` pointing at the build):\n\n```sh\n{}\n```\n",
        r.command
    );
    if cfg.quick {
        let _ = writeln!(
            out,
            "**This was a `--quick` smoke run: few objects, one run per side; the figures are not a benchmark.**\n"
        );
    }
    let _ = writeln!(
        out,
        "Set-up: {} single-node Garage instances ({}; `infra/garage start`, one per simulated cluster, replication \
         factor 1, LMDB metadata) and `fado up` on the root spin.toml with the data plane's Redis triggers \
         (replicator, health checker, reconciler), `RUST_LOG=warn` and the periodic sweeps off (so no \
         reconcile walk or sweep lands inside a measurement; wake-ups come from the planner and the object API), \
         against PostgreSQL {} and Redis started by the test harness, all on this machine. \
         Object data is pseudo-random and different for every object of every run: Garage compresses blocks and \
         deduplicates them by content across buckets, so repeated or patterned data would flatter whichever side \
         wrote it second. MB = 10⁶ bytes.\n",
        1 + cfg.lag_replicas.max(1),
        res.garage_version.trim(),
        res.postgres,
    );
    let _ = writeln!(out, "Peers:\n");
    for p in &res.peers {
        let _ = writeln!(out, "- **{}** ({}): {}", p.name, p.version, p.command);
    }
    let _ = writeln!(out);

    if !res.datasets.is_empty() {
        full_sync_markdown(&mut out, res, cfg);
    }
    if !res.incremental.is_empty() {
        incremental_markdown(&mut out, res);
    }
    if let Some(lag) = &res.lag {
        lag_markdown(&mut out, lag);
    }
    out
}

fn full_sync_markdown(out: &mut String, res: &ReplicationResults, cfg: &ReplicationConfig) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "### A. Full sync of a bucket to a new replica (the thesis' experiment)\n"
    );
    let _ = writeln!(
        out,
        "The data set is written straight to a bucket on the master Garage (not through FaDO), then synced to \
         the second Garage, in another cluster. **FaDO**: a bucket created with `target_replicas: 0`; timed from \
         the `PATCH` that raises it to 1 until `GET /api/buckets/{{b}}/replicas` (polled every 50 ms) shows the \
         replica `ready` — planning, the wake-up, the `create_replica` job (create the bucket, list both sides, \
         copy, mark ready) and the poll. **rclone**: `rclone sync` from a source bucket on the master Garage into \
         an empty bucket (created just before) on the second Garage, timed as a process. Each run of either side \
         copies its own, fresh data into a fresh bucket; runs alternate FaDO, rclone, FaDO, … ({} per side). \
         Afterwards every destination is listed: each held every object with the right sizes.\n",
        cfg.runs
    );
    let _ = writeln!(
        out,
        "Parallelism differs, and the figures reflect it: rclone ran with its defaults, `--transfers 4` (four \
         objects copied at once) and `--checkers 8`. FaDO's full sync is one replicator job (a wake-up works one \
         job at a time), {} {}\n",
        match res.fado_copies_at_once {
            Some(n) => format!(
                "and that job copies up to {n} objects at once (`COPIES_AT_ONCE` in \
                 `components/replicator/src/steps.rs`, read when the run started; the `replicator.wasm` measured {}).",
                if res.replicator_wasm_current {
                    "was built after that file and fado-s3's sources last changed"
                } else {
                    "is **older** than that file or fado-s3's sources, so it may have been built from other code"
                }
            ),
            None => "whose copy parallelism could not be read from `components/replicator/src/steps.rs`.".into(),
        },
        match res.copy_part_size_mib {
            Some(mib) => format!(
                "An object of up to `copy_part_size_mib` = {mib} MiB is one streamed PUT; a larger one is \
                 copied in parts of that size, up to 4 at once; bytes go from the GET's body into the PUT \
                 inside the host (`wasi:io` splice), without passing through the component."
            ),
            None => "The default `copy_part_size_mib` could not be read from spin.toml.".into(),
        }
    );
    let _ = writeln!(
        out,
        "| data set | side | median s | min–max s | MB/s | MB/s min–max | objects/s | objects/s min–max |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for d in &res.datasets {
        let label = format!(
            "{} × {} ({:.1} MB)",
            d.objects,
            size_text(d.object_size),
            d.total_bytes as f64 / MB
        );
        let mut medians = HashMap::new();
        for side in ["fado", "rclone"] {
            let runs = d.side(side);
            if runs.is_empty() {
                continue;
            }
            let secs: Vec<f64> = runs.iter().map(|r| r.seconds).collect();
            let mbs: Vec<f64> = runs.iter().map(|r| r.mb_per_s).collect();
            let ops: Vec<f64> = runs.iter().map(|r| r.objects_per_s).collect();
            let ((s0, s1), (m0, m1), (o0, o1)) = (
                crate::report::min_max(&secs),
                crate::report::min_max(&mbs),
                crate::report::min_max(&ops),
            );
            let (sm, mm, om) = (median(&secs), median(&mbs), median(&ops));
            medians.insert(side, (sm, mm, om));
            let _ = writeln!(
                out,
                "| {label} | {side} | {sm:.2} | {s0:.2}–{s1:.2} | {mm:.1} | {m0:.1}–{m1:.1} | {om:.0} | {o0:.0}–{o1:.0} |"
            );
        }
        if let (Some(f), Some(r)) = (medians.get("fado"), medians.get("rclone")) {
            let _ = writeln!(
                out,
                "| {label} | **fado / rclone** | **{:.2}×** | | **{:.2}×** | | **{:.2}×** | |",
                f.0 / r.0,
                f.1 / r.1,
                f.2 / r.2
            );
        }
    }
    let _ = writeln!(
        out,
        "\nWhere FaDO's time went (medians over its runs, from the client's clock at the `PATCH` and at the poll \
         that saw `ready`, and the job's `created_at`/`started_at`/`finished_at`; the last column includes up to \
         one 50 ms poll interval), and the bytes it counted per run:\n"
    );
    let _ = writeln!(
        out,
        "| data set | PATCH → job created s | job waiting s | job step s | job done → seen ready s | job `bytes_copied` | `fado_replicated_bytes_total` growth | bytes in data set |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for d in &res.datasets {
        let fado = d.side("fado");
        let part = |f: fn(&Breakdown) -> f64| {
            median(
                &fado
                    .iter()
                    .filter_map(|r| r.breakdown.as_ref().map(f))
                    .collect::<Vec<_>>(),
            )
        };
        let bytes: Vec<String> = fado
            .iter()
            .map(|r| {
                r.jobs
                    .iter()
                    .map(|j| j.bytes_copied.to_string())
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        let metric: Vec<String> = fado
            .iter()
            .map(|r| r.replicated_bytes_metric.unwrap_or(0).to_string())
            .collect();
        let _ = writeln!(
            out,
            "| {} × {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            d.objects,
            size_text(d.object_size),
            part(|b| b.patch_to_job_created),
            part(|b| b.job_waiting),
            part(|b| b.job_step),
            part(|b| b.job_finished_to_seen_ready),
            bytes.join(", "),
            metric.join(", "),
            d.total_bytes
        );
    }
    let _ = writeln!(out);
    let mut reading = Vec::new();
    for d in &res.datasets {
        let (f, r) = (d.side("fado"), d.side("rclone"));
        if f.is_empty() || r.is_empty() {
            continue;
        }
        let fm = median(&f.iter().map(|x| x.mb_per_s).collect::<Vec<_>>());
        let rm = median(&r.iter().map(|x| x.mb_per_s).collect::<Vec<_>>());
        let spread = |v: &[&SyncRun]| {
            let s: Vec<f64> = v.iter().map(|x| x.mb_per_s).collect();
            let (lo, hi) = crate::report::min_max(&s);
            (hi - lo) / median(&s) * 100.0
        };
        // Copies that can run at once: the side's limit, or the objects there are.
        let fado_slots = res.fado_copies_at_once.unwrap_or(1).min(d.objects as usize) as f64;
        let rclone_slots = 4.min(d.objects) as f64;
        let per_object = |v: &[&SyncRun]| {
            median(&v.iter().map(|x| x.seconds).collect::<Vec<_>>()) * 1000.0 / f64::from(d.objects)
        };
        reading.push(format!(
            "with {} objects of {} FaDO's full sync reached {:.2}× rclone's throughput ({fm:.1} vs {rm:.1} MB/s; \
             runs of one side varied by up to {:.0}%): {:.1} ms per object for FaDO, about {:.0} ms per copy if \
             {} copies ran at once throughout, against {:.1} ms per object for rclone, about {:.0} ms per copy if {} \
             transfers did",
            d.objects,
            size_text(d.object_size),
            fm / rm,
            spread(&f).max(spread(&r)),
            per_object(&f),
            fado_slots * per_object(&f),
            fado_slots,
            per_object(&r),
            rclone_slots * per_object(&r),
            rclone_slots
        ));
    }
    if !reading.is_empty() {
        let _ = writeln!(
            out,
            "**Reading:** {}. Both sides, both Garages, PostgreSQL and fado share this machine's cores, so the \
             comparison is of whole pipelines on one small machine, not of network transfer.\n",
            reading.join("; ")
        );
    }
}

fn incremental_markdown(out: &mut String, res: &ReplicationResults) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "### B. Incremental: one new object in a bucket whose replica is in sync\n"
    );
    let first = &res.incremental[0];
    let _ = writeln!(
        out,
        "After A, one object of {} per run is uploaded through the object API (`PUT /api/buckets/{}/objects/{{key}}`, \
         admin token) to the last bucket FaDO synced in A, whose replica already holds {} objects ({} bytes). The upload \
         queues one `copy_object` job; the table gives the growth of `fado_replicated_bytes_total` (`GET /api/metrics`) \
         from before the upload until that job was done and nothing else was queued, and the job's `bytes_copied`.\n",
        size_text(first.object_size),
        first.bucket,
        first.bucket_objects_before,
        first.bucket_bytes_before
    );
    let _ = writeln!(
        out,
        "| run | object bytes | `fado_replicated_bytes_total` growth | job `bytes_copied` | copy job created → finished ms | other jobs meanwhile | replica byte-identical |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---|");
    for (i, r) in res.incremental.iter().enumerate() {
        let took = r
            .jobs
            .iter()
            .filter_map(|j| Some((j.queued_seconds? + j.step_seconds?) * 1000.0))
            .map(ms)
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            r.object_size,
            r.replicated_bytes_metric,
            r.job_bytes_copied,
            took,
            r.other_jobs,
            if r.replica_matches { "yes" } else { "**no**" }
        );
    }
    let exact = res.incremental.iter().all(|r| {
        r.replicated_bytes_metric == r.object_size && r.job_bytes_copied as u64 == r.object_size
    });
    let _ = writeln!(
        out,
        "\n**Reading:** {}\n",
        if exact {
            "FaDO moved exactly the new object's bytes for each upload, by both counts; nothing of the rest of the bucket was copied again."
                .to_string()
        } else {
            "the bytes FaDO counted differ from the object's size in at least one run (see the table): FaDO did not move exactly the new object."
                .to_string()
        }
    );
}

fn lag_markdown(out: &mut String, l: &LagResult) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "### C. Replication lag under a steady stream of uploads\n"
    );
    let _ = writeln!(
        out,
        "{} uploads of {} each through the object API, offered at {} per second for {:.0} s on a fixed schedule \
         (open loop: upload i leaves at start + i/{}; at most {} in flight, a send that finds no free slot waits and \
         counts as late), to a bucket with {} ready replica(s) on other Garages; a keep-alive HTTP/1.1 client pool \
         (reqwest). Each upload publishes a replicator wake-up, and fado runs wake-ups concurrently, so copies of \
         different objects proceed in parallel (each wake-up still works one job at a time). After the last upload \
         fado-bench waits until no job is queued or running, then reads every `copy_object` job from `/api/jobs`. \
         Per object, **lag** = `finished_at` of its copy job (the latest over replicas; PostgreSQL's clock) − the \
         time fado-bench received the upload's 200 (the same machine's clock).\n",
        l.uploads,
        size_text(l.object_size),
        l.offered_rate,
        l.duration_seconds,
        l.offered_rate,
        l.max_in_flight,
        l.replicas
    );
    let dist_row = |out: &mut String, name: &str, d: &Option<Dist>| {
        if let Some(d) = d {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                d.count,
                ms(d.p50),
                ms(d.p90),
                ms(d.p99),
                ms(d.max),
                ms(d.min)
            );
        }
    };
    let _ = writeln!(out, "| ms | count | p50 | p90 | p99 | max | min |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    dist_row(
        out,
        "**replication lag** (ack → last replica copied)",
        &l.lag_ms,
    );
    dist_row(out, "upload latency (send → 200)", &l.upload_latency_ms);
    dist_row(
        out,
        "copy job waiting (created_at → started_at)",
        &l.job_queued_ms,
    );
    dist_row(
        out,
        "copy job step (started_at → finished_at)",
        &l.job_step_ms,
    );
    let _ = writeln!(
        out,
        "\nUploads acknowledged: {} of {} ({} errors{}); achieved rate {:.1}/s (acknowledged uploads over the time \
         from the first scheduled send to the last acknowledgement); {} sends late by more than 10 ms (worst {}). \
         Jobs: {} `copy_object`, {} not done, {} needed more than one attempt; {} acknowledged objects lack a finished \
         copy on every replica. The last copy finished {} ms after the last acknowledgement. \
         `fado_replicated_bytes_total` grew by {} bytes for {} bytes uploaded × replicas. \
         From the first send until the queue was drained ({:.1} s) the benchmark's processes (fado, PostgreSQL, Redis, \
         Garage, fado-bench) used {:.2} cores, {:.0} CPU-ms per acknowledged upload; other processes {:.2} of a core \
         (load average before: {:.2}).\n",
        l.uploads_ok,
        l.uploads,
        l.upload_errors,
        l.first_error
            .as_ref()
            .map(|e| format!(", first: `{e}`"))
            .unwrap_or_default(),
        l.achieved_rate,
        l.late_sends,
        ms(l.max_late_ms),
        l.jobs_total,
        l.jobs_not_done,
        l.jobs_retried,
        l.objects_unreplicated,
        ms(l.drain_ms),
        l.replicated_bytes_metric,
        l.expected_bytes,
        l.cpu.wall_seconds,
        l.cpu.own_seconds / l.cpu.wall_seconds,
        l.cpu.own_seconds * 1000.0 / l.uploads_ok.max(1) as f64,
        l.cpu.other_seconds / l.cpu.wall_seconds,
        l.load_average_before[0],
    );
    let reached = l.achieved_rate >= 0.95 * l.offered_rate;
    let verdict = match &l.lag_ms {
        None => "no lag could be measured (no upload was replicated)".to_string(),
        Some(d) => {
            let goal = if d.p99 < 1000.0 {
                "under the goal of p99 < 1 s"
            } else {
                "**over** the goal of p99 < 1 s"
            };
            if reached {
                format!(
                    "at {:.1} uploads/s achieved ({} offered), p99 lag was {} ms, {goal}",
                    l.achieved_rate,
                    l.offered_rate,
                    ms(d.p99)
                )
            } else {
                format!(
                    "the offered {} uploads/s were **not** reached: fado acknowledged {:.1}/s, with a p50 upload \
                     latency of {} ms and up to {} uploads in flight, so uploads queued in fado. At that rate p99 lag \
                     was {} ms, {goal}; this run does not show the lag at the offered rate",
                    l.offered_rate,
                    l.achieved_rate,
                    l.upload_latency_ms
                        .as_ref()
                        .map_or("?".into(), |u| ms(u.p50)),
                    l.max_in_flight,
                    ms(d.p99)
                )
            }
        }
    };
    let _ = writeln!(out, "**Reading:** {verdict}.\n");
}
