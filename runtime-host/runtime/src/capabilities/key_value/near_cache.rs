//! A Redis-backed store whose reads are served from process memory
//! (`type = "redis_near_cache"`): a near-cache kept fresh by Redis's
//! server-assisted client-side caching.
//!
//! One RESP3 connection per store has `CLIENT TRACKING ON`: every key read
//! through it is tracked by the server, which pushes an `invalidate`
//! message on the same connection when any client changes the key, this
//! one included. Writes go through the same connection and are read back
//! in the same round trip, so a process reads its own writes at once and
//! others see them within a push's delay.
//!
//! - A read and an invalidation can cross (the value read may already be
//!   stale when it arrives): a miss marks the key as being filled with a
//!   token before it asks Redis, an invalidation (or a flush) removes the
//!   mark, and the reply is kept only if its token is still there. Pushes
//!   arrive in order with replies, so an old value's reply always comes
//!   before the invalidation of the write that replaced it.
//! - Invalidations of this connection's own writes are not turned off
//!   (`NOLOOP`): a read by another request of this process can leave Redis
//!   just before this process's write and come back with the old value; only
//!   the write's own invalidation then clears it.
//! - The tracking connection is pinged every [`HEARTBEAT`]; when it is lost
//!   or stops answering, the cache keeps serving what it holds (stale reads
//!   are counted) while it reconnects, and drops everything once tracking
//!   is on again, since invalidations may have been missed meanwhile.
//! - Memory is bounded (`max_bytes`): past it, arbitrary entries go.
//!
//! redis-rs has an experimental client-side cache of its own; it empties
//! itself when a reconnect starts, so it cannot serve the last known values
//! while Redis is unreachable, which the router needs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use metrics::{Counter, Gauge};
use redis::aio::MultiplexedConnection;
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};

use super::redis_store::{compare_and_swap_cmd, scan_page};
use super::{KvError, KvResult};

/// How often the tracking connection is pinged.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// A ping or command unanswered this long means the connection is gone.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Memory held by default, keys and values counted.
pub const DEFAULT_MAX_BYTES: usize = 32 << 20;
/// Bookkeeping charged per entry on top of its key and value.
const ENTRY_OVERHEAD: usize = 64;

pub struct NearCache {
    shared: Arc<Shared>,
}

struct Shared {
    label: String,
    client: redis::Client,
    entries: Mutex<Entries>,
    /// The tracking connection while it is up.
    conn: Mutex<Option<MultiplexedConnection>>,
    connected: AtomicBool,
    /// Counts tracking connections, so a late push of an old one is known.
    epoch: AtomicU64,
    /// Woken by the push handler when the connection reports it closed.
    lost: Arc<tokio::sync::Notify>,
    max_bytes: usize,
    stats: Stats,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Slot>,
    bytes: usize,
    next_token: u64,
}

enum Slot {
    /// The value (or its absence) Redis last gave for the key.
    Ready(Option<Box<[u8]>>),
    /// A read or write is on its way; its reply is kept only if this token
    /// is still here when it arrives.
    Filling(u64),
}

struct Stats {
    hits: Counter,
    stale_hits: Counter,
    misses: Counter,
    invalidations: Counter,
    flushes: Counter,
    evictions: Counter,
    entries: Gauge,
    bytes: Gauge,
    connected: Gauge,
}

impl Stats {
    fn new(label: &str) -> Self {
        let l = label.to_string();
        Stats {
            hits: metrics::counter!("fado_kv_cache_hits_total", "store" => l.clone()),
            stale_hits: metrics::counter!("fado_kv_cache_stale_hits_total", "store" => l.clone()),
            misses: metrics::counter!("fado_kv_cache_misses_total", "store" => l.clone()),
            invalidations: metrics::counter!("fado_kv_cache_invalidations_total", "store" => l.clone()),
            flushes: metrics::counter!("fado_kv_cache_flushes_total", "store" => l.clone()),
            evictions: metrics::counter!("fado_kv_cache_evictions_total", "store" => l.clone()),
            entries: metrics::gauge!("fado_kv_cache_entries", "store" => l.clone()),
            bytes: metrics::gauge!("fado_kv_cache_bytes", "store" => l.clone()),
            connected: metrics::gauge!("fado_kv_cache_connected", "store" => l),
        }
    }
}

fn cost(key: &str, value: &Option<Box<[u8]>>) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

impl Entries {
    /// Marks `key` as being filled; returns the mark's token.
    fn mark(&mut self, key: &str) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        if let Some(Slot::Ready(old)) = self.map.insert(key.to_string(), Slot::Filling(token)) {
            self.bytes -= cost(key, &old);
        }
        token
    }

    fn remove(&mut self, key: &str) {
        if let Some(Slot::Ready(old)) = self.map.remove(key) {
            self.bytes -= cost(key, &old);
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

/// The runtime every near-cache's connection lives on: a thread of its
/// own, so invalidations are read (and heartbeats answered) at once even
/// while the host's other threads are busy running components.
fn cache_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    static RUNTIME: Mutex<Option<tokio::runtime::Handle>> = Mutex::new(None);
    let mut held = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = held.as_ref() {
        return Ok(h.clone());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("fado-kv-cache".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    *held = Some(handle.clone());
    Ok(handle)
}

impl NearCache {
    /// Starts the store's tracking connection in the background; reads
    /// fail (nothing is cached yet) until it is up.
    pub fn start(label: &str, url: &str, max_bytes: usize) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let info = url
            .into_connection_info()
            .with_context(|| format!("key-value store {label:?}: {url:?} is not a Redis URL"))?;
        // Invalidations arrive as RESP3 pushes on the connection itself.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .with_context(|| format!("key-value store {label:?}"))?;
        let shared = Arc::new(Shared {
            label: label.to_string(),
            client,
            entries: Mutex::default(),
            conn: Mutex::new(None),
            connected: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            lost: Arc::default(),
            max_bytes: if max_bytes == 0 {
                DEFAULT_MAX_BYTES
            } else {
                max_bytes
            },
            stats: Stats::new(label),
        });
        cache_runtime()?.spawn(supervise(Arc::downgrade(&shared), shared.lost.clone()));
        Ok(Self { shared })
    }

    /// Whether the tracking connection is up (reads are fresh).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// Waits until the tracking connection is up, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    pub async fn get(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        let mut out = self
            .get_many(std::slice::from_ref(&key.to_string()))
            .await?;
        Ok(out.pop().flatten())
    }

    pub async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        let s = &self.shared;
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
        // Misses: index into `keys` and the token marking each.
        let mut missing: Vec<(usize, u64)> = Vec::new();
        {
            let mut e = s.lock_entries();
            let connected = s.connected.load(Ordering::Acquire);
            for (i, k) in keys.iter().enumerate() {
                match e.map.get(k.as_str()) {
                    Some(Slot::Ready(v)) => {
                        if connected {
                            s.stats.hits.increment(1);
                        } else {
                            s.stats.stale_hits.increment(1);
                        }
                        out.push(v.as_ref().map(|b| b.to_vec()));
                    }
                    _ => {
                        s.stats.misses.increment(1);
                        if !connected {
                            return Err(KvError::Unreachable(s.label.clone()));
                        }
                        out.push(None);
                        missing.push((i, e.mark(k)));
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut conn = s.conn()?;
        let mut cmd = redis::cmd(if missing.len() == 1 { "GET" } else { "MGET" });
        for (i, _) in &missing {
            cmd.arg(&keys[*i]);
        }
        let reply = if missing.len() == 1 {
            cmd.query_async::<Option<Vec<u8>>>(&mut conn)
                .await
                .map(|one| vec![one])
        } else {
            cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
        };
        let values = match reply {
            Ok(v) => v,
            Err(e) => {
                let mut entries = s.lock_entries();
                for (i, token) in &missing {
                    s.unmark(&mut entries, &keys[*i], *token);
                }
                return Err(e.into());
            }
        };
        let mut entries = s.lock_entries();
        for ((i, token), value) in missing.iter().zip(values) {
            s.fill(&mut entries, &keys[*i], *token, value.as_deref());
            out[*i] = value;
        }
        s.trim(&mut entries);
        Ok(out)
    }

    /// Runs a write of `key` followed by a read of it, in one round trip,
    /// and caches what the read saw. Tracking follows reads only, so the
    /// read is what makes Redis tell this process of later changes.
    async fn write<T>(&self, key: &str, cmd: redis::Cmd) -> KvResult<T>
    where
        T: redis::FromRedisValue,
    {
        let s = &self.shared;
        if !s.connected.load(Ordering::Acquire) {
            return Err(KvError::Unreachable(s.label.clone()));
        }
        let token = s.lock_entries().mark(key);
        let mut conn = s.conn()?;
        let mut pipe = redis::pipe();
        pipe.add_command(cmd).cmd("GET").arg(key);
        let reply = pipe.query_async::<(T, Option<Vec<u8>>)>(&mut conn).await;
        let mut entries = s.lock_entries();
        match reply {
            Ok((v, now)) => {
                s.fill(&mut entries, key, token, now.as_deref());
                s.trim(&mut entries);
                Ok(v)
            }
            Err(e) => {
                s.unmark(&mut entries, key, token);
                Err(e.into())
            }
        }
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> KvResult<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(&value);
        self.write::<()>(&key, cmd).await
    }

    pub async fn delete(&self, key: String) -> KvResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(&key);
        self.write::<i64>(&key, cmd).await.map(drop)
    }

    pub async fn increment(&self, key: String, delta: i64) -> KvResult<i64> {
        let mut cmd = redis::cmd("INCRBY");
        cmd.arg(&key).arg(delta);
        self.write::<i64>(&key, cmd).await
    }

    pub async fn compare_and_swap(
        &self,
        key: String,
        seen: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> KvResult<bool> {
        let cmd = compare_and_swap_cmd(&key, seen.as_deref(), &value);
        let swapped = self.write::<i64>(&key, cmd).await?;
        Ok(swapped == 1)
    }

    /// Reads `key` from Redis itself, bypassing the cache (the value a
    /// compare-and-swap starts from).
    pub async fn read_through(&self, key: &str) -> KvResult<Option<Vec<u8>>> {
        let s = &self.shared;
        if !s.connected.load(Ordering::Acquire) {
            return Err(KvError::Unreachable(s.label.clone()));
        }
        let mut conn = s.conn()?;
        Ok(redis::cmd("GET").arg(key).query_async(&mut conn).await?)
    }

    /// A page of keys, from Redis (listings are not cached).
    pub async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> KvResult<(Vec<String>, Option<String>)> {
        scan_page(&mut self.shared.conn()?, cursor).await
    }

    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        for (k, v) in pairs {
            self.set(k, v).await?;
        }
        Ok(())
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        for k in keys {
            self.delete(k).await?;
        }
        Ok(())
    }
}

impl Shared {
    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conn(&self) -> KvResult<MultiplexedConnection> {
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| KvError::Unreachable(self.label.clone()))
    }

    /// Keeps `value` for `key` if the mark `token` is still there.
    fn fill(&self, e: &mut Entries, key: &str, token: u64, value: Option<&[u8]>) {
        if let Some(slot) = e.map.get_mut(key)
            && matches!(slot, Slot::Filling(t) if *t == token)
        {
            let value: Option<Box<[u8]>> = value.map(Box::from);
            e.bytes += cost(key, &value);
            *slot = Slot::Ready(value);
        }
    }

    /// Drops the mark `token` of a read or write that failed.
    fn unmark(&self, e: &mut Entries, key: &str, token: u64) {
        if matches!(e.map.get(key), Some(Slot::Filling(t)) if *t == token) {
            e.map.remove(key);
        }
    }

    /// Evicts entries until the cache is under 90% of its memory bound.
    fn trim(&self, e: &mut Entries) {
        if e.bytes > self.max_bytes {
            let target = self.max_bytes / 10 * 9;
            let mut victims = Vec::new();
            let mut freed = 0;
            for (k, slot) in &e.map {
                if e.bytes - freed <= target {
                    break;
                }
                if let Slot::Ready(v) = slot {
                    freed += cost(k, v);
                    victims.push(k.clone());
                }
            }
            self.stats.evictions.increment(victims.len() as u64);
            for k in victims {
                e.remove(&k);
            }
        }
        self.stats.entries.set(e.map.len() as f64);
        self.stats.bytes.set(e.bytes as f64);
    }

    fn flush(&self) {
        self.lock_entries().clear();
        self.stats.flushes.increment(1);
        self.stats.entries.set(0.0);
        self.stats.bytes.set(0.0);
    }

    /// A push on tracking connection number `epoch`.
    fn on_push(&self, epoch: u64, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => {
                let mut e = self.lock_entries();
                match info.data.into_iter().next() {
                    Some(Value::Array(keys)) => {
                        self.stats.invalidations.increment(keys.len() as u64);
                        for k in keys {
                            if let Value::BulkString(k) = k {
                                e.remove(&String::from_utf8_lossy(&k));
                            }
                        }
                    }
                    // A nil list: the server flushed its keyspace, or its
                    // tracking table overflowed. Everything may be stale.
                    _ => {
                        e.clear();
                        self.stats.flushes.increment(1);
                    }
                }
            }
            PushKind::Disconnection if epoch == self.epoch.load(Ordering::Acquire) => {
                self.connected.store(false, Ordering::Release);
                self.lost.notify_one();
            }
            _ => {}
        }
    }
}

async fn connect(shared: &Arc<Shared>) -> redis::RedisResult<MultiplexedConnection> {
    let weak = Arc::downgrade(shared);
    let epoch = shared.epoch.fetch_add(1, Ordering::AcqRel) + 1;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_push_sender(move |info: PushInfo| {
            if let Some(s) = weak.upgrade() {
                s.on_push(epoch, info);
            }
            Ok::<(), redis::aio::SendError>(())
        });
    let mut conn = shared
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query_async::<()>(&mut conn)
        .await?;
    Ok(conn)
}

/// Keeps the tracking connection up for as long as the store exists.
async fn supervise(weak: Weak<Shared>, lost: Arc<tokio::sync::Notify>) {
    let mut backoff = Duration::from_millis(20);
    let mut failures = 0u32;
    loop {
        let conn = {
            let Some(shared) = weak.upgrade() else { return };
            match connect(&shared).await {
                Ok(c) => c,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(store = %shared.label, "key-value near-cache cannot reach Redis ({e}); serving cached values, retrying");
                    }
                    drop(shared);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            }
        };
        {
            let Some(shared) = weak.upgrade() else { return };
            if failures > 0 {
                tracing::info!(store = %shared.label, "key-value near-cache reconnected to Redis; cache dropped and refilling");
            }
            // Invalidations may have been missed while there was no tracking.
            *shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
            shared.flush();
            shared.connected.store(true, Ordering::Release);
            shared.stats.connected.set(1.0);
        }
        failures = 0;
        backoff = Duration::from_millis(20);
        let mut ping = conn;
        loop {
            tokio::select! {
                _ = lost.notified() => break,
                _ = tokio::time::sleep(HEARTBEAT) => {
                    if weak.strong_count() == 0 {
                        return;
                    }
                    if redis::cmd("PING").query_async::<()>(&mut ping).await.is_err() {
                        break;
                    }
                }
            }
        }
        let Some(shared) = weak.upgrade() else { return };
        shared.connected.store(false, Ordering::Release);
        shared.stats.connected.set(0.0);
        *shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::warn!(store = %shared.label, "key-value near-cache lost its Redis tracking connection; serving cached values until it is back");
    }
}
