//! What the demo runs where: the thesis testbed's three clusters, the ports
//! of their storage and function endpoints, and the sample bucket. No I/O.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// One simulated cluster of the thesis testbed (section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: &'static str,
    pub zones: &'static [&'static str],
}

/// `hpc-cluster` and `cloud-cluster-1` in `germany` and `high-performance`,
/// `cloud-cluster-2` in `germany` only.
pub const TESTBED: [ClusterSpec; 3] = [
    ClusterSpec {
        name: "hpc-cluster",
        zones: &["germany", "high-performance"],
    },
    ClusterSpec {
        name: "cloud-cluster-1",
        zones: &["germany", "high-performance"],
    },
    ClusterSpec {
        name: "cloud-cluster-2",
        zones: &["germany"],
    },
];

/// The bucket the demo creates, its policy and its one object.
pub const SAMPLE_BUCKET: &str = "images";
pub const SAMPLE_KEY: &str = "sample.png";
pub const SAMPLE_ZONES: &[&str] = &["germany"];
/// Replicas besides the master copy: the bucket lives on two of the three
/// clusters, so routing by bucket has a choice to make and one to avoid.
pub const SAMPLE_REPLICAS: i64 = 1;

/// One cluster as the demo runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub spec: ClusterSpec,
    /// Storage deployment name, e.g. `hpc-cluster-s3`.
    pub storage: String,
    /// FaaS deployment name, e.g. `hpc-cluster-spin`.
    pub faas: String,
    /// Where the embedded S3 server listens (unused with Garage).
    pub storage_addr: SocketAddr,
    /// Where `fado serve` runs the example functions.
    pub faas_addr: SocketAddr,
    /// The embedded S3 server's data.
    pub storage_dir: PathBuf,
    /// The function host's state (key-value store).
    pub faas_dir: PathBuf,
}

/// Every cluster of the demo, in testbed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub clusters: Vec<Cluster>,
}

/// Loopback ports: cluster `i` gets `storage_base + i` and `faas_base + i`.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub storage_base: u16,
    pub faas_base: u16,
}

/// Why a set of ports cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct PortClash(pub String);

impl std::fmt::Display for PortClash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortClash {}

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Plans the clusters under `data_dir`; refuses port ranges that overflow
/// or overlap each other or the orchestrator's `api` port.
pub fn plan(data_dir: &Path, ports: Ports, api: SocketAddr) -> Result<Layout, PortClash> {
    let n = TESTBED.len() as u16;
    let range = |flag: &str, base: u16| {
        base.checked_add(n - 1)
            .filter(|_| base != 0)
            .map(|last| base..=last)
            .ok_or_else(|| {
                PortClash(format!(
                    "{flag} {base}: needs {n} ports from a non-zero base up to 65535"
                ))
            })
    };
    let storage = range("--storage-port-base", ports.storage_base)?;
    let faas = range("--faas-port-base", ports.faas_base)?;
    if storage.start() <= faas.end() && faas.start() <= storage.end() {
        return Err(PortClash(format!(
            "--storage-port-base {} and --faas-port-base {} overlap ({n} ports each)",
            ports.storage_base, ports.faas_base
        )));
    }
    for (flag, r) in [
        ("--storage-port-base", &storage),
        ("--faas-port-base", &faas),
    ] {
        if api.ip().is_loopback() && r.contains(&api.port()) {
            return Err(PortClash(format!(
                "{flag} {}: its {n} ports include the orchestrator's port {}",
                r.start(),
                api.port()
            )));
        }
    }
    let clusters = TESTBED
        .iter()
        .zip(0u16..)
        .map(|(spec, i)| Cluster {
            spec: *spec,
            storage: format!("{}-s3", spec.name),
            faas: format!("{}-spin", spec.name),
            storage_addr: SocketAddr::new(LOOPBACK, ports.storage_base + i),
            faas_addr: SocketAddr::new(LOOPBACK, ports.faas_base + i),
            storage_dir: data_dir.join("storage").join(spec.name),
            faas_dir: data_dir.join("functions").join(spec.name),
        })
        .collect();
    Ok(Layout { clusters })
}

impl Layout {
    /// The cluster whose storage is the sample bucket's master.
    pub fn master(&self) -> &Cluster {
        &self.clusters[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> SocketAddr {
        "127.0.0.1:3000".parse().unwrap()
    }

    #[test]
    fn the_testbed_gets_a_port_and_directory_per_cluster() {
        let l = plan(
            Path::new("/d"),
            Ports {
                storage_base: 3901,
                faas_base: 8081,
            },
            api(),
        )
        .unwrap();
        let names: Vec<_> = l.clusters.iter().map(|c| c.spec.name).collect();
        assert_eq!(names, ["hpc-cluster", "cloud-cluster-1", "cloud-cluster-2"]);
        let c = &l.clusters[2];
        assert_eq!(c.storage_addr.port(), 3903);
        assert_eq!(c.faas_addr.port(), 8083);
        assert_eq!(c.storage, "cloud-cluster-2-s3");
        assert_eq!(c.faas, "cloud-cluster-2-spin");
        assert_eq!(c.storage_dir, Path::new("/d/storage/cloud-cluster-2"));
        assert_eq!(c.spec.zones, ["germany"]);
        assert_eq!(l.master().spec.name, "hpc-cluster");
    }

    #[test]
    fn clashing_ports_are_refused_naming_the_flag() {
        let p = |s, f| Ports {
            storage_base: s,
            faas_base: f,
        };
        let err = |s, f| plan(Path::new("/d"), p(s, f), api()).unwrap_err().0;
        assert!(err(3901, 3903).contains("overlap"));
        assert!(err(2999, 8081).contains("--storage-port-base 2999"));
        assert!(err(3901, 2998).contains("--faas-port-base 2998"));
        assert!(err(65534, 8081).contains("--storage-port-base 65534"));
        assert!(err(0, 8081).contains("non-zero"));
        assert!(plan(Path::new("/d"), p(3904, 3901), api()).is_ok());
    }
}
