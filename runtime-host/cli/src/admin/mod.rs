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
    /// Config file with `api` and `token` or `token_file` [default: $XDG_CONFIG_HOME/fado/config.toml, or ~/.config/fado/config.toml].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

/// A resource group's subcommands, with the options that say where the API is.
#[derive(Args, Debug)]
pub struct WithApi<C: Subcommand> {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: C,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Clusters: groups of FaaS and storage deployments, with zones.
    Cluster(WithApi<cluster::Cmd>),
    /// FaaS deployments: where functions run.
    Faas(WithApi<faas::Cmd>),
    /// Storage deployments: S3-compatible services holding buckets.
    Storage(WithApi<storage::Cmd>),
    /// Buckets and their placement policy.
    Bucket(WithApi<bucket::Cmd>),
    /// Objects in buckets: list, upload, download, remove.
    Object(WithApi<object::Cmd>),
    /// The route table and route overrides.
    Route(WithApi<route::Cmd>),
    /// Routing settings.
    Settings(WithApi<settings::Cmd>),
    /// The replication job ledger and dead letters.
    Job(WithApi<job::Cmd>),
    /// Call a function through FaDO's ingress.
    Invoke {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        args: invoke::InvokeArgs,
    },
    /// Health, replication lag and under-replicated buckets at a glance.
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
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

impl Command {
    /// Where the API is, for the subcommands that call it.
    fn api(&self) -> Option<&ApiArgs> {
        Some(match self {
            Command::Cluster(w) => &w.api,
            Command::Faas(w) => &w.api,
            Command::Storage(w) => &w.api,
            Command::Bucket(w) => &w.api,
            Command::Object(w) => &w.api,
            Command::Route(w) => &w.api,
            Command::Settings(w) => &w.api,
            Command::Job(w) => &w.api,
            Command::Invoke { api, .. } | Command::Status { api } => api,
            Command::Completions { .. } => return None,
        })
    }
}

pub fn run(command: Command) -> Result<()> {
    let Some(api) = command.api().cloned() else {
        if let Command::Completions { shell } = command {
            let mut cmd = <crate::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "fado", &mut std::io::stdout());
        }
        return Ok(());
    };
    let ctx = connect(&api)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        match command {
            Command::Cluster(w) => cluster::run(&ctx, w.command).await,
            Command::Faas(w) => faas::run(&ctx, w.command).await,
            Command::Storage(w) => storage::run(&ctx, w.command).await,
            Command::Bucket(w) => bucket::run(&ctx, w.command).await,
            Command::Object(w) => object::run(&ctx, w.command).await,
            Command::Route(w) => route::run(&ctx, w.command).await,
            Command::Settings(w) => settings::run(&ctx, w.command).await,
            Command::Job(w) => job::run(&ctx, w.command).await,
            Command::Invoke { args, .. } => invoke::run(&ctx, args).await,
            Command::Status { .. } => status::run(&ctx).await,
            Command::Completions { .. } => unreachable!("has no API options"),
        }
    });
    result.map_err(|e| ctx.explain(e))
}

/// Resolves the API URL and token from flags, environment and config file.
fn connect(args: &ApiArgs) -> Result<Ctx> {
    let env = |name: &str| std::env::var(name).ok();
    let (config_path, explicit) = match &args.config {
        Some(p) => (Some(p.clone()), true),
        None => (config::default_path(|name: &str| env(name)), false),
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
