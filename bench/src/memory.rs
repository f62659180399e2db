//! Resident memory of a process, as Linux reports it in
//! `/proc/PID/status`: now (`VmRSS`, and its anonymous part `RssAnon`) and
//! the peak since it started (`VmHWM`).

use anyhow::{Context, Result};
use serde::Serialize;

/// One process's resident memory, MiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Resident {
    pub rss_mib: f64,
    pub anon_mib: f64,
    pub peak_mib: f64,
}

fn field_kib(status: &str, name: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
}

/// What `pid` holds now.
pub fn resident(pid: u32) -> Result<Resident> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let mib = |name: &str| field_kib(&status, name).map_or(0.0, |k| k / 1024.0);
    Ok(Resident {
        rss_mib: mib("VmRSS:"),
        anon_mib: mib("RssAnon:"),
        peak_mib: mib("VmHWM:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let me = resident(std::process::id()).unwrap();
        assert!(me.rss_mib > 0.0 && me.peak_mib >= me.rss_mib, "{me:?}");
        assert_eq!(field_kib("VmRSS:\t  2048 kB\n", "VmRSS:"), Some(2048.0));
    }
}
