//! Storage deployments' S3 endpoints as stored: which columns hold one,
//! and a row decoded with its secret key decrypted. Every component that
//! talks to storage reads its endpoints through here.

use fado_model::{Health, StorageDeployment};

use crate::secrets::{self, SecretError};
use crate::{Db, Param, Row, StoreError};

/// The columns of an endpoint, for a select list; prefix each with a table
/// alias where the query joins (see [`endpoint_in`]).
pub const ENDPOINT_COLUMNS: [&str; 5] = [
    "endpoint",
    "region",
    "path_style",
    "access_key",
    "secret_key_enc",
];

/// How to reach a storage deployment, its secret key decrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEndpoint {
    pub url: String,
    pub region: String,
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// `alias.endpoint AS {prefix}endpoint, …`: an endpoint's columns in a
/// joined query, named so that [`endpoint_in`] with `prefix` reads them.
pub fn select_list(alias: &str, prefix: &str) -> String {
    ENDPOINT_COLUMNS
        .iter()
        .map(|c| format!("{alias}.{c} AS {prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The endpoint in `row`'s columns named `{prefix}endpoint`, … (see
/// [`select_list`]), decrypted with `encryption_key`.
pub fn endpoint_in(
    row: &Row<'_>,
    prefix: &str,
    encryption_key: &str,
) -> Result<StoredEndpoint, EndpointError> {
    Ok(endpoint_or_secret_error(row, prefix, encryption_key)??)
}

/// [`endpoint_in`] for a caller that goes on with its other rows when one
/// row's secret cannot be decrypted: only a row that cannot be read is an
/// error of the whole.
pub fn endpoint_or_secret_error(
    row: &Row<'_>,
    prefix: &str,
    encryption_key: &str,
) -> Result<Result<StoredEndpoint, SecretError>, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let secret_key_enc = row.bytes(&col("secret_key_enc"))?;
    let (url, region, path_style, access_key) = (
        row.str(&col("endpoint"))?,
        row.str(&col("region"))?,
        row.bool(&col("path_style"))?,
        row.str(&col("access_key"))?,
    );
    Ok(
        secrets::decrypt(encryption_key, &secret_key_enc).map(|secret_key| StoredEndpoint {
            url,
            region,
            path_style,
            access_key,
            secret_key,
        }),
    )
}

/// Storage deployment `id`'s endpoint; `None` when there is no such
/// deployment.
pub fn endpoint(
    db: &Db,
    id: i64,
    encryption_key: &str,
) -> Result<Option<StoredEndpoint>, EndpointError> {
    let rows = db.query(
        &format!(
            "SELECT {} FROM storage_deployments WHERE id = $1",
            ENDPOINT_COLUMNS.join(", ")
        ),
        &[Param::Int64(id)],
    )?;
    rows.first()
        .map(|r| endpoint_in(&r, "", encryption_key))
        .transpose()
}

// ---- the deployments themselves (table `storage_deployments`) -------------

const SELECT: &str = "SELECT s.id, s.name, s.cluster_id, c.name AS cluster, s.endpoint, s.region,
    s.path_style, s.access_key, s.notify_token_sha256 IS NOT NULL AS notifications, s.health,
    s.health_detail, s.health_checked_at, s.created_at, s.updated_at
    FROM storage_deployments s JOIN clusters c ON c.id = s.cluster_id";

fn deployment(r: Row<'_>) -> crate::Result<StorageDeployment> {
    Ok(StorageDeployment {
        id: r.i64("id")?,
        name: r.str("name")?,
        cluster_id: r.i64("cluster_id")?,
        cluster: r.str("cluster")?,
        endpoint: r.str("endpoint")?,
        region: r.str("region")?,
        path_style: r.bool("path_style")?,
        access_key: r.str("access_key")?,
        notifications: r.bool("notifications")?,
        health: r.parse("health", Health::parse)?,
        health_detail: r.opt_str("health_detail")?,
        health_checked_at: r.opt_time("health_checked_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

/// Up to `limit` deployments with ids above `after`, in id order;
/// `cluster` keeps those in that cluster.
pub fn list(
    db: &Db,
    after: i64,
    cluster: Option<i64>,
    limit: i64,
) -> crate::Result<Vec<StorageDeployment>> {
    let rows = db.query(
        &format!(
            "{SELECT} WHERE s.id > $1 AND ($2::bigint IS NULL OR s.cluster_id = $2)
             ORDER BY s.id LIMIT $3"
        ),
        &[
            Param::Int64(after),
            cluster.map(Param::Int64).unwrap_or(Param::DbNull),
            Param::Int64(limit),
        ],
    )?;
    rows.iter().map(deployment).collect()
}

pub fn get(db: &Db, id: i64) -> crate::Result<Option<StorageDeployment>> {
    let rows = db.query(&format!("{SELECT} WHERE s.id = $1"), &[Param::Int64(id)])?;
    rows.first().map(deployment).transpose()
}

/// The fields a write sets; on update `None` keeps a field.
#[derive(Debug, Default)]
pub struct Fields {
    pub name: Option<String>,
    pub cluster_id: Option<i64>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub access_key: Option<String>,
    /// Already encrypted (see [`crate::secrets`]).
    pub secret_key_enc: Option<Vec<u8>>,
    /// The notify token's digest; `Some("")` turns notifications off.
    pub notify_token_sha256: Option<String>,
}

impl Fields {
    fn params(&self) -> [Param; 8] {
        [
            crate::opt_text(self.name.as_deref()),
            self.cluster_id.map(Param::Int64).unwrap_or(Param::DbNull),
            crate::opt_text(self.endpoint.as_deref()),
            crate::opt_text(self.region.as_deref()),
            self.path_style.map(Param::Boolean).unwrap_or(Param::DbNull),
            crate::opt_text(self.access_key.as_deref()),
            self.secret_key_enc
                .clone()
                .map(Param::Binary)
                .unwrap_or(Param::DbNull),
            crate::opt_text(self.notify_token_sha256.as_deref()),
        ]
    }
}

/// Inserts a deployment with every field but the notify token set;
/// returns its id.
pub fn insert(db: &Db, f: &Fields) -> crate::Result<i64> {
    let rows = db.query(
        "INSERT INTO storage_deployments (name, cluster_id, endpoint, region, path_style, access_key,
             secret_key_enc, notify_token_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, '')) RETURNING id",
        &f.params(),
    )?;
    rows.one()?.i64("id")
}

/// Sets the fields given.
pub fn update(db: &Db, id: i64, f: &Fields) -> crate::Result<()> {
    let mut params = vec![Param::Int64(id)];
    params.extend(f.params());
    db.execute(
        "UPDATE storage_deployments SET name = coalesce($2, name), cluster_id = coalesce($3, cluster_id),
             endpoint = coalesce($4, endpoint), region = coalesce($5, region),
             path_style = coalesce($6, path_style), access_key = coalesce($7, access_key),
             secret_key_enc = coalesce($8, secret_key_enc),
             notify_token_sha256 = CASE WHEN $9::text IS NULL THEN notify_token_sha256 ELSE nullif($9, '') END,
             updated_at = now()
         WHERE id = $1",
        &params,
    )?;
    Ok(())
}

/// Records that deployment `id` just passed a check: healthy until a
/// health check says otherwise.
pub fn mark_healthy(db: &Db, id: i64) -> crate::Result<()> {
    db.execute(
        "UPDATE storage_deployments SET health = 'healthy', health_failures = 0, health_detail = NULL,
             health_checked_at = now()
         WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

/// Names of the buckets whose master copy deployment `id` holds, in name
/// order.
pub fn masters_on(db: &Db, id: i64) -> crate::Result<Vec<String>> {
    let rows = db.query(
        "SELECT name FROM buckets WHERE master_storage_id = $1 ORDER BY name",
        &[Param::Int64(id)],
    )?;
    rows.iter().map(|r| r.str("name")).collect()
}

pub fn delete(db: &Db, id: i64) -> crate::Result<()> {
    db.execute(
        "DELETE FROM storage_deployments WHERE id = $1",
        &[Param::Int64(id)],
    )?;
    Ok(())
}

/// The zones of the cluster deployment `id` is in.
pub fn zones_of(db: &Db, id: i64) -> crate::Result<Vec<String>> {
    let rows = db.query(
        "SELECT c.zones FROM storage_deployments s JOIN clusters c ON c.id = s.cluster_id WHERE s.id = $1",
        &[Param::Int64(id)],
    )?;
    rows.one()?.strings("zones")
}

/// Where a storage deployment is: its cluster and that cluster's zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub id: i64,
    pub cluster_id: i64,
    pub zones: Vec<String>,
}

/// Where each of the deployments `ids` is (those that exist, in no order).
pub fn placed(db: &Db, ids: &[i64]) -> crate::Result<Vec<Placed>> {
    let rows = db.query(
        "SELECT s.id, s.cluster_id, c.zones FROM storage_deployments s JOIN clusters c ON c.id = s.cluster_id
         WHERE s.id = ANY($1::bigint[])",
        &[crate::id_array(ids)],
    )?;
    rows.iter()
        .map(|r| {
            Ok(Placed {
                id: r.i64("id")?,
                cluster_id: r.i64("cluster_id")?,
                zones: r.strings("zones")?,
            })
        })
        .collect()
}

/// The deployment `r` names: its id, and the digest of its notify token
/// (`None`: notifications are off).
pub fn notify_token(db: &Db, r: &fado_model::Ref) -> crate::Result<Option<(i64, Option<String>)>> {
    let (column, param) = crate::lookup::by_ref(r);
    let rows = db.query(
        &format!("SELECT id, notify_token_sha256 FROM storage_deployments WHERE {column} = $1"),
        &[param],
    )?;
    rows.first()
        .map(|r| Ok((r.i64("id")?, r.opt_str("notify_token_sha256")?)))
        .transpose()
}
