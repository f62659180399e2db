//! Test component for the host's SQLite interfaces. `POST /sqlite` takes a
//! script as JSON and runs it on connections it opens, reporting every
//! outcome so the integration tests can assert on it:
//!
//! ```json
//! {"api": "v2" | "v3", "db": "default", "steps": [
//!   {"sql": "INSERT INTO t VALUES (?, ?)", "params": [{"integer": 1}, "null"]},
//!   {"op": "last_insert_rowid"}, {"op": "changes"},   // v3 only
//!   {"op": "open"}                                     // a second connection, used from then on
//! ]}
//! ```
//!
//! Values are `"null"`, `{"integer": n}`, `{"real": x}`, `{"text": s}` or
//! `{"blob": [bytes]}`, both ways. A failed open answers
//! `{"open_error": ...}`; a failed step reports `{"error": ...}` and the
//! script goes on. Errors are `{"kind": "io", "message": ...}` and the like.

use anyhow::Context;
use serde_json::{Value as Json, json};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{sqlite, sqlite3};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let script: Json = serde_json::from_slice(req.body()).context("the body is not JSON")?;
    let db = script["db"].as_str().unwrap_or("default");
    let steps = script["steps"].as_array().cloned().unwrap_or_default();
    let report = match script["api"].as_str() {
        Some("v2") => run::<V2>(db, &steps),
        Some("v3") => run::<V3>(db, &steps),
        other => anyhow::bail!("api must be \"v2\" or \"v3\", not {other:?}"),
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(report.to_string())
        .build())
}

/// What the script needs of a connection, over either interface.
trait Api: Sized {
    fn open(db: &str) -> Result<Self, Json>;
    fn execute(&self, sql: &str, params: &[Json]) -> Result<Json, Json>;
    fn last_insert_rowid(&self) -> Option<i64>;
    fn changes(&self) -> Option<u64>;
}

fn run<A: Api>(db: &str, steps: &[Json]) -> Json {
    let mut conn = match A::open(db) {
        Ok(c) => c,
        Err(e) => return json!({"open_error": e}),
    };
    // Connections replaced by `open` stay open until the script ends.
    let mut earlier = Vec::new();
    let mut results = Vec::new();
    for step in steps {
        let result = match (step["op"].as_str(), step["sql"].as_str()) {
            (_, Some(sql)) => {
                let params = step["params"].as_array().cloned().unwrap_or_default();
                match conn.execute(sql, &params) {
                    Ok(r) => r,
                    Err(e) => json!({"error": e}),
                }
            }
            (Some("last_insert_rowid"), _) => {
                json!({"last_insert_rowid": conn.last_insert_rowid()})
            }
            (Some("changes"), _) => json!({"changes": conn.changes()}),
            (Some("open"), _) => match A::open(db) {
                Ok(c) => {
                    earlier.push(std::mem::replace(&mut conn, c));
                    json!({"opened": true})
                }
                Err(e) => json!({"error": e}),
            },
            _ => json!({"error": {"kind": "bad-step", "step": step}}),
        };
        results.push(result);
    }
    json!({"results": results})
}

/// The two interfaces have the same shapes under different names.
macro_rules! api {
    ($name:ident, $m:ident, $rowid:expr, $changes:expr) => {
        struct $name($m::Connection);

        impl $name {
            fn error(e: $m::Error) -> Json {
                match e {
                    $m::Error::NoSuchDatabase => json!({"kind": "no-such-database"}),
                    $m::Error::AccessDenied => json!({"kind": "access-denied"}),
                    $m::Error::InvalidConnection => json!({"kind": "invalid-connection"}),
                    $m::Error::DatabaseFull => json!({"kind": "database-full"}),
                    $m::Error::Io(message) => json!({"kind": "io", "message": message}),
                }
            }

            fn to_value(v: &Json) -> Result<$m::Value, Json> {
                let bad = || json!({"kind": "bad-parameter", "value": v});
                if v == "null" {
                    return Ok($m::Value::Null);
                }
                let (kind, inner) = v
                    .as_object()
                    .and_then(|o| o.iter().next())
                    .ok_or_else(bad)?;
                Ok(match kind.as_str() {
                    "integer" => $m::Value::Integer(inner.as_i64().ok_or_else(bad)?),
                    "real" => $m::Value::Real(inner.as_f64().ok_or_else(bad)?),
                    "text" => $m::Value::Text(inner.as_str().ok_or_else(bad)?.to_string()),
                    "blob" => $m::Value::Blob(
                        inner
                            .as_array()
                            .ok_or_else(bad)?
                            .iter()
                            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                            .collect::<Option<Vec<u8>>>()
                            .ok_or_else(bad)?,
                    ),
                    _ => return Err(bad()),
                })
            }

            fn to_json(v: &$m::Value) -> Json {
                match v {
                    $m::Value::Null => json!("null"),
                    $m::Value::Integer(i) => json!({"integer": i}),
                    $m::Value::Real(f) => json!({"real": f}),
                    $m::Value::Text(s) => json!({"text": s}),
                    $m::Value::Blob(b) => json!({"blob": b}),
                }
            }
        }

        impl Api for $name {
            fn open(db: &str) -> Result<Self, Json> {
                $m::Connection::open(db).map(Self).map_err(Self::error)
            }

            fn execute(&self, sql: &str, params: &[Json]) -> Result<Json, Json> {
                let params = params
                    .iter()
                    .map(Self::to_value)
                    .collect::<Result<Vec<_>, _>>()?;
                let r = self.0.execute(sql, &params).map_err(Self::error)?;
                let rows: Vec<Json> = r
                    .rows
                    .iter()
                    .map(|row| Json::Array(row.values.iter().map(Self::to_json).collect()))
                    .collect();
                Ok(json!({"columns": r.columns, "rows": rows}))
            }

            fn last_insert_rowid(&self) -> Option<i64> {
                let rowid: fn(&$m::Connection) -> Option<i64> = $rowid;
                rowid(&self.0)
            }

            fn changes(&self) -> Option<u64> {
                let changes: fn(&$m::Connection) -> Option<u64> = $changes;
                changes(&self.0)
            }
        }
    };
}

// Spin 2's interface has neither counter.
api!(V2, sqlite, |_| None, |_| None);
api!(V3, sqlite3, |c| Some(c.last_insert_rowid()), |c| Some(
    c.changes()
));
