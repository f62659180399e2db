//! Builds (or finds) everything a benchmark runs: the `fado` release binary,
//! the test components, and the peer `wasmtime` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::peers::output_of;

/// The peer must embed the same wasmtime as fado, so that the comparison is
/// about the host around the engine, not about engine versions. Keep in step
/// with the `wasmtime = "=…"` pin in the workspace Cargo.toml (checked below).
pub const WASMTIME_VERSION: &str = "48.0.8";

#[derive(Debug, Clone)]
pub struct Artifacts {
    pub workspace: PathBuf,
    pub target_dir: PathBuf,
    pub fado: PathBuf,
    pub hello_wasm: PathBuf,
    pub probe_wasm: PathBuf,
    pub wasmtime: PathBuf,
}

/// `cargo` as invoked by `cargo run` (it sets `CARGO`), else from PATH.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    eprintln!("fado-bench: {what}");
    let status = cmd
        .status()
        .with_context(|| format!("{what}: cannot start it"))?;
    if !status.success() {
        bail!("{what}: exited with {status}");
    }
    Ok(())
}

/// infra/build is the one build entry point; `--all` is the test command's
/// build (the test components too), whose `fado` is the one ./infra/up builds.
pub fn build(workspace: &Path) -> Result<()> {
    let mut cmd = Command::new(workspace.join("infra").join("build"));
    cmd.arg("--all").current_dir(workspace);
    run(cmd, "building fado and the components (infra/build --all)")
}

pub fn prepare(skip_build: bool, tools_dir: &Path) -> Result<Artifacts> {
    let workspace = harness::workspace();
    check_wasmtime_pin(&workspace)?;
    let target_dir = target_dir(&workspace)?;

    if !skip_build {
        build(&workspace)?;
    }

    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    let artifacts = Artifacts {
        fado: target_dir.join("release").join("fado"),
        hello_wasm: wasm_dir.join("hello.wasm"),
        probe_wasm: wasm_dir.join("probe.wasm"),
        wasmtime: wasmtime_cli(tools_dir)?,
        workspace,
        target_dir,
    };
    for p in [
        &artifacts.fado,
        &artifacts.hello_wasm,
        &artifacts.probe_wasm,
    ] {
        if !p.exists() {
            bail!("{} is missing (run without --skip-build)", p.display());
        }
    }
    Ok(artifacts)
}

/// Where cargo puts build output, honouring CARGO_TARGET_DIR and config files.
pub fn target_dir(workspace: &Path) -> Result<PathBuf> {
    let out = cargo()
        .current_dir(workspace)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

fn check_wasmtime_pin(workspace: &Path) -> Result<()> {
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml"))
        .context("reading the workspace Cargo.toml")?;
    let pin = format!("\"={WASMTIME_VERSION}\"");
    let pinned = manifest
        .lines()
        .any(|l| l.trim_start().starts_with("wasmtime =") && l.contains(&pin));
    if !pinned {
        bail!(
            "the workspace no longer pins wasmtime {pin}; update WASMTIME_VERSION in bench/src/prepare.rs"
        );
    }
    Ok(())
}

/// `wasmtime` of [`WASMTIME_VERSION`] under `tools_dir/bin`, installed from
/// crates.io the first time (a long build, done once per machine).
fn wasmtime_cli(tools_dir: &Path) -> Result<PathBuf> {
    let bin = tools_dir.join("bin").join("wasmtime");
    if bin.exists() {
        match output_of(&bin, &["--version"]) {
            Ok(v) if v.split_whitespace().nth(1) == Some(WASMTIME_VERSION) => return Ok(bin),
            Ok(v) => eprintln!(
                "fado-bench: {} is {v:?}, reinstalling {WASMTIME_VERSION}",
                bin.display()
            ),
            Err(e) => eprintln!(
                "fado-bench: {} unusable ({e:#}), reinstalling",
                bin.display()
            ),
        }
    }
    let mut cmd = cargo();
    cmd.args([
        "install",
        "wasmtime-cli",
        "--version",
        WASMTIME_VERSION,
        "--locked",
        "--force",
        "--root",
    ])
    .arg(tools_dir);
    run(
        cmd,
        &format!(
            "installing wasmtime-cli {WASMTIME_VERSION} into {} (takes a while)",
            tools_dir.display()
        ),
    )?;
    Ok(bin)
}
