//! Closed-loop HTTP/1.1 load generator.
//!
//! Why our own rather than `wrk`: it needs no system package (a fresh machine
//! or CI only needs cargo), it keeps every latency in an HdrHistogram (no
//! averaging of averages), and results come back as typed values instead of
//! parsed text. Like `wrk`, it is closed loop: each of `concurrency`
//! keep-alive connections sends its next request as soon as the previous
//! response has been read in full. It runs on a single-threaded tokio runtime
//! so it takes at most one of the machine's cores, like `wrk -t1`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// No single request may take longer than this; a stuck server counts as errors
/// instead of hanging the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One measurement: `concurrency` connections hammer `path` for `warmup`, then
/// for `duration` with latencies recorded.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub path: String,
    pub concurrency: u32,
    pub warmup: Duration,
    pub duration: Duration,
    /// Headers sent with every request (`Authorization`, a bucket header).
    pub headers: Vec<(String, String)>,
    /// Count successful responses by the value of this response header
    /// (which upstream served them, behind a proxy).
    pub tally_header: Option<String>,
    /// Open loop: requests per second over all connections, each connection
    /// sending on its own schedule; latency then counts from the scheduled
    /// time, so a stalled server is not hidden by the client waiting for it
    /// (coordinated omission). `None`: closed loop.
    pub rate: Option<f64>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latencies {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub concurrency: u32,
    /// Successful (2xx) responses whose request started and ended inside the window.
    pub requests: u64,
    /// Non-2xx responses, timeouts and connection failures inside the window.
    pub errors: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
    pub rps: f64,
    pub latency_us: Latencies,
    /// Successful responses in the window by `tally_header` value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tally: BTreeMap<String, u64>,
}

/// Runs one measurement on its own single-threaded runtime.
pub fn run(spec: &LoadSpec) -> Result<LoadResult> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("creating the load generator runtime")?;
    rt.block_on(run_async(spec))
}

/// Sends one GET and returns the status and body; used for readiness checks and
/// to verify a route answers as expected before it is measured.
pub fn get_once(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(StatusCode, Bytes)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("creating a client runtime")?;
    rt.block_on(async {
        let fut = async {
            let mut sender = connect(addr).await?;
            send(&mut sender, addr, path, &[], None)
                .await
                .map(|r| (r.status, r.body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .with_context(|| format!("GET http://{addr}{path} timed out after {timeout:?}"))?
    })
}

async fn run_async(spec: &LoadSpec) -> Result<LoadResult> {
    if spec.concurrency == 0 {
        bail!("concurrency must be at least 1");
    }
    let start = Instant::now();
    let window = (start + spec.warmup, start + spec.warmup + spec.duration);
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|i| {
            // Connection i sends at start + (i + k·concurrency) / rate.
            let pace = spec.rate.filter(|r| *r > 0.0).map(|r| {
                let every = Duration::from_secs_f64(f64::from(spec.concurrency) / r);
                (start + Duration::from_secs_f64(f64::from(i) / r), every)
            });
            tokio::spawn(worker(
                spec.addr,
                spec.path.clone(),
                spec.headers.clone(),
                spec.tally_header.clone(),
                window,
                pace,
            ))
        })
        .collect();

    let mut hist = new_histogram();
    let (mut errors, mut first_error) = (0, None);
    let mut tally = BTreeMap::new();
    for w in workers {
        let stats = w.await.context("load generator task panicked")?;
        hist.add(&stats.hist).context("merging histograms")?;
        for (k, n) in stats.tally {
            *tally.entry(k).or_insert(0) += n;
        }
        errors += stats.errors;
        first_error = first_error.or(stats.first_error);
    }
    let seconds = spec.duration.as_secs_f64();
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(LoadResult {
        concurrency: spec.concurrency,
        requests: hist.len(),
        errors,
        first_error,
        seconds,
        rps: hist.len() as f64 / seconds,
        latency_us: Latencies {
            mean: hist.mean() / 1000.0,
            p50: us(hist.value_at_quantile(0.50)),
            p90: us(hist.value_at_quantile(0.90)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        },
        tally,
    })
}

/// Nanosecond resolution up to one minute, three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

struct WorkerStats {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    tally: BTreeMap<String, u64>,
}

async fn worker(
    addr: SocketAddr,
    path: String,
    headers: Vec<(String, String)>,
    tally_header: Option<String>,
    (from, until): (Instant, Instant),
    mut pace: Option<(Instant, Duration)>,
) -> WorkerStats {
    let mut stats = WorkerStats {
        hist: new_histogram(),
        errors: 0,
        first_error: None,
        tally: BTreeMap::new(),
    };
    let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
    while Instant::now() < until {
        // Reconnect outside the timed section: a server closing keep-alive
        // connections should not count as request latency.
        let sender = match conn.as_mut().filter(|s| !s.is_closed()) {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => conn.insert(s),
                Err(e) => {
                    if Instant::now() >= from {
                        stats.error(format!("connect: {e:#}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let t0 = match &mut pace {
            Some((due, every)) => {
                tokio::time::sleep_until((*due).into()).await;
                let scheduled = *due;
                *due += *every;
                scheduled
            }
            None => Instant::now(),
        };
        if t0 >= until {
            break;
        }
        let outcome = tokio::time::timeout(
            REQUEST_TIMEOUT,
            send(sender, addr, &path, &headers, tally_header.as_deref()),
        )
        .await;
        let t1 = Instant::now();
        let in_window = t0 >= from && t1 <= until;
        match outcome {
            Ok(Ok(r)) if r.status.is_success() => {
                if in_window {
                    let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                    stats.hist.saturating_record(ns.max(1));
                    if let Some(v) = r.tallied {
                        *stats.tally.entry(v).or_insert(0) += 1;
                    }
                }
            }
            Ok(Ok(r)) => {
                if in_window {
                    let body =
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
                    stats.error(format!("HTTP {}: {body}", r.status));
                }
            }
            Ok(Err(e)) => {
                conn = None;
                if in_window {
                    stats.error(format!("{e:#}"));
                }
            }
            Err(_) => {
                conn = None;
                if in_window {
                    stats.error(format!("timed out after {REQUEST_TIMEOUT:?}"));
                }
            }
        }
    }
    stats
}

impl WorkerStats {
    fn error(&mut self, message: String) {
        self.errors += 1;
        self.first_error.get_or_insert(message);
    }
}

pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    // Small request/response pairs: don't let Nagle delay them.
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Errors surface through the sender; nothing to do with them here.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One response: its status, the value of the tallied header, its body.
pub struct Answer {
    pub status: StatusCode,
    pub tallied: Option<String>,
    pub body: Bytes,
}

/// Sends one GET on `sender` and reads the whole response.
pub async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    tally_header: Option<&str>,
) -> Result<Answer> {
    sender.ready().await.context("connection not ready")?;
    let mut request = Request::get(path).header(HOST, addr.to_string());
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let request = request.body(Empty::new()).context("building the request")?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let tallied = tally_header
        .and_then(|h| response.headers().get(h))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the response body")?
        .to_bytes();
    Ok(Answer {
        status,
        tallied,
        body,
    })
}
