//! CPU accounting from /proc, to tell how much of the machine other work took
//! while a benchmark ran: on a small shared machine that is the main source of
//! noise, so every sample records it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Kernel clock ticks per second in /proc (USER_HZ): 100 on every Linux
/// platform this runs on, and asking sysconf would need libc.
const TICKS_PER_SECOND: f64 = 100.0;

/// Machine-wide busy ticks and the ticks of fado-bench and its servers.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    busy: u64,
    steal: u64,
    own: u64,
    at: Instant,
}

impl CpuSnapshot {
    /// `children` are running servers whose CPU counts as ours. Children
    /// already waited for are in our own cutime/cstime.
    pub fn take(children: &[u32]) -> CpuSnapshot {
        let own = process_ticks("self", 4)
            + children
                .iter()
                .map(|p| process_ticks(&p.to_string(), 2))
                .sum::<u64>();
        Self::with_own(own)
    }

    /// Counts as ours this process, `extra` and every descendant of either
    /// (servers and their workers, e.g. PostgreSQL backends and Garage).
    pub fn take_tree(extra: &[u32]) -> CpuSnapshot {
        Self::with_own(tree_ticks(extra))
    }

    fn with_own(own: u64) -> CpuSnapshot {
        let cpu = machine_ticks();
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal; guest time is inside
        // user. Interrupt time is left out: loopback traffic of the benchmark
        // itself is mostly accounted there, charged to no process.
        let busy = field(0) + field(1) + field(2);
        CpuSnapshot {
            busy,
            steal: field(7),
            own,
            at: Instant::now(),
        }
    }
}

/// The machine's tick counters over all CPUs, as /proc/stat's first line
/// lists them: user nice system idle iowait irq softirq steal guest…
pub fn machine_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// utime, stime (and with `fields` = 4 also cutime, cstime) of a process.
fn process_ticks(pid: &str, fields: usize) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; fields are counted after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    rest.split_whitespace()
        .skip(11)
        .take(fields)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// CPU use between two snapshots, in CPU-seconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub wall_seconds: f64,
    /// fado-bench (load generator, upstream) and the servers it started.
    pub own_seconds: f64,
    /// Everything else on the machine.
    pub other_seconds: f64,
    /// Time the hypervisor gave to other guests.
    pub steal_seconds: f64,
}

impl CpuUse {
    pub fn between(a: CpuSnapshot, b: CpuSnapshot) -> CpuUse {
        let secs = |t: u64| t as f64 / TICKS_PER_SECOND;
        let own = b.own.saturating_sub(a.own);
        CpuUse {
            wall_seconds: (b.at - a.at).as_secs_f64(),
            own_seconds: secs(own),
            other_seconds: secs(b.busy.saturating_sub(a.busy).saturating_sub(own)),
            steal_seconds: secs(b.steal.saturating_sub(a.steal)),
        }
    }
}

/// Waits until the machine has been quiet (other processes using under a
/// fifth of one core) for half a second, at most `max`; returns how long it
/// waited. A build or test running beside the benchmark would otherwise
/// decide the result.
pub fn wait_quiet(children: &[u32], max: Duration) -> Duration {
    wait_quiet_with(|| CpuSnapshot::take(children), max)
}

/// [`wait_quiet`] with snapshots taken by `snap`.
pub fn wait_quiet_with(snap: impl Fn() -> CpuSnapshot, max: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < max {
        let a = snap();
        std::thread::sleep(Duration::from_millis(500));
        let used = CpuUse::between(a, snap());
        if used.other_seconds < 0.2 * used.wall_seconds {
            break;
        }
    }
    start.elapsed()
}

/// utime + stime + cutime + cstime of this process, `extra`, and all their
/// descendants.
fn tree_ticks(extra: &[u32]) -> u64 {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, ppid, …
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        children.entry(num(1) as u32).or_default().push(pid);
        ticks.insert(pid, num(11) + num(12) + num(13) + num(14));
    }
    let mut stack: Vec<u32> = extra.to_vec();
    stack.push(std::process::id());
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        total += ticks.get(&pid).copied().unwrap_or(0);
        if let Some(c) = children.get(&pid) {
            stack.extend(c);
        }
    }
    total
}
