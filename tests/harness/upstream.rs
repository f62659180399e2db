//! A small HTTP server the components call in outbound tests, running on
//! its own thread so it outlives any one test's runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Deterministic content: byte i is `i % 251`, so corruption or reordering shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The shared upstream's address.
pub fn upstream() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("upstream runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind upstream");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("report addr");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(
                                TokioIo::new(stream),
                                hyper::service::service_fn(serve),
                            )
                            .await;
                    });
                }
            });
        });
        rx.recv().expect("upstream started")
    })
}

fn query_value(req: &Request<hyper::body::Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn serve(
    req: Request<hyper::body::Incoming>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let full = |status: u16, text: &str| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(text.to_string())).boxed())
            .expect("response")
    };
    let path = req.uri().path().to_string();
    Ok(match path.as_str() {
        "/hello" => full(200, "upstream hello"),
        "/big" => {
            let n = query_value(&req, "bytes").unwrap_or(1 << 20) as usize;
            let data = pattern(n);
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = data
                .chunks(64 * 1024)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            Response::new(StreamBody::new(futures::stream::iter(chunks)).boxed())
        }
        "/slow" => {
            let ms = query_value(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            full(200, "slow done")
        }
        p if p.starts_with("/status/") => {
            let code = p.trim_start_matches("/status/").parse().unwrap_or(500);
            full(code, "status")
        }
        _ => full(404, "no such upstream path"),
    })
}
