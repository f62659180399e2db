//! WASI 0.2: cli (environment, stdio), clocks, random, io, and filesystem
//! limited to the component's `files` mounts (read-only). Sockets are linked
//! because WASI's command world includes them, but every address is refused:
//! network access goes through the outbound capabilities, which enforce
//! `allowed_outbound_hosts`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fado_manifest::FileMount;
use wasmtime::component::Linker;
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
            components.push(ComponentWasi { env, mounts });
        }
        Ok(Self { components })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<WasiCtx> {
        let c = &self.components[component];
        let mut b = WasiCtxBuilder::new();
        b.inherit_stdout()
            .inherit_stderr()
            .envs(&c.env)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false);
        for (host, guest) in &c.mounts {
            b.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("mounting {} at {guest}", host.display()))?;
        }
        Ok(b.build())
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
