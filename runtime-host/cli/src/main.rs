//! `fado`: runs FaDO (`fado up`) or any Spin application (`fado serve`) on
//! the embedded wasmtime host, and manages a running FaDO through its API
//! (`fado cluster|bucket|object|… `, see `admin`).

mod admin;
mod db;
mod host;
mod s3;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fado",
    version,
    about = "FaDO, the Function and Data Orchestrator"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "FADO_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FaDO orchestrator: the Spin application in ./spin.toml (or --manifest).
    Up(host::HostArgs),
    /// Run any Spin application (manifest version 2), the way `spin up` does.
    Serve(host::HostArgs),
    /// Manage the catalog database schema.
    Db(db::DbArgs),
    /// Run FaDO locally as on three clusters: storage, functions and the orchestrator.
    Demo(fado_demo::DemoArgs),
    /// An S3 server over a local directory, for demos and tests.
    S3(s3::S3Args),
    #[command(flatten)]
    Admin(admin::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let result = match cli.command {
        Command::Up(args) | Command::Serve(args) => host::run(args),
        Command::Db(args) => db::run(args),
        Command::Demo(args) => fado_demo::run(args),
        Command::S3(args) => s3::run(args),
        Command::Admin(command) => admin::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,cranelift_codegen=warn,wasmtime_cranelift=warn,tokio_postgres=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
