//! Publishing the route table to Redis, where the router reads it per
//! request:
//!
//! - `fado:routes` — hash: bucket name → JSON of its route (policy, targets),
//!   and `*` → the route over every deployment (requests without the match
//!   header, when `missing_header` is `any`);
//! - `fado:routes:meta` — hash: `version`, `match_header`, `missing_header`,
//!   `default_policy`.
//!
//! A new table is written to a staging key and swapped in by one Lua script
//! (RENAME + meta), so a reader never sees half a table, and an older table
//! never replaces a newer one, unless forced: Postgres is the source of
//! truth, so when Redis holds a version Postgres never made (a restored
//! database), the planner replaces it.

use anyhow::{Context, Result, anyhow};
use fado_model::RouteTable;
use fado_store::Db;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

pub const ROUTES_KEY: &str = "fado:routes";
pub const META_KEY: &str = "fado:routes:meta";
/// The field of the route over every deployment (not a valid bucket name).
pub const ANY_ROUTE: &str = "*";
const REPLICATOR_CHANNEL: &str = "fado.replicator";
/// Fields per HSET when filling the staging key.
const CHUNK: usize = 500;

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
redis.call('HSET', KEYS[3], 'version', ARGV[1], 'match_header', ARGV[2], 'missing_header', ARGV[3], 'default_policy', ARGV[4])
return 1
"#;

fn bin(s: impl Into<Vec<u8>>) -> RedisParameter {
    RedisParameter::Binary(s.into())
}

fn redis_err(e: spin_sdk::redis::Error) -> anyhow::Error {
    anyhow!("Redis: {e:?}")
}

pub fn publish(address: &str, table: &RouteTable) -> Result<()> {
    swap_in(address, table, false)
}

fn swap_in(address: &str, table: &RouteTable, force: bool) -> Result<()> {
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
            bin(SWAP),
            RedisParameter::Int64(3),
            bin(staging),
            bin(ROUTES_KEY),
            bin(META_KEY),
            bin(table.version.to_string()),
            bin(table.match_header.clone()),
            bin(table.missing_header.as_str()),
            bin(table.default_policy.as_str()),
            bin(if force { "force" } else { "" }),
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
/// derived state, rebuilt from Postgres. Callers hold the planner lock.
pub fn ensure_published(db: &Db, address: &str, version: i64) -> Result<()> {
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
    swap_in(address, &table, true)
}

/// Best effort: the replicator also has a sweep.
pub fn wake_replicator(address: &str) {
    if let Err(e) =
        Connection::open(address).and_then(|c| c.publish(REPLICATOR_CHANNEL, b"planned".as_ref()))
    {
        eprintln!("planner: could not wake the replicator: {e:?}");
    }
}
