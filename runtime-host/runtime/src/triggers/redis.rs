//! The Redis trigger: subscribes to each `[[trigger.redis]]` channel and runs
//! every message in a fresh instance of the component's
//! `fermyon:spin/inbound-redis` handler. Unlike Spin, a lost connection (a
//! Redis restart, a network cut) is not fatal: the subscriber reconnects with
//! exponential backoff and says so in the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtime::component::Linker;

use crate::app::App;
use crate::bindings::RedisTriggerPre;
use crate::capabilities::{ComponentIndex, StoreData};
use crate::metrics::InvocationMetrics;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Links the types-only `fermyon:spin/redis-types` interface that Redis
/// handlers import alongside their export.
pub fn add_to_linker(linker: &mut Linker<StoreData>) -> Result<()> {
    linker
        .instance("fermyon:spin/redis-types")
        .map(drop)
        .map_err(anyhow::Error::from)
}

pub struct RedisTrigger {
    app: Arc<App>,
    /// address → channel → components
    subscriptions: BTreeMap<String, BTreeMap<String, Vec<ComponentIndex>>>,
    handlers: HashMap<ComponentIndex, RedisComponent>,
    tracker: TaskTracker,
}

struct RedisComponent {
    pre: RedisTriggerPre<StoreData>,
    metrics: InvocationMetrics,
}

impl RedisTrigger {
    pub fn new(app: Arc<App>, tracker: TaskTracker) -> Result<Option<Arc<Self>>> {
        let manifest = &app.ctx.manifest;
        if manifest.redis_triggers.is_empty() {
            return Ok(None);
        }
        let mut subscriptions: BTreeMap<String, BTreeMap<String, Vec<ComponentIndex>>> =
            BTreeMap::new();
        let mut handlers = HashMap::new();
        for (i, t) in manifest.redis_triggers.iter().enumerate() {
            let address = app.ctx.resolver.render(&t.address).with_context(|| {
                format!(
                    "{}: field `trigger.redis[{i}].address`",
                    manifest.file.display()
                )
            })?;
            let index = app
                .component_index(&t.component)
                .expect("manifest validation guarantees trigger components exist");
            subscriptions
                .entry(address)
                .or_default()
                .entry(t.channel.clone())
                .or_default()
                .push(index);
            if let std::collections::hash_map::Entry::Vacant(slot) = handlers.entry(index) {
                let loaded = app.component(index);
                let pre = RedisTriggerPre::new(loaded.pre.clone()).map_err(|e| {
                    anyhow::anyhow!(
                        "component {:?} is used by a Redis trigger but does not export \
                         fermyon:spin/inbound-redis: {e:#}",
                        loaded.id
                    )
                })?;
                slot.insert(RedisComponent {
                    pre,
                    metrics: InvocationMetrics::new(&loaded.id, "redis"),
                });
            }
        }
        Ok(Some(Arc::new(Self {
            app,
            subscriptions,
            handlers,
            tracker,
        })))
    }

    /// Runs one subscriber per Redis address until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut subscribers = tokio::task::JoinSet::new();
        for (address, channels) in &self.subscriptions {
            let me = self.clone();
            let address = address.clone();
            let channels = channels.clone();
            let shutdown = shutdown.clone();
            subscribers
                .spawn(async move { me.subscribe_forever(&address, &channels, shutdown).await });
        }
        while subscribers.join_next().await.is_some() {}
    }

    async fn subscribe_forever(
        &self,
        address: &str,
        channels: &BTreeMap<String, Vec<ComponentIndex>>,
        shutdown: CancellationToken,
    ) {
        let names: Vec<&String> = channels.keys().collect();
        let shown = redact(address);
        let mut backoff = BACKOFF_START;
        loop {
            match subscribe(address, &names).await {
                Ok(mut messages) => {
                    tracing::info!(address = %shown, channels = ?names, "subscribed to Redis channels");
                    backoff = BACKOFF_START;
                    loop {
                        tokio::select! {
                            msg = messages.next() => match msg {
                                Some(msg) => self.dispatch(channels, msg),
                                None => {
                                    tracing::warn!(address = %shown, "Redis subscription lost; resubscribing");
                                    break;
                                }
                            },
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        address = %shown,
                        retry_in_ms = backoff.as_millis() as u64,
                        "cannot subscribe to Redis: {e}"
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn dispatch(&self, channels: &BTreeMap<String, Vec<ComponentIndex>>, msg: redis::Msg) {
        let channel = msg.get_channel_name().to_string();
        let Some(components) = channels.get(&channel) else {
            return;
        };
        let payload = Arc::new(msg.get_payload_bytes().to_vec());
        for &index in components {
            let Some(handler) = self.handlers.get(&index) else {
                continue;
            };
            let pre = handler.pre.clone();
            let metrics = handler.metrics.clone();
            let app = self.app.clone();
            let payload = payload.clone();
            let channel = channel.clone();
            self.tracker.spawn(async move {
                let id = &app.component(index).id;
                let started = Instant::now();
                metrics.started();
                let result = async {
                    let mut store = app.new_store(index)?;
                    let instance = pre.instantiate_async(&mut store).await?;
                    let outcome = instance
                        .fermyon_spin_inbound_redis()
                        .call_handle_message(&mut store, &payload)
                        .await?;
                    outcome.map_err(|e| anyhow::anyhow!("handler returned {e:?}"))
                }
                .await;
                metrics.finished(started.elapsed(), result.is_ok());
                if let Err(e) = result {
                    tracing::error!(component = %id, %channel, "Redis handler failed: {e:#}");
                }
            });
        }
    }
}

async fn subscribe(
    address: &str,
    channels: &[&String],
) -> redis::RedisResult<redis::aio::PubSubStream> {
    let client = redis::Client::open(address)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connection timed out")))??;
    for c in channels {
        pubsub.subscribe(c.as_str()).await?;
    }
    Ok(pubsub.into_on_message())
}

/// Hides a password in `redis://user:password@host` for logs.
fn redact(address: &str) -> String {
    match url::Url::parse(address) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => address.to_string(),
    }
}
