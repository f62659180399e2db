//! WASI 0.2: cli (environment, stdio), clocks, random, io, filesystem
//! limited to the component's `files` mounts (read-only), and sockets as
//! Spin allows them: TCP connections and UDP to the addresses the
//! component's `allowed_outbound_hosts` allow, checked under the schemes
//! `tcp` and `udp`; no name lookup and no listening sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use fado_manifest::{AllowedHosts, FileMount};
use wasmtime::component::Linker;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;

pub struct Wasi {
    components: Vec<ComponentWasi>,
}

struct ComponentWasi {
    env: Vec<(String, String)>,
    /// (host directory, guest path)
    mounts: Vec<(PathBuf, String)>,
    allowed_hosts: Arc<AllowedHosts>,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Capability for Wasi {
    type InstanceState = WasiCtx;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        _get: fn(&mut StoreData) -> &mut WasiCtx,
    ) -> Result<()> {
        // wasmtime-wasi reaches its state through `WasiView` instead of a getter.
        wasmtime_wasi::p2::add_to_linker_async(linker).map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let mut components = Vec::new();
        for c in &app.components {
            let m = &c.manifest;
            // Like `spin up --env`, command-line values override the manifest's.
            let mut env: Vec<(String, String)> = m
                .environment
                .iter()
                .filter(|(k, _)| !app.options.env.iter().any(|(n, _)| n == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            env.extend(app.options.env.iter().cloned());
            let mut mounts = Vec::new();
            let patterns: Vec<&str> = m
                .files
                .iter()
                .filter_map(|f| match f {
                    FileMount::Pattern(p) => Some(p.as_str()),
                    FileMount::Directory { .. } => None,
                })
                .collect();
            if !patterns.is_empty() {
                let staged = app.state_dir.join("files").join(&c.id);
                stage_files(&app.manifest.dir, &patterns, &m.exclude_files, &staged)
                    .with_context(|| format!("component {:?}: collecting `files`", c.id))?;
                mounts.push((staged, "/".to_string()));
            }
            for f in &m.files {
                if let FileMount::Directory {
                    source,
                    destination,
                } = f
                {
                    if !source.is_dir() {
                        anyhow::bail!(
                            "{}: field `component.{}.files`: source {} is not a directory",
                            app.manifest.file.display(),
                            c.id,
                            source.display()
                        );
                    }
                    mounts.push((source.clone(), destination.clone()));
                }
            }
            components.push(ComponentWasi {
                env,
                mounts,
                allowed_hosts: c.allowed_hosts.clone(),
            });
        }
        Ok(Self { components })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<WasiCtx> {
        let c = &self.components[component];
        let mut b = WasiCtxBuilder::new();
        let hosts = c.allowed_hosts.clone();
        b.inherit_stdout()
            .inherit_stderr()
            .envs(&c.env)
            // Spin gives components no name lookup: rules are matched
            // against addresses, which the component must know.
            .allow_ip_name_lookup(false)
            .allow_tcp(true)
            .allow_udp(true)
            .socket_addr_check(move |addr, used| {
                let allowed = socket_allowed(&hosts, addr, used);
                if !allowed {
                    tracing::debug!(%addr, ?used, "socket address refused by allowed_outbound_hosts");
                }
                Box::pin(std::future::ready(allowed))
            });
        for (host, guest) in &c.mounts {
            b.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("mounting {} at {guest}", host.display()))?;
        }
        Ok(b.build())
    }
}

/// Whether a component whose rules are `hosts` may use `addr` for `used`,
/// decided as Spin decides (its outbound-networking factor): a TCP connect
/// is checked under the scheme `tcp`, a UDP bind or send under `udp`, and
/// TCP may not bind, so may not listen.
fn socket_allowed(hosts: &AllowedHosts, addr: SocketAddr, used: SocketAddrUse) -> bool {
    match used {
        SocketAddrUse::TcpConnect => hosts.allows_socket("tcp", addr),
        // wasmtime checks every connect of an unbound socket as a bind to the
        // unspecified address and port 0 too, which Spin's wasmtime did not;
        // allowing exactly that keeps connects working. An explicit bind to
        // it looks the same and is harmless: listening is refused below.
        SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
        SocketAddrUse::UdpBind | SocketAddrUse::UdpSend => hosts.allows_socket("udp", addr),
        // Spin does not filter what a bound UDP socket receives (its
        // wasmtime had no such check); binding already needed a rule.
        SocketAddrUse::UdpReceive => true,
    }
}

/// Copies the files matching `patterns` (relative to `base`) into `dest`,
/// keeping their relative paths, so the component sees exactly those files.
fn stage_files(base: &Path, patterns: &[&str], exclude: &[String], dest: &Path) -> Result<()> {
    let include = glob_set(patterns)?;
    let exclude = glob_set(&exclude.iter().map(String::as_str).collect::<Vec<_>>())?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("clearing {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut matched = 0usize;
    for entry in walkdir::WalkDir::new(base).follow_links(true) {
        let entry = entry?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(base)?;
        if rel.starts_with(".fado") || !include.is_match(rel) || exclude.is_match(rel) {
            continue;
        }
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(entry.path(), &target)
            .with_context(|| format!("copying {}", entry.path().display()))?;
        matched += 1;
    }
    tracing::debug!(files = matched, dir = %dest.display(), "staged component files");
    Ok(())
}

fn glob_set(patterns: &[&str]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(
            globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .with_context(|| format!("invalid glob {p:?}"))?,
        );
    }
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rules: &[&str], addr: &str, used: SocketAddrUse) -> bool {
        socket_allowed(
            &AllowedHosts::parse(rules).unwrap(),
            addr.parse().unwrap(),
            used,
        )
    }

    #[test]
    fn sockets_follow_the_rules_as_in_spin() {
        use SocketAddrUse::*;
        let exact = ["*://127.0.0.1:7000"];
        assert!(check(&exact, "127.0.0.1:7000", TcpConnect));
        assert!(!check(&exact, "127.0.0.1:7001", TcpConnect));
        assert!(!check(&exact, "127.0.0.2:7000", TcpConnect));
        assert!(check(
            &["*://127.0.0.0/24:7000"],
            "127.0.0.9:7000",
            TcpConnect
        ));
        assert!(!check(&["udp://127.0.0.1:*"], "127.0.0.1:7000", TcpConnect));
        assert!(check(&["tcp://127.0.0.1:*"], "127.0.0.1:7000", TcpConnect));
        assert!(!check(
            &["http://127.0.0.1:7000"],
            "127.0.0.1:7000",
            TcpConnect
        ));

        // Connecting binds implicitly; nothing else may bind or listen.
        let all = ["*://*:*"];
        assert!(check(&all, "0.0.0.0:0", TcpBind));
        assert!(check(&all, "[::]:0", TcpBind));
        assert!(!check(&all, "127.0.0.1:0", TcpBind));
        assert!(!check(&all, "0.0.0.0:8080", TcpBind));
        assert!(!check(&all, "0.0.0.0:0", TcpListen));
        assert!(!check(&all, "127.0.0.1:40000", TcpAccept));

        // UDP binds and sends are checked under `udp`.
        assert!(check(&["udp://127.0.0.1:*"], "127.0.0.1:0", UdpBind));
        assert!(!check(&["udp://127.0.0.1:*"], "0.0.0.0:0", UdpBind));
        assert!(check(&["udp://127.0.0.1:*"], "127.0.0.1:53", UdpSend));
        assert!(!check(&["tcp://127.0.0.1:*"], "127.0.0.1:53", UdpSend));
        assert!(check(&[], "127.0.0.1:53", UdpReceive));
        assert!(!check(&[], "127.0.0.1:7000", TcpConnect));
    }
}
