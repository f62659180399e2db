//! SQLite databases, through both interfaces Spin gives components:
//! `fermyon:spin/sqlite@2.0.0` (spin-sdk's `sqlite`) and
//! `spin:sqlite/sqlite@3.0.0` (`sqlite3`, which adds `last-insert-rowid`
//! and `changes`). A component opens the labels its manifest lists in
//! `sqlite_databases`; `default` is `sqlite_db.db` in the state directory,
//! any label may be placed elsewhere by a runtime-config file's
//! `[sqlite_database.<label>]`.
//!
//! As in Spin, every guest `open` gets a SQLite connection of its own, so a
//! transaction, `last-insert-rowid`, `changes` and any `PRAGMA` a guest sets
//! belong to that connection alone. Queries run on tokio's blocking pool;
//! a busy timeout makes writers (in this process or another `fado` on the
//! same file) wait for each other rather than fail at once.

// The error types are the interfaces' own variants; their size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Result;
use rusqlite::OpenFlags;
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::fermyon::spin2_0_0::sqlite as v2;
use crate::bindings::spin::sqlite::sqlite as v3;

/// The file backing `default` unless the runtime config places it.
const DEFAULT_DATABASE_FILE: &str = "sqlite_db.db";

/// How long a statement waits for another connection's lock (a writer in
/// this process or another) before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Open connections one instance may hold at once (each holds file
/// descriptors; Postgres has the same limit).
const MAX_CONNECTIONS_PER_INSTANCE: usize = 16;

/// One configured database: a file, opened on first use.
struct Database {
    label: String,
    path: PathBuf,
    /// A connection held for the life of the process, opened with the first
    /// guest connection. Closing the last connection to a WAL database
    /// checkpoints the WAL into the file and deletes it; without this one,
    /// every request's close would.
    anchor: Mutex<Option<rusqlite::Connection>>,
}

impl Database {
    fn new(label: &str, path: PathBuf) -> Self {
        Self {
            label: label.to_string(),
            path,
            anchor: Mutex::new(None),
        }
    }

    /// A new connection (blocking: file I/O). The first also creates the
    /// file and its directory and turns on WAL, which readers and a writer
    /// can use at once; the mode is stored in the file, so later
    /// connections need not ask again.
    fn connect(&self) -> Result<rusqlite::Connection, String> {
        let mut anchor = self.anchor.lock().unwrap_or_else(PoisonError::into_inner);
        if anchor.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let first = self.open_file()?;
            let mode: String = first
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(|e| self.failed(e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    database = %self.label,
                    path = %self.path.display(),
                    "SQLite kept journal mode {mode:?} instead of WAL"
                );
            }
            *anchor = Some(first);
        }
        drop(anchor);
        self.open_file()
    }

    fn open_file(&self) -> Result<rusqlite::Connection, String> {
        // Not SQLITE_OPEN_URI: the configured path is a file name, never a URI.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            rusqlite::Connection::open_with_flags(&self.path, flags).map_err(|e| self.failed(e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.failed(e))?;
        // ATTACH (and VACUUM INTO, which attaches) would let a guest open or
        // create any file the host can reach; it may use only this one.
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(|e| self.failed(e))?;
        Ok(conn)
    }

    fn failed(&self, e: rusqlite::Error) -> String {
        format!(
            "opening SQLite database {:?} ({}): {e}",
            self.label,
            self.path.display()
        )
    }
}

pub struct Sqlite {
    /// Every configured label: `default` and the runtime config's.
    databases: Arc<HashMap<String, Arc<Database>>>,
    allowed: Vec<Arc<Vec<String>>>,
    max_result_bytes: usize,
}

pub struct InstanceSqlite {
    databases: Arc<HashMap<String, Arc<Database>>>,
    allowed: Arc<Vec<String>>,
    max_result_bytes: usize,
    table: ResourceTable,
    open: usize,
}

/// The host side of a guest's `connection`: one SQLite connection.
pub struct SqliteConnection {
    /// Shared with the blocking task of the query in flight, if any.
    conn: Option<Arc<Mutex<rusqlite::Connection>>>,
    interrupt: rusqlite::InterruptHandle,
}

impl Drop for SqliteConnection {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if Arc::strong_count(&conn) > 1 {
            // The guest went away mid-query (its request was dropped): stop
            // the statement; the query's task closes the connection.
            self.interrupt.interrupt();
            return;
        }
        // Closing may roll back an abandoned transaction: file I/O, so not
        // on the async executor.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(conn));
            }
            Err(_) => drop(conn),
        }
    }
}

impl Capability for Sqlite {
    type InstanceState = InstanceSqlite;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceSqlite,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceSqlite>>(linker, get)?;
        v3::add_to_linker::<StoreData, HasSelf<InstanceSqlite>>(linker, get)?;
        Ok(())
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let mut databases = HashMap::new();
        databases.insert(
            "default".to_string(),
            Arc::new(Database::new(
                "default",
                app.state_dir.join(DEFAULT_DATABASE_FILE),
            )),
        );
        for (label, cfg) in &app.runtime_config.sqlite_databases {
            databases.insert(
                label.clone(),
                Arc::new(Database::new(label, cfg.path.clone())),
            );
        }
        let file = app.manifest.file.display();
        for c in &app.components {
            for (i, label) in c.manifest.sqlite_databases.iter().enumerate() {
                if !databases.contains_key(label) {
                    anyhow::bail!(
                        "{file}: field `component.{id}.sqlite_databases[{i}]`: component {id:?} uses \
                         SQLite database {label:?}, which is configured nowhere; only \"default\" \
                         exists unless a runtime-config file defines [sqlite_database.{label}]",
                        id = c.id
                    );
                }
            }
        }
        Ok(Self {
            databases: Arc::new(databases),
            allowed: app
                .components
                .iter()
                .map(|c| Arc::new(c.manifest.sqlite_databases.clone()))
                .collect(),
            // A result larger than the guest's memory could never reach it.
            max_result_bytes: app.options.limits.max_memory_bytes,
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceSqlite> {
        Ok(InstanceSqlite {
            databases: self.databases.clone(),
            allowed: self.allowed[component].clone(),
            max_result_bytes: self.max_result_bytes,
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

impl InstanceSqlite {
    async fn open_label(&mut self, label: String) -> Result<Resource<SqliteConnection>, v3::Error> {
        // The component's list first, as Spin does: a label the component
        // may not use is denied whether or not it is configured, so the
        // guest learns nothing about other components' databases. Start-up
        // refuses listed labels configured nowhere, so the second check
        // only guards against that invariant breaking.
        if !self.allowed.contains(&label) {
            return Err(v3::Error::AccessDenied);
        }
        let db = self
            .databases
            .get(&label)
            .cloned()
            .ok_or(v3::Error::NoSuchDatabase)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(v3::Error::Io(format!(
                "at most {MAX_CONNECTIONS_PER_INSTANCE} SQLite connections may be open at once"
            )));
        }
        let conn = tokio::task::spawn_blocking(move || db.connect())
            .await
            .map_err(|e| v3::Error::Io(e.to_string()))?
            .map_err(|e| {
                tracing::warn!("{e}");
                v3::Error::Io(e)
            })?;
        let handle = SqliteConnection {
            interrupt: conn.get_interrupt_handle(),
            conn: Some(Arc::new(Mutex::new(conn))),
        };
        let r = self
            .table
            .push(handle)
            .map_err(|e| v3::Error::Io(e.to_string()))?;
        self.open += 1;
        Ok(r)
    }

    fn connection(
        &self,
        r: &Resource<SqliteConnection>,
    ) -> Result<Arc<Mutex<rusqlite::Connection>>, v3::Error> {
        self.table
            .get(r)
            .ok()
            .and_then(|h| h.conn.clone())
            .ok_or(v3::Error::InvalidConnection)
    }

    async fn execute_on(
        &mut self,
        r: &Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        let conn = self.connection(r)?;
        let limit = self.max_result_bytes;
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            run(&conn, &statement, parameters, limit).map_err(v3::Error::Io)
        })
        .await
        .map_err(|e| v3::Error::Io(e.to_string()))?
    }

    /// Reads a counter of the guest's connection. Both are plain reads of
    /// the connection's state, cheap enough for the executor.
    fn read<T>(
        &self,
        r: &Resource<SqliteConnection>,
        f: impl FnOnce(&rusqlite::Connection) -> T,
    ) -> wasmtime::Result<T> {
        let conn = self
            .connection(r)
            .map_err(|_| wasmtime::Error::msg("invalid SQLite connection handle"))?;
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(f(&conn))
    }

    fn close(&mut self, r: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

/// Runs one statement (blocking) and collects its rows. Errors are SQLite's
/// own message, as Spin gives them.
fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    parameters: Vec<v3::Value>,
    max_bytes: usize,
) -> Result<v3::QueryResult, String> {
    let mut stmt = conn.prepare_cached(sql).map_err(|e| e.to_string())?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut bytes: usize = columns.iter().map(String::len).sum();
    let params = parameters.into_iter().map(|v| match v {
        v3::Value::Integer(i) => SqlValue::Integer(i),
        v3::Value::Real(f) => SqlValue::Real(f),
        v3::Value::Text(s) => SqlValue::Text(s),
        v3::Value::Blob(b) => SqlValue::Blob(b),
        v3::Value::Null => SqlValue::Null,
    });
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let mut values = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let value = match row.get_ref(i).map_err(|e| e.to_string())? {
                ValueRef::Null => v3::Value::Null,
                ValueRef::Integer(n) => v3::Value::Integer(n),
                ValueRef::Real(f) => v3::Value::Real(f),
                ValueRef::Text(t) => {
                    bytes += t.len();
                    v3::Value::Text(String::from_utf8(t.to_vec()).map_err(|_| {
                        format!(
                            "column {name:?} holds text that is not valid UTF-8; \
                             select CAST({name} AS BLOB) to read its bytes"
                        )
                    })?)
                }
                ValueRef::Blob(b) => {
                    bytes += b.len();
                    v3::Value::Blob(b.to_vec())
                }
            };
            bytes += std::mem::size_of::<v3::Value>();
            values.push(value);
        }
        if bytes > max_bytes {
            return Err(format!(
                "the query's result exceeds {max_bytes} bytes, the instance memory limit"
            ));
        }
        out.push(v3::RowResult { values });
    }
    Ok(v3::QueryResult { columns, rows: out })
}

// ---- spin:sqlite/sqlite@3.0.0 --------------------------------------------

impl v3::Host for InstanceSqlite {}

impl v3::HostConnection for InstanceSqlite {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, v3::Error> {
        self.open_label(database).await
    }

    async fn execute(
        &mut self,
        r: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        self.execute_on(&r, statement, parameters).await
    }

    async fn last_insert_rowid(&mut self, r: Resource<SqliteConnection>) -> wasmtime::Result<i64> {
        self.read(&r, rusqlite::Connection::last_insert_rowid)
    }

    async fn changes(&mut self, r: Resource<SqliteConnection>) -> wasmtime::Result<u64> {
        self.read(&r, rusqlite::Connection::changes)
    }

    async fn drop(&mut self, r: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.close(r)
    }
}

// ---- fermyon:spin/sqlite@2.0.0 -------------------------------------------
// The same types under another package: converted at the edge.

fn to_v2_error(e: v3::Error) -> v2::Error {
    match e {
        v3::Error::NoSuchDatabase => v2::Error::NoSuchDatabase,
        v3::Error::AccessDenied => v2::Error::AccessDenied,
        v3::Error::InvalidConnection => v2::Error::InvalidConnection,
        v3::Error::DatabaseFull => v2::Error::DatabaseFull,
        v3::Error::Io(m) => v2::Error::Io(m),
    }
}

fn from_v2_value(v: v2::Value) -> v3::Value {
    match v {
        v2::Value::Integer(i) => v3::Value::Integer(i),
        v2::Value::Real(f) => v3::Value::Real(f),
        v2::Value::Text(s) => v3::Value::Text(s),
        v2::Value::Blob(b) => v3::Value::Blob(b),
        v2::Value::Null => v3::Value::Null,
    }
}

fn to_v2_value(v: v3::Value) -> v2::Value {
    match v {
        v3::Value::Integer(i) => v2::Value::Integer(i),
        v3::Value::Real(f) => v2::Value::Real(f),
        v3::Value::Text(s) => v2::Value::Text(s),
        v3::Value::Blob(b) => v2::Value::Blob(b),
        v3::Value::Null => v2::Value::Null,
    }
}

impl v2::Host for InstanceSqlite {}

impl v2::HostConnection for InstanceSqlite {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, v2::Error> {
        self.open_label(database).await.map_err(to_v2_error)
    }

    async fn execute(
        &mut self,
        r: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> Result<v2::QueryResult, v2::Error> {
        let parameters = parameters.into_iter().map(from_v2_value).collect();
        let result = self
            .execute_on(&r, statement, parameters)
            .await
            .map_err(to_v2_error)?;
        Ok(v2::QueryResult {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| v2::RowResult {
                    values: row.values.into_iter().map(to_v2_value).collect(),
                })
                .collect(),
        })
    }

    async fn drop(&mut self, r: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.close(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &tempfile::TempDir) -> Database {
        Database::new("t", dir.path().join("nested/t.db"))
    }

    #[test]
    fn every_value_type_round_trips_and_errors_carry_sqlites_message() {
        let dir = tempfile::tempdir().unwrap();
        let conn = db(&dir).connect().unwrap();
        run(&conn, "CREATE TABLE t (v)", vec![], usize::MAX).unwrap();
        let values = vec![
            v3::Value::Null,
            v3::Value::Integer(i64::MIN),
            v3::Value::Real(-2.5),
            v3::Value::Text("héllo".into()),
            v3::Value::Blob(vec![0, 255]),
        ];
        for v in &values {
            run(
                &conn,
                "INSERT INTO t VALUES (?)",
                vec![v.clone()],
                usize::MAX,
            )
            .unwrap();
        }
        let r = run(
            &conn,
            "SELECT v, typeof(v) AS kind FROM t",
            vec![],
            usize::MAX,
        )
        .unwrap();
        assert_eq!(r.columns, ["v", "kind"]);
        let got: Vec<String> = r
            .rows
            .iter()
            .map(|row| format!("{:?}", row.values))
            .collect();
        let want: Vec<String> = values
            .iter()
            .zip(["null", "integer", "real", "text", "blob"])
            .map(|(v, k)| format!("{:?}", [v.clone(), v3::Value::Text(k.into())]))
            .collect();
        assert_eq!(got, want);
        let e = run(&conn, "SELECT * FROM missing", vec![], usize::MAX).unwrap_err();
        assert_eq!(e, "no such table: missing");
        let e = run(&conn, "SELECT * FROM t", vec![], 10).unwrap_err();
        assert!(e.contains("exceeds 10 bytes"), "{e}");
        let e = run(
            &conn,
            "SELECT CAST(x'ff' AS TEXT) AS bad",
            vec![],
            usize::MAX,
        )
        .unwrap_err();
        assert!(e.contains("\"bad\"") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn files_are_created_in_wal_mode_and_attach_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = db(&dir);
        let conn = d.connect().unwrap();
        assert!(d.path.exists());
        let mode = run(&conn, "PRAGMA journal_mode", vec![], usize::MAX).unwrap();
        assert!(
            matches!(mode.rows[0].values.as_slice(), [v3::Value::Text(m)] if m == "wal"),
            "{mode:?}"
        );
        let other = dir.path().join("other.db").display().to_string();
        for sql in [
            format!("ATTACH DATABASE '{other}' AS other"),
            format!("VACUUM INTO '{other}'"),
        ] {
            assert!(run(&conn, &sql, vec![], usize::MAX).is_err(), "{sql}");
        }
        assert!(!dir.path().join("other.db").exists());
    }
}
