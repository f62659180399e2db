//! `fermyon:spin/redis@2.0.0`: outbound Redis commands over the process-wide
//! connection pool, limited to the addresses in `allowed_outbound_hosts`.

use std::sync::Arc;

use anyhow::Result;
use fado_manifest::AllowedHosts;
use redis::aio::ConnectionManager;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::redis::{
    self as v2, Error, Payload, RedisParameter, RedisResult,
};
use crate::redis_pool::RedisPool;

/// Open connections one instance may hold at once.
const MAX_CONNECTIONS_PER_INSTANCE: usize = 64;

pub struct OutboundRedis {
    pool: Arc<RedisPool>,
    allowed: Vec<Arc<AllowedHosts>>,
}

pub struct InstanceRedis {
    pool: Arc<RedisPool>,
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's `connection` resource.
pub struct RedisConnection {
    conn: ConnectionManager,
}

impl Capability for OutboundRedis {
    type InstanceState = InstanceRedis;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceRedis,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceRedis>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        Ok(Self {
            pool: app.redis_pool.clone(),
            allowed: app
                .components
                .iter()
                .map(|c| c.allowed_hosts.clone())
                .collect(),
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceRedis> {
        Ok(InstanceRedis {
            pool: self.pool.clone(),
            allowed: self.allowed[component].clone(),
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

fn redis_error(e: redis::RedisError) -> Error {
    if e.kind() == redis::ErrorKind::UnexpectedReturnType || e.code() == Some("WRONGTYPE") {
        Error::TypeError
    } else {
        Error::Other(e.to_string())
    }
}

impl InstanceRedis {
    fn conn(&self, r: &Resource<RedisConnection>) -> Result<ConnectionManager, Error> {
        Ok(self.table.get(r).map_err(other)?.conn.clone())
    }
}

async fn run<T: redis::FromRedisValue>(
    mut conn: ConnectionManager,
    cmd: &redis::Cmd,
) -> Result<T, Error> {
    cmd.query_async(&mut conn).await.map_err(redis_error)
}

impl v2::Host for InstanceRedis {}

impl v2::HostConnection for InstanceRedis {
    async fn open(&mut self, address: String) -> Result<Resource<RedisConnection>, Error> {
        if !self.allowed.allows_url(&address) {
            tracing::info!(%address, "outbound Redis denied: not in allowed_outbound_hosts");
            return Err(Error::InvalidAddress);
        }
        if redis::Client::open(address.as_str()).is_err() {
            return Err(Error::InvalidAddress);
        }
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(Error::TooManyConnections);
        }
        let conn = self.pool.get(&address).await.map_err(other)?;
        let r = self
            .table
            .push(RedisConnection { conn })
            .map_err(|_| Error::TooManyConnections)?;
        self.open += 1;
        Ok(r)
    }

    async fn publish(
        &mut self,
        r: Resource<RedisConnection>,
        channel: String,
        payload: Payload,
    ) -> Result<(), Error> {
        run::<i64>(
            self.conn(&r)?,
            redis::cmd("PUBLISH").arg(channel).arg(payload),
        )
        .await
        .map(drop)
    }

    async fn get(
        &mut self,
        r: Resource<RedisConnection>,
        key: String,
    ) -> Result<Option<Payload>, Error> {
        run(self.conn(&r)?, redis::cmd("GET").arg(key)).await
    }

    async fn set(
        &mut self,
        r: Resource<RedisConnection>,
        key: String,
        value: Payload,
    ) -> Result<(), Error> {
        run::<()>(self.conn(&r)?, redis::cmd("SET").arg(key).arg(value)).await
    }

    async fn incr(&mut self, r: Resource<RedisConnection>, key: String) -> Result<i64, Error> {
        match run(self.conn(&r)?, redis::cmd("INCR").arg(key)).await {
            // The server refuses INCR on a value that is not an integer; the
            // interface calls that a type error.
            Err(Error::Other(msg)) if msg.contains("not an integer") => Err(Error::TypeError),
            other => other,
        }
    }

    async fn del(&mut self, r: Resource<RedisConnection>, keys: Vec<String>) -> Result<u32, Error> {
        run(self.conn(&r)?, redis::cmd("DEL").arg(keys)).await
    }

    async fn sadd(
        &mut self,
        r: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        run(self.conn(&r)?, redis::cmd("SADD").arg(key).arg(values)).await
    }

    async fn smembers(
        &mut self,
        r: Resource<RedisConnection>,
        key: String,
    ) -> Result<Vec<String>, Error> {
        run(self.conn(&r)?, redis::cmd("SMEMBERS").arg(key)).await
    }

    async fn srem(
        &mut self,
        r: Resource<RedisConnection>,
        key: String,
        values: Vec<String>,
    ) -> Result<u32, Error> {
        run(self.conn(&r)?, redis::cmd("SREM").arg(key).arg(values)).await
    }

    async fn execute(
        &mut self,
        r: Resource<RedisConnection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> Result<Vec<RedisResult>, Error> {
        let mut cmd = redis::cmd(&command);
        for a in arguments {
            match a {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: redis::Value = run(self.conn(&r)?, &cmd).await?;
        let mut out = Vec::new();
        flatten(value, &mut out)?;
        Ok(out)
    }

    async fn drop(&mut self, r: Resource<RedisConnection>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open -= 1;
        Ok(())
    }
}

/// Spin returns replies as a flat list; nested aggregates are flattened.
fn flatten(value: redis::Value, out: &mut Vec<RedisResult>) -> Result<(), Error> {
    use redis::Value as V;
    match value {
        V::Nil => out.push(RedisResult::Nil),
        V::Int(i) => out.push(RedisResult::Int64(i)),
        V::BulkString(b) => out.push(RedisResult::Binary(b)),
        V::SimpleString(s) => out.push(RedisResult::Status(s)),
        V::Okay => out.push(RedisResult::Status("OK".into())),
        V::Boolean(b) => out.push(RedisResult::Int64(b as i64)),
        V::Double(d) => out.push(RedisResult::Binary(d.to_string().into_bytes())),
        V::BigNumber(n) => out.push(RedisResult::Binary(n)),
        V::VerbatimString { text, .. } => out.push(RedisResult::Binary(text.into_bytes())),
        V::Array(items) | V::Set(items) => {
            for v in items {
                flatten(v, out)?;
            }
        }
        V::Map(pairs) => {
            for (k, v) in pairs {
                flatten(k, out)?;
                flatten(v, out)?;
            }
        }
        V::Attribute { data, .. } => flatten(*data, out)?,
        V::Push { data, .. } => {
            for v in data {
                flatten(v, out)?;
            }
        }
        V::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
        other => return Err(Error::Other(format!("unsupported reply {other:?}"))),
    }
    Ok(())
}
