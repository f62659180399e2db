//! The health-checker component: probes every storage deployment and every
//! FaaS deployment.
//!
//! Woken on `fado.health` (a periodic sweep, and the catalog after storage
//! changes), it sends each storage deployment one signed `ListBuckets`, all
//! at once, and records the outcome. Two failures in a row make a deployment
//! `unhealthy` (one lost packet should not move data around); one success
//! makes it `healthy` again. A change of health bumps the catalog generation,
//! so the planner places no new replicas on unhealthy storage, and wakes the
//! replicator when storage comes back, because its jobs against unhealthy
//! storage wait instead of spending attempts.
//!
//! A FaaS deployment is probed with a `GET` of its base URL: any HTTP
//! answer means it is up (a platform's root may well be a 404), no answer
//! within the timeout means it is not. The same two-strikes rule applies;
//! the route table carries the health and the router skips `unhealthy`
//! deployments (its own outlier detection reacts faster, on live traffic).

use std::time::Duration;

use anyhow::{Context, Result};
use fado_s3::Endpoint;
use fado_store::{Db, Param};
use spin_sdk::redis_component;
use spin_sdk::variables;

/// Consecutive failed probes that make storage unhealthy.
const FAILURES_TO_UNHEALTHY: i64 = 2;
/// How long one probe may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

struct Target {
    id: i64,
    name: String,
    health: String,
    failures: i64,
    /// `Err` when the stored secret cannot be decrypted.
    endpoint: Result<Endpoint, String>,
}

#[redis_component]
fn on_message(_message: bytes::Bytes) -> Result<()> {
    let var = |n: &str| variables::get(n).with_context(|| format!("variable {n}"));
    let db = Db::open(&var("pg_address")?)?;
    fado_store::ensure_schema(&db)?;
    if !fado_store::try_lock(&db, fado_model::locks::HEALTH)? {
        return Ok(()); // another checker is at it
    }
    let key = var("encryption_key");
    let storage = key.and_then(|k| check_all(&db, &k));
    let faas = check_faas(&db);
    let _ = fado_store::unlock(&db, fado_model::locks::HEALTH);
    let mut changed = storage?;
    changed.any |= faas?;
    if changed.any {
        publish(&var("redis_address")?, fado_model::channels::PLANNER);
    }
    if changed.recovered {
        publish(&var("redis_address")?, fado_model::channels::REPLICATOR);
    }
    Ok(())
}

#[derive(Default)]
struct Changed {
    any: bool,
    recovered: bool,
}

fn check_all(db: &Db, key: &str) -> Result<Changed> {
    let rows = db.query(
        &format!(
            "SELECT id, name, {}, health, health_failures FROM storage_deployments ORDER BY id",
            fado_store::storage::ENDPOINT_COLUMNS.join(", ")
        ),
        &[],
    )?;
    let mut targets = Vec::new();
    for r in rows.iter() {
        targets.push(Target {
            id: r.i64("id")?,
            name: r.str("name")?,
            health: r.str("health")?,
            failures: r.i64("health_failures")?,
            endpoint: fado_store::storage::endpoint_or_secret_error(&r, "", key)?
                .map(Endpoint::from)
                .map_err(|e| e.to_string()),
        });
    }
    // Probe concurrently: a dead endpoint costs its timeout once, not once
    // per deployment behind it.
    let outcomes = fado_s3::block_on(futures::future::join_all(targets.iter().map(
        |t| async move {
            match &t.endpoint {
                Ok(e) => fado_s3::probe(e, PROBE_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            }
        },
    )));
    let mut changed = Changed::default();
    for (t, outcome) in targets.iter().zip(outcomes) {
        let seen = Seen {
            kind: Kind::Storage,
            id: t.id,
            name: &t.name,
            health: &t.health,
            failures: t.failures,
        };
        if record(db, &seen, outcome)? {
            changed.any = true;
            changed.recovered |= t.health == "unhealthy";
        }
    }
    Ok(changed)
}

/// Probes every FaaS deployment; returns whether any health changed.
fn check_faas(db: &Db) -> Result<bool> {
    let rows = db.query(
        "SELECT id, name, base_url, health, health_failures FROM faas_deployments ORDER BY id",
        &[],
    )?;
    let mut targets = Vec::new();
    for r in rows.iter() {
        targets.push((
            r.i64("id")?,
            r.str("name")?,
            r.str("base_url")?,
            r.str("health")?,
            r.i64("health_failures")?,
        ));
    }
    let outcomes = fado_s3::block_on(futures::future::join_all(
        targets.iter().map(|(_, _, url, _, _)| probe_http(url)),
    ));
    let mut changed = false;
    for ((id, name, _, health, failures), outcome) in targets.iter().zip(outcomes) {
        let seen = Seen {
            kind: Kind::Faas,
            id: *id,
            name,
            health,
            failures: *failures,
        };
        changed |= record(db, &seen, outcome)?;
    }
    Ok(changed)
}

#[derive(Clone, Copy)]
enum Kind {
    Storage,
    Faas,
}

/// A deployment as the last checks left it.
struct Seen<'a> {
    kind: Kind,
    id: i64,
    name: &'a str,
    health: &'a str,
    failures: i64,
}

/// Records one probe's outcome: two failures in a row make a deployment
/// unhealthy, one success healthy; a change bumps the catalog generation.
/// Returns whether the health changed.
fn record(db: &Db, seen: &Seen<'_>, outcome: Result<(), String>) -> Result<bool> {
    let (health, failures, detail) = match outcome {
        Ok(()) => ("healthy", 0, None),
        Err(e) => {
            let failures = seen.failures + 1;
            let health = if failures >= FAILURES_TO_UNHEALTHY {
                "unhealthy"
            } else {
                seen.health
            };
            (health, failures, Some(e))
        }
    };
    let flipped = health != seen.health;
    let (table, what) = match seen.kind {
        Kind::Storage => ("storage_deployments", "storage"),
        Kind::Faas => ("faas_deployments", "FaaS deployment"),
    };
    db.transaction(|tx| -> Result<()> {
        tx.execute(
            &format!(
                "UPDATE {table} SET health = $2, health_failures = $3, health_detail = $4,
                     health_checked_at = now()
                 WHERE id = $1"
            ),
            &[
                Param::Int64(seen.id),
                Param::Str(health.into()),
                Param::Int32(failures as i32),
                fado_store::opt_text(detail.as_deref()),
            ],
        )?;
        if flipped {
            tx.bump_generation()?;
        }
        Ok(())
    })?;
    if flipped {
        eprintln!(
            "health-checker: {what} {} is now {health}{}",
            seen.name,
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        );
    }
    Ok(flipped)
}

/// Whether anything answers HTTP at `url` within the probe timeout.
async fn probe_http(url: &str) -> Result<(), String> {
    let request = wstd::http::Request::get(url)
        .body(wstd::http::Body::empty())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut client = wstd::http::Client::new();
    client.set_connect_timeout(PROBE_TIMEOUT);
    client.set_first_byte_timeout(PROBE_TIMEOUT);
    match client.send(request).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{url}: {e:#}")),
    }
}

/// Best effort: the next sweep repeats the work a lost message would do.
fn publish(address: &str, channel: &str) {
    let result = spin_sdk::redis::Connection::open(address)
        .and_then(|c| c.publish(channel, b"health".as_ref()));
    if let Err(e) = result {
        eprintln!("health-checker: could not publish on {channel}: {e:?}");
    }
}
