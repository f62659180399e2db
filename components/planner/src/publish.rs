//! Publishing the route table to Redis, where routers read it through the
//! key-value store `fado_routes` (keys in `fado_model::route_keys`):
//!
//! - `fado:route:<bucket>`: the bucket's route as JSON `{"generation", "route"}`,
//!   and `fado:route:*`, the route over every deployment;
//! - `fado:routes:meta`: the settings every route shares;
//! - `fado:routes:version`, `fado:routes:index`: the published version and
//!   the bucket names that have a key (the planner's bookkeeping).
//!
//! A route is written only when it changed: every key a `fado` process
//! has read is tracked by Redis, and each write sends it an invalidation,
//! so rewriting unchanged routes would empty every router's cache. A route
//! is also not replaced by one planned from an older catalog generation
//! (a route override the catalog published as it committed), and a table
//! older than the one Redis holds is not published at all, unless forced:
//! Postgres is the source of truth, so when Redis holds a version Postgres
//! never made (a restored database), the planner replaces it.

use anyhow::{Context, Result, anyhow};
use fado_model::route_keys::{ANY, INDEX, META, ROUTE_PREFIX, VERSION};
use fado_model::{BucketRoute, PublishedRoute, RouteMeta, RouteTable};
use fado_store::Db;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

const REPLICATOR_CHANNEL: &str = fado_model::channels::REPLICATOR;
/// Routes per script call.
const CHUNK: usize = 500;

/// Refuses a table older than the published one (unless forced); used by
/// both scripts. KEYS[1] version; ARGV[1] version, ARGV[2] 'force' or ''.
const CHECK: &str = r#"
local function stale()
  local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
  return current > tonumber(ARGV[1]) and ARGV[2] ~= 'force'
end
"#;

/// Writes a chunk of routes. KEYS[1] version, KEYS[2] staging index;
/// ARGV[1] version, ARGV[2] force, ARGV[3] generation, ARGV[4] key
/// prefix, then bucket name / route JSON pairs. A route is written when
/// its content changed, unless the key holds one of a newer generation
/// (not forced). Returns the number written, -1 for a stale table.
const PUT: &str = r#"
if stale() then return -1 end
local generation = tonumber(ARGV[3])
local pattern = '^{"generation":(%-?%d+),(.*)$'
local written = 0
for i = 5, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  local key = ARGV[4] .. name
  local held = redis.call('GET', key)
  local write = true
  if held then
    local held_generation, held_body = string.match(held, pattern)
    local _, body = string.match(value, pattern)
    if held_body == body then
      write = false
    elseif ARGV[2] ~= 'force' and held_generation and tonumber(held_generation) > generation then
      write = false
    end
  end
  if write then
    redis.call('SET', key, value)
    written = written + 1
  end
  redis.call('SADD', KEYS[2], name)
end
return written
"#;

/// Ends a publish. KEYS[1] version, KEYS[2] staging index, KEYS[3] index,
/// KEYS[4] meta; ARGV[1] version, ARGV[2] force, ARGV[3] key prefix,
/// ARGV[4] meta JSON. Deletes the routes of buckets no longer in the
/// table, swaps the index, writes the settings if they changed. Returns
/// the number of routes deleted, -1 for a stale table.
const FINISH: &str = r#"
if stale() then
  redis.call('DEL', KEYS[2])
  return -1
end
local gone = redis.call('SDIFF', KEYS[3], KEYS[2])
for _, name in ipairs(gone) do
  redis.call('DEL', ARGV[3] .. name)
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RENAME', KEYS[2], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
if redis.call('GET', KEYS[4]) ~= ARGV[4] then
  redis.call('SET', KEYS[4], ARGV[4])
end
redis.call('HSET', KEYS[1], 'version', ARGV[1])
return #gone
"#;

/// Brings express routes in line with the table planned from a
/// generation. ARGV[1] generation, ARGV[2] key prefix, then bucket name /
/// route JSON pairs (empty JSON: the table has no such bucket). A route of
/// a newer generation is left; every other is rewritten if it differs (or
/// deleted). Returns the number of keys changed.
const RECONCILE: &str = r#"
local generation = tonumber(ARGV[1])
local pattern = '^{"generation":(%-?%d+),(.*)$'
local changed = 0
for i = 3, #ARGV, 2 do
  local name, value = ARGV[i], ARGV[i + 1]
  local key = ARGV[2] .. name
  local held = redis.call('GET', key)
  local held_generation, held_body = nil, nil
  if held then held_generation, held_body = string.match(held, pattern) end
  if not (held_generation and tonumber(held_generation) > generation) then
    if value == '' then
      if held then
        redis.call('DEL', key)
        changed = changed + 1
      end
    else
      local _, body = string.match(value, pattern)
      if held_body ~= body then
        redis.call('SET', key, value)
        changed = changed + 1
      end
    end
  end
end
return changed
"#;

fn bin(s: impl Into<Vec<u8>>) -> RedisParameter {
    RedisParameter::Binary(s.into())
}

fn redis_err(e: spin_sdk::redis::Error) -> anyhow::Error {
    anyhow!("Redis: {e:?}")
}

fn reply_int(reply: &[RedisResult]) -> i64 {
    match reply.first() {
        Some(RedisResult::Int64(n)) => *n,
        _ => 0,
    }
}

/// Publishes `table`, planned from catalog `generation`.
pub fn publish(address: &str, table: &RouteTable, generation: i64) -> Result<()> {
    write_table(address, table, generation, false)
}

/// What a publish changed, for the log.
struct Written {
    routes: i64,
    deleted: i64,
}

fn write_table(address: &str, table: &RouteTable, generation: i64, force: bool) -> Result<()> {
    let conn = Connection::open(address).map_err(redis_err)?;
    let staging = format!("{INDEX}:staging:{}", table.version);
    conn.execute("DEL", &[bin(staging.clone())])
        .map_err(redis_err)?;
    let any = BucketRoute {
        bucket: ANY.to_string(),
        policy: table.default_policy,
        overridden: false,
        targets: table.any.clone(),
    };
    let routes: Vec<&BucketRoute> = table.routes.iter().chain(std::iter::once(&any)).collect();
    let head = |script: &str, keys: &[&str]| {
        let mut args = vec![
            bin(format!("{CHECK}{script}")),
            RedisParameter::Int64(keys.len() as i64),
        ];
        args.extend(keys.iter().map(|k| bin(*k)));
        args.push(bin(table.version.to_string()));
        args.push(bin(if force { "force" } else { "" }));
        args
    };
    let mut written = Written {
        routes: 0,
        deleted: 0,
    };
    for chunk in routes.chunks(CHUNK) {
        let mut args = head(PUT, &[VERSION, &staging]);
        args.push(bin(generation.to_string()));
        args.push(bin(ROUTE_PREFIX));
        for r in chunk {
            let value = PublishedRoute {
                generation,
                route: (*r).clone(),
            };
            args.push(bin(r.bucket.clone()));
            args.push(bin(serde_json::to_vec(&value).context("encoding a route")?));
        }
        let n = reply_int(&conn.execute("EVAL", &args).map_err(redis_err)?);
        if n < 0 {
            // A newer table is published; this one is not needed.
            conn.execute("DEL", &[bin(staging.clone())])
                .map_err(redis_err)?;
            return Ok(());
        }
        written.routes += n;
    }
    let meta = RouteMeta {
        match_header: table.match_header.clone(),
        missing_header: table.missing_header,
        default_policy: table.default_policy,
    };
    let mut args = head(FINISH, &[VERSION, &staging, INDEX, META]);
    args.push(bin(ROUTE_PREFIX));
    args.push(bin(
        serde_json::to_vec(&meta).context("encoding the route settings")?
    ));
    written.deleted = reply_int(&conn.execute("EVAL", &args).map_err(redis_err)?);
    if written.routes > 0 || written.deleted > 0 || force {
        eprintln!(
            "planner: route table version {} published: {} of {} routes written, {} removed",
            table.version,
            written.routes,
            routes.len(),
            written.deleted.max(0)
        );
    }
    Ok(())
}

/// The version Redis holds, if it holds one.
fn published_version(address: &str) -> Result<Option<i64>> {
    let conn = Connection::open(address).map_err(redis_err)?;
    let reply = conn
        .execute("HGET", &[bin(VERSION), bin("version")])
        .map_err(redis_err)?;
    Ok(match reply.first() {
        Some(RedisResult::Binary(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()),
        _ => None,
    })
}

/// Republishes the newest stored table when Redis does not hold it (a
/// restart, a failed publish, a restored database): the route table is
/// derived state, rebuilt from Postgres. The newest stored table stands for
/// every change up to `generation` (the planned generation: later rounds
/// found it unchanged). Callers hold the planner lock.
pub fn ensure_published(db: &Db, address: &str, version: i64, generation: i64) -> Result<()> {
    if version == 0 {
        return Ok(());
    }
    let force = match published_version(address) {
        Ok(Some(v)) if v == version => return Ok(()),
        Ok(Some(v)) if v > version => {
            eprintln!(
                "planner: Redis holds route table version {v}, which this database never made \
                 (its newest is {version}); replacing it"
            );
            true
        }
        Ok(held) => {
            eprintln!(
                "planner: Redis holds route table version {}, not {version}; republishing it",
                held.map_or("none".to_string(), |v| v.to_string())
            );
            false
        }
        Err(e) => {
            eprintln!("planner: cannot read the published route version: {e:#}");
            return Ok(());
        }
    };
    match fado_store::routes::newest_table(db)? {
        Some(table) => write_table(address, &table, generation, force),
        None => Ok(()),
    }
}

/// Brings the routes the catalog published as overrides committed (noted
/// in `express_routes`) in line with the table planned from `generation`
/// (`table`, or the newest stored one), then drops the notes up to it: a
/// later change (say, the override's removal) may leave the table as it
/// was before the override, and then nothing else would rewrite the
/// bucket's key.
pub fn reconcile_express(
    db: &Db,
    address: &str,
    table: Option<&RouteTable>,
    generation: i64,
) -> Result<()> {
    let names = fado_store::routes::express_notes(db, generation)?;
    if names.is_empty() {
        return Ok(());
    }
    let stored;
    let routes: Vec<&BucketRoute> = match table {
        Some(t) => t
            .routes
            .iter()
            .filter(|r| names.contains(&r.bucket))
            .collect(),
        None => {
            stored = fado_store::routes::newest(db, &names)?
                .map(|s| s.routes)
                .unwrap_or_default();
            stored.iter().collect()
        }
    };
    let conn = Connection::open(address).map_err(redis_err)?;
    for chunk in names.chunks(CHUNK) {
        let mut args = vec![
            bin(RECONCILE),
            RedisParameter::Int64(0),
            bin(generation.to_string()),
            bin(ROUTE_PREFIX),
        ];
        for name in chunk {
            args.push(bin(name.clone()));
            match routes.iter().find(|r| &r.bucket == name) {
                Some(r) => args.push(bin(serde_json::to_vec(&PublishedRoute {
                    generation,
                    route: (*r).clone(),
                })
                .context("encoding a route")?)),
                None => args.push(bin("")),
            }
        }
        conn.execute("EVAL", &args).map_err(redis_err)?;
    }
    fado_store::routes::drop_express_notes(db, generation)?;
    Ok(())
}

/// Best effort: the replicator also has a sweep.
pub fn wake_replicator(address: &str) {
    if let Err(e) =
        Connection::open(address).and_then(|c| c.publish(REPLICATOR_CHANNEL, b"planned".as_ref()))
    {
        eprintln!("planner: could not wake the replicator: {e:?}");
    }
}
