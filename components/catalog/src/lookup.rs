//! Resolving `{id-or-name}` path segments and body references to row ids.

use fado_model::Ref;
use fado_store::{Db, Param};

use crate::error::{ApiError, ApiResult};

/// The id of the row of `table` that `r` names; when there is none, 404
/// for a path segment and 409 naming the body field otherwise.
pub fn resolve(db: &Db, table: &str, what: &str, r: &Ref, field: Option<&str>) -> ApiResult<i64> {
    find(db, table, r)?.ok_or_else(|| missing(what, r, field))
}

/// The id of the row of `table` that `r` names, if there is one.
fn find(db: &Db, table: &str, r: &Ref) -> ApiResult<Option<i64>> {
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
    Ok(rows.first().map(|row| row.i64("id")).transpose()?)
}

/// The answer for a reference to no row.
fn missing(what: &str, r: &Ref, field: Option<&str>) -> ApiError {
    match field {
        Some(f) => ApiError::missing_at(f, format!("{what} {r}")),
        None => ApiError::not_found(format!("{what} {r}")),
    }
}

/// A list filter naming a row by id or name (`?cluster=`): the row's id,
/// or `None` when there is no such row (the list is then empty); 400 when
/// the value could name nothing.
pub fn filter(db: &Db, table: &str, field: &str, value: &str) -> ApiResult<Option<i64>> {
    let r = Ref::from_segment(value);
    match &r {
        Ref::Name(n) => fado_model::validate::name(field, n)?,
        Ref::Id(id) if *id < 1 => {
            return Err(ApiError::invalid(
                field,
                format!("{id} is not an id (ids start at 1)"),
            ));
        }
        Ref::Id(_) => {}
    }
    find(db, table, &r)
}

/// Resolves a path segment (`42` or `hpc-cluster`).
pub fn segment(db: &Db, table: &str, what: &str, segment: &str) -> ApiResult<i64> {
    resolve(db, table, what, &Ref::from_segment(segment), None)
}

/// Resolves a bucket path segment and a list of FaaS deployment references
/// (body field `faas`) in one query: a route override is the control
/// plane's hot path, and each round trip to Postgres costs about 0.5 ms.
/// Errors are those of [`segment`] and [`resolve`], the bucket's first.
pub fn bucket_and_faas(db: &Db, bucket: &str, faas: &[Ref]) -> ApiResult<(i64, Vec<i64>)> {
    let bucket = Ref::from_segment(bucket);
    let (bucket_id, bucket_name) = match &bucket {
        Ref::Id(id) => (Param::Int64(*id), Param::DbNull),
        Ref::Name(n) => (Param::DbNull, Param::Str(n.clone())),
    };
    let ids = faas.iter().map(|r| match r {
        Ref::Id(id) => Some(*id),
        Ref::Name(_) => None,
    });
    let names = faas.iter().map(|r| match r {
        Ref::Id(_) => None,
        Ref::Name(n) => Some(n.clone()),
    });
    // One row per reference, in order; with none, one row for the bucket.
    let rows = db.query(
        "SELECT (SELECT id FROM buckets WHERE id = $1 OR name = $2) AS bucket, f.id
         FROM (SELECT 1) one
         LEFT JOIN unnest($3::bigint[], $4::text[]) WITH ORDINALITY AS r(id, name, ord) ON true
         LEFT JOIN faas_deployments f ON f.id = r.id OR f.name = r.name
         ORDER BY r.ord",
        &[
            bucket_id,
            bucket_name,
            Param::ArrayInt64(ids.collect()),
            Param::ArrayStr(names.collect()),
        ],
    )?;
    let found = match rows.first() {
        Some(row) => row.opt_i64("bucket")?,
        None => None,
    };
    let Some(id) = found else {
        return Err(missing("bucket", &bucket, None));
    };
    let mut resolved = Vec::with_capacity(faas.len());
    for (i, (r, row)) in faas.iter().zip(rows.iter()).enumerate() {
        match row.opt_i64("id")? {
            Some(f) => resolved.push(f),
            None => {
                return Err(missing("FaaS deployment", r, Some(&format!("faas[{i}]"))));
            }
        }
    }
    Ok((id, resolved))
}
