//! Table `faas_deployments`: the FaaS endpoints invocations are routed to.

use fado_model::{FaasDeployment, Health, Platform};

use crate::{Db, Param, Result, Row, opt_text, text_array};

const SELECT: &str = "SELECT f.id, f.name, f.cluster_id, c.name AS cluster, f.platform, f.base_url,
    f.path_template, f.labels, f.timeout_ms, f.health, f.health_detail, f.health_checked_at,
    f.created_at, f.updated_at
    FROM faas_deployments f JOIN clusters c ON c.id = f.cluster_id";

fn from_row(r: Row<'_>) -> Result<FaasDeployment> {
    Ok(FaasDeployment {
        id: r.i64("id")?,
        name: r.str("name")?,
        cluster_id: r.i64("cluster_id")?,
        cluster: r.str("cluster")?,
        platform: r.parse("platform", Platform::parse)?,
        base_url: r.str("base_url")?,
        path_template: r.str("path_template")?,
        labels: r.strings("labels")?,
        timeout_ms: r.i64("timeout_ms")?,
        health: r.parse("health", Health::parse)?,
        health_detail: r.opt_str("health_detail")?,
        health_checked_at: r.opt_time("health_checked_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// The fields a write sets; on update `None` keeps a field.
#[derive(Debug, Default)]
pub struct Fields {
    pub name: Option<String>,
    pub cluster_id: Option<i64>,
    pub platform: Option<Platform>,
    pub base_url: Option<String>,
    pub path_template: Option<String>,
    pub labels: Option<Vec<String>>,
    pub timeout_ms: Option<i64>,
}

impl Fields {
    fn params(&self) -> [Param; 7] {
        [
            opt_text(self.name.as_deref()),
            self.cluster_id.map(Param::Int64).unwrap_or(Param::DbNull),
            opt_text(self.platform.map(|p| p.as_str())),
            opt_text(self.base_url.as_deref()),
            opt_text(self.path_template.as_deref()),
            self.labels
                .as_deref()
                .map(text_array)
                .unwrap_or(Param::DbNull),
            // The column is an int4; the API bounds the value well inside it.
            self.timeout_ms
                .map(|t| Param::Int32(t as i32))
                .unwrap_or(Param::DbNull),
        ]
    }
}

/// Up to `limit` deployments with ids above `after`, in id order;
/// `cluster` keeps those in that cluster.
pub fn list(db: &Db, after: i64, cluster: Option<i64>, limit: i64) -> Result<Vec<FaasDeployment>> {
    let rows = db.query(
        &format!(
            "{SELECT} WHERE f.id > $1 AND ($2::bigint IS NULL OR f.cluster_id = $2)
             ORDER BY f.id LIMIT $3"
        ),
        &[
            Param::Int64(after),
            cluster.map(Param::Int64).unwrap_or(Param::DbNull),
            Param::Int64(limit),
        ],
    )?;
    rows.iter().map(from_row).collect()
}

pub fn get(db: &Db, id: i64) -> Result<Option<FaasDeployment>> {
    let rows = db.query(&format!("{SELECT} WHERE f.id = $1"), &[Param::Int64(id)])?;
    rows.first().map(from_row).transpose()
}

/// Inserts a deployment with every field set; returns its id.
pub fn insert(db: &Db, f: &Fields) -> Result<i64> {
    let rows = db.query(
        "INSERT INTO faas_deployments (name, cluster_id, platform, base_url, path_template, labels, timeout_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &f.params(),
    )?;
    rows.one()?.i64("id")
}

/// Sets the fields given.
pub fn update(db: &Db, id: i64, f: &Fields) -> Result<()> {
    let mut params = vec![Param::Int64(id)];
    params.extend(f.params());
    db.execute(
        "UPDATE faas_deployments SET name = coalesce($2, name), cluster_id = coalesce($3, cluster_id),
             platform = coalesce($4, platform), base_url = coalesce($5, base_url),
             path_template = coalesce($6, path_template), labels = coalesce($7, labels),
             timeout_ms = coalesce($8, timeout_ms), updated_at = now()
         WHERE id = $1",
        &params,
    )?;
    Ok(())
}

pub fn delete(db: &Db, id: i64) -> Result<()> {
    db.execute(
        "DELETE FROM faas_deployments WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}
