//! `fado cluster|faas|storage|bucket|object|route|settings|job|invoke|status|completions`:
//! the API client side of the `fado` command, one module per resource group.
//! Each turns arguments into `fado-client` calls and prints a table (or
//! JSON with `--json`); errors name what they were about.

mod bucket;
mod cluster;
mod faas;
mod invoke;
mod job;
mod object;
mod output;
mod route;
mod settings;
mod status;
mod storage;

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use fado_client::Client;
use fado_client::config::{self, ConfigFile, Origin, Sources, Token};

/// Where the API is and how to authenticate (every subcommand accepts them).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// FaDO's listener; the API is under /api [env: FADO_API] [default: http://127.0.0.1:3000].
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,
    /// The admin token [env: FADO_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Read the admin token from this file.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Config file with `api` and `token` or `token_file` [default: ~/.config/fado/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Clusters: groups of FaaS and storage deployments, with zones.
    #[command(subcommand)]
    Cluster(cluster::Cmd),
    /// FaaS deployments: where functions run.
    #[command(subcommand)]
    Faas(faas::Cmd),
    /// Storage deployments: S3-compatible services holding buckets.
    #[command(subcommand)]
    Storage(storage::Cmd),
    /// Buckets and their placement policy.
    #[command(subcommand)]
    Bucket(bucket::Cmd),
    /// Objects in buckets: list, upload, download, remove.
    #[command(subcommand)]
    Object(object::Cmd),
    /// The route table and route overrides.
    #[command(subcommand)]
    Route(route::Cmd),
    /// Routing settings.
    #[command(subcommand)]
    Settings(settings::Cmd),
    /// The replication job ledger and dead letters.
    #[command(subcommand)]
    Job(job::Cmd),
    /// Call a function through FaDO's ingress.
    Invoke(invoke::InvokeArgs),
    /// Health, replication lag and under-replicated buckets at a glance.
    Status,
    /// Print a shell completion script (e.g. `fado completions bash > /etc/bash_completion.d/fado`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What every subcommand works with.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
    /// Where the token came from (named when the API refuses it).
    token: Token,
    api_from: Origin,
}

pub fn run(command: Command, args: &ApiArgs) -> Result<()> {
    if let Command::Completions { shell } = command {
        let mut cmd = <crate::Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "fado", &mut std::io::stdout());
        return Ok(());
    }
    let ctx = connect(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        match command {
            Command::Cluster(c) => cluster::run(&ctx, c).await,
            Command::Faas(c) => faas::run(&ctx, c).await,
            Command::Storage(c) => storage::run(&ctx, c).await,
            Command::Bucket(c) => bucket::run(&ctx, c).await,
            Command::Object(c) => object::run(&ctx, c).await,
            Command::Route(c) => route::run(&ctx, c).await,
            Command::Settings(c) => settings::run(&ctx, c).await,
            Command::Job(c) => job::run(&ctx, c).await,
            Command::Invoke(a) => invoke::run(&ctx, a).await,
            Command::Status => status::run(&ctx).await,
            Command::Completions { .. } => unreachable!("handled above"),
        }
    });
    result.map_err(|e| ctx.explain(e))
}

/// Resolves the API URL and token from flags, environment and config file.
fn connect(args: &ApiArgs) -> Result<Ctx> {
    let env = |name: &str| std::env::var(name).ok();
    let (config_path, explicit) = match &args.config {
        Some(p) => (Some(p.clone()), true),
        None => (
            env("HOME").map(|h| PathBuf::from(h).join(".config/fado/config.toml")),
            false,
        ),
    };
    let config = match config_path {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file = ConfigFile::parse(&text)
                    .with_context(|| format!("config file {}", path.display()))?;
                Some((path, file))
            }
            // Only a config file named on the command line must exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
            Err(e) => {
                return Err(e).with_context(|| format!("reading config file {}", path.display()));
            }
        },
        None => None,
    };
    let resolved = config::resolve(Sources {
        api_flag: args.api.clone(),
        api_env: env("FADO_API"),
        token_flag: args.token.clone(),
        token_file_flag: args.token_file.clone(),
        token_env: env("FADO_TOKEN"),
        config,
    });
    let token = match &resolved.token {
        Token::Value { value, .. } => Some(value.clone()),
        Token::File { path, from } => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading the token file {} (named by {from})",
                    path.display()
                )
            })?;
            Some(config::token_from_file(&text).ok_or_else(|| {
                anyhow!(
                    "the token file {} (named by {from}) is empty",
                    path.display()
                )
            })?)
        }
        Token::None => None,
    };
    let client = Client::new(&resolved.api, token)
        .with_context(|| format!("the API URL from {}", resolved.api_from))?;
    Ok(Ctx {
        client,
        json: args.json,
        token: resolved.token,
        api_from: resolved.api_from,
    })
}

impl Ctx {
    /// Adds what to check to errors whose cause is on the caller's side.
    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        match client_error(&e) {
            Some(fado_client::Error::Api(a)) if a.status == 401 => {
                anyhow!("{e:#}\ncheck the admin token: {}", self.token.describe())
            }
            Some(fado_client::Error::Connect { .. }) => anyhow!(
                "{e:#}\nis FaDO running there? The API URL came from {} (--api, $FADO_API or `api` in the config file)",
                self.api_from
            ),
            _ => e,
        }
    }
}

/// A failed call and what it was about: `bucket "x": does not exist (404 not_found)`.
#[derive(Debug)]
pub struct Failed {
    subject: String,
    error: fado_client::Error,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.error.to_string();
        // The API often names the subject itself ("bucket \"x\" does not
        // exist"); say it once.
        match text.strip_prefix(&self.subject) {
            Some(rest) if rest.starts_with(' ') => write!(f, "{}:{rest}", self.subject),
            _ => write!(f, "{}: {text}", self.subject),
        }
    }
}

impl std::error::Error for Failed {}

/// Names the subject of a failed call.
pub fn about<T>(r: fado_client::Result<T>, subject: impl std::fmt::Display) -> Result<T> {
    r.map_err(|error| {
        anyhow::Error::new(Failed {
            subject: subject.to_string(),
            error,
        })
    })
}

fn client_error(e: &anyhow::Error) -> Option<&fado_client::Error> {
    e.chain().find_map(|c| {
        c.downcast_ref::<Failed>()
            .map(|f| &f.error)
            .or_else(|| c.downcast_ref::<fado_client::Error>())
    })
}

/// `name "x"` the way the API names things in its messages.
pub fn named(noun: &str, id_or_name: &str) -> String {
    if !id_or_name.is_empty() && id_or_name.bytes().all(|b| b.is_ascii_digit()) {
        format!("{noun} {id_or_name}")
    } else {
        format!("{noun} {id_or_name:?}")
    }
}
