//! `fado storage ls|show|add|update|rm`: storage deployments.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use fado_model::{Ref, StorageDeployment, StorageInput};

use super::output::{self, fields, opt, opt_time, time};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List storage deployments.
    #[command(visible_alias = "list")]
    Ls {
        /// Only deployments of this cluster (name or id).
        #[arg(long)]
        cluster: Option<String>,
    },
    /// Show one storage deployment (by name or id).
    #[command(visible_alias = "get")]
    Show { storage: String },
    /// Register S3-compatible storage (checked with one signed request unless --no-verify).
    #[command(visible_alias = "create")]
    Add {
        name: String,
        /// The cluster it belongs to (name or id).
        #[arg(long)]
        cluster: String,
        /// S3 endpoint URL.
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        access_key: String,
        #[command(flatten)]
        more: Optional,
    },
    /// Change a storage deployment (new endpoints and credentials are checked unless --no-verify).
    #[command(visible_alias = "set")]
    Update {
        storage: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        access_key: Option<String>,
        #[command(flatten)]
        more: Optional,
    },
    /// Remove a storage deployment.
    #[command(visible_aliases = ["remove", "delete"])]
    Rm { storage: String },
}

#[derive(Args, Debug)]
pub struct Optional {
    /// The secret key [env: FADO_SECRET_KEY].
    #[arg(long, conflicts_with = "secret_key_file")]
    secret_key: Option<String>,
    /// Read the secret key from this file.
    #[arg(long)]
    secret_key_file: Option<PathBuf>,
    /// S3 region (found out from the service when left out).
    #[arg(long)]
    region: Option<String>,
    /// Path-style addressing (`true` or `false`).
    #[arg(long)]
    path_style: Option<bool>,
    /// Bearer token the storage's event notifications carry (`""` turns them off).
    #[arg(long)]
    notify_token: Option<String>,
    /// Store without checking the storage answers (for storage not up yet).
    #[arg(long)]
    no_verify: bool,
}

impl Optional {
    fn secret_key(&self) -> Result<Option<String>> {
        if let Some(path) = &self.secret_key_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the secret key file {}", path.display()))?;
            return Ok(Some(text.trim().to_string()));
        }
        Ok(self
            .secret_key
            .clone()
            .or_else(|| std::env::var("FADO_SECRET_KEY").ok()))
    }

    fn query(&self) -> Vec<(&'static str, String)> {
        if self.no_verify {
            vec![("verify", "false".to_string())]
        } else {
            Vec::new()
        }
    }
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls { cluster } => {
            let filters: Vec<(&str, String)> =
                cluster.into_iter().map(|z| ("cluster", z)).collect();
            let items: Vec<StorageDeployment> =
                about(c.list(&filters).await, "listing storage deployments")?;
            if ctx.json {
                return output::json(&items);
            }
            let mut t = output::table(&[
                "NAME", "ID", "CLUSTER", "ENDPOINT", "REGION", "HEALTH", "NOTIFY",
            ]);
            for i in &items {
                t.add_row(vec![
                    i.name.clone(),
                    i.id.to_string(),
                    i.cluster.clone(),
                    i.endpoint.clone(),
                    i.region.clone(),
                    i.health.to_string(),
                    if i.notifications { "on" } else { "off" }.to_string(),
                ]);
            }
            output::print(&t);
        }
        Cmd::Show { storage } => {
            let item = about(c.get(&storage).await, named("storage deployment", &storage))?;
            show(ctx, &item)?;
        }
        Cmd::Add {
            name,
            cluster,
            endpoint,
            access_key,
            more,
        } => {
            let input = StorageInput {
                name: Some(name.clone()),
                cluster: Some(Ref::from_segment(&cluster)),
                endpoint: Some(endpoint),
                region: more.region.clone(),
                path_style: more.path_style,
                access_key: Some(access_key),
                secret_key: more.secret_key()?,
                notify_token: more.notify_token.clone(),
            };
            let item = about(
                c.create::<StorageDeployment>(&input, &more.query()).await,
                named("storage deployment", &name),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Update {
            storage,
            name,
            cluster,
            endpoint,
            access_key,
            more,
        } => {
            let input = StorageInput {
                name,
                cluster: cluster.as_deref().map(Ref::from_segment),
                endpoint,
                region: more.region.clone(),
                path_style: more.path_style,
                access_key,
                secret_key: more.secret_key()?,
                notify_token: more.notify_token.clone(),
            };
            let item = about(
                c.update::<StorageDeployment>(&storage, &input, &more.query())
                    .await,
                named("storage deployment", &storage),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Rm { storage } => {
            about(
                c.delete::<StorageDeployment>(&storage, &[]).await,
                named("storage deployment", &storage),
            )?;
            if !ctx.json {
                println!("removed {}", named("storage deployment", &storage));
            }
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, s: &StorageDeployment) -> Result<()> {
    if ctx.json {
        return output::json(s);
    }
    output::print(&fields(vec![
        ("name", s.name.clone()),
        ("id", s.id.to_string()),
        ("cluster", s.cluster.clone()),
        ("endpoint", s.endpoint.clone()),
        ("region", s.region.clone()),
        ("path style", s.path_style.to_string()),
        ("access key", s.access_key.clone()),
        ("notifications", s.notifications.to_string()),
        ("health", s.health.to_string()),
        ("health detail", opt(&s.health_detail)),
        ("health checked", opt_time(&s.health_checked_at)),
        ("created", time(&s.created_at)),
        ("updated", time(&s.updated_at)),
    ]));
    Ok(())
}
