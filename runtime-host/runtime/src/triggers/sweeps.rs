//! Periodic sweeps: the host publishes a wake-up on a Redis channel at a
//! fixed interval (`[application.tool.fado] sweeps`), so work driven by
//! Redis-triggered components never waits forever on a lost message. Under
//! Spin/SpinKube, where no such timer exists, a Kubernetes CronJob publishes
//! the same message (infra/k8s/sweeps.yaml).

use std::sync::Arc;

use fado_manifest::Sweep;
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Starts one timer per declared sweep; returns when `shutdown` is cancelled.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let mut timers = tokio::task::JoinSet::new();
    for sweep in app.ctx.manifest.sweeps.clone() {
        let address = match app.ctx.resolver.render(&sweep.address) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(sweep = %sweep.name, "sweep disabled: its Redis address does not resolve: {e:#}");
                continue;
            }
        };
        tracing::info!(sweep = %sweep.name, every = ?sweep.every, channel = %sweep.channel, "sweep scheduled");
        timers.spawn(tick(app.clone(), sweep, address, shutdown.clone()));
    }
    while timers.join_next().await.is_some() {}
}

async fn tick(app: Arc<App>, sweep: Sweep, address: String, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(sweep.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let result = async {
            let mut conn = app.ctx.redis_pool.get(&address).await?;
            redis::cmd("PUBLISH")
                .arg(&sweep.channel)
                .arg(&sweep.payload)
                .query_async::<i64>(&mut conn)
                .await
        }
        .await;
        match result {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(sweep = %sweep.name, "sweep publishing again");
            }
            Ok(_) => {}
            // Log the first failure of a streak, not every tick.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(sweep = %sweep.name, channel = %sweep.channel, "sweep could not publish: {e}");
            }
            Err(_) => {}
        }
    }
}
