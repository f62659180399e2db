//! Deployments' health as the health checker keeps it
//! (`health`, `health_failures`, `health_detail`, `health_checked_at` of
//! `storage_deployments` and `faas_deployments`). A change of health
//! changes placement and routes, so it bumps the catalog generation in the
//! same transaction.

use fado_model::Health;

use crate::secrets::SecretError;
use crate::storage::{ENDPOINT_COLUMNS, StoredEndpoint, endpoint_or_secret_error};
use crate::{Db, Param, Result, Row, opt_text};

/// The deployments that have a health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Storage,
    Faas,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Storage => "storage_deployments",
            Kind::Faas => "faas_deployments",
        }
    }
}

/// A deployment as the last checks left it.
#[derive(Debug, Clone)]
pub struct Checked {
    pub id: i64,
    pub name: String,
    pub health: Health,
    /// Failed checks in a row.
    pub failures: i64,
}

fn checked(r: &Row<'_>) -> Result<Checked> {
    Ok(Checked {
        id: r.i64("id")?,
        name: r.str("name")?,
        health: r.parse("health", Health::parse)?,
        failures: r.i64("health_failures")?,
    })
}

/// Every storage deployment, in id order, with its endpoint (or why its
/// secret cannot be read).
pub fn storage(
    db: &Db,
    encryption_key: &str,
) -> Result<Vec<(Checked, std::result::Result<StoredEndpoint, SecretError>)>> {
    let rows = db.query(
        &format!(
            "SELECT id, name, {}, health, health_failures FROM storage_deployments ORDER BY id",
            ENDPOINT_COLUMNS.join(", ")
        ),
        &[],
    )?;
    rows.iter()
        .map(|r| {
            Ok((
                checked(&r)?,
                endpoint_or_secret_error(&r, "", encryption_key)?,
            ))
        })
        .collect()
}

/// Every FaaS deployment, in id order, with its base URL.
pub fn faas(db: &Db) -> Result<Vec<(Checked, String)>> {
    let rows = db.query(
        "SELECT id, name, base_url, health, health_failures FROM faas_deployments ORDER BY id",
        &[],
    )?;
    rows.iter()
        .map(|r| Ok((checked(&r)?, r.str("base_url")?)))
        .collect()
}

/// Records a check of deployment `id` of `kind`:
/// its health, failures in a row and the failure's detail; bumps the
/// catalog generation when the health is not `before`.
pub fn record(
    db: &Db,
    kind: Kind,
    id: i64,
    before: Health,
    health: Health,
    failures: i64,
    detail: Option<&str>,
) -> Result<()> {
    let table = kind.table();
    db.transaction(|tx| {
        tx.execute(
            &format!(
                "UPDATE {table} SET health = $2, health_failures = $3, health_detail = $4,
                     health_checked_at = now()
                 WHERE id = $1"
            ),
            &[
                Param::Int64(id),
                Param::Str(health.as_str().into()),
                Param::Int32(i32::try_from(failures).unwrap_or(i32::MAX)),
                opt_text(detail),
            ],
        )?;
        if health != before {
            tx.bump_generation()?;
        }
        Ok(())
    })
}
