//! `fermyon:spin/mysql@2.0.0`: parameterised statements over a pooled
//! connection per address (mysql_async), with Spin's mapping of column
//! types. A guest `connection` holds one pooled session for its life; when
//! it returns to the pool the session is reset (COM_RESET_CONNECTION), so an
//! abandoned transaction, lock, temporary table or user variable never
//! reaches the next guest. The reset keeps the default database, and
//! servers differ in which system variables (`autocommit`, `sql_mode`) it
//! restores, so a session whose guest ran `SET`, `USE` or `CALL` is closed
//! instead of pooled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use fado_manifest::AllowedHosts;
use futures::TryStreamExt;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, Row, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::pools::PoolsByAddress;
use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::mysql as v2;
use crate::bindings::fermyon::spin2_0_0::rdbms_types::{
    self, Column, DbDataType, DbValue, Error, ParameterValue, RowSet,
};

/// Sessions kept per address unless the address says otherwise
/// (`pool_min`, `pool_max`); more callers wait up to [`POOL_WAIT`].
const POOL_MIN: usize = 1;
const POOL_MAX: usize = 16;
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Open connections one instance may hold at once.
const MAX_CONNECTIONS_PER_INSTANCE: usize = 16;
/// Most bytes of values one query may buffer in the host (Spin's limit).
const MAX_RESULT_BYTES: usize = 128 << 20;

pub struct OutboundMysql {
    pools: Arc<MysqlPools>,
    allowed: Vec<Arc<AllowedHosts>>,
    /// `[outbound_mysql] max_connections`: connections open at once across
    /// the application.
    connections: Option<Arc<Semaphore>>,
}

#[derive(Default)]
struct MysqlPools {
    by_address: PoolsByAddress<Pool>,
}

pub struct InstanceMysql {
    pools: Arc<MysqlPools>,
    allowed: Arc<AllowedHosts>,
    connections: Option<Arc<Semaphore>>,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's `connection` resource: one pooled session,
/// back to its pool when dropped unless the guest may have changed what a
/// reset keeps.
pub struct MysqlConnection {
    conn: Option<Conn>,
    changed_session: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for MysqlConnection {
    fn drop(&mut self) {
        if !self.changed_session {
            return;
        }
        let (Some(conn), Ok(rt)) = (self.conn.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(async move {
            if let Err(e) = conn.disconnect().await {
                tracing::debug!("closing a MySQL session failed: {e}");
            }
        });
    }
}

/// Whether `statement` may change session state that COM_RESET_CONNECTION
/// may keep (system variables, the default database): its first keyword,
/// past comments, is SET, USE or CALL (a procedure may SET).
fn changes_session(statement: &str) -> bool {
    let mut rest = statement;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else if rest.starts_with("--") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ["SET", "USE", "CALL"]
        .iter()
        .any(|k| word.eq_ignore_ascii_case(k))
}

impl Capability for OutboundMysql {
    type InstanceState = InstanceMysql;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceMysql,
    ) -> Result<()> {
        rdbms_types::add_to_linker::<StoreData, HasSelf<InstanceMysql>>(linker, get)?;
        v2::add_to_linker::<StoreData, HasSelf<InstanceMysql>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        Ok(Self {
            pools: Arc::new(MysqlPools::default()),
            allowed: app
                .components
                .iter()
                .map(|c| c.allowed_hosts.clone())
                .collect(),
            connections: app
                .runtime_config
                .outbound_mysql
                .max_connections
                .map(|n| Arc::new(Semaphore::new(n))),
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceMysql> {
        Ok(InstanceMysql {
            pools: self.pools.clone(),
            allowed: self.allowed[component].clone(),
            connections: self.connections.clone(),
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

impl MysqlPools {
    fn pool(&self, address: &str, opts: Opts) -> Pool {
        let Ok(pool) = self
            .by_address
            .get(address, || Ok::<_, Infallible>(Pool::new(opts)));
        pool
    }
}

/// The connection options for `address`. Like Spin, `ssl-mode`/`sslmode`
/// is taken out before mysql_async reads the rest (it does not know the
/// parameter); this host has no TLS for MySQL, so a mode other than
/// `DISABLED` is refused rather than silently sent in the clear.
fn options(address: &str) -> Result<Opts, Error> {
    let invalid =
        |e: &dyn std::fmt::Display| Error::ConnectionFailed(format!("invalid address: {e}"));
    let mut url = url::Url::parse(address).map_err(|e| invalid(&e))?;
    let is_ssl = |k: &str| k.eq_ignore_ascii_case("ssl-mode") || k.eq_ignore_ascii_case("sslmode");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs
        .iter()
        .any(|(k, v)| is_ssl(k) && !v.eq_ignore_ascii_case("disabled"))
    {
        return Err(Error::ConnectionFailed(
            "TLS to MySQL is not supported by this host (ssl-mode must be DISABLED)".into(),
        ));
    }
    let sized = pairs
        .iter()
        .any(|(k, _)| k == "pool_min" || k == "pool_max");
    url.set_query(None);
    let rest: Vec<_> = pairs.iter().filter(|(k, _)| !is_ssl(k)).collect();
    if !rest.is_empty() {
        url.query_pairs_mut().extend_pairs(rest);
    }
    let opts = Opts::from_url(url.as_str()).map_err(|e| invalid(&e))?;
    if sized {
        return Ok(opts);
    }
    let pool = opts
        .pool_opts()
        .clone()
        .with_constraints(PoolConstraints::new(POOL_MIN, POOL_MAX).expect("POOL_MIN <= POOL_MAX"));
    Ok(OptsBuilder::from_opts(opts).pool_opts(pool).into())
}

fn parameter(p: ParameterValue) -> Value {
    use ParameterValue as P;
    match p {
        P::Boolean(v) => Value::from(v),
        P::Int8(v) => Value::from(v),
        P::Int16(v) => Value::from(v),
        P::Int32(v) => Value::from(v),
        P::Int64(v) => Value::from(v),
        P::Uint8(v) => Value::from(v),
        P::Uint16(v) => Value::from(v),
        P::Uint32(v) => Value::from(v),
        P::Uint64(v) => Value::from(v),
        P::Floating32(v) => Value::from(v),
        P::Floating64(v) => Value::from(v),
        P::Str(v) => Value::from(v),
        P::Binary(v) => Value::from(v),
        P::DbNull => Value::NULL,
    }
}

fn parameters(params: Vec<ParameterValue>) -> Params {
    if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params.into_iter().map(parameter).collect())
    }
}

/// Spin's mapping: integers by width and sign, FLOAT and DOUBLE, and
/// character and blob columns as text or bytes by the binary flag.
/// Everything else (DECIMAL, dates and times, BIT, YEAR, JSON, ...) is
/// `other`, and a value in such a column fails to convert: select it as a
/// string (`CAST(x AS CHAR)`) to read it.
fn data_type(column: &mysql_async::Column) -> DbDataType {
    use ColumnType as T;
    use DbDataType as D;
    let flags = column.flags();
    let ty = column.column_type();
    if ty.is_numeric_type() {
        let signed = !flags.contains(ColumnFlags::UNSIGNED_FLAG);
        return match (ty, signed) {
            (T::MYSQL_TYPE_TINY, true) => D::Int8,
            (T::MYSQL_TYPE_TINY, false) => D::Uint8,
            (T::MYSQL_TYPE_SHORT, true) => D::Int16,
            (T::MYSQL_TYPE_SHORT, false) => D::Uint16,
            (T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG, true) => D::Int32,
            (T::MYSQL_TYPE_INT24 | T::MYSQL_TYPE_LONG, false) => D::Uint32,
            (T::MYSQL_TYPE_LONGLONG, true) => D::Int64,
            (T::MYSQL_TYPE_LONGLONG, false) => D::Uint64,
            (T::MYSQL_TYPE_FLOAT, _) => D::Floating32,
            (T::MYSQL_TYPE_DOUBLE, _) => D::Floating64,
            _ => D::Other,
        };
    }
    if ty.is_character_type() {
        let binary = flags.contains(ColumnFlags::BINARY_FLAG);
        return match ty {
            T::MYSQL_TYPE_BLOB | T::MYSQL_TYPE_STRING | T::MYSQL_TYPE_VAR_STRING if binary => {
                D::Binary
            }
            T::MYSQL_TYPE_BLOB | T::MYSQL_TYPE_STRING | T::MYSQL_TYPE_VAR_STRING => D::Str,
            _ => D::Other,
        };
    }
    D::Other
}

fn convert<T: FromValue>(value: Value, column: &Column) -> Result<T, Error> {
    mysql_async::from_value_opt::<T>(value)
        .map_err(|e| Error::ValueConversionFailed(format!("column {:?}: {e}", column.name)))
}

fn db_value(value: Value, column: &Column) -> Result<DbValue, Error> {
    use DbDataType as D;
    if value == Value::NULL {
        return Ok(DbValue::DbNull);
    }
    Ok(match column.data_type {
        D::Boolean => DbValue::Boolean(convert(value, column)?),
        D::Int8 => DbValue::Int8(convert(value, column)?),
        D::Int16 => DbValue::Int16(convert(value, column)?),
        D::Int32 => DbValue::Int32(convert(value, column)?),
        D::Int64 => DbValue::Int64(convert(value, column)?),
        D::Uint8 => DbValue::Uint8(convert(value, column)?),
        D::Uint16 => DbValue::Uint16(convert(value, column)?),
        D::Uint32 => DbValue::Uint32(convert(value, column)?),
        D::Uint64 => DbValue::Uint64(convert(value, column)?),
        D::Floating32 => DbValue::Floating32(convert(value, column)?),
        D::Floating64 => DbValue::Floating64(convert(value, column)?),
        D::Str => DbValue::Str(convert(value, column)?),
        D::Binary => DbValue::Binary(convert(value, column)?),
        D::Other => {
            return Err(Error::ValueConversionFailed(format!(
                "column {:?}: its type has no case in db-value; value {value:?}",
                column.name
            )));
        }
    })
}

/// Roughly what a value costs the host to hold, for [`MAX_RESULT_BYTES`].
fn value_size(v: &DbValue) -> usize {
    std::mem::size_of::<DbValue>()
        + match v {
            DbValue::Str(s) => s.len(),
            DbValue::Binary(b) => b.len(),
            _ => 0,
        }
}

fn row(mut row: Row, columns: &[Column], bytes: &mut usize) -> Result<Vec<DbValue>, Error> {
    let mut out = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let v = match row.take::<Value, _>(i) {
            Some(value) => db_value(value, column)?,
            None => DbValue::DbNull,
        };
        *bytes += value_size(&v);
        out.push(v);
    }
    if *bytes > MAX_RESULT_BYTES {
        return Err(Error::Other(format!(
            "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
        )));
    }
    Ok(out)
}

/// The server's refusal as Spin words it (the driver's error, debug form).
fn query_failed(e: mysql_async::Error) -> Error {
    Error::QueryFailed(format!("{e:?}"))
}

impl InstanceMysql {
    /// The session behind `r`, about to run `statement`.
    fn conn(&mut self, r: &Resource<MysqlConnection>, statement: &str) -> Result<&mut Conn, Error> {
        let c = self
            .table
            .get_mut(r)
            .map_err(|e| Error::Other(e.to_string()))?;
        c.changed_session |= changes_session(statement);
        c.conn
            .as_mut()
            .ok_or_else(|| Error::Other("connection closed".into()))
    }
}

impl rdbms_types::Host for InstanceMysql {}

impl v2::Host for InstanceMysql {}

impl v2::HostConnection for InstanceMysql {
    async fn open(&mut self, address: String) -> Result<Resource<MysqlConnection>, Error> {
        if !self.allowed.allows_url(&address) {
            let host = url::Url::parse(&address)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            tracing::info!(host, "outbound MySQL denied: not in allowed_outbound_hosts");
            return Err(Error::ConnectionFailed(format!(
                "address {address} is not permitted"
            )));
        }
        let opts = options(&address)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(Error::ConnectionFailed("too many connections".into()));
        }
        let permit = match &self.connections {
            Some(s) => Some(
                s.clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::ConnectionFailed("too many connections".into()))?,
            ),
            None => None,
        };
        let pool = self.pools.pool(&address, opts);
        let conn = tokio::time::timeout(POOL_WAIT, pool.get_conn())
            .await
            .map_err(|_| {
                Error::ConnectionFailed(format!("no connection became free within {POOL_WAIT:?}"))
            })?
            .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
        let r = self
            .table
            .push(MysqlConnection {
                conn: Some(conn),
                changed_session: false,
                _permit: permit,
            })
            .map_err(|_| Error::ConnectionFailed("too many connections".into()))?;
        self.open += 1;
        Ok(r)
    }

    async fn query(
        &mut self,
        r: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let conn = self.conn(&r, &statement)?;
        let mut result = conn
            .exec_iter(statement.as_str(), parameters(params))
            .await
            .map_err(query_failed)?;
        let columns: Vec<Column> = match result.columns() {
            Some(cs) => cs
                .iter()
                .map(|c| Column {
                    name: c.name_str().into_owned(),
                    data_type: data_type(c),
                })
                .collect(),
            None => {
                // As in Spin, where the driver has no result set to stream.
                // (A statement without rows, such as an INSERT, still has
                // one, empty, and answers an empty row set.)
                result.drop_result().await.map_err(query_failed)?;
                return Err(Error::Other("the statement returned no result set".into()));
            }
        };
        let mut rows = Vec::new();
        let mut bytes = 0;
        {
            let mut stream = result
                .stream::<Row>()
                .await
                .map_err(|e| Error::Other(e.to_string()))?
                .ok_or_else(|| Error::Other("the statement returned no result set".into()))?;
            while let Some(r) = stream
                .try_next()
                .await
                .map_err(|e| Error::Other(e.to_string()))?
            {
                rows.push(row(r, &columns, &mut bytes)?);
            }
        }
        // Results of further statements (a procedure's) are not returned.
        result.drop_result().await.map_err(query_failed)?;
        Ok(RowSet { columns, rows })
    }

    async fn execute(
        &mut self,
        r: Resource<MysqlConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<(), Error> {
        self.conn(&r, &statement)?
            .exec_drop(statement.as_str(), parameters(params))
            .await
            .map_err(query_failed)
    }

    async fn drop(&mut self, r: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_statements_that_change_what_a_reset_keeps() {
        for s in [
            "SET autocommit = 0",
            "  set @@session.sql_mode = 'ANSI'",
            "/* why */ SET time_zone = '+00:00'",
            "-- note\nUSE other_db",
            "# note\ncall refresh()",
        ] {
            assert!(changes_session(s), "{s}");
        }
        for s in [
            "SELECT 1",
            "INSERT INTO settings VALUES (1)",
            "UPDATE t SET a = 1",
            "",
            "/* SET",
        ] {
            assert!(!changes_session(s), "{s}");
        }
    }

    #[test]
    fn addresses_keep_their_options_and_refuse_tls() {
        let o = options("mysql://u:p%40ss@db:3307/shop").unwrap();
        assert_eq!(o.ip_or_hostname(), "db");
        assert_eq!(o.tcp_port(), 3307);
        assert_eq!(o.user(), Some("u"));
        assert_eq!(o.pass(), Some("p@ss"));
        assert_eq!(o.db_name(), Some("shop"));
        assert_eq!(o.pool_opts().constraints().max(), POOL_MAX);
        let o = options("mysql://u@db/shop?ssl-mode=DISABLED&pool_min=1&pool_max=3").unwrap();
        assert_eq!(o.pool_opts().constraints().max(), 3);
        assert!(matches!(
            options("mysql://u@db/shop?sslMode=REQUIRED"),
            Err(Error::ConnectionFailed(m)) if m.contains("TLS")
        ));
        assert!(matches!(
            options("mysql://u@db/shop?nonsense=1"),
            Err(Error::ConnectionFailed(m)) if m.contains("invalid address")
        ));
    }
}
