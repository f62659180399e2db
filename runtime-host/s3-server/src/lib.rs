//! A small S3 server for demos and tests, embedded in `fado` (`fado s3
//! serve`): the `s3s` crate speaks the protocol and checks SigV4 signatures
//! (one key pair, path-style addressing), and [`store::DiskStore`] keeps
//! buckets and objects in files under one root. Not production storage: one
//! process, one disk, no replication of its own. See docs/s3-server.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod access;
mod disk;
pub mod keys;
mod legacy;
mod listing;
mod object;
pub mod store;

/// The SHA-256 of no bytes: the payload hash of a signed empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How long [`S3Server::shutdown`] lets in-flight requests run.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What one server serves, and to whom.
#[derive(Clone)]
pub struct Config {
    /// Where buckets and objects are kept (see docs/s3-server.md); created
    /// if missing.
    pub root: PathBuf,
    /// Port 0 picks any free port.
    pub listen: SocketAddr,
    pub access_key: String,
    pub secret_key: String,
    /// The region requests must be signed for (e.g. `us-east-1`).
    pub region: String,
}

impl std::fmt::Debug for Config {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("listen", &self.listen)
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("cannot use {} as the storage root", path.display())]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the storage in {}: {message}", path.display())]
    Storage { path: PathBuf, message: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running server.
pub struct S3Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl S3Server {
    /// Binds `listen` (port 0 = any free port), serves until shutdown.
    /// Creates `root` if missing.
    pub async fn start(config: Config) -> Result<S3Server, Error> {
        for (field, value) in [
            ("access key", &config.access_key),
            ("secret key", &config.secret_key),
            ("region", &config.region),
        ] {
            if value.is_empty() {
                return Err(Error::Empty { field });
            }
        }
        std::fs::create_dir_all(&config.root).map_err(|source| Error::Root {
            path: config.root.clone(),
            source,
        })?;
        // Opening reads every object's description (and may import the old
        // layout): file work, kept off the async threads.
        let (root, region) = (config.root.clone(), config.region.clone());
        let store = tokio::task::spawn_blocking(move || store::DiskStore::open(&root, region))
            .await
            .map_err(|e| Error::Storage {
                path: config.root.clone(),
                message: e.to_string(),
            })??;
        let mut builder = S3ServiceBuilder::new(store);
        builder.set_auth(access::SingleKeyAuth::new(
            config.access_key.clone(),
            config.secret_key.clone(),
        ));
        builder.set_access(access::SingleKeyAccess::new(config.region.clone()));
        let service = builder.build();

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, service, stopped));
        tracing::debug!(%local_addr, root = %config.root.display(), "S3 server listening");
        Ok(S3Server {
            local_addr,
            stop,
            task: Some(task),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// "http://127.0.0.1:PORT" — what a storage deployment's `endpoint` is set to.
    pub fn endpoint(&self) -> String {
        endpoint_of(self.local_addr)
    }

    /// Stops accepting, lets in-flight requests finish (at most [`DRAIN_TIMEOUT`]).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Dropped without shutdown(): stop serving all the same.
        let _ = self.stop.send(true);
    }
}

/// The URL clients use for `addr`: a wildcard address is reached on loopback.
fn endpoint_of(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

async fn serve(
    listener: TcpListener,
    service: s3s::service::S3Service,
    mut stopped: watch::Receiver<bool>,
) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: pause, keep serving.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let service = service.clone();
        let with_length =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                // A request whose body is known to be empty but that carries no
                // Content-Length (FaDO's wasi:http client sends
                // CreateMultipartUpload chunked, its payload hash that of
                // nothing) gets `Content-Length: 0`: s3s answers 411
                // MissingContentLength to a signed body of unknown length.
                if !req.headers().contains_key(http::header::CONTENT_LENGTH)
                    && (hyper::body::Body::is_end_stream(req.body())
                        || req
                            .headers()
                            .get("x-amz-content-sha256")
                            .is_some_and(|v| v.as_bytes() == EMPTY_SHA256.as_bytes()))
                {
                    req.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(0));
                }
                hyper::service::Service::call(&service, req)
            });
        let conn = http.serve_connection(TokioIo::new(socket), with_length);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "S3 connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("S3 requests still running after {DRAIN_TIMEOUT:?}; stopping without them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_wildcard_addresses_are_loopback() {
        assert_eq!(
            endpoint_of("0.0.0.0:3900".parse().unwrap()),
            "http://127.0.0.1:3900"
        );
        assert_eq!(
            endpoint_of("[::]:3900".parse().unwrap()),
            "http://[::1]:3900"
        );
        assert_eq!(
            endpoint_of("127.0.0.1:9".parse().unwrap()),
            "http://127.0.0.1:9"
        );
    }
}
