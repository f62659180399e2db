//! Resolving `{id-or-name}` path segments and body references to row ids.

use fado_model::Ref;
use fado_store::{Db, Param};

use crate::error::{ApiError, ApiResult};

/// The id of the row of `table` that `r` names; 404 (or 400 for a body
/// field) when there is none.
pub fn resolve(db: &Db, table: &str, what: &str, r: &Ref, field: Option<&str>) -> ApiResult<i64> {
    let rows = match r {
        Ref::Id(id) => db.query(
            &format!("SELECT id FROM {table} WHERE id = $1"),
            &[Param::Int64(*id)],
        )?,
        Ref::Name(n) => db.query(
            &format!("SELECT id FROM {table} WHERE name = $1"),
            &[Param::Str(n.clone())],
        )?,
    };
    match rows.first() {
        Some(row) => Ok(row.i64("id")?),
        None => Err(match field {
            Some(f) => ApiError::invalid(f, format!("{what} {r} does not exist")),
            None => ApiError::not_found(format!("{what} {r}")),
        }),
    }
}

/// Resolves a path segment (`42` or `hpc-cluster`).
pub fn segment(db: &Db, table: &str, what: &str, segment: &str) -> ApiResult<i64> {
    resolve(db, table, what, &Ref::from_segment(segment), None)
}
