//! `fado route ls|show|set|clear|overrides`: the published route table and
//! route overrides.

use anyhow::Result;
use clap::Subcommand;
use fado_client::RouteTablePage;
use fado_model::{BucketRoute, Ref, RouteOverrideInput};

use super::output::{self, list, opt};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The route table the planner last published.
    #[command(visible_alias = "list")]
    Ls,
    /// One bucket's route.
    #[command(visible_alias = "get")]
    Show { bucket: String },
    /// Override a bucket's route: send its invocations to these FaaS deployments.
    Set {
        bucket: String,
        /// FaaS deployments (names or ids; repeat or separate with commas).
        #[arg(long = "faas", value_delimiter = ',', required = true)]
        faas: Vec<String>,
        /// Selection policy for this bucket (default: the settings' one).
        #[arg(long)]
        policy: Option<String>,
    },
    /// Remove a bucket's route override.
    #[command(visible_aliases = ["unset", "rm"])]
    Clear { bucket: String },
    /// List route overrides.
    Overrides,
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls => {
            let table = about(c.routes(None).await, "reading the route table")?;
            print_table(ctx, &table)?;
        }
        Cmd::Show { bucket } => {
            let table = about(
                c.routes(Some(&bucket)).await,
                named("route of bucket", &bucket),
            )?;
            if table.items.is_empty() {
                // Say whether the bucket is unknown or only not planned yet.
                about(
                    c.get::<fado_model::Bucket>(&bucket).await,
                    named("bucket", &bucket),
                )?;
                anyhow::bail!(
                    "{}: no published route yet (the planner has not planned it)",
                    named("bucket", &bucket)
                );
            }
            print_table(ctx, &table)?;
        }
        Cmd::Set {
            bucket,
            faas,
            policy,
        } => {
            let input = RouteOverrideInput {
                faas: Some(faas.iter().map(|f| Ref::from_segment(f)).collect()),
                policy,
            };
            let o = about(
                c.set_route_override(&bucket, &input).await,
                named("route override of bucket", &bucket),
            )?;
            if ctx.json {
                return output::json(&o);
            }
            println!(
                "bucket {bucket:?} now routes to FaaS {} ({})",
                list(&faas),
                o.policy.map_or("default policy".into(), |p| p.to_string())
            );
        }
        Cmd::Clear { bucket } => {
            about(
                c.clear_route_override(&bucket).await,
                named("route override of bucket", &bucket),
            )?;
            if !ctx.json {
                println!("cleared the route override of bucket {bucket:?}");
            }
        }
        Cmd::Overrides => {
            let items = about(c.route_overrides().await, "listing route overrides")?;
            if ctx.json {
                return output::json(&items);
            }
            let mut t = output::table(&["BUCKET", "FAAS IDS", "POLICY"]);
            for o in &items {
                t.add_row(vec![
                    o.bucket.clone(),
                    list(&o.faas_ids.iter().map(i64::to_string).collect::<Vec<_>>()),
                    opt(&o.policy),
                ]);
            }
            output::print(&t);
        }
    }
    Ok(())
}

fn print_table(ctx: &Ctx, table: &RouteTablePage) -> Result<()> {
    if ctx.json {
        return output::json(table);
    }
    if let Some(s) = &table.settings {
        println!(
            "route table version {} (match header {}, missing header: {}, default policy {})",
            table.version, s.match_header, s.missing_header, s.default_policy
        );
    } else {
        println!("no route table published yet");
    }
    let mut t = output::table(&["BUCKET", "POLICY", "OVERRIDDEN", "TARGETS"]);
    for r in &table.items {
        t.add_row(vec![
            r.bucket.clone(),
            r.policy.to_string(),
            if r.overridden { "yes" } else { "no" }.to_string(),
            targets(r),
        ]);
    }
    output::print(&t);
    Ok(())
}

/// `f1@c1 (healthy), f2@c2 (unhealthy)`.
fn targets(r: &BucketRoute) -> String {
    if r.targets.is_empty() {
        return "-".into();
    }
    r.targets
        .iter()
        .map(|t| format!("{}@{} ({})", t.name, t.cluster, t.health))
        .collect::<Vec<_>>()
        .join(", ")
}
