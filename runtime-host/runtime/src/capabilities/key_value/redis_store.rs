//! A store whose every operation is a Redis command (Spin's `redis` type),
//! over the process's shared connection to that address. Keys are Redis
//! keys as given, so the same data is seen under Spin and under fado.

use std::sync::Arc;

use crate::redis_pool::RedisPool;

use super::{KvError, KvResult, PAGE};

/// KEYS[1] the key; ARGV[1] `1` when the value seen existed, ARGV[2] the
/// value seen, ARGV[3] the new value. Stores it if the key still holds
/// what was seen (a missing key and a missing value match).
const COMPARE_AND_SWAP: &str = r#"
local now = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if now ~= ARGV[2] then return 0 end
elseif now then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"#;

pub struct RedisStore {
    pool: Arc<RedisPool>,
    url: String,
}

impl From<redis::RedisError> for KvError {
    fn from(e: redis::RedisError) -> Self {
        if e.kind() == redis::ErrorKind::UnexpectedReturnType || e.code() == Some("WRONGTYPE") {
            KvError::Backend(format!("Redis: the key holds another type ({e})"))
        } else {
            KvError::Backend(format!("Redis: {e}"))
        }
    }
}

/// The arguments of [`COMPARE_AND_SWAP`] after the key.
fn cas_args(cmd: &mut redis::Cmd, seen: Option<&[u8]>, value: &[u8]) {
    match seen {
        Some(s) => cmd.arg("1").arg(s),
        None => cmd.arg("0").arg(""),
    };
    cmd.arg(value);
}

impl RedisStore {
    pub fn new(pool: Arc<RedisPool>, url: String) -> Self {
        Self { pool, url }
    }

    async fn conn(&self) -> KvResult<redis::aio::ConnectionManager> {
        Ok(self.pool.get(&self.url).await?)
    }

    pub async fn get_many(&self, keys: &[String]) -> KvResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        Ok(redis::cmd("MGET").arg(keys).query_async(&mut c).await?)
    }

    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("MSET");
        for (k, v) in &pairs {
            cmd.arg(k).arg(v);
        }
        Ok(cmd.query_async(&mut c).await?)
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut c = self.conn().await?;
        redis::cmd("DEL")
            .arg(&keys)
            .query_async::<i64>(&mut c)
            .await?;
        Ok(())
    }

    /// A page of keys; the cursor is Redis's SCAN cursor.
    pub async fn list_keys(
        &self,
        cursor: Option<String>,
    ) -> KvResult<(Vec<String>, Option<String>)> {
        scan_page(&mut self.conn().await?, cursor).await
    }

    pub async fn increment(&self, key: String, delta: i64) -> KvResult<i64> {
        let mut c = self.conn().await?;
        Ok(redis::cmd("INCRBY")
            .arg(&key)
            .arg(delta)
            .query_async(&mut c)
            .await?)
    }

    pub async fn compare_and_swap(
        &self,
        key: String,
        seen: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> KvResult<bool> {
        let mut c = self.conn().await?;
        let swapped: i64 = compare_and_swap_cmd(&key, seen.as_deref(), &value)
            .query_async(&mut c)
            .await?;
        Ok(swapped == 1)
    }
}

/// One page of `SCAN` from `cursor` (the store's cursor is Redis's).
pub(super) async fn scan_page(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    cursor: Option<String>,
) -> KvResult<(Vec<String>, Option<String>)> {
    let start: u64 = match cursor.as_deref() {
        None => 0,
        Some(c) => c.parse().map_err(|_| KvError::BadCursor(c.to_string()))?,
    };
    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(start)
        .arg("COUNT")
        .arg(PAGE)
        .query_async(conn)
        .await?;
    Ok((keys, (next != 0).then(|| next.to_string())))
}

/// The command that runs [`COMPARE_AND_SWAP`] on `key`.
pub(super) fn compare_and_swap_cmd(key: &str, seen: Option<&[u8]>, value: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(COMPARE_AND_SWAP).arg(1).arg(key);
    cas_args(&mut cmd, seen, value);
    cmd
}
