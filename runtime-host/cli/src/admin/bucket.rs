//! `fado bucket ls|show|add|update|rm`: buckets and their placement policy.

use anyhow::Result;
use clap::{Args, Subcommand};
use fado_model::{Bucket, BucketInput, Ref};

use super::output::{self, bytes, fields, list, opt, opt_time, time};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List buckets.
    #[command(visible_alias = "list")]
    Ls {
        /// Only buckets whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only buckets with fewer replicas than their target.
        #[arg(long)]
        under_replicated: bool,
    },
    /// Show a bucket, its policy and its replicas (with lag).
    #[command(visible_alias = "get")]
    Show { bucket: String },
    /// Create a bucket.
    #[command(visible_alias = "create")]
    Add {
        name: String,
        /// Storage deployment holding the master copy (name or id).
        #[arg(long)]
        master: String,
        #[command(flatten)]
        policy: Policy,
    },
    /// Change a bucket's policy.
    #[command(visible_alias = "set")]
    Update {
        bucket: String,
        /// Move the master copy to this storage deployment.
        #[arg(long)]
        master: Option<String>,
        #[command(flatten)]
        policy: Policy,
        /// Allow every zone (clears the allowed zones).
        #[arg(long, conflicts_with = "zones")]
        any_zone: bool,
        /// Let the planner choose the replicas again (clears the override).
        #[arg(long, conflicts_with = "replica_override")]
        no_replica_override: bool,
    },
    /// Remove a bucket (refused while it holds objects, unless --force).
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        bucket: String,
        /// Remove it with its objects, on every copy.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct Policy {
    /// Zones copies may live in (repeat or separate with commas; none: anywhere).
    #[arg(long = "zone", value_delimiter = ',')]
    zones: Option<Vec<String>>,
    /// How many replicas besides the master (0-64).
    #[arg(long = "replicas")]
    target_replicas: Option<i64>,
    /// Choose the replicas by hand: storage deployments (names or ids; "" for none).
    #[arg(long, value_delimiter = ',')]
    replica_override: Option<Vec<String>>,
}

impl Policy {
    fn replica_override(&self) -> Option<Option<Vec<Ref>>> {
        self.replica_override.as_ref().map(|v| {
            Some(
                v.iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| Ref::from_segment(s))
                    .collect(),
            )
        })
    }
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls {
            prefix,
            under_replicated,
        } => {
            let mut filters: Vec<(&str, String)> =
                prefix.into_iter().map(|p| ("prefix", p)).collect();
            if under_replicated {
                filters.push(("under_replicated", "true".into()));
            }
            let items: Vec<Bucket> = about(c.list(&filters).await, "listing buckets")?;
            if ctx.json {
                return output::json(&items);
            }
            let mut t = output::table(&[
                "NAME", "ID", "MASTER", "ZONES", "REPLICAS", "READY", "OBJECTS", "SIZE",
            ]);
            for b in &items {
                let ready = b
                    .replicas
                    .iter()
                    .filter(|r| r.state == fado_model::ReplicaState::Ready)
                    .count();
                let replicas = if b.under_replicated {
                    format!("{} (short {})", b.target_replicas, b.replica_shortfall)
                } else {
                    b.target_replicas.to_string()
                };
                t.add_row(vec![
                    b.name.clone(),
                    b.id.to_string(),
                    b.master_storage.clone(),
                    list(&b.allowed_zones),
                    replicas,
                    ready.to_string(),
                    b.object_count.to_string(),
                    bytes(b.total_bytes),
                ]);
            }
            output::print(&t);
        }
        Cmd::Show { bucket } => {
            let item = about(c.get(&bucket).await, named("bucket", &bucket))?;
            show(ctx, &item)?;
        }
        Cmd::Add {
            name,
            master,
            policy,
        } => {
            let input = BucketInput {
                name: Some(name.clone()),
                master_storage: Some(Ref::from_segment(&master)),
                allowed_zones: policy.zones.clone(),
                target_replicas: policy.target_replicas,
                replica_override: policy.replica_override(),
            };
            let item = about(
                c.create::<Bucket>(&input, &[]).await,
                named("bucket", &name),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Update {
            bucket,
            master,
            policy,
            any_zone,
            no_replica_override,
        } => {
            let input = BucketInput {
                name: None,
                master_storage: master.as_deref().map(Ref::from_segment),
                allowed_zones: if any_zone {
                    Some(Vec::new())
                } else {
                    policy.zones.clone()
                },
                target_replicas: policy.target_replicas,
                replica_override: if no_replica_override {
                    Some(None)
                } else {
                    policy.replica_override()
                },
            };
            let item = about(
                c.update::<Bucket>(&bucket, &input, &[]).await,
                named("bucket", &bucket),
            )?;
            show(ctx, &item)?;
        }
        Cmd::Rm { bucket, force } => {
            let query: Vec<(&str, String)> = if force {
                vec![("force", "true".into())]
            } else {
                Vec::new()
            };
            about(
                c.delete::<Bucket>(&bucket, &query).await,
                named("bucket", &bucket),
            )?;
            if !ctx.json {
                println!("removed {}", named("bucket", &bucket));
            }
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, b: &Bucket) -> Result<()> {
    if ctx.json {
        return output::json(b);
    }
    let replica_override = match &b.replica_override {
        Some(ids) => list(&ids.iter().map(i64::to_string).collect::<Vec<_>>()),
        None => "- (the planner chooses)".into(),
    };
    let route_override = match &b.route_override {
        Some(r) => format!(
            "FaaS {} ({})",
            list(&r.faas_ids.iter().map(i64::to_string).collect::<Vec<_>>()),
            r.policy.map_or("default policy".into(), |p| p.to_string())
        ),
        None => "-".into(),
    };
    let replicas = if b.under_replicated {
        format!(
            "{} wanted, {} short (under-replicated)",
            b.target_replicas, b.replica_shortfall
        )
    } else {
        format!("{} wanted", b.target_replicas)
    };
    output::print(&fields(vec![
        ("name", b.name.clone()),
        ("id", b.id.to_string()),
        (
            "master",
            format!("{} (cluster {})", b.master_storage, b.master_cluster),
        ),
        ("allowed zones", list(&b.allowed_zones)),
        ("replicas", replicas),
        ("replica override", replica_override),
        ("route override", route_override),
        (
            "objects",
            format!("{} ({})", b.object_count, bytes(b.total_bytes)),
        ),
        ("plan notes", list(&b.plan_notes)),
        ("created", time(&b.created_at)),
        ("updated", time(&b.updated_at)),
    ]));
    if !b.replicas.is_empty() {
        println!();
        let mut t = output::table(&[
            "STORAGE",
            "CLUSTER",
            "STATE",
            "LAST SYNC",
            "LAG OBJECTS",
            "LAG BYTES",
            "UNSYNCED SINCE",
            "LAST ERROR",
        ]);
        for r in &b.replicas {
            t.add_row(vec![
                r.storage.clone(),
                r.cluster.clone(),
                r.state.to_string(),
                opt_time(&r.last_sync_at),
                r.lag_objects.to_string(),
                bytes(r.lag_bytes),
                opt_time(&r.oldest_unsynced_at),
                opt(&r.last_error),
            ]);
        }
        output::print(&t);
    }
    Ok(())
}
