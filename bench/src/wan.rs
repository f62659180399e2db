//! A wide-area link between two places, emulated by a TCP proxy that delays
//! every byte by the link's one-way latency and, optionally, serialises it
//! at the link's bandwidth.
//!
//! Why our own: `tc netem` does not work on this machine, and Toxiproxy, the
//! usual latency-injecting proxy, is a Go server that neither apt nor
//! crates.io carries (crates.io only has clients of it). The model is
//! deliberately simple and stated in the report: propagation delay both
//! ways, one RTT for the TCP handshake, an optional rate shared by all
//! connections on the link per direction; no loss, jitter or slow start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one link is.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub name: String,
    pub listen: SocketAddr,
    pub target: SocketAddr,
    /// Round-trip time; each direction gets half.
    pub rtt: Duration,
    /// Bytes per second each way, shared by the link's connections (`None`:
    /// unlimited).
    pub rate: Option<f64>,
}

/// A running link; dropping it stops accepting (open connections end with
/// their tasks when the runtime stops).
pub struct Link {
    pub spec: LinkSpec,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    /// Bytes per second as f64 bits; 0: unlimited. Read per chunk, so a
    /// change applies to open connections too.
    rate: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl Link {
    pub fn set_rate(&self, rate: Option<f64>) {
        self.rate
            .store(rate.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// When the link's sender in one direction is next free.
type Wire = Arc<Mutex<Instant>>;

pub async fn start(spec: LinkSpec) -> Result<Link> {
    let listener = TcpListener::bind(spec.listen)
        .await
        .with_context(|| format!("link {}: binding {}", spec.name, spec.listen))?;
    let addr = listener.local_addr()?;
    let connections = Arc::new(AtomicU64::new(0));
    let wires: (Wire, Wire) = (
        Arc::new(Mutex::new(Instant::now())),
        Arc::new(Mutex::new(Instant::now())),
    );
    let rate = Arc::new(AtomicU64::new(spec.rate.unwrap_or(0.0).to_bits()));
    let task_spec = spec.clone();
    let task_rate = rate.clone();
    let counter = connections.clone();
    let accept = tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let spec = task_spec.clone();
            let wires = wires.clone();
            let rate = task_rate.clone();
            tokio::spawn(async move {
                if let Err(e) = carry(client, &spec, rate, wires).await {
                    eprintln!("fado-bench: link {}: {e:#}", spec.name);
                }
            });
        }
    });
    Ok(Link {
        spec,
        addr,
        connections,
        rate,
        accept,
    })
}

async fn carry(
    client: TcpStream,
    spec: &LinkSpec,
    rate: Arc<AtomicU64>,
    (up, down): (Wire, Wire),
) -> Result<()> {
    // SYN, SYN-ACK: the client could not send before one round trip.
    tokio::time::sleep(spec.rtt).await;
    let server = TcpStream::connect(spec.target)
        .await
        .with_context(|| format!("connecting to {}", spec.target))?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let one_way = spec.rtt / 2;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let there = pump(cr, sw, one_way, rate.clone(), up);
    let back = pump(sr, cw, one_way, rate, down);
    // A reset on one side is how connections end; nothing to report.
    let _ = tokio::join!(there, back);
    Ok(())
}

/// Copies `from` to `to`, each chunk arriving `delay` (plus its time on the
/// wire) after it was read. Reading never waits for the delayed writes, so
/// the link holds a bandwidth-delay product's worth of data, as a real one
/// does.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    rate: Arc<AtomicU64>,
    wire: Wire,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            match chunk {
                Some(bytes) => to.write_all(&bytes).await?,
                None => {
                    to.shutdown().await?;
                    break;
                }
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            // An error ends this direction like end of file does.
            let n: usize = from.read(&mut buf).await.unwrap_or_default();
            let now = Instant::now();
            let rate = f64::from_bits(rate.load(Ordering::Relaxed));
            let sent = match rate {
                rate if rate > 0.0 && n > 0 => {
                    let mut free = wire.lock().await;
                    let start = (*free).max(now);
                    *free = start + Duration::from_secs_f64(n as f64 / rate);
                    *free
                }
                _ => now,
            };
            let chunk = (n > 0).then(|| Bytes::copy_from_slice(&buf[..n]));
            if tx.send((sent + delay, chunk)).is_err() || n == 0 {
                break;
            }
        }
    };
    let (written, ()) = tokio::join!(writer, reader);
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_round_trip_takes_the_handshake_and_one_rtt() {
        let target = echo_server().await;
        let link = start(LinkSpec {
            name: "t".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            target,
            rtt: Duration::from_millis(40),
            rate: None,
        })
        .await
        .unwrap();
        let t = std::time::Instant::now();
        let mut s = TcpStream::connect(link.addr).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        let first = t.elapsed();
        assert_eq!(&got, b"ping");
        // Handshake (40) + there and back (40), and not much more.
        assert!(first >= Duration::from_millis(80), "{first:?}");
        assert!(first < Duration::from_millis(400), "{first:?}");

        let t = std::time::Instant::now();
        s.write_all(b"pong").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        let second = t.elapsed();
        assert_eq!(&got, b"pong");
        assert!(second >= Duration::from_millis(40), "{second:?}");
        assert_eq!(link.connections.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_rate_limit_serialises_bytes() {
        let target = echo_server().await;
        let link = start(LinkSpec {
            name: "t".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            target,
            rtt: Duration::ZERO,
            // 1 MB/s each way: 200 kB takes 0.2 s there and 0.2 s back,
            // overlapping as it streams.
            rate: Some(1e6),
        })
        .await
        .unwrap();
        let mut s = TcpStream::connect(link.addr).await.unwrap();
        let data = vec![7u8; 200_000];
        let t = std::time::Instant::now();
        let (mut r, mut w) = s.split();
        let send = async { w.write_all(&data).await.unwrap() };
        let mut got = vec![0u8; data.len()];
        let recv = async { r.read_exact(&mut got).await.unwrap() };
        tokio::join!(send, recv);
        let took = t.elapsed();
        assert_eq!(got, data);
        assert!(took >= Duration::from_millis(190), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
