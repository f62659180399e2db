//! Table `clusters`: sites with the zones placement policies refer to.

use fado_model::Cluster;

use crate::{Db, Param, Result, Row, opt_text, text_array};

const COLUMNS: &str = "id, name, zones, created_at, updated_at";

fn from_row(r: Row<'_>) -> Result<Cluster> {
    Ok(Cluster {
        id: r.i64("id")?,
        name: r.str("name")?,
        zones: r.strings("zones")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// Up to `limit` clusters with ids above `after`, in id order; `zone`
/// keeps those in that zone.
pub fn list(db: &Db, after: i64, zone: Option<&str>, limit: i64) -> Result<Vec<Cluster>> {
    let rows = db.query(
        &format!(
            "SELECT {COLUMNS} FROM clusters WHERE id > $1 AND ($2::text IS NULL OR $2 = ANY(zones))
             ORDER BY id LIMIT $3"
        ),
        &[Param::Int64(after), opt_text(zone), Param::Int64(limit)],
    )?;
    rows.iter().map(from_row).collect()
}

pub fn get(db: &Db, id: i64) -> Result<Option<Cluster>> {
    let rows = db.query(
        &format!("SELECT {COLUMNS} FROM clusters WHERE id = $1"),
        &[Param::Int64(id)],
    )?;
    rows.first().map(from_row).transpose()
}

pub fn insert(db: &Db, name: &str, zones: &[String]) -> Result<Cluster> {
    let rows = db.query(
        &format!("INSERT INTO clusters (name, zones) VALUES ($1, $2) RETURNING {COLUMNS}"),
        &[Param::Str(name.into()), text_array(zones)],
    )?;
    from_row(rows.one()?)
}

/// Sets the fields given (`None` keeps one).
pub fn update(db: &Db, id: i64, name: Option<&str>, zones: Option<&[String]>) -> Result<Cluster> {
    let rows = db.query(
        &format!(
            "UPDATE clusters SET name = coalesce($2, name), zones = coalesce($3, zones), updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[
            Param::Int64(id),
            opt_text(name),
            zones.map(text_array).unwrap_or(Param::DbNull),
        ],
    )?;
    from_row(rows.one()?)
}

pub fn delete(db: &Db, id: i64) -> Result<()> {
    db.execute("DELETE FROM clusters WHERE id = $1", &[Param::Int64(id)])?;
    Ok(())
}

/// Names of the buckets whose master copy is on cluster `id`, in name
/// order.
pub fn masters_on(db: &Db, id: i64) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT b.name FROM buckets b JOIN storage_deployments s ON s.id = b.master_storage_id
         WHERE s.cluster_id = $1 ORDER BY b.name",
        &[Param::Int64(id)],
    )?;
    rows.iter().map(|r| r.str("name")).collect()
}

/// Names (the first 20) of the buckets whose master copy is on cluster
/// `id` and that would be outside their allowed zones if it had `zones`.
pub fn masters_outside(db: &Db, id: i64, zones: &[String]) -> Result<Vec<String>> {
    let rows = db.query(
        "SELECT b.name FROM buckets b JOIN storage_deployments s ON s.id = b.master_storage_id
         WHERE s.cluster_id = $1 AND cardinality(b.allowed_zones) > 0 AND NOT (b.allowed_zones && $2)
         ORDER BY b.name LIMIT 20",
        &[Param::Int64(id), text_array(zones)],
    )?;
    rows.iter().map(|r| r.str("name")).collect()
}
