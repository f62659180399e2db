//! Publishing the route table to Redis, where the router reads it per
//! request:
//!
//! - `fado:routes` — hash: bucket name → JSON of its route (policy, targets),
//!   and `*` → the route over every deployment (requests without the match
//!   header, when `missing_header` is `any`);
//! - `fado:routes:meta` — hash: `version`, `generation`, `match_header`,
//!   `missing_header`, `default_policy`;
//! - `fado:routes:express` — route overrides the catalog published as they
//!   committed (see `fado_model::route_keys`); each round drops those its
//!   table includes (their generation is not above the table's).
//!
//! A new table is written to a staging key and swapped in by one Lua script
//! (RENAME + meta), so a reader never sees half a table, and an older table
//! never replaces a newer one, unless forced: Postgres is the source of
//! truth, so when Redis holds a version Postgres never made (a restored
//! database), the planner replaces it.

use anyhow::{Context, Result, anyhow};
use fado_model::RouteTable;
use fado_model::route_keys::{
    ANY as ANY_ROUTE, EXPRESS as EXPRESS_KEY, META as META_KEY, ROUTES as ROUTES_KEY,
};
use fado_store::Db;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};
const REPLICATOR_CHANNEL: &str = "fado.replicator";
/// Fields per HSET when filling the staging key.
const CHUNK: usize = 500;

/// Records that the published table includes every catalog change up to
/// generation ARGV[1] and drops the express routes it covers (KEYS[1] meta,
/// KEYS[2] express). Shared by SWAP and ADVANCE.
const PRUNE: &str = r#"
local function prune(meta, express, generation)
  if tonumber(redis.call('HGET', meta, 'generation') or '0') < generation then
    redis.call('HSET', meta, 'generation', string.format('%d', generation))
  end
  local held = redis.call('HGETALL', express)
  for i = 1, #held, 2 do
    local g = tonumber(string.match(held[i + 1], '^(%d+)|') or '0')
    if g <= generation then redis.call('HDEL', express, held[i]) end
  end
end
"#;

/// KEYS[1] staging, KEYS[2] routes, KEYS[3] meta, KEYS[4] express;
/// ARGV[1] version, ARGV[2..4] meta fields, ARGV[5] 'force' or '',
/// ARGV[6] the generation the table was planned from.
const SWAP: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[3], 'version') or '0')
if current > tonumber(ARGV[1]) and ARGV[5] ~= 'force' then
  redis.call('DEL', KEYS[1])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
if ARGV[5] == 'force' then
  -- Replacing what this database never made: its express routes too.
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[3], 'generation')
end
redis.call('HSET', KEYS[3], 'version', ARGV[1], 'match_header', ARGV[2], 'missing_header', ARGV[3], 'default_policy', ARGV[4])
prune(KEYS[3], KEYS[4], tonumber(ARGV[6]))
return 1
"#;

/// A round that found the table unchanged: KEYS[1] meta, KEYS[2] express,
/// ARGV[1] version, ARGV[2] generation; only when Redis holds that version.
const ADVANCE: &str = r#"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
prune(KEYS[1], KEYS[2], tonumber(ARGV[2]))
return 1
"#;

fn bin(s: impl Into<Vec<u8>>) -> RedisParameter {
    RedisParameter::Binary(s.into())
}

fn redis_err(e: spin_sdk::redis::Error) -> anyhow::Error {
    anyhow!("Redis: {e:?}")
}

/// Publishes `table`, planned from catalog `generation`.
pub fn publish(address: &str, table: &RouteTable, generation: i64) -> Result<()> {
    swap_in(address, table, generation, false)
}

/// After a round that left the table as it was: the published table now
/// stands for `generation`, so express routes up to it are dropped.
pub fn advance(address: &str, version: i64, generation: i64) -> Result<()> {
    let conn = Connection::open(address).map_err(redis_err)?;
    conn.execute(
        "EVAL",
        &[
            bin(format!("{PRUNE}{ADVANCE}")),
            RedisParameter::Int64(2),
            bin(META_KEY),
            bin(EXPRESS_KEY),
            bin(version.to_string()),
            bin(generation.to_string()),
        ],
    )
    .map_err(redis_err)?;
    Ok(())
}

fn swap_in(address: &str, table: &RouteTable, generation: i64, force: bool) -> Result<()> {
    let conn = Connection::open(address).map_err(redis_err)?;
    let staging = format!("{ROUTES_KEY}:staging:{}", table.version);
    conn.execute("DEL", &[bin(staging.clone())])
        .map_err(redis_err)?;
    for chunk in table.routes.chunks(CHUNK) {
        let mut args = vec![bin(staging.clone())];
        for r in chunk {
            args.push(bin(r.bucket.clone()));
            args.push(bin(serde_json::to_vec(r).context("encoding a route")?));
        }
        conn.execute("HSET", &args).map_err(redis_err)?;
    }
    // Requests without the match header, when the settings allow them.
    let any = fado_model::BucketRoute {
        bucket: ANY_ROUTE.to_string(),
        policy: table.default_policy,
        overridden: false,
        targets: table.any.clone(),
    };
    conn.execute(
        "HSET",
        &[
            bin(staging.clone()),
            bin(ANY_ROUTE),
            bin(serde_json::to_vec(&any).context("encoding the route of any deployment")?),
        ],
    )
    .map_err(redis_err)?;
    conn.execute(
        "EVAL",
        &[
            bin(format!("{PRUNE}{SWAP}")),
            RedisParameter::Int64(4),
            bin(staging),
            bin(ROUTES_KEY),
            bin(META_KEY),
            bin(EXPRESS_KEY),
            bin(table.version.to_string()),
            bin(table.match_header.clone()),
            bin(table.missing_header.as_str()),
            bin(table.default_policy.as_str()),
            bin(if force { "force" } else { "" }),
            bin(generation.to_string()),
        ],
    )
    .map_err(redis_err)?;
    Ok(())
}

/// The version Redis holds, if it holds one.
fn published_version(address: &str) -> Result<Option<i64>> {
    let conn = Connection::open(address).map_err(redis_err)?;
    let reply = conn
        .execute("HGET", &[bin(META_KEY), bin("version")])
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
    match published_version(address) {
        Ok(Some(v)) if v == version => return Ok(()),
        Ok(Some(v)) if v > version => eprintln!(
            "planner: Redis holds route table version {v}, which this database never made \
             (its newest is {version}); replacing it"
        ),
        Ok(held) => eprintln!(
            "planner: Redis holds route table version {}, not {version}; republishing it",
            held.map_or("none".to_string(), |v| v.to_string())
        ),
        Err(e) => {
            eprintln!("planner: cannot read the published route version: {e:#}");
            return Ok(());
        }
    }
    let rows = db.query(
        "SELECT routes FROM route_tables ORDER BY version DESC LIMIT 1",
        &[],
    )?;
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let table: RouteTable =
        serde_json::from_value(row.json("routes")?).context("reading the stored route table")?;
    swap_in(address, &table, generation, true)
}

/// Best effort: the replicator also has a sweep.
pub fn wake_replicator(address: &str) {
    if let Err(e) =
        Connection::open(address).and_then(|c| c.publish(REPLICATOR_CHANNEL, b"planned".as_ref()))
    {
        eprintln!("planner: could not wake the replicator: {e:?}");
    }
}
