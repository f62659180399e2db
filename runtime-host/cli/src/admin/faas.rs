//! `fado faas ls|show|add|update|rm`: FaaS deployments.

use anyhow::Result;
use clap::{Args, Subcommand};
use fado_model::{FaasDeployment, FaasInput, Ref};

use super::output::{self, fields, list, opt, opt_time, time};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List FaaS deployments.
    #[command(visible_alias = "list")]
    Ls {
        /// Only deployments of this cluster (name or id).
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Show one FaaS deployment (by name or id).
    #[command(visible_alias = "get")]
    Show { faas: String },
    /// Register a FaaS deployment.
    #[command(visible_alias = "create")]
    Add {
        name: String,
        /// The cluster it runs in (name or id).
        #[arg(long)]
        cluster: String,
        /// openfaas, spin, knative, lambda or other.
        #[arg(long)]
        platform: String,
        /// Base URL of the platform's gateway (http or https).
        #[arg(long = "url")]
        base_url: String,
        #[command(flatten)]
        more: Optional,
    },
    /// Change a FaaS deployment.
    #[command(visible_alias = "set")]
    Update {
        faas: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long = "url")]
        base_url: Option<String>,
        #[command(flatten)]
        more: Optional,
        /// Remove every label.
        #[arg(long, conflicts_with = "labels")]
        no_labels: bool,
    },
    /// Remove a FaaS deployment.
    #[command(visible_aliases = ["remove", "delete"])]
    Rm { faas: String },
}

#[derive(Args, Debug)]
pub struct Optional {
    /// Invocation path below the base URL, with `{function}` (default: the platform's usual one).
    #[arg(long)]
    path_template: Option<String>,
    /// Labels (repeat or separate with commas).
    #[arg(long = "label", value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// How long an invocation may take, in milliseconds.
    #[arg(long)]
    timeout_ms: Option<i64>,
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls { cluster } => {
            let filters: Vec<(&str, String)> =
                cluster.into_iter().map(|z| ("cluster", z)).collect();
            let items: Vec<FaasDeployment> =
                about(c.list(&filters).await, "listing FaaS deployments")?;
            if ctx.json {
                return output::json(&items);
            }
            let mut t = output::table(&[
                "NAME", "ID", "CLUSTER", "PLATFORM", "URL", "HEALTH", "LABELS",
            ]);
            for i in &items {
                t.add_row(vec![
                    i.name.clone(),
                    i.id.to_string(),
                    i.cluster.clone(),
                    i.platform.to_string(),
                    i.base_url.clone(),
                    i.health.to_string(),
                    list(&i.labels),
                ]);
            }
            output::print(&t);
        }
        Cmd::Show { faas } => {
            let item = about(c.get(&faas).await, named("FaaS deployment", &faas))?;
            show(ctx, &item)?;
        }
        Cmd::Add {
            name,
            cluster,
            platform,
            base_url,
            more,
        } => {
            let input = FaasInput {
                name: Some(name.clone()),
                cluster: Some(Ref::from_segment(&cluster)),
                platform: Some(platform),
                base_url: Some(base_url),
                path_template: more.path_template,
                labels: more.labels,
                timeout_ms: more.timeout_ms,
            };
            let item = about(
                c.create::<FaasDeployment>(&input, &[]).await,
                named("FaaS deployment", &name),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Update {
            faas,
            name,
            cluster,
            platform,
            base_url,
            more,
            no_labels,
        } => {
            let input = FaasInput {
                name,
                cluster: cluster.as_deref().map(Ref::from_segment),
                platform,
                base_url,
                path_template: more.path_template,
                labels: if no_labels {
                    Some(Vec::new())
                } else {
                    more.labels
                },
                timeout_ms: more.timeout_ms,
            };
            let item = about(
                c.update::<FaasDeployment>(&faas, &input, &[]).await,
                named("FaaS deployment", &faas),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Rm { faas } => {
            about(
                c.delete::<FaasDeployment>(&faas, &[]).await,
                named("FaaS deployment", &faas),
            )?;
            if !ctx.json {
                println!("removed {}", named("FaaS deployment", &faas));
            }
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, f: &FaasDeployment) -> Result<()> {
    if ctx.json {
        return output::json(f);
    }
    output::print(&fields(vec![
        ("name", f.name.clone()),
        ("id", f.id.to_string()),
        ("cluster", f.cluster.clone()),
        ("platform", f.platform.to_string()),
        ("url", f.base_url.clone()),
        ("path template", f.path_template.clone()),
        ("labels", list(&f.labels)),
        ("timeout", format!("{} ms", f.timeout_ms)),
        ("health", f.health.to_string()),
        ("health detail", opt(&f.health_detail)),
        ("health checked", opt_time(&f.health_checked_at)),
        ("created", time(&f.created_at)),
        ("updated", time(&f.updated_at)),
    ]));
    Ok(())
}
