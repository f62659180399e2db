//! `fado cluster ls|show|add|update|rm`.

use anyhow::Result;
use clap::Subcommand;
use fado_model::{Cluster, ClusterInput};

use super::output::{self, fields, list, time};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List clusters.
    #[command(visible_alias = "list")]
    Ls {
        /// Only clusters in this zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Show one cluster (by name or id).
    #[command(visible_alias = "get")]
    Show { cluster: String },
    /// Add a cluster.
    #[command(visible_alias = "create")]
    Add {
        name: String,
        /// Zones the cluster is in (repeat or separate with commas).
        #[arg(long = "zone", value_delimiter = ',')]
        zones: Vec<String>,
    },
    /// Change a cluster's name or zones.
    #[command(visible_alias = "set")]
    Update {
        cluster: String,
        #[arg(long)]
        name: Option<String>,
        /// The new zones (replace the old ones).
        #[arg(long = "zone", value_delimiter = ',')]
        zones: Option<Vec<String>>,
        /// Remove every zone.
        #[arg(long, conflicts_with = "zones")]
        no_zones: bool,
    },
    /// Remove a cluster and its deployments.
    #[command(visible_aliases = ["remove", "delete"])]
    Rm { cluster: String },
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls { zone } => {
            let filters: Vec<(&str, String)> = zone.into_iter().map(|z| ("zone", z)).collect();
            let items: Vec<Cluster> = about(c.list(&filters).await, "listing clusters")?;
            if ctx.json {
                return output::json(&items);
            }
            let mut t = output::table(&["NAME", "ID", "ZONES", "CREATED"]);
            for i in &items {
                t.add_row(vec![
                    i.name.clone(),
                    i.id.to_string(),
                    list(&i.zones),
                    time(&i.created_at),
                ]);
            }
            output::print(&t);
        }
        Cmd::Show { cluster } => {
            let item: Cluster = about(c.get(&cluster).await, named("cluster", &cluster))?;
            show(ctx, &item)?;
        }
        Cmd::Add { name, zones } => {
            let input = ClusterInput {
                name: Some(name.clone()),
                zones: Some(zones),
            };
            let item: Cluster = about(c.create(&input, &[]).await, named("cluster", &name))?;
            show(ctx, &item)?;
        }
        Cmd::Update {
            cluster,
            name,
            zones,
            no_zones,
        } => {
            let input = ClusterInput {
                name,
                zones: if no_zones { Some(Vec::new()) } else { zones },
            };
            let item: Cluster = about(
                c.update(&cluster, &input, &[]).await,
                named("cluster", &cluster),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Rm { cluster } => {
            about(
                c.delete::<Cluster>(&cluster, &[]).await,
                named("cluster", &cluster),
            )?;
            if !ctx.json {
                println!("removed {}", named("cluster", &cluster));
            }
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, c: &Cluster) -> Result<()> {
    if ctx.json {
        return output::json(c);
    }
    output::print(&fields(vec![
        ("name", c.name.clone()),
        ("id", c.id.to_string()),
        ("zones", list(&c.zones)),
        ("created", time(&c.created_at)),
        ("updated", time(&c.updated_at)),
    ]));
    Ok(())
}
