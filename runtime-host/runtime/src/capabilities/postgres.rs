//! `spin:postgres/postgres@4.0.0`: parameterised queries over a pooled
//! connection per address (deadpool), with every value type of the
//! interface. A guest `connection` holds one pooled session for its life, so
//! a transaction begun on it stays on the same server session. When the
//! guest lets go of it, whether it finished, forgot or trapped, the session
//! is reset (transaction, settings, advisory locks, temporary tables) before
//! anyone else gets it; a session that cannot be reset is closed.

// The error type is the interface's own `error` variant; its size is not ours to choose.
#![allow(clippy::result_large_err)]

mod types;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use fado_manifest::AllowedHosts;
use tokio_postgres::config::{Host, SslMode};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use super::pools::PoolsByAddress;
use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;
use crate::bindings::spin::postgres::postgres::{
    self as v4, DbError, Error, ParameterValue, QueryError, RowSet,
};

/// Sessions kept per address; more callers wait up to [`POOL_WAIT`].
const POOL_SIZE: usize = 16;
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Prepared statements cached per session before the cache is reset.
const STATEMENT_CACHE_LIMIT: usize = 512;
/// Open connections one instance may hold at once.
const MAX_CONNECTIONS_PER_INSTANCE: usize = 16;

pub struct OutboundPostgres {
    pools: Arc<PgPools>,
    allowed: Vec<Arc<AllowedHosts>>,
}

#[derive(Default)]
struct PgPools {
    by_address: PoolsByAddress<Pool>,
}

pub struct InstancePostgres {
    pools: Arc<PgPools>,
    allowed: Arc<AllowedHosts>,
    table: ResourceTable,
    open: usize,
}

/// Puts a session back as a new one would be, in one round trip, keeping the
/// statements the host prepared (its cache would dangle after `DISCARD
/// ALL`). `ROLLBACK` outside a transaction is only a notice.
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// The host side of a guest's `connection` resource: one pooled session.
pub struct PgConnection {
    client: Option<Object>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // The reset runs after the guest's answer has gone; the session
        // returns to its pool only when it is done.
        let mut resetting = Resetting(Some(client));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let client = resetting.0.as_ref().expect("taken only here");
                match client.batch_execute(RESET_SESSION).await {
                    Ok(()) => drop(resetting.0.take()),
                    Err(e) => {
                        tracing::warn!(
                            "resetting a pooled Postgres session failed, closing it: {e}"
                        )
                    }
                }
            });
        }
    }
}

/// A session on its way back to the pool: closed unless its reset finished.
struct Resetting(Option<Object>);

impl Drop for Resetting {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = Object::take(client);
        }
    }
}

impl Capability for OutboundPostgres {
    type InstanceState = InstancePostgres;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstancePostgres,
    ) -> Result<()> {
        v4::add_to_linker::<StoreData, HasSelf<InstancePostgres>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        Ok(Self {
            pools: Arc::new(PgPools::default()),
            allowed: app
                .components
                .iter()
                .map(|c| c.allowed_hosts.clone())
                .collect(),
        })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstancePostgres> {
        Ok(InstancePostgres {
            pools: self.pools.clone(),
            allowed: self.allowed[component].clone(),
            table: ResourceTable::new(),
            open: 0,
        })
    }
}

impl PgPools {
    fn pool(&self, address: &str, config: tokio_postgres::Config) -> Result<Pool, Error> {
        self.by_address.get(address, || Self::build(config))
    }

    fn build(config: tokio_postgres::Config) -> Result<Pool, Error> {
        let mgr_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, mgr_config)
        } else {
            Manager::from_config(config, tls_connector(), mgr_config)
        };
        Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::ConnectionFailed(e.to_string()))
    }
}

/// TLS for `sslmode=prefer|require`. Like libpq in those modes, the
/// connection is encrypted but the server certificate is not checked against
/// a CA (tokio-postgres has no `verify-ca`/`verify-full`); handshake
/// signatures are still verified, so the session is bound to the key the
/// server presented.
pub fn tls_connector() -> tokio_postgres_rustls::MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn query_failed(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let mut extras = Vec::new();
            let mut push = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    extras.push((k.to_string(), v.to_string()));
                }
            };
            push("hint", db.hint());
            push("where", db.where_());
            push("schema", db.schema());
            push("table", db.table());
            push("column", db.column());
            push("datatype", db.datatype());
            push("constraint", db.constraint());
            push("routine", db.routine());
            Error::QueryFailed(QueryError::DbError(DbError {
                as_text: db.to_string(),
                severity: db.severity().to_string(),
                code: db.code().code().to_string(),
                message: db.message().to_string(),
                detail: db.detail().map(str::to_string),
                extras,
            }))
        }
        None => Error::QueryFailed(QueryError::Text(e.to_string())),
    }
}

impl InstancePostgres {
    fn ensure_allowed(&self, config: &tokio_postgres::Config) -> Result<(), Error> {
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let host = match host {
                Host::Tcp(h) => h,
                Host::Unix(_) => {
                    return Err(Error::ConnectionFailed(
                        "Unix socket addresses are not supported; use host=... with a TCP address"
                            .into(),
                    ));
                }
            };
            let port = ports.get(i).or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            });
            if !self.allowed.allows("postgres", host, port.copied()) {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                tracing::info!(
                    host,
                    "outbound Postgres denied: not in allowed_outbound_hosts"
                );
                return Err(Error::ConnectionFailed(format!(
                    "address postgres://{host}{port} is not permitted"
                )));
            }
        }
        Ok(())
    }

    async fn prepared(
        &mut self,
        r: &Resource<PgConnection>,
        statement: &str,
    ) -> Result<tokio_postgres::Statement, Error> {
        let conn = self
            .table
            .get_mut(r)
            .map_err(|e| Error::Other(e.to_string()))?;
        let client = conn
            .client
            .as_ref()
            .ok_or_else(|| Error::Other("connection closed".into()))?;
        if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
            client.statement_cache.clear();
        }
        client.prepare_cached(statement).await.map_err(query_failed)
    }

    fn client(&self, r: &Resource<PgConnection>) -> Result<&Object, Error> {
        let conn = self.table.get(r).map_err(|e| Error::Other(e.to_string()))?;
        conn.client
            .as_ref()
            .ok_or_else(|| Error::Other("connection closed".into()))
    }
}

impl v4::Host for InstancePostgres {}

impl v4::HostConnection for InstancePostgres {
    async fn open(&mut self, address: String) -> Result<Resource<PgConnection>, Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
        self.ensure_allowed(&config)?;
        if self.open >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(Error::ConnectionFailed("too many connections".into()));
        }
        let pool = self.pools.pool(&address, config)?;
        let client = pool
            .get()
            .await
            .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
        let r = self
            .table
            .push(PgConnection {
                client: Some(client),
            })
            .map_err(|e| Error::Other(e.to_string()))?;
        self.open += 1;
        Ok(r)
    }

    async fn query(
        &mut self,
        r: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        let stmt = self.prepared(&r, &statement).await?;
        let values = types::parameters(&params, stmt.params())?;
        let refs = types::as_refs(&values);
        let client = self.client(&r)?;
        let rows = client.query(&stmt, &refs).await.map_err(query_failed)?;
        types::row_set(&stmt, &rows)
    }

    async fn execute(
        &mut self,
        r: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        let stmt = self.prepared(&r, &statement).await?;
        let values = types::parameters(&params, stmt.params())?;
        let refs = types::as_refs(&values);
        let client = self.client(&r)?;
        client.execute(&stmt, &refs).await.map_err(query_failed)
    }

    async fn drop(&mut self, r: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        self.open -= 1;
        Ok(())
    }
}
