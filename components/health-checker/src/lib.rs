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
use fado_model::Health;
use fado_s3::Endpoint;
use fado_store::Db;
use fado_store::health::{self, Checked, Kind};
use spin_sdk::redis_component;
use spin_sdk::variables;

/// Consecutive failed probes that make storage unhealthy.
const FAILURES_TO_UNHEALTHY: i64 = 2;
/// How long one probe may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    let targets: Vec<(Checked, Result<Endpoint, String>)> = health::storage(db, key)?
        .into_iter()
        .map(|(c, e)| (c, e.map(Endpoint::from).map_err(|e| e.to_string())))
        .collect();
    // Probe concurrently: a dead endpoint costs its timeout once, not once
    // per deployment behind it.
    let outcomes = fado_s3::block_on(futures::future::join_all(targets.iter().map(
        |(_, endpoint)| async move {
            match endpoint {
                Ok(e) => fado_s3::probe(e, PROBE_TIMEOUT)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            }
        },
    )));
    let mut changed = Changed::default();
    for ((t, _), outcome) in targets.iter().zip(outcomes) {
        if record(db, Kind::Storage, t, outcome)? {
            changed.any = true;
            changed.recovered |= t.health == Health::Unhealthy;
        }
    }
    Ok(changed)
}

/// Probes every FaaS deployment; returns whether any health changed.
fn check_faas(db: &Db) -> Result<bool> {
    let targets = health::faas(db)?;
    let outcomes = fado_s3::block_on(futures::future::join_all(
        targets.iter().map(|(_, url)| probe_http(url)),
    ));
    let mut changed = false;
    for ((t, _), outcome) in targets.iter().zip(outcomes) {
        changed |= record(db, Kind::Faas, t, outcome)?;
    }
    Ok(changed)
}

/// Records one probe's outcome: two failures in a row make a deployment
/// unhealthy, one success healthy. Returns whether the health changed.
fn record(db: &Db, kind: Kind, seen: &Checked, outcome: Result<(), String>) -> Result<bool> {
    let (now, failures, detail) = match outcome {
        Ok(()) => (Health::Healthy, 0, None),
        Err(e) => {
            let failures = seen.failures + 1;
            let now = if failures >= FAILURES_TO_UNHEALTHY {
                Health::Unhealthy
            } else {
                seen.health
            };
            (now, failures, Some(e))
        }
    };
    health::record(
        db,
        kind,
        seen.id,
        seen.health,
        now,
        failures,
        detail.as_deref(),
    )?;
    let flipped = now != seen.health;
    if flipped {
        let what = match kind {
            Kind::Storage => "storage",
            Kind::Faas => "FaaS deployment",
        };
        eprintln!(
            "health-checker: {what} {} is now {now}{}",
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
