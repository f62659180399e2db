//! `fado-bench`: reproducible benchmarks of the FaDO host, one subcommand per
//! experiment. Each builds what it needs, measures FaDO against a peer in the
//! same run, and writes its section of docs/benchmarks.md plus raw JSON.

mod catalog;
mod cpu;
mod host;
mod load;
mod locality;
mod memory;
mod netns;
mod peers;
mod plot;
mod prepare;
mod replication;
mod report;
mod router;
mod upstream;
mod wan;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fado-bench",
    about = "Benchmarks of the FaDO host; results go to docs/benchmarks.md"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Host overhead: hello under `fado serve` vs `wasmtime serve`, and the cost
    /// of one outbound HTTP call with and without fado's connection pooling.
    Host(HostArgs),
    /// Planner rounds over 10,000 buckets and 50 storage deployments, and API
    /// latency with 10,000 buckets and 1,000,000 object rows.
    Catalog(CatalogArgs),
    /// Replication against real S3 storage (two Garage instances): full sync
    /// vs `rclone sync`, the bytes of an incremental copy, and replication lag
    /// under a steady stream of uploads.
    Replication(ReplicationArgs),
    /// The invocation router vs Caddy 2.6 configured as the thesis did:
    /// overhead, reconfiguration under load, policies on unequal upstreams.
    Router(RouterArgs),
    /// Data locality: the `image` function on three clusters in network
    /// namespaces with WAN latency between them, routed by FaDO (by bucket)
    /// vs round robin vs always the most powerful cluster. Needs root.
    Locality(LocalityArgs),
}

#[derive(Args)]
struct LocalityArgs {
    /// RTT inside a cluster (function to its own storage), ms.
    #[arg(long, default_value_t = 1.0)]
    intra_rtt_ms: f64,
    /// RTTs between the clusters, ms: hpc–cloud-1, hpc–cloud-2, cloud-1–cloud-2.
    #[arg(long, value_delimiter = ',', default_values_t = [30.0, 80.0, 80.0])]
    inter_rtt_ms: Vec<f64>,
    /// RTT from FaDO's ingress to every cluster, ms.
    #[arg(long, default_value_t = 10.0)]
    ingress_rtt_ms: f64,
    /// WAN bandwidths per link and direction, Mbit/s, comma-separated (0:
    /// unlimited, latency only). Each is a scenario with every CPU profile.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 100.0])]
    wan_mbit: Vec<f64>,
    /// CPU profiles, comma-separated: the cores the functions of
    /// hpc-cluster/cloud-cluster-1/cloud-cluster-2 may use (0: no limit).
    /// The default pair: cloud clusters with half the machine's cores each,
    /// then with a quarter (slower cores than hpc's).
    #[arg(long, value_delimiter = ',', default_values = ["0/1/1", "0/0.5/0.5"])]
    cores: Vec<String>,
    /// Size of the photo in each bucket, pixels (WIDTHxHEIGHT).
    #[arg(long, default_value = "1600x1200")]
    image: String,
    /// Runs of each strategy, interleaved.
    #[arg(long, default_value_t = 2)]
    runs: u32,
    /// Warm-up seconds before each measured phase.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds with one call at a time.
    #[arg(long, default_value_t = 15.0)]
    sequential_duration: f64,
    /// Calls in flight in the loaded phase.
    #[arg(long, default_value_t = 6)]
    concurrency: u32,
    /// Measured seconds of the loaded phase.
    #[arg(long, default_value_t = 15.0)]
    loaded_duration: f64,
    /// Longest wait, in seconds, for other processes to go quiet before each
    /// strategy (0: do not wait).
    #[arg(long, default_value_t = 30.0)]
    quiet_wait: f64,
    /// Use the existing fado binary and components instead of building them.
    #[arg(long)]
    skip_build: bool,
    /// Directory holding benchmarks.md [default: the workspace's docs/].
    #[arg(long)]
    docs_dir: Option<PathBuf>,
    /// Print the section instead of writing docs/benchmarks.md, the JSON file and the plot.
    #[arg(long)]
    no_write: bool,
}

#[derive(Args)]
struct RouterArgs {
    /// Buckets in both proxies' route tables.
    #[arg(long, default_value_t = 100)]
    buckets: u32,
    /// Runs of each overhead and policy measurement (interleaved).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Measured seconds per overhead run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Connections for the overhead measurement, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32])]
    concurrency: Vec<u32>,
    /// Connections of the load running during reconfiguration.
    #[arg(long, default_value_t = 16)]
    reconfig_concurrency: u32,
    /// Requests per second of that load, open loop (0: closed loop, as fast
    /// as answers come; that saturates the machine, and every latency is
    /// then queueing for its cores).
    #[arg(long, default_value_t = 500.0)]
    reconfig_load_rate: f64,
    /// Route changes per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 100.0])]
    reconfig_rates: Vec<f64>,
    /// Times each reconfiguration rate is measured, one run after the other.
    #[arg(long, default_value_t = 2)]
    reconfig_runs: u32,
    /// Measured seconds per reconfiguration run.
    #[arg(long, default_value_t = 10.0)]
    reconfig_duration: f64,
    /// Service time (ms) of each upstream of the policy measurement.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 20, 60])]
    policy_service_ms: Vec<u64>,
    /// Requests each of those upstreams serves at once.
    #[arg(long, default_value_t = 4)]
    policy_workers: usize,
    /// Connections for the policy measurement.
    #[arg(long, default_value_t = 24)]
    policy_concurrency: u32,
    /// Measured seconds per policy run.
    #[arg(long, default_value_t = 5.0)]
    policy_duration: f64,
    /// The Caddy binary measured as the peer.
    #[arg(long, default_value = "/usr/bin/caddy")]
    caddy: PathBuf,
    /// Measured seconds of load around the Redis restart.
    #[arg(long, default_value_t = 10.0)]
    restart_duration: f64,
    /// Seconds the peers rest before their settled memory is read.
    #[arg(long, default_value_t = 20.0)]
    memory_settle: f64,
    /// Longest wait, in seconds, for other processes to go quiet before each
    /// measurement (0: do not wait).
    #[arg(long, default_value_t = 30.0)]
    quiet_wait: f64,
    /// Run one nice-19 spin loop per core, as the host benchmark does. Off
    /// by default here: PostgreSQL runs in a session of its own, and with
    /// sched_autogroup nice does not rank tasks across sessions, so the
    /// loops stalled its queries for up to a second.
    #[arg(long)]
    keep_cpus_awake: bool,
    /// Use the existing fado binary and components instead of building them.
    #[arg(long)]
    skip_build: bool,
    /// Directory holding benchmarks.md [default: the workspace's docs/].
    #[arg(long)]
    docs_dir: Option<PathBuf>,
    /// Print the section instead of writing docs/benchmarks.md and the JSON file.
    #[arg(long)]
    no_write: bool,
}

/// Flags left out take their default, or with `--quick` a smaller value.
#[derive(Args)]
struct ReplicationArgs {
    /// Small smoke run: 1 run per side, 3 large and 300 small objects, 3 s of
    /// lag load, no quiet wait. Flags given explicitly still win.
    #[arg(long)]
    quick: bool,
    /// Runs of each side of the full sync, interleaved [default: 3; quick: 1].
    #[arg(long)]
    runs: Option<u32>,
    /// Objects of the large full-sync data set [default: 15; quick: 3].
    #[arg(long)]
    large_objects: Option<u32>,
    /// Size of each large object, MiB.
    #[arg(long, default_value_t = 10)]
    large_size_mib: u64,
    /// Objects of the small full-sync data set [default: 10000; quick: 300].
    #[arg(long)]
    small_objects: Option<u32>,
    /// Size of each small object, KiB.
    #[arg(long, default_value_t = 4)]
    small_size_kib: u64,
    /// Size of the object uploaded for the incremental measurement, MiB (0: skip it).
    #[arg(long, default_value_t = 3)]
    incremental_size_mib: u64,
    /// Uploads per second offered during the lag measurement (0: skip it).
    #[arg(long, default_value_t = 100.0)]
    lag_rate: f64,
    /// Seconds of uploads during the lag measurement [default: 20; quick: 3].
    #[arg(long)]
    lag_duration: Option<f64>,
    /// Size of each object uploaded during the lag measurement, KiB.
    #[arg(long, default_value_t = 4)]
    lag_size_kib: u64,
    /// Replicas of the lag measurement's bucket (one more Garage each).
    #[arg(long, default_value_t = 1)]
    lag_replicas: u32,
    /// Most uploads in flight at once during the lag measurement.
    #[arg(long, default_value_t = 128)]
    lag_max_in_flight: usize,
    /// The rclone binary measured as the peer of the full sync.
    #[arg(long, default_value = "/usr/bin/rclone")]
    rclone: PathBuf,
    /// Longest wait, in seconds, for other processes to go quiet before each
    /// measurement (0: do not wait) [default: 60; quick: 0].
    #[arg(long)]
    quiet_wait: Option<f64>,
    /// Longest a full sync, or draining the job queue, may take (seconds).
    #[arg(long, default_value_t = 1800.0)]
    timeout: f64,
    /// Use the existing fado binary and components instead of building them.
    #[arg(long)]
    skip_build: bool,
    /// Directory holding benchmarks.md [default: the workspace's docs/].
    #[arg(long)]
    docs_dir: Option<PathBuf>,
    /// Print the section instead of writing docs/benchmarks.md and the JSON file.
    #[arg(long)]
    no_write: bool,
}

#[derive(Args)]
struct CatalogArgs {
    #[arg(long, default_value_t = 10_000)]
    buckets: u32,
    #[arg(long, default_value_t = 50)]
    storage: u32,
    #[arg(long, default_value_t = 100)]
    objects_per_bucket: u32,
    /// Runs of each planner round.
    #[arg(long, default_value_t = 5)]
    planner_runs: u32,
    /// Runs of each API measurement (interleaved with the peer).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Measured seconds per API run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before each API run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connections for the API measurements, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8])]
    concurrency: Vec<u32>,
    /// Use the existing fado binary and components instead of building them.
    #[arg(long)]
    skip_build: bool,
    /// Directory holding benchmarks.md [default: the workspace's docs/].
    #[arg(long)]
    docs_dir: Option<PathBuf>,
    /// Print the section instead of writing docs/benchmarks.md and the JSON file.
    #[arg(long)]
    no_write: bool,
}

#[derive(Args)]
struct HostArgs {
    /// Measured seconds per run of each variant.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,

    /// Warm-up seconds before each measurement (same connections, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Runs per variant and concurrency; medians are taken over them.
    #[arg(long, default_value_t = 5)]
    runs: u32,

    /// Connections for experiment A (fado vs wasmtime serve), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64])]
    concurrency: Vec<u32>,

    /// Connections for experiment B (outbound calls), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16])]
    outbound_concurrency: Vec<u32>,

    /// Seconds a server may take to become ready.
    #[arg(long, default_value_t = 120.0)]
    startup_timeout: f64,

    /// Longest wait, in seconds, for other processes to go quiet before each
    /// measurement (0: do not wait).
    #[arg(long, default_value_t = 60.0)]
    quiet_wait: f64,

    /// Let idle vCPUs sleep instead of running one nice-19 spin loop per core
    /// (on a VM, waking a sleeping vCPU swamps single-connection latency).
    #[arg(long)]
    no_keep_cpus_awake: bool,

    /// Use the existing fado binary and components instead of building them.
    #[arg(long)]
    skip_build: bool,

    /// Where `wasmtime-cli` is installed [default: ~/.cache/fado/tools].
    #[arg(long)]
    tools_dir: Option<PathBuf>,

    /// Directory holding benchmarks.md [default: the workspace's docs/].
    #[arg(long)]
    docs_dir: Option<PathBuf>,

    /// Print the section instead of writing docs/benchmarks.md and the JSON file.
    #[arg(long)]
    no_write: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Writes are measured as users get them: committed to disk.
    harness::durable_postgres();
    let result = peers::kill_children_on_signal().and_then(|()| match cli.command {
        Command::Host(args) => host_command(args),
        Command::Catalog(args) => catalog_command(args),
        Command::Replication(args) => replication_command(args),
        Command::Router(args) => router_command(args),
        Command::Locality(args) => locality_command(args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fado-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn seconds(flag: &str, v: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(v)
        .with_context(|| format!("--{flag} {v}: expected a non-negative number of seconds"))
}

fn default_tools_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("fado").join("tools")
}

fn host_command(args: HostArgs) -> Result<()> {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let cfg = host::HostConfig {
        duration: seconds("duration", args.duration)?,
        warmup: seconds("warmup", args.warmup)?,
        runs: args.runs.max(1),
        concurrency: args.concurrency.clone(),
        outbound_concurrency: args.outbound_concurrency.clone(),
        startup_timeout: seconds("startup-timeout", args.startup_timeout)?,
        quiet_wait: seconds("quiet-wait", args.quiet_wait)?,
        keep_cpus_awake: !args.no_keep_cpus_awake,
    };
    let tools_dir = args.tools_dir.clone().unwrap_or_else(default_tools_dir);
    let art = prepare::prepare(args.skip_build, &tools_dir)?;

    let measurements = u64::from(cfg.runs)
        * (2 * cfg.concurrency.len() + 3 * cfg.outbound_concurrency.len()) as u64;
    let estimate = (cfg.warmup + cfg.duration).as_secs_f64() * measurements as f64;
    eprintln!(
        "fado-bench: {measurements} measurements, about {:.0} minutes",
        estimate / 60.0
    );

    let before = cpu::CpuSnapshot::take(&[]);
    let results = host::run(&cfg, &art)?;
    let cpu = cpu::CpuUse::between(before, cpu::CpuSnapshot::take(&[]));
    let finished = chrono::Utc::now();

    // The command as a reader would type it, with the flags actually given.
    let given: Vec<String> = std::env::args().skip(1).collect();
    let report = report::HostReport {
        experiment: "host",
        started_utc: started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        finished_utc: finished.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        command: format!("cargo run --release -p fado-bench -- {}", given.join(" ")),
        cpu,
        workspace_head: report::workspace_head(&art.workspace),
        machine: report::Machine::detect(),
        config: serde_json::json!({
            "duration_seconds": cfg.duration.as_secs_f64(),
            "warmup_seconds": cfg.warmup.as_secs_f64(),
            "runs": cfg.runs,
            "concurrency": cfg.concurrency,
            "outbound_concurrency": cfg.outbound_concurrency,
            "quiet_wait_seconds": cfg.quiet_wait.as_secs_f64(),
            "keep_cpus_awake": cfg.keep_cpus_awake,
            "wasmtime_serve_flags": host::WASMTIME_SERVE_FLAGS,
        }),
        load_generator: "fado-bench's closed-loop HTTP/1.1 client (hyper, keep-alive, one connection per \
                         unit of concurrency, one thread, HdrHistogram); each measurement starts new \
                         connections, warms up, then records"
            .into(),
        results,
    };

    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let json_name = format!("host-{stamp}.json");
    let section = report::host_markdown(
        &report,
        &json_name,
        &cfg.concurrency,
        &cfg.outbound_concurrency,
    );
    let docs =
        (!args.no_write).then(|| args.docs_dir.unwrap_or_else(|| art.workspace.join("docs")));
    report::publish(docs.as_deref(), "host", &stamp, &section, &report)
}

fn catalog_command(args: CatalogArgs) -> Result<()> {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let cfg = catalog::CatalogConfig {
        buckets: args.buckets,
        storage: args.storage.max(2),
        objects_per_bucket: args.objects_per_bucket,
        planner_runs: args.planner_runs.max(1),
        runs: args.runs.max(1),
        duration: seconds("duration", args.duration)?,
        warmup: seconds("warmup", args.warmup)?,
        concurrency: args.concurrency.clone(),
    };
    let workspace = harness::workspace();
    if !args.skip_build {
        prepare::build(&workspace)?;
    }
    let results = catalog::run(&cfg)?;
    let given: Vec<String> = std::env::args().skip(1).collect();
    let report = catalog::CatalogReport {
        experiment: "catalog",
        started_utc: started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        command: format!("cargo run --release -p fado-bench -- {}", given.join(" ")),
        workspace_head: report::workspace_head(&workspace),
        machine: report::Machine::detect(),
        config: serde_json::json!({
            "buckets": cfg.buckets,
            "storage": cfg.storage,
            "objects_per_bucket": cfg.objects_per_bucket,
            "planner_runs": cfg.planner_runs,
            "runs": cfg.runs,
            "duration_seconds": cfg.duration.as_secs_f64(),
            "warmup_seconds": cfg.warmup.as_secs_f64(),
            "concurrency": cfg.concurrency,
        }),
        results,
    };
    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let json_name = format!("catalog-{stamp}.json");
    let section = catalog::markdown(&report, &json_name, &cfg);
    let docs = (!args.no_write).then(|| args.docs_dir.unwrap_or_else(|| workspace.join("docs")));
    report::publish(docs.as_deref(), "catalog", &stamp, &section, &report)
}

fn replication_command(args: ReplicationArgs) -> Result<()> {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let load_average_start = replication::load_average();
    let quick = args.quick;
    let pick = |given: Option<u32>, full: u32, small: u32| {
        given.unwrap_or(if quick { small } else { full })
    };
    let cfg = replication::ReplicationConfig {
        runs: pick(args.runs, 3, 1).max(1),
        large_objects: pick(args.large_objects, 15, 3),
        large_size: args.large_size_mib << 20,
        small_objects: pick(args.small_objects, 10_000, 300),
        small_size: args.small_size_kib << 10,
        incremental_size: args.incremental_size_mib << 20,
        lag_rate: args.lag_rate,
        lag_duration: seconds(
            "lag-duration",
            args.lag_duration.unwrap_or(if quick { 3.0 } else { 20.0 }),
        )?,
        lag_size: args.lag_size_kib << 10,
        lag_replicas: args.lag_replicas.max(1),
        lag_max_in_flight: args.lag_max_in_flight.max(1),
        rclone: args.rclone.clone(),
        quiet_wait: seconds(
            "quiet-wait",
            args.quiet_wait.unwrap_or(if quick { 0.0 } else { 60.0 }),
        )?,
        timeout: seconds("timeout", args.timeout)?,
        quick,
    };
    anyhow::ensure!(
        cfg.lag_rate >= 0.0 && cfg.lag_rate.is_finite(),
        "--lag-rate {}: expected a non-negative number",
        cfg.lag_rate
    );
    let workspace = harness::workspace();
    if !args.skip_build {
        prepare::build(&workspace)?;
    }
    let results = replication::run(&cfg)?;
    let finished = chrono::Utc::now();
    let given: Vec<String> = std::env::args().skip(1).collect();
    let report = replication::ReplicationReport {
        experiment: "replication",
        started_utc: started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        finished_utc: finished.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        command: format!("cargo run --release -p fado-bench -- {}", given.join(" ")),
        load_average_start,
        load_average_end: replication::load_average(),
        workspace_head: report::workspace_head(&workspace),
        machine: report::Machine::detect(),
        config: serde_json::json!({
            "quick": cfg.quick,
            "runs": cfg.runs,
            "datasets": cfg.datasets().iter().map(|(name, n, size)| {
                serde_json::json!({"name": name, "objects": n, "object_size": size})
            }).collect::<Vec<_>>(),
            "incremental_size": cfg.incremental_size,
            "lag_rate": cfg.lag_rate,
            "lag_duration_seconds": cfg.lag_duration.as_secs_f64(),
            "lag_size": cfg.lag_size,
            "lag_replicas": cfg.lag_replicas,
            "lag_max_in_flight": cfg.lag_max_in_flight,
            "rclone": cfg.rclone,
            "quiet_wait_seconds": cfg.quiet_wait.as_secs_f64(),
            "timeout_seconds": cfg.timeout.as_secs_f64(),
        }),
        results,
    };
    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let json_name = format!("replication-{stamp}.json");
    let section = replication::markdown(&report, &json_name, &cfg);
    let docs = (!args.no_write).then(|| args.docs_dir.unwrap_or_else(|| workspace.join("docs")));
    report::publish(docs.as_deref(), "replication", &stamp, &section, &report)
}

fn router_command(args: RouterArgs) -> Result<()> {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    anyhow::ensure!(
        args.reconfig_rates
            .iter()
            .all(|r| *r > 0.0 && r.is_finite()),
        "--reconfig-rates {:?}: expected positive numbers",
        args.reconfig_rates
    );
    anyhow::ensure!(args.buckets >= 1, "--buckets must be at least 1");
    let cfg = router::RouterConfig {
        buckets: args.buckets,
        runs: args.runs.max(1),
        warmup: seconds("warmup", args.warmup)?,
        duration: seconds("duration", args.duration)?,
        concurrency: args.concurrency.clone(),
        reconfig_concurrency: args.reconfig_concurrency.max(1),
        reconfig_load_rate: args.reconfig_load_rate.max(0.0),
        reconfig_rates: args.reconfig_rates.clone(),
        reconfig_runs: args.reconfig_runs.max(1),
        reconfig_duration: seconds("reconfig-duration", args.reconfig_duration)?,
        policy_service_ms: args.policy_service_ms.clone(),
        policy_workers: args.policy_workers.max(1),
        policy_concurrency: args.policy_concurrency.max(1),
        policy_duration: seconds("policy-duration", args.policy_duration)?,
        caddy: args.caddy.clone(),
        restart_duration: seconds("restart-duration", args.restart_duration)?,
        memory_settle: seconds("memory-settle", args.memory_settle)?,
        quiet_wait: seconds("quiet-wait", args.quiet_wait)?,
        keep_cpus_awake: args.keep_cpus_awake,
    };
    let workspace = harness::workspace();
    if !args.skip_build {
        prepare::build(&workspace)?;
    }
    let results = router::run(&cfg)?;
    let finished = chrono::Utc::now();
    let given: Vec<String> = std::env::args().skip(1).collect();
    let report = router::RouterReport {
        experiment: "router",
        started_utc: started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        finished_utc: finished.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        command: format!("cargo run --release -p fado-bench -- {}", given.join(" ")),
        workspace_head: report::workspace_head(&workspace),
        machine: report::Machine::detect(),
        config: serde_json::json!({
            "buckets": cfg.buckets,
            "runs": cfg.runs,
            "warmup_seconds": cfg.warmup.as_secs_f64(),
            "duration_seconds": cfg.duration.as_secs_f64(),
            "concurrency": cfg.concurrency,
            "reconfig_concurrency": cfg.reconfig_concurrency,
            "reconfig_load_rate": cfg.reconfig_load_rate,
            "reconfig_rates": cfg.reconfig_rates,
            "reconfig_runs": cfg.reconfig_runs,
            "reconfig_duration_seconds": cfg.reconfig_duration.as_secs_f64(),
            "policy_service_ms": cfg.policy_service_ms,
            "policy_workers": cfg.policy_workers,
            "policy_concurrency": cfg.policy_concurrency,
            "policy_duration_seconds": cfg.policy_duration.as_secs_f64(),
            "caddy": cfg.caddy,
            "restart_duration_seconds": cfg.restart_duration.as_secs_f64(),
            "memory_settle_seconds": cfg.memory_settle.as_secs_f64(),
            "quiet_wait_seconds": cfg.quiet_wait.as_secs_f64(),
            "keep_cpus_awake": cfg.keep_cpus_awake,
        }),
        results,
    };
    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let json_name = format!("router-{stamp}.json");
    let section = router::markdown(&report, &json_name, &cfg);
    let docs = (!args.no_write).then(|| args.docs_dir.unwrap_or_else(|| workspace.join("docs")));
    report::publish(docs.as_deref(), "router", &stamp, &section, &report)
}

fn locality_command(args: LocalityArgs) -> Result<()> {
    let started = chrono::Utc::now();
    let clock = Instant::now();
    let (w, h) = args
        .image
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| (16..=8192).contains(w) && (16..=8192).contains(h))
        .with_context(|| {
            format!(
                "--image {}: expected WIDTHxHEIGHT, each 16 to 8192 pixels",
                args.image
            )
        })?;
    anyhow::ensure!(
        args.inter_rtt_ms.len() == 3,
        "--inter-rtt-ms: expected three RTTs (hpc–cloud-1, hpc–cloud-2, cloud-1–cloud-2), got {}",
        args.inter_rtt_ms.len()
    );
    let cores = args
        .cores
        .iter()
        .map(|p| {
            let v: Vec<f64> = p
                .split('/')
                .map(|c| c.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()
                .filter(|v: &Vec<f64>| v.len() == 3 && v.iter().all(|c| c.is_finite() && *c >= 0.0))
                .with_context(|| {
                    format!(
                        "--cores {p}: expected three non-negative numbers of cores, \
                         hpc/cloud-1/cloud-2 (0: no limit), e.g. 0/1/1"
                    )
                })?;
            Ok([v[0], v[1], v[2]])
        })
        .collect::<Result<Vec<[f64; 3]>>>()?;
    anyhow::ensure!(!cores.is_empty(), "--cores: give at least one profile");
    let all_ms = std::iter::once(args.intra_rtt_ms)
        .chain([args.ingress_rtt_ms])
        .chain(args.inter_rtt_ms.iter().copied());
    for v in all_ms {
        anyhow::ensure!(
            v.is_finite() && (0.0..=10_000.0).contains(&v),
            "RTT {v} ms: expected 0 to 10000"
        );
    }
    for v in &args.wan_mbit {
        anyhow::ensure!(
            v.is_finite() && *v >= 0.0,
            "--wan-mbit {v}: expected a non-negative number of Mbit/s"
        );
    }
    let cfg = locality::LocalityConfig {
        intra_rtt_ms: args.intra_rtt_ms,
        inter_rtt_ms: [
            args.inter_rtt_ms[0],
            args.inter_rtt_ms[1],
            args.inter_rtt_ms[2],
        ],
        ingress_rtt_ms: args.ingress_rtt_ms,
        wan_mbit: args.wan_mbit.clone(),
        cores,
        image_width: w,
        image_height: h,
        runs: args.runs.max(1),
        warmup: seconds("warmup", args.warmup)?,
        sequential_duration: seconds("sequential-duration", args.sequential_duration)?,
        concurrency: args.concurrency.max(1),
        loaded_duration: seconds("loaded-duration", args.loaded_duration)?,
        quiet_wait: seconds("quiet-wait", args.quiet_wait)?,
    };
    let workspace = harness::workspace();
    if !args.skip_build {
        prepare::build(&workspace)?;
    }
    let results = locality::run(&cfg, &workspace)?;
    let finished = chrono::Utc::now();
    let given: Vec<String> = std::env::args().skip(1).collect();
    let report = locality::LocalityReport {
        experiment: "locality",
        started_utc: started.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        finished_utc: finished.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        elapsed_seconds: clock.elapsed().as_secs_f64(),
        command: format!("cargo run --release -p fado-bench -- {}", given.join(" ")),
        workspace_head: report::workspace_head(&workspace),
        machine: report::Machine::detect(),
        config: cfg,
        results,
    };
    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let json_name = format!("locality-{stamp}.json");
    let docs = (!args.no_write).then(|| args.docs_dir.unwrap_or_else(|| workspace.join("docs")));
    let plot_name = match &docs {
        Some(docs) => locality::write_plot(docs, &report)?,
        None => "locality.svg".into(),
    };
    let section = locality::markdown(&report, &json_name, &plot_name);
    report::publish(docs.as_deref(), "locality", &stamp, &section, &report)
}
