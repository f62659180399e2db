//! Simulated sites on one machine: a network namespace per cluster, joined
//! to the host's namespace by a veth pair and to nothing else, and a CPU
//! cgroup per cluster for its functions.
//!
//! Site `i` (from 1) has address `10.77.i.2` inside and `10.77.i.1` on the
//! host side. The namespaces have no route to one another, so whatever a
//! cluster reaches of another cluster goes through a link the host runs
//! (see `wan.rs`), with that link's latency.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Namespaces and their veth pairs, deleted when dropped.
pub struct Sites {
    names: Vec<String>,
}

/// The inside address of site `i` (from 1).
pub fn inside(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, i as u8, 2)
}

/// The host-side address of site `i` (from 1).
pub fn host_side(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, i as u8, 1)
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output().with_context(|| {
        format!(
            "running ip {} (apt-get install -y iproute2)",
            args.join(" ")
        )
    })?;
    if !out.status.success() {
        bail!(
            "ip {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            if not_root() {
                " (network namespaces need root: run the benchmark as root)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn not_root() -> bool {
    // The effective uid is the second field of /proc's Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u != "0"))
        })
        .unwrap_or(false)
}

fn namespace(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

impl Sites {
    /// Creates sites 1..=n named `{prefix}{i}`, removing leftovers of an
    /// interrupted run first.
    pub fn create(prefix: &str, n: usize) -> Result<Sites> {
        let mut sites = Sites { names: Vec::new() };
        for i in 1..=n {
            let ns = namespace(prefix, i);
            let veth = format!("{ns}h");
            // Leftovers: ignore "does not exist".
            let _ = ip(&["link", "del", &veth]);
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns]).with_context(|| format!("creating namespace {ns}"))?;
            sites.names.push(ns.clone());
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["addr", "add", &format!("{}/24", host_side(i)), "dev", &veth])?;
            ip(&["link", "set", &veth, "up"])?;
            for args in [
                vec!["addr", "add", &format!("{}/24", inside(i)), "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["netns", "exec", &ns, "ip"];
                full.extend(args.iter().copied());
                ip(&full)?;
            }
        }
        Ok(sites)
    }

    /// The arguments of `ip` that run `program` inside site `i`'s
    /// namespace (`ip netns exec` execs it, so the pid is the program's).
    pub fn exec_args(&self, i: usize, program: &std::path::Path) -> Vec<String> {
        vec![
            "netns".into(),
            "exec".into(),
            self.names[i - 1].clone(),
            program.display().to_string(),
        ]
    }
}

impl Drop for Sites {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["link", "del", &format!("{ns}h")]);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A CPU cgroup whose processes share a limit of some cores (cgroup v1's
/// cpu controller or v2's cpu.max), removed when dropped.
pub struct CpuLimit {
    dir: PathBuf,
    v2: bool,
}

/// Short period, so a capped function is throttled in slices of
/// milliseconds instead of stalling for most of a 100 ms period.
const PERIOD_US: u64 = 10_000;

impl CpuLimit {
    /// A group without a limit yet.
    pub fn create(name: &str) -> Result<CpuLimit> {
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let (dir, v2) = if v1.join("cpu.cfs_quota_us").exists() {
            (v1.join(name), false)
        } else if PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists() {
            (PathBuf::from("/sys/fs/cgroup").join(name), true)
        } else {
            bail!("no CPU cgroup controller under /sys/fs/cgroup");
        };
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir)
            .with_context(|| format!("creating cgroup {} (needs root)", dir.display()))?;
        let limit = CpuLimit { dir, v2 };
        limit.set(0.0)?;
        Ok(limit)
    }

    /// Limits the group to `cores` (0: no limit).
    pub fn set(&self, cores: f64) -> Result<()> {
        let quota = (cores > 0.0).then(|| (cores * PERIOD_US as f64).round().max(1000.0) as u64);
        let write = |file: &str, value: String| {
            let path = self.dir.join(file);
            std::fs::write(&path, &value)
                .with_context(|| format!("writing {value} to {}", path.display()))
        };
        if self.v2 {
            let q = quota.map_or("max".to_string(), |q| q.to_string());
            write("cpu.max", format!("{q} {PERIOD_US}"))
        } else {
            write("cpu.cfs_period_us", PERIOD_US.to_string())?;
            write(
                "cpu.cfs_quota_us",
                quota.map_or("-1".to_string(), |q| q.to_string()),
            )
        }
    }

    /// Moves process `pid` (all its threads, and children it starts later)
    /// into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("moving process {pid} into {}", self.dir.display()))
    }

    /// How long the group has been held back by its limit so far, in
    /// seconds: shows the limit was in force.
    pub fn throttled_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        stat.lines().find_map(|l| {
            if let Some(ns) = l.strip_prefix("throttled_time ") {
                ns.trim().parse::<f64>().ok().map(|n| n / 1e9)
            } else {
                l.strip_prefix("throttled_usec ")
                    .and_then(|us| us.trim().parse::<f64>().ok())
                    .map(|us| us / 1e6)
            }
        })
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // The group's processes are gone by now (sites drop after their
        // processes); a non-empty group cannot be removed, which only leaks
        // a directory.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
