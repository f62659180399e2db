//! Results on disk: raw JSON per run, and a generated section of
//! docs/benchmarks.md that is replaced in place on every run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cpu::CpuUse;
use crate::host::{HostResults, Summary};

const INTRO: &str = "# FaDO benchmarks

Every figure on this page is produced by `fado-bench` (the `bench/` crate) with
the command given in its section, and every ratio is against a peer measured in
the same run, on the same machine, with runs interleaved between the peers.
The raw results of each run are kept next to this page in `benchmarks/*.json`.
Regenerate a section by running its command again; do not edit the figures by
hand.
";

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = field(&cpuinfo, "model name")
            .unwrap_or("unknown")
            .to_string();
        let meminfo = read("/proc/meminfo");
        let mem_kb: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let os_release = read("/etc/os-release");
        let os = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .unwrap_or("unknown")
            .trim_matches('"')
            .to_string();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: (mem_kb / (1024.0 * 1024.0) * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            os,
            rustc,
        }
    }
}

/// `key : value` lines as in /proc/cpuinfo and /proc/meminfo.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The commit checked out in the workspace, read from .git without running
/// git; uncommitted changes are not reflected.
pub fn workspace_head(workspace: &Path) -> Option<String> {
    let git = workspace.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if let Ok(id) = std::fs::read_to_string(git.join(reference)) {
        return Some(id.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (id, name) = l.split_once(' ')?;
        (name == reference).then(|| id.to_string())
    })
}

/// Everything about one `fado-bench host` run, as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub experiment: &'static str,
    pub started_utc: String,
    pub finished_utc: String,
    pub elapsed_seconds: f64,
    pub command: String,
    /// CPU used during the measurements by processes other than fado-bench and
    /// the servers it started: other work on the machine skews results.
    pub cpu: CpuUse,
    pub workspace_head: Option<String>,
    pub machine: Machine,
    pub config: serde_json::Value,
    pub load_generator: String,
    pub results: HostResults,
}

/// The lines every section opens with: when, on what, at which commit.
pub fn provenance(out: &mut String, started_utc: &str, m: &Machine, head: Option<&str>) {
    let _ = writeln!(
        out,
        "Measured {} on {} ({} cores, {} GiB, {}, Linux {}), {}.",
        started_utc, m.cpu, m.cores, m.memory_gib, m.os, m.kernel, m.rustc
    );
    if let Some(head) = head {
        let _ = writeln!(out, "Workspace HEAD at run time: `{head}`.");
    }
}

/// The smallest and the largest of `v` (infinities when it is empty).
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// Prints a benchmark's section and, given the docs directory (`None`:
/// `--no-write`), stores it in benchmarks.md and the raw results beside it.
pub fn publish(
    docs: Option<&Path>,
    name: &str,
    stamp: &str,
    section: &str,
    report: &impl Serialize,
) -> Result<()> {
    let Some(docs) = docs else {
        println!("{section}");
        return Ok(());
    };
    let json = write_json(docs, name, stamp, report)?;
    let md = write_section(docs, name, section)?;
    println!("{section}");
    eprintln!("fado-bench: wrote {} and {}", md.display(), json.display());
    Ok(())
}

/// Writes `docs/benchmarks/NAME-STAMP.json` and returns its path.
pub fn write_json(
    docs: &Path,
    name: &str,
    stamp: &str,
    report: &impl Serialize,
) -> Result<PathBuf> {
    let dir = docs.join("benchmarks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}-{stamp}.json"));
    let mut text = serde_json::to_string_pretty(report).context("serializing results")?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Replaces (or appends) the section between `<!-- bench:NAME:start -->` and
/// `<!-- bench:NAME:end -->` in docs/benchmarks.md, keeping everything else.
pub fn write_section(docs: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = docs.join("benchmarks.md");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => INTRO.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let start = format!("<!-- bench:{name}:start -->");
    let end = format!("<!-- bench:{name}:end -->");
    let section = format!("{start}\n{}\n{end}", body.trim_end());
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            format!("{}{section}{}", &existing[..s], &existing[e + end.len()..])
        }
        _ => format!("{}\n{section}\n", existing.trim_end()),
    };
    std::fs::create_dir_all(docs).with_context(|| format!("creating {}", docs.display()))?;
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn us(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

/// The largest share of `what` during any one measurement, in cores.
fn worst_cores(res: &HostResults, what: impl Fn(&CpuUse) -> f64) -> f64 {
    res.throughput
        .samples
        .iter()
        .chain(&res.outbound.samples)
        .map(|s| what(&s.cpu) / s.cpu.wall_seconds)
        .fold(0.0, f64::max)
}

/// Largest (max − min) / median of req/s over some cells: the run-to-run noise.
fn spread(cells: &[&Summary]) -> f64 {
    cells
        .iter()
        .map(|s| (s.rps_max - s.rps_min) / s.rps_median)
        .fold(0.0, f64::max)
}

fn row(out: &mut String, c: u32, label: &str, s: &Summary, extra: &str) {
    let _ = writeln!(
        out,
        "| {c} | {label} | {:.0} | {:.0}–{:.0} | {} | {} |{extra} {} |",
        s.rps_median,
        s.rps_min,
        s.rps_max,
        us(s.p50_us_median),
        us(s.p99_us_median),
        s.errors
    );
}

/// The markdown section for `fado-bench host`.
pub fn host_markdown(
    r: &HostReport,
    json_name: &str,
    concurrency: &[u32],
    outbound_concurrency: &[u32],
) -> String {
    let res = &r.results;
    let m = &r.machine;
    let mut out = String::new();
    let _ = writeln!(out, "## Host overhead: `fado serve` vs `wasmtime serve`\n");
    provenance(&mut out, &r.started_utc, m, r.workspace_head.as_deref());
    let _ = writeln!(
        out,
        "Run took {:.0} s; during the measurements ({:.0} s) fado-bench, its servers and spin loops used {:.0} CPU-seconds, \
         other processes {:.0} and hypervisor steal {:.0}. Before each measurement fado-bench waited up to \
         {} s for other processes to go quiet; during the worst measurement they still used {:.2} of a core, \
         and the worst steal was {:.2} of a core. \
         Raw results: [`benchmarks/{json_name}`](benchmarks/{json_name}).\n",
        r.elapsed_seconds,
        r.cpu.wall_seconds,
        r.cpu.own_seconds,
        r.cpu.other_seconds,
        r.cpu.steal_seconds,
        r.config["quiet_wait_seconds"],
        worst_cores(res, |c| c.other_seconds),
        worst_cores(res, |c| c.steal_seconds)
    );
    let _ = writeln!(
        out,
        "Command (from the workspace root):\n\n```sh\n{}\n```\n",
        r.command
    );
    let _ = writeln!(
        out,
        "Peers and flags (`$WORK` is the run's temporary directory):\n"
    );
    for p in &res.peers {
        let _ = writeln!(out, "- **{}** ({}): `{}`", p.name, p.version, p.command);
    }
    for note in &res.notes {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(out, "- upstream for B: {}", res.upstream);
    let _ = writeln!(out, "- load generator: {}", r.load_generator);
    let awake = if r.config["keep_cpus_awake"] == true {
        "one nice-19 busy loop per core kept the vCPUs from idling (waking an idle vCPU of this VM costs \
         hundreds of µs; `--no-keep-cpus-awake` turns this off); their CPU time counts as fado-bench's below"
    } else {
        "idle vCPUs were allowed to sleep (`--no-keep-cpus-awake`): single-connection latency includes their wake-up"
    };
    let _ = writeln!(out, "- CPUs: {awake}\n");

    let _ = writeln!(out, "### A. `hello` component: throughput and latency\n");
    let _ = writeln!(
        out,
        "Medians over {} runs; the fado/wasmtime row divides fado's median by wasmtime serve's \
         (above 1× is better for req/s, below 1× is better for latency).\n",
        r.config["runs"]
    );
    let _ = writeln!(
        out,
        "| concurrency | host | req/s | req/s min–max | p50 µs | p99 µs | errors |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|");
    for &c in concurrency {
        let (Some(f), Some(w)) = (
            res.throughput.summary("fado", c),
            res.throughput.summary("wasmtime", c),
        ) else {
            continue;
        };
        row(&mut out, c, "fado serve", f, "");
        row(&mut out, c, "wasmtime serve", w, "");
        let _ = writeln!(
            out,
            "| {c} | **fado / wasmtime** | **{}** | | **{}** | **{}** | |",
            ratio(f.rps_median, w.rps_median),
            ratio(f.p50_us_median, w.p50_us_median),
            ratio(f.p99_us_median, w.p99_us_median)
        );
    }

    let _ = writeln!(
        out,
        "\n### B. One outbound HTTP call, with and without connection pooling\n"
    );
    let _ = writeln!(
        out,
        "`probe` at `/x/fetch?url=http://127.0.0.1:PORT/` makes one outbound GET to the upstream and \
         streams its body back; `hello` on the same fado process is the baseline, so the cost of one \
         outbound call is fetch − hello (differences of the medians of per-run percentiles).\n"
    );
    let _ = writeln!(
        out,
        "| concurrency | request | req/s | req/s min–max | p50 µs | p99 µs | p50 − hello p50 µs | p99 − hello p99 µs | errors |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &c in outbound_concurrency {
        let Some(hello) = res.outbound.summary("hello", c) else {
            continue;
        };
        row(&mut out, c, "hello (baseline)", hello, " | |");
        for (variant, label) in [
            ("fetch-pooled", "fetch, pooled (default)"),
            ("fetch-unpooled", "fetch, `--no-outbound-pooling`"),
        ] {
            if let Some(s) = res.outbound.summary(variant, c) {
                let extra = format!(
                    " {} | {} |",
                    us(s.p50_us_median - hello.p50_us_median),
                    us(s.p99_us_median - hello.p99_us_median)
                );
                row(&mut out, c, label, s, &extra);
            }
        }
    }

    let _ = writeln!(
        out,
        "\n{}",
        interpretation(r, concurrency, outbound_concurrency)
    );
    out
}

/// One sentence stating what the numbers say, with the run's own noise level.
fn interpretation(r: &HostReport, concurrency: &[u32], outbound_concurrency: &[u32]) -> String {
    let res = &r.results;
    let mut parts = Vec::new();
    let ratios: Vec<String> = concurrency
        .iter()
        .filter_map(|&c| {
            let f = res.throughput.summary("fado", c)?;
            let w = res.throughput.summary("wasmtime", c)?;
            Some((c, f, w))
        })
        .enumerate()
        .map(|(i, (c, f, w))| {
            let rps = ratio(f.rps_median, w.rps_median);
            let p99 = ratio(f.p99_us_median, w.p99_us_median);
            let noise = spread(&[f, w]) * 100.0;
            match i {
                0 => format!(
                    "{rps} those of `wasmtime serve` at concurrency {c} (p99 latency {p99}; runs of one host varied by up to {noise:.0}%)"
                ),
                _ => format!("{rps} at concurrency {c} (p99 {p99}; runs varied by up to {noise:.0}%)"),
            }
        })
        .collect();
    if !ratios.is_empty() {
        parts.push(format!(
            "fado's median requests/s were {}",
            ratios.join(" and ")
        ));
    }
    let costs: Vec<String> = outbound_concurrency
        .iter()
        .filter_map(|&c| {
            let cell = |v| res.outbound.summary(v, c);
            let (h, p, u) = (cell("hello")?, cell("fetch-pooled")?, cell("fetch-unpooled")?);
            Some(format!(
                "from {} µs without pooling to {} µs with it at concurrency {c} (runs varied by up to {:.0}%)",
                us(u.p50_us_median - h.p50_us_median),
                us(p.p50_us_median - h.p50_us_median),
                spread(&[h, p, u]) * 100.0
            ))
        })
        .collect();
    if !costs.is_empty() {
        parts.push(format!(
            "the median p50 cost of one outbound call went {}",
            costs.join(" and ")
        ));
    }
    format!(
        "**Reading:** {}; the load generator, the upstream and the servers share this machine's {} cores, so \
         differences smaller than the run-to-run variation quoted are noise.",
        parts.join(", and "),
        r.machine.cores
    )
}
