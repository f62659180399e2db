//! PostgreSQL access for FaDO's components, over `spin:postgres` so the same
//! code runs under Spin and under `fado`.
//!
//! - [`Db`]: one session (statements, transactions) with errors that keep
//!   PostgreSQL's SQLSTATE and constraint name, so callers can turn a unique
//!   violation into a 409 without parsing messages;
//! - [`Rows`]: column-name access with typed decoding and clear errors;
//! - [`ensure_schema`]: applies pending migrations under an advisory lock
//!   before a component uses the database.

// The error type wraps the interface's own `error` variant.
#![allow(clippy::result_large_err)]

pub mod buckets;
pub mod clusters;
pub mod faas;
pub mod health;
pub mod jobs;
pub mod keyvalue;
pub mod ledger;
pub mod lookup;
pub mod objects;
pub mod planner;
pub mod reconcile;
pub mod replicas;
pub mod routes;
pub mod secrets;
pub mod settings;
pub mod snapshot;
pub mod storage;
pub mod summary;

use std::collections::HashMap;

use spin_sdk::pg4::{self as pg, DbValue};

pub use spin_sdk::pg4::ParameterValue as Param;

/// What went wrong talking to PostgreSQL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("PostgreSQL error {code}: {message}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Db {
        code: String,
        message: String,
        detail: Option<String>,
        constraint: Option<String>,
    },
    /// The session failed under a statement without the server saying why
    /// (closed, reset, timed out): the server is going or gone.
    #[error("the PostgreSQL session failed: {0}")]
    Session(String),
    #[error("PostgreSQL request failed: {0}")]
    Other(String),
    #[error("unexpected value in column {column:?}: {problem}")]
    Decode { column: String, problem: String },
    #[error(transparent)]
    Migration(#[from] fado_migrations::MigrationError),
}

/// SQLSTATE codes callers branch on.
pub mod sqlstate {
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
}

impl StoreError {
    pub fn code(&self) -> Option<&str> {
        match self {
            StoreError::Db { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Db { constraint, .. } => constraint.as_deref(),
            _ => None,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }
}

impl From<pg::PgError> for StoreError {
    fn from(e: pg::PgError) -> Self {
        match e {
            pg::PgError::ConnectionFailed(m) => StoreError::Connect(m),
            pg::PgError::QueryFailed(pg::QueryError::DbError(db)) => StoreError::Db {
                constraint: db
                    .extras
                    .iter()
                    .find(|(k, _)| k == "constraint")
                    .map(|(_, v)| v.clone()),
                code: db.code,
                message: db.message,
                detail: db.detail,
            },
            pg::PgError::QueryFailed(pg::QueryError::Text(t)) => StoreError::Session(t),
            pg::PgError::BadParameter(m) => StoreError::Other(format!("bad parameter: {m}")),
            pg::PgError::ValueConversionFailed(m) => {
                StoreError::Other(format!("value conversion failed: {m}"))
            }
            pg::PgError::Other(m) => StoreError::Other(m),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One PostgreSQL session.
pub struct Db {
    conn: pg::Connection,
}

impl Db {
    pub fn open(address: &str) -> Result<Self> {
        Ok(Self {
            conn: pg::Connection::open(address)?,
        })
    }

    pub fn query(&self, sql: &str, params: &[Param]) -> Result<Rows> {
        let set = self.conn.query(sql, params)?;
        Ok(Rows::new(set))
    }

    pub fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        Ok(self.conn.execute(sql, params)?)
    }

    /// Runs `f` inside `BEGIN … COMMIT`, rolling back if it fails.
    pub fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run_in("BEGIN", f)
    }

    /// [`Db::transaction`] at isolation level `REPEATABLE READ`: every
    /// statement of `f` sees one snapshot of the database.
    pub fn snapshot_transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.run_in("BEGIN ISOLATION LEVEL REPEATABLE READ", f)
    }

    fn run_in<T, E: From<StoreError>>(
        &self,
        begin: &str,
        f: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.execute(begin, &[])?;
        match f(self) {
            Ok(v) => {
                self.execute("COMMIT", &[])?;
                Ok(v)
            }
            Err(e) => {
                // The session may already be aborted; a failed ROLLBACK changes nothing.
                let _ = self.execute("ROLLBACK", &[]);
                Err(e)
            }
        }
    }

    /// Marks the catalog changed, so the planner re-plans. Call inside the
    /// transaction that makes the change.
    pub fn bump_generation(&self) -> Result<i64> {
        let rows = self.query(
            "UPDATE catalog_generation SET value = value + 1 RETURNING value AS catalog_generation",
            &[],
        )?;
        rows.one()?.i64("catalog_generation")
    }
}

/// `s` for a `LIKE` pattern that matches it literally (`%`, `_` and the
/// escape character `\` escaped).
pub fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Whether the session answers a statement.
pub fn ping(db: &Db) -> Result<()> {
    db.query("SELECT 1", &[]).map(drop)
}

/// Brings the schema up to date, applying pending migrations under a
/// session advisory lock. Cheap when nothing is pending: one query.
pub fn ensure_schema(db: &Db) -> Result<()> {
    match db.query(
        "SELECT coalesce(max(version), 0) AS v FROM fado_schema_migrations",
        &[],
    ) {
        Ok(rows) if rows.one()?.i64("v")? == i64::from(fado_migrations::LATEST) => return Ok(()),
        Ok(_) => {}
        Err(e) if e.is(sqlstate::UNDEFINED_TABLE) => {}
        Err(e) => return Err(e),
    }
    migrate(db).map(drop)
}

/// Takes session advisory lock `key` if no other session holds it.
pub fn try_lock(db: &Db, key: i64) -> Result<bool> {
    db.query(
        "SELECT pg_try_advisory_lock($1) AS locked",
        &[Param::Int64(key)],
    )?
    .one()?
    .bool("locked")
}

/// Releases session advisory lock `key`. (The host also releases every
/// lock of a session before the session is reused, so a guest that
/// trapped while holding one leaves nothing behind.)
pub fn unlock(db: &Db, key: i64) -> Result<()> {
    db.execute("SELECT pg_advisory_unlock($1)", &[Param::Int64(key)])?;
    Ok(())
}

/// Applies every pending migration; returns the versions applied.
pub fn migrate(db: &Db) -> Result<Vec<i32>> {
    let key = Param::Int64(fado_migrations::LOCK_KEY);
    db.execute("SELECT pg_advisory_lock($1)", std::slice::from_ref(&key))?;
    let result = (|| {
        db.execute(fado_migrations::BOOKKEEPING_SQL, &[])?;
        let rows = db.query(fado_migrations::APPLIED_SQL, &[])?;
        let applied = rows
            .iter()
            .map(|r| {
                Ok(fado_migrations::Applied {
                    version: r.i64("version")? as i32,
                    checksum: r.str("checksum")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut done = Vec::new();
        for m in fado_migrations::pending(&applied)? {
            db.transaction(|tx| -> Result<()> {
                for statement in m.statements() {
                    tx.execute(statement, &[])?;
                }
                tx.execute(&fado_migrations::record_sql(m), &[])?;
                Ok(())
            })?;
            done.push(m.version);
        }
        Ok(done)
    })();
    let _ = db.execute("SELECT pg_advisory_unlock($1)", &[key]);
    result
}

/// A result set with column lookup by name.
pub struct Rows {
    columns: HashMap<String, usize>,
    rows: Vec<Vec<DbValue>>,
}

/// One row of a [`Rows`].
#[derive(Clone, Copy)]
pub struct Row<'a> {
    columns: &'a HashMap<String, usize>,
    values: &'a [DbValue],
}

impl Rows {
    fn new(set: pg::RowSet) -> Self {
        let columns = set
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            columns,
            rows: set.rows,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|values| Row {
            columns: &self.columns,
            values,
        })
    }

    pub fn first(&self) -> Option<Row<'_>> {
        self.iter().next()
    }

    /// The only row; an error when there is none.
    pub fn one(&self) -> Result<Row<'_>> {
        self.first().ok_or_else(|| StoreError::Decode {
            column: String::new(),
            problem: "expected a row, the query returned none".into(),
        })
    }
}

/// A stored value decoded into a model type (a policy, a health state): a
/// value the model refuses is a decoding error of the store, not bad input.
pub fn decoded<T>(r: std::result::Result<T, fado_model::FieldError>) -> Result<T> {
    r.map_err(|e| StoreError::Decode {
        column: e.field,
        problem: e.message,
    })
}

fn bad(column: &str, problem: impl Into<String>) -> StoreError {
    StoreError::Decode {
        column: column.to_string(),
        problem: problem.into(),
    }
}

impl<'a> Row<'a> {
    pub fn value(&self, column: &str) -> Result<&'a DbValue> {
        let i = self
            .columns
            .get(column)
            .ok_or_else(|| bad(column, "no such column in the result"))?;
        Ok(&self.values[*i])
    }

    pub fn is_null(&self, column: &str) -> Result<bool> {
        Ok(matches!(self.value(column)?, DbValue::DbNull))
    }

    pub fn i64(&self, column: &str) -> Result<i64> {
        self.opt_i64(column)?.ok_or_else(|| bad(column, "is NULL"))
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>> {
        Ok(match self.value(column)? {
            DbValue::Int64(v) => Some(*v),
            DbValue::Int32(v) => Some(i64::from(*v)),
            DbValue::Int16(v) => Some(i64::from(*v)),
            DbValue::Int8(v) => Some(i64::from(*v)),
            DbValue::Decimal(d) => Some(
                d.parse()
                    .map_err(|_| bad(column, format!("{d} is not an integer")))?,
            ),
            DbValue::DbNull => None,
            other => return Err(bad(column, format!("expected an integer, got {other:?}"))),
        })
    }

    pub fn bool(&self, column: &str) -> Result<bool> {
        match self.value(column)? {
            DbValue::Boolean(b) => Ok(*b),
            other => Err(bad(column, format!("expected a boolean, got {other:?}"))),
        }
    }

    pub fn str(&self, column: &str) -> Result<String> {
        self.opt_str(column)?.ok_or_else(|| bad(column, "is NULL"))
    }

    pub fn opt_str(&self, column: &str) -> Result<Option<String>> {
        Ok(match self.value(column)? {
            DbValue::Str(s) => Some(s.clone()),
            DbValue::DbNull => None,
            other => return Err(bad(column, format!("expected text, got {other:?}"))),
        })
    }

    /// A `text[]` column; NULL reads as empty.
    pub fn strings(&self, column: &str) -> Result<Vec<String>> {
        Ok(match self.value(column)? {
            DbValue::ArrayStr(v) => v.iter().flatten().cloned().collect(),
            DbValue::DbNull => Vec::new(),
            other => return Err(bad(column, format!("expected text[], got {other:?}"))),
        })
    }

    /// A `bigint[]` column; NULL reads as empty.
    pub fn ids(&self, column: &str) -> Result<Vec<i64>> {
        Ok(match self.value(column)? {
            DbValue::ArrayInt64(v) => v.iter().flatten().copied().collect(),
            DbValue::ArrayInt32(v) => v.iter().flatten().map(|x| i64::from(*x)).collect(),
            DbValue::DbNull => Vec::new(),
            other => return Err(bad(column, format!("expected bigint[], got {other:?}"))),
        })
    }

    pub fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        match self.value(column)? {
            DbValue::Binary(b) => Ok(b.clone()),
            other => Err(bad(column, format!("expected bytea, got {other:?}"))),
        }
    }

    pub fn json(&self, column: &str) -> Result<serde_json::Value> {
        match self.value(column)? {
            DbValue::Jsonb(b) => serde_json::from_slice(b).map_err(|e| bad(column, e.to_string())),
            DbValue::DbNull => Ok(serde_json::Value::Null),
            other => Err(bad(column, format!("expected json, got {other:?}"))),
        }
    }

    /// A `timestamptz` as RFC 3339 in UTC with microseconds.
    pub fn time(&self, column: &str) -> Result<String> {
        self.opt_time(column)?.ok_or_else(|| bad(column, "is NULL"))
    }

    pub fn opt_time(&self, column: &str) -> Result<Option<String>> {
        Ok(match self.value(column)? {
            DbValue::Datetime((y, mo, d, h, mi, s, ns)) => Some(format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
                ns / 1000
            )),
            DbValue::DbNull => None,
            other => return Err(bad(column, format!("expected a timestamp, got {other:?}"))),
        })
    }

    /// A text column read by `parse` (one of `fado_model`'s wire enums:
    /// `Health::parse`, `JobKind::parse`, …).
    pub fn parse<T>(
        &self,
        column: &str,
        parse: impl FnOnce(&str, &str) -> std::result::Result<T, fado_model::FieldError>,
    ) -> Result<T> {
        decoded(parse(column, &self.str(column)?))
    }
}

/// Parameters for `text[]` and `bigint[]` columns.
pub fn text_array(values: &[String]) -> Param {
    Param::ArrayStr(values.iter().cloned().map(Some).collect())
}

pub fn id_array(values: &[i64]) -> Param {
    Param::ArrayInt64(values.iter().copied().map(Some).collect())
}

pub fn opt_text(v: Option<&str>) -> Param {
    match v {
        Some(s) => Param::Str(s.to_string()),
        None => Param::DbNull,
    }
}
