//! `fado-bench host`: the host's own overhead.
//!
//! A. Throughput and latency of the `hello` component under `fado serve` and
//!    under `wasmtime serve` of the same wasmtime version.
//! B. Cost of one outbound HTTP call from a component, with fado's outbound
//!    connection pooling on and off, against the `hello` baseline.
//!
//! Runs are interleaved between the variants (and the order rotates every
//! run) so that slow drift of the machine hits all variants alike.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cpu::{CpuSnapshot, CpuUse, wait_quiet};
use crate::load::{self, LoadResult, LoadSpec};
use crate::peers::{Peer, Spinners, free_addr, output_of};
use crate::prepare::Artifacts;
use crate::upstream::{self, Upstream};

/// What `hello` answers to every request.
const HELLO_BODY: &str = "Hello from FaDO\n";

/// Instance limits given to both hosts explicitly, so the recorded commands
/// state them rather than relying on defaults that may change.
const MAX_INSTANCES: &str = "1000";
const MAX_INSTANCE_MEMORY: &str = "256MiB";

/// `wasmtime serve` flags. `-S cli` adds the wasi:cli interfaces (environment,
/// exit, stdio...) that spin-sdk components import beyond the proxy world.
/// The pooling allocator and its limits mirror fado's engine configuration
/// (runtime-host/runtime/src/engine.rs), so both hosts allocate instances the
/// same way: 1000 component instances, 8 core instances, 4 memories and 4
/// tables per component instance in total, 256 MiB per memory, and the same
/// keep-resident sizes (fado also resets only dirty pages, found with
/// PAGEMAP_SCAN, which these flags do not ask of wasmtime serve). Like fado,
/// wasmtime serve makes a fresh instance per request (its default
/// `--max-instance-reuse-count` is 1 for WASIp2).
pub const WASMTIME_SERVE_FLAGS: &[&str] = &[
    "-Scli",
    "-Opooling-allocator",
    "-Opooling-total-component-instances=1000",
    "-Opooling-total-core-instances=8000",
    "-Opooling-total-memories=4000",
    "-Opooling-total-tables=4000",
    "-Opooling-max-memory-size=268435456",
    "-Opooling-max-core-instances-per-component=32",
    "-Opooling-max-memories-per-component=8",
    "-Opooling-max-tables-per-component=8",
    "-Opooling-max-core-instance-size=1048576",
    "-Opooling-max-component-instance-size=1048576",
    "-Opooling-memory-keep-resident=4194304",
    "-Opooling-table-keep-resident=262144",
];

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub duration: Duration,
    pub warmup: Duration,
    pub runs: u32,
    pub concurrency: Vec<u32>,
    pub outbound_concurrency: Vec<u32>,
    pub startup_timeout: Duration,
    /// Longest wait for the machine to go quiet before each measurement.
    pub quiet_wait: Duration,
    /// Run one nice-19 spin loop per core during the measurements.
    pub keep_cpus_awake: bool,
}

/// One measured target: a variant name and where to send requests.
struct Target {
    variant: &'static str,
    addr: SocketAddr,
    path: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub run: u32,
    pub variant: String,
    /// Seconds spent waiting for other processes to go quiet first.
    pub quiet_wait_seconds: f64,
    /// CPU use on the machine during this sample (warm-up included).
    pub cpu: CpuUse,
    #[serde(flatten)]
    pub result: LoadResult,
}

/// Medians over the runs of one (variant, concurrency) cell.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub variant: String,
    pub concurrency: u32,
    pub runs: usize,
    pub rps_median: f64,
    pub rps_min: f64,
    pub rps_max: f64,
    pub p50_us_median: f64,
    pub p99_us_median: f64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub samples: Vec<Sample>,
    pub summaries: Vec<Summary>,
}

impl Experiment {
    pub fn summary(&self, variant: &str, concurrency: u32) -> Option<&Summary> {
        self.summaries
            .iter()
            .find(|s| s.variant == variant && s.concurrency == concurrency)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerInfo {
    pub name: String,
    pub version: String,
    /// Command line with the run's temporary paths replaced by placeholders.
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostResults {
    pub throughput: Experiment,
    pub outbound: Experiment,
    pub peers: Vec<PeerInfo>,
    /// Differences between the hosts that the flags do not show.
    pub notes: Vec<String>,
    pub upstream: String,
}

pub fn run(cfg: &HostConfig, art: &Artifacts) -> Result<HostResults> {
    let work = tempfile::Builder::new()
        .prefix("fado-bench-")
        .tempdir()
        .context("creating a work directory")?;
    let work_dir = work.path();
    let fado_version = output_of(&art.fado, &["--version"])?;
    let wasmtime_version = output_of(&art.wasmtime, &["--version"])?;
    let placeholders = |argv: &[String]| {
        argv.join(" ")
            .replace(&work_dir.display().to_string(), "$WORK")
            .replace(&art.target_dir.display().to_string(), "$TARGET")
            .replace(&art.wasmtime.display().to_string(), "wasmtime")
    };
    let mut peers = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spinners = Spinners::start(if cfg.keep_cpus_awake { cores } else { 0 })?;
    // Spinners count as ours in the CPU accounting, not as interference.
    let with_spinners = |servers: &[u32]| [servers, &spinners.pids()].concat();

    // A: both hosts serve hello; stopped before B starts so they cost nothing there.
    let throughput = {
        let manifest = write_manifest(work_dir, "hello", &hello_manifest(&art.hello_wasm))?;
        let fado = start_fado(cfg, art, "fado", &manifest, &[], work_dir)?;
        let wasmtime = start_wasmtime(cfg, art, work_dir)?;
        for p in [&fado, &wasmtime] {
            expect_body(p.addr, "/", HELLO_BODY)?;
        }
        peers.push(PeerInfo {
            name: "fado".into(),
            version: fado_version.clone(),
            command: placeholders(&fado.argv),
        });
        peers.push(PeerInfo {
            name: "wasmtime".into(),
            version: wasmtime_version,
            command: placeholders(&wasmtime.argv),
        });
        let targets = [
            Target {
                variant: "fado",
                addr: fado.addr,
                path: "/".into(),
            },
            Target {
                variant: "wasmtime",
                addr: wasmtime.addr,
                path: "/".into(),
            },
        ];
        let pids = with_spinners(&[fado.pid(), wasmtime.pid()]);
        measure_interleaved("A", &targets, &pids, &cfg.concurrency, cfg)?
    };

    // B: one app with hello and probe, under fado with and without outbound pooling.
    let upstream = Upstream::start()?;
    let outbound = {
        let manifest = write_manifest(
            work_dir,
            "outbound",
            &outbound_manifest(&art.hello_wasm, &art.probe_wasm, upstream.addr),
        )?;
        let pooled = start_fado(cfg, art, "fado-pooled", &manifest, &[], work_dir)?;
        let unpooled = start_fado(
            cfg,
            art,
            "fado-unpooled",
            &manifest,
            &["--no-outbound-pooling"],
            work_dir,
        )?;
        let fetch = format!("/x/fetch?url=http://{}/", upstream.addr);
        for p in [&pooled, &unpooled] {
            expect_body(p.addr, &fetch, upstream::BODY)?;
        }
        expect_body(pooled.addr, "/", HELLO_BODY)?;
        for p in [&pooled, &unpooled] {
            peers.push(PeerInfo {
                name: p.name.clone(),
                version: fado_version.clone(),
                command: placeholders(&p.argv),
            });
        }
        let targets = [
            Target {
                variant: "hello",
                addr: pooled.addr,
                path: "/".into(),
            },
            Target {
                variant: "fetch-pooled",
                addr: pooled.addr,
                path: fetch.clone(),
            },
            Target {
                variant: "fetch-unpooled",
                addr: unpooled.addr,
                path: fetch,
            },
        ];
        let pids = with_spinners(&[pooled.pid(), unpooled.pid()]);
        measure_interleaved("B", &targets, &pids, &cfg.outbound_concurrency, cfg)?
    };

    Ok(HostResults {
        throughput,
        outbound,
        peers,
        notes: vec![
            "fado: wasmtime pooling allocator sized from --max-instances and --max-instance-memory \
             (runtime-host/runtime/src/engine.rs), epoch interruption with a 10 ms tick, compiled \
             components cached on disk, a fresh instance per request"
                .into(),
            "wasmtime serve: pooling limits set by the flags above to mirror fado's; no epoch interruption \
             (it enables it only with -Wtimeout); a fresh instance per request (default \
             --max-instance-reuse-count 1 for WASIp2 components)"
                .into(),
        ],
        upstream: "in-process hyper HTTP/1.1 server on one thread, 12-byte body".into(),
    })
}

fn start_fado(
    cfg: &HostConfig,
    art: &Artifacts,
    name: &str,
    manifest: &Path,
    extra: &[&str],
    work_dir: &Path,
) -> Result<Peer> {
    let limits = [
        "--max-instances",
        MAX_INSTANCES,
        "--max-instance-memory",
        MAX_INSTANCE_MEMORY,
    ];
    Peer::fado_serve(
        name,
        &art.fado,
        manifest,
        &[&limits[..], extra].concat(),
        work_dir,
        cfg.startup_timeout,
    )
}

fn start_wasmtime(cfg: &HostConfig, art: &Artifacts, work_dir: &Path) -> Result<Peer> {
    let addr = free_addr()?;
    let mut args: Vec<String> = vec!["serve".into(), "--addr".into(), addr.to_string()];
    args.extend(WASMTIME_SERVE_FLAGS.iter().map(|s| s.to_string()));
    args.push(art.hello_wasm.display().to_string());
    // wasmtime serve has no health endpoint; hello answers every path.
    Peer::start(
        "wasmtime",
        &art.wasmtime,
        args,
        addr,
        "/",
        work_dir,
        cfg.startup_timeout,
    )
}

fn hello_manifest(hello: &Path) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-hello"
[[trigger.http]]
route = "/..."
component = "hello"
[component.hello]
source = "{}"
"#,
        hello.display()
    )
}

fn outbound_manifest(hello: &Path, probe: &Path, upstream: SocketAddr) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-outbound"
[[trigger.http]]
route = "/..."
component = "hello"
[[trigger.http]]
route = "/x/..."
component = "probe"
[component.hello]
source = "{}"
[component.probe]
source = "{}"
allowed_outbound_hosts = ["http://{upstream}"]
"#,
        hello.display(),
        probe.display()
    )
}

fn write_manifest(work_dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let dir = work_dir.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Checks a route answers 200 with the expected body before it is measured,
/// so a misconfigured app fails loudly instead of benchmarking error pages.
fn expect_body(addr: SocketAddr, path: &str, expected: &str) -> Result<()> {
    let (status, body) = load::get_once(addr, path, Duration::from_secs(10))?;
    if !status.is_success() || body != expected.as_bytes() {
        bail!(
            "GET http://{addr}{path}: expected 200 {expected:?}, got {status} {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

fn measure_interleaved(
    label: &str,
    targets: &[Target],
    pids: &[u32],
    concurrency: &[u32],
    cfg: &HostConfig,
) -> Result<Experiment> {
    let mut samples = Vec::new();
    for run in 0..cfg.runs {
        for &c in concurrency {
            // Rotate the order each run so no variant always goes first.
            for i in 0..targets.len() {
                let t = &targets[(i + run as usize) % targets.len()];
                let waited = wait_quiet(pids, cfg.quiet_wait);
                let before = CpuSnapshot::take(pids);
                let result = load::run(&LoadSpec {
                    headers: Vec::new(),
                    tally_header: None,
                    rate: None,
                    addr: t.addr,
                    path: t.path.clone(),
                    concurrency: c,
                    warmup: cfg.warmup,
                    duration: cfg.duration,
                })
                .with_context(|| format!("measuring {} at concurrency {c}", t.variant))?;
                let cpu = CpuUse::between(before, CpuSnapshot::take(pids));
                eprintln!(
                    "[{label} run {}/{} c={c:>3}] {:<15} {:>9.0} req/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}  \
                     (other CPU {:.1} s, steal {:.1} s, waited {:.1} s)",
                    run + 1,
                    cfg.runs,
                    t.variant,
                    result.rps,
                    result.latency_us.p50,
                    result.latency_us.p99,
                    result.errors,
                    cpu.other_seconds,
                    cpu.steal_seconds,
                    waited.as_secs_f64()
                );
                if let Some(e) = &result.first_error {
                    eprintln!("    first error: {e}");
                }
                samples.push(Sample {
                    run: run + 1,
                    variant: t.variant.to_string(),
                    quiet_wait_seconds: waited.as_secs_f64(),
                    cpu,
                    result,
                });
            }
        }
    }
    let summaries = concurrency
        .iter()
        .flat_map(|&c| targets.iter().map(move |t| (t.variant, c)))
        .map(|(variant, c)| summarize(&samples, variant, c))
        .collect();
    Ok(Experiment { samples, summaries })
}

fn summarize(samples: &[Sample], variant: &str, concurrency: u32) -> Summary {
    let cell: Vec<&LoadResult> = samples
        .iter()
        .filter(|s| s.variant == variant && s.result.concurrency == concurrency)
        .map(|s| &s.result)
        .collect();
    let rps: Vec<f64> = cell.iter().map(|r| r.rps).collect();
    Summary {
        variant: variant.to_string(),
        concurrency,
        runs: cell.len(),
        rps_median: median(&rps),
        rps_min: rps.iter().copied().fold(f64::INFINITY, f64::min),
        rps_max: rps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        p50_us_median: median(&cell.iter().map(|r| r.latency_us.p50).collect::<Vec<_>>()),
        p99_us_median: median(&cell.iter().map(|r| r.latency_us.p99).collect::<Vec<_>>()),
        errors: cell.iter().map(|r| r.errors).sum(),
    }
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
