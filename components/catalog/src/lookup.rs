//! Resolving `{id-or-name}` path segments and body references to row ids,
//! with the answers the API gives for references to nothing.

use fado_model::Ref;
use fado_store::Db;
use fado_store::lookup::{self, Table};

use crate::error::{ApiError, ApiResult};

/// What a row of `table` is called in messages.
pub fn noun(table: Table) -> &'static str {
    match table {
        Table::Clusters => "cluster",
        Table::FaasDeployments => "FaaS deployment",
        Table::StorageDeployments => "storage deployment",
        Table::Buckets => "bucket",
    }
}

/// The id of the row of `table` that `r` names; when there is none, 404
/// for a path segment and 409 naming the body field otherwise.
pub fn resolve(db: &Db, table: Table, r: &Ref, field: Option<&str>) -> ApiResult<i64> {
    lookup::find(db, table, r)?.ok_or_else(|| missing(table, r, field))
}

/// The answer for a reference to no row.
fn missing(table: Table, r: &Ref, field: Option<&str>) -> ApiError {
    let what = noun(table);
    match field {
        Some(f) => ApiError::missing_at(f, format!("{what} {r}")),
        None => ApiError::not_found(format!("{what} {r}")),
    }
}

/// A list filter naming a row by id or name (`?cluster=`): the row's id,
/// or `None` when there is no such row (the list is then empty); 400 when
/// the value could name nothing.
pub fn filter(db: &Db, table: Table, field: &str, value: &str) -> ApiResult<Option<i64>> {
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
    Ok(lookup::find(db, table, &r)?)
}

/// Resolves a path segment (`42` or `hpc-cluster`).
pub fn segment(db: &Db, table: Table, segment: &str) -> ApiResult<i64> {
    resolve(db, table, &Ref::from_segment(segment), None)
}

/// Resolves a bucket path segment and a list of FaaS deployment references
/// (body field `faas`) in one query. Errors are those of [`segment`] and
/// [`resolve`], the bucket's first.
pub fn bucket_and_faas(db: &Db, bucket: &str, faas: &[Ref]) -> ApiResult<(i64, Vec<i64>)> {
    let bucket = Ref::from_segment(bucket);
    let Some((id, found)) = lookup::bucket_and_faas(db, &bucket, faas)? else {
        return Err(missing(Table::Buckets, &bucket, None));
    };
    let mut resolved = Vec::with_capacity(faas.len());
    for (i, (r, f)) in faas.iter().zip(found).enumerate() {
        match f {
            Some(f) => resolved.push(f),
            None => {
                return Err(missing(
                    Table::FaasDeployments,
                    r,
                    Some(&format!("faas[{i}]")),
                ));
            }
        }
    }
    Ok((id, resolved))
}
