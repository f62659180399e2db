//! `fado db migrate` and `fado db status`: the catalog schema for operators.
//! The catalog component applies the same migrations itself before serving
//! (see the `fado-migrations` crate for the shared protocol); this command
//! lets an operator do it ahead of a rollout, or check what a database has.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct DbArgs {
    /// PostgreSQL connection string (URL or key=value form).
    #[arg(
        long,
        env = "FADO_DATABASE_URL",
        default_value = "host=127.0.0.1 port=5432 user=fado password=fado dbname=fado"
    )]
    database_url: String,

    #[command(subcommand)]
    command: DbCommand,
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Apply pending migrations (safe to run concurrently and repeatedly).
    Migrate,
    /// Show the schema version of the database and of this build.
    Status,
}

pub fn run(args: DbArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // The same TLS as the host's Postgres pools (sslmode in the URL decides).
        let tls = fado_runtime::capabilities::postgres::tls_connector();
        let (mut client, conn) = tokio_postgres::connect(&args.database_url, tls)
            .await
            .with_context(|| {
                format!("connecting to PostgreSQL at {}", redact(&args.database_url))
            })?;
        let driver = tokio::spawn(conn);
        let result = match args.command {
            DbCommand::Migrate => migrate(&mut client).await,
            DbCommand::Status => status(&client).await,
        };
        drop(client);
        let _ = driver.await;
        result
    })
}

async fn applied(client: &tokio_postgres::Client) -> Result<Vec<fado_migrations::Applied>> {
    client
        .batch_execute(fado_migrations::BOOKKEEPING_SQL)
        .await
        .context("creating the migrations table")?;
    let rows = client
        .query(fado_migrations::APPLIED_SQL, &[])
        .await
        .context("reading applied migrations")?;
    Ok(rows
        .iter()
        .map(|r| fado_migrations::Applied {
            version: r.get(0),
            checksum: r.get(1),
        })
        .collect())
}

async fn migrate(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&fado_migrations::LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let result = async {
        let pending = fado_migrations::pending(&applied(client).await?)?;
        if pending.is_empty() {
            println!("schema is up to date (version {})", fado_migrations::LATEST);
            return Ok(());
        }
        for m in pending {
            let tx = client.transaction().await?;
            tx.batch_execute(m.sql)
                .await
                .with_context(|| format!("applying migration {} ({})", m.version, m.name))?;
            tx.batch_execute(&fado_migrations::record_sql(m)).await?;
            tx.commit().await?;
            println!("applied migration {} ({})", m.version, m.name);
        }
        Ok(())
    }
    .await;
    let _ = client
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&fado_migrations::LOCK_KEY],
        )
        .await;
    result
}

async fn status(client: &tokio_postgres::Client) -> Result<()> {
    let applied = applied(client).await?;
    let current = applied.iter().map(|a| a.version).max().unwrap_or(0);
    println!("database schema version: {current}");
    println!("this build's version:    {}", fado_migrations::LATEST);
    match fado_migrations::pending(&applied) {
        Ok(p) if p.is_empty() => println!("up to date"),
        Ok(p) => println!(
            "pending: {}",
            p.iter()
                .map(|m| format!("{} ({})", m.version, m.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => bail!(e),
    }
    Ok(())
}

/// Hides a password in a connection string for messages.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
    {
        let user = creds.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://fado:pw@db:5432/fado"),
            "postgres://fado:***@db:5432/fado"
        );
        assert_eq!(
            redact("host=db password=pw user=fado"),
            "host=db password=*** user=fado"
        );
    }
}
