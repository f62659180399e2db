//! `fado job ls|show|dead|retry`: the replication job ledger.

use anyhow::Result;
use clap::Subcommand;
use fado_model::Job;

use super::output::{self, bytes, fields, opt, opt_time, time};
use super::{Ctx, about, named};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// List jobs, oldest first.
    #[command(visible_alias = "list")]
    Ls {
        /// queued, running, done or dead.
        #[arg(long)]
        state: Option<String>,
        /// create_bucket, create_replica, sync_replica, copy_object, delete_object, delete_replica or delete_bucket.
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs of this bucket.
        #[arg(long)]
        bucket: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one job.
    #[command(visible_alias = "get")]
    Show { id: String },
    /// Dead letters: jobs that ran out of attempts.
    Dead {
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Requeue dead jobs.
    Retry {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let c = &ctx.client;
    match cmd {
        Cmd::Ls {
            state,
            kind,
            bucket,
            limit,
        } => {
            let mut filters: Vec<(&str, String)> = Vec::new();
            filters.extend(state.map(|s| ("state", s)));
            filters.extend(kind.map(|k| ("kind", k)));
            filters.extend(bucket.map(|b| ("bucket", b)));
            let jobs = about(c.jobs(&filters, Some(limit)).await, "listing jobs")?;
            print_list(ctx, &jobs)
        }
        Cmd::Dead { bucket, limit } => {
            let mut filters: Vec<(&str, String)> = vec![("state", "dead".into())];
            filters.extend(bucket.map(|b| ("bucket", b)));
            let jobs = about(c.jobs(&filters, Some(limit)).await, "listing dead jobs")?;
            print_list(ctx, &jobs)
        }
        Cmd::Show { id } => {
            let job = about(c.job(&id).await, named("job", &id))?;
            show(ctx, &job)
        }
        Cmd::Retry { ids } => {
            let mut retried = Vec::new();
            for id in &ids {
                retried.push(about(c.retry_job(id).await, named("job", id))?);
            }
            if ctx.json {
                return output::json(&retried);
            }
            for j in &retried {
                println!("requeued job {} ({} of {})", j.id, j.kind, j.bucket);
            }
            Ok(())
        }
    }
}

fn print_list(ctx: &Ctx, jobs: &[Job]) -> Result<()> {
    if ctx.json {
        return output::json(jobs);
    }
    let mut t = output::table(&[
        "ID",
        "KIND",
        "BUCKET",
        "STORAGE",
        "KEY",
        "STATE",
        "ATTEMPTS",
        "CREATED",
        "LAST ERROR",
    ]);
    for j in jobs {
        t.add_row(vec![
            j.id.to_string(),
            j.kind.to_string(),
            j.bucket.clone(),
            opt(&j.storage_id),
            opt(&j.object_key),
            j.state.to_string(),
            format!("{}/{}", j.attempts, j.max_attempts),
            time(&j.created_at),
            opt(&j.last_error),
        ]);
    }
    output::print(&t);
    Ok(())
}

fn show(ctx: &Ctx, j: &Job) -> Result<()> {
    if ctx.json {
        return output::json(j);
    }
    output::print(&fields(vec![
        ("id", j.id.to_string()),
        ("kind", j.kind.to_string()),
        ("bucket", j.bucket.clone()),
        ("storage id", opt(&j.storage_id)),
        ("object key", opt(&j.object_key)),
        ("state", j.state.to_string()),
        ("attempts", format!("{} of {}", j.attempts, j.max_attempts)),
        ("run after", time(&j.run_after)),
        ("last error", opt(&j.last_error)),
        (
            "copied",
            match j.object_size {
                Some(n) => format!("{} of {}", bytes(j.bytes_copied), bytes(n)),
                None => bytes(j.bytes_copied),
            },
        ),
        (
            "last attempt",
            j.last_attempt_ms
                .map_or("-".into(), |ms| format!("{ms} ms")),
        ),
        ("created", time(&j.created_at)),
        ("started", opt_time(&j.started_at)),
        ("finished", opt_time(&j.finished_at)),
    ]));
    Ok(())
}
