//! Storage deployments' S3 endpoints as stored: which columns hold one,
//! and a row decoded with its secret key decrypted. Every component that
//! talks to storage reads its endpoints through here.

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
