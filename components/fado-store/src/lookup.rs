//! Finding rows by a reference: a numeric id or a unique name.

use fado_model::Ref;

use crate::{Db, Param, Result};

/// Tables whose rows are referred to by id or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Clusters,
    FaasDeployments,
    StorageDeployments,
    Buckets,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Clusters => "clusters",
            Table::FaasDeployments => "faas_deployments",
            Table::StorageDeployments => "storage_deployments",
            Table::Buckets => "buckets",
        }
    }
}

/// The condition selecting the row `r` names: its column and the value
/// for parameter `$1`.
pub(crate) fn by_ref(r: &Ref) -> (&'static str, Param) {
    match r {
        Ref::Id(id) => ("id", Param::Int64(*id)),
        Ref::Name(n) => ("name", Param::Str(n.clone())),
    }
}

/// The id of the row of `table` that `r` names, if there is one.
pub fn find(db: &Db, table: Table, r: &Ref) -> Result<Option<i64>> {
    let (column, param) = by_ref(r);
    let rows = db.query(
        &format!("SELECT id FROM {} WHERE {column} = $1", table.name()),
        &[param],
    )?;
    rows.first().map(|row| row.i64("id")).transpose()
}

/// A bucket and a list of FaaS deployments resolved in one query (a route
/// override is the control plane's hot path, and each round trip costs
/// about 0.5 ms): `None` when there is no such bucket, else its id and
/// each deployment's id, `None` for a reference to nothing.
pub fn bucket_and_faas(
    db: &Db,
    bucket: &Ref,
    faas: &[Ref],
) -> Result<Option<(i64, Vec<Option<i64>>)>> {
    let (bucket_id, bucket_name) = match bucket {
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
    let Some(bucket) = rows
        .first()
        .map(|r| r.opt_i64("bucket"))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    let resolved = rows
        .iter()
        .take(faas.len())
        .map(|r| r.opt_i64("id"))
        .collect::<Result<_>>()?;
    Ok(Some((bucket, resolved)))
}
