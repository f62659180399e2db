//! Several orchestrators at once: three `fado up` processes on one
//! PostgreSQL and one Redis behind HAProxy, one of them killed with SIGKILL
//! while invocations and uploads go through the load balancer. The
//! orchestrator keeps no state of its own, so the survivors carry on: the
//! ingress, the API, planning and replication.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use harness::eventually;
use harness::garage::{Garage, data};
use harness::haproxy::Haproxy;
use harness::orchestrator::ADMIN_TOKEN;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

use crate::durability::settled_jobs;
use crate::replication::start;

/// A FaaS deployment that notes the id (`x-call-id`) of every call that
/// reached it, so a failed call can be told apart: sent to a function (it
/// may have run) or never sent.
struct Function {
    addr: SocketAddr,
    seen: Arc<Mutex<HashSet<String>>>,
}

async fn function(name: &'static str) -> Function {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let noted = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let noted = noted.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let noted = noted.clone();
                        async move {
                            if let Some(id) = req.headers().get("x-call-id") {
                                let id = id.to_str().unwrap_or_default().to_string();
                                noted.lock().unwrap().insert(id);
                            }
                            let _ = req.into_body().collect().await;
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(
                                json!({ "served_by": name }).to_string(),
                            ))))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Function { addr, seen }
}

/// Size of the `n`th upload: mostly small, every fifth larger than an
/// upload part (8 MiB), so it is a multipart upload and a multipart copy.
fn upload_size(n: usize) -> usize {
    if n % 5 == 4 {
        9 << 20
    } else {
        1_000 + 7_919 * n % 60_000
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// Invocation id → the status it ended with (0: no answer at all).
    invocations: BTreeMap<String, u16>,
    /// Key → bytes, for every upload the API acknowledged (200).
    acknowledged: BTreeMap<String, Vec<u8>>,
    /// Upload attempts that failed and were sent again by the client.
    upload_retries: usize,
}

#[tokio::test(flavor = "multi_thread")]
async fn three_orchestrators_behind_a_load_balancer_survive_losing_one() {
    let o = start().await;
    let garages = Garage::launch(3).await;
    let mut functions = Vec::new();
    for (i, g) in garages.iter().enumerate() {
        let n = i + 1;
        let f = function(["f1", "f2", "f3"][i]).await;
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": ["germany"]}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{n}"), "cluster": format!("c{n}"), "platform": "spin",
                   "base_url": format!("http://{}", f.addr)}),
        )
        .await;
        o.create(
            "/api/storage-deployments",
            g.storage_body(&format!("s{n}"), &format!("c{n}")),
        )
        .await;
        functions.push(f);
    }
    let mut peers = tokio::task::block_in_place(|| {
        [
            o.peer().expect("a second fado"),
            o.peer().expect("a third fado"),
        ]
    });
    let lb = Haproxy::start(&[o.fado.addr, peers[0].addr, peers[1].addr]).unwrap();
    o.create(
        "/api/buckets",
        json!({"name": "shared", "master_storage": "s1", "allowed_zones": ["germany"],
               "target_replicas": 2}),
    )
    .await;
    let ready = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states("shared").await;
        (states.len() == 2 && states.iter().all(|(_, s)| s == "ready")).then_some(())
    })
    .await;
    assert!(ready.is_some(), "replicas not ready:\n{}", o.fado.log());

    let tally = Arc::new(Mutex::new(Tally::default()));
    let next_call = AtomicUsize::new(0);
    let next_key = AtomicUsize::new(0);
    let load_for = Duration::from_secs(8);
    let started = Instant::now();
    let client = harness::http();
    let invoker = || async {
        while started.elapsed() < load_for {
            let i = next_call.fetch_add(1, Ordering::Relaxed);
            let id = format!("call-{i}");
            let req = if i.is_multiple_of(2) {
                client.get(lb.url(&format!("/fn/get?i={i}")))
            } else {
                client
                    .post(lb.url(&format!("/fn/post?i={i}")))
                    .body(vec![b'x'; 2_000])
            };
            let status = req
                .header("X-FaDO-Bucket", "shared")
                .header("x-call-id", &id)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            tally.lock().unwrap().invocations.insert(id, status);
        }
    };
    let uploader = || async {
        while started.elapsed() < load_for {
            let n = next_key.fetch_add(1, Ordering::Relaxed);
            let key = format!("obj-{n:04}");
            let bytes = data(n as u8, upload_size(n));
            // A client whose upload failed sends it again, as S3 clients do.
            for _ in 0..10 {
                let status = client
                    .put(lb.url(&format!("/api/buckets/shared/objects/{key}")))
                    .bearer_auth(ADMIN_TOKEN)
                    .body(bytes.clone())
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                let mut t = tally.lock().unwrap();
                if status == 200 {
                    t.acknowledged.insert(key.clone(), bytes.clone());
                    break;
                }
                t.upload_retries += 1;
            }
        }
    };
    let killed_at = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        peers[0].kill();
        Instant::now()
    };
    let (killed_at, ..) = tokio::join!(
        killed_at,
        invoker(),
        invoker(),
        invoker(),
        invoker(),
        uploader(),
        uploader(),
    );
    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    let servers = lb.servers().unwrap();
    assert_eq!(servers.len(), 3, "{servers:?}");
    assert!(
        servers[1].0 > 0 && servers[1].1.starts_with("DOWN"),
        "the killed orchestrator served nothing before, or is not seen down: {servers:?}"
    );

    // Invocations: a failure is allowed only for a call a function had
    // received (it was in flight in the killed process and may have run).
    let seen: HashSet<String> = functions
        .iter()
        .flat_map(|f| f.seen.lock().unwrap().clone())
        .collect();
    let failed: Vec<(&String, &u16)> = tally
        .invocations
        .iter()
        .filter(|(_, s)| **s != 200)
        .collect();
    let failed_unsent: Vec<_> = failed
        .iter()
        .filter(|(id, _)| !seen.contains(*id))
        .collect();
    assert!(
        failed_unsent.is_empty(),
        "{} invocation(s) failed without reaching a function: {:?}\nhaproxy:\n{}",
        failed_unsent.len(),
        &failed_unsent[..failed_unsent.len().min(5)],
        lb.log()
    );
    let attempted = next_key.load(Ordering::Relaxed);
    assert_eq!(
        tally.acknowledged.len(),
        attempted,
        "uploads that were never acknowledged, even after 10 attempts"
    );

    // Every acknowledged upload reaches every copy, byte for byte, through
    // the survivors' replicators (the dead one's leases run out first).
    for g in &garages {
        let all = eventually(Duration::from_secs(150), || async {
            (g.keys("shared").await.len() == tally.acknowledged.len()).then_some(())
        })
        .await;
        assert!(
            all.is_some(),
            "{} has {} of {} objects:\n{}",
            g.name,
            g.keys("shared").await.len(),
            tally.acknowledged.len(),
            o.fado.log()
        );
        for (key, bytes) in &tally.acknowledged {
            assert!(
                g.get("shared", key).await.as_deref() == Some(bytes.as_slice()),
                "{}: {key} differs",
                g.name
            );
        }
    }
    let caught_up = killed_at.elapsed();
    let settled = settled_jobs(&o, Duration::from_secs(120)).await;
    let retried = settled
        .iter()
        .filter(|j| j["attempts"].as_i64() > Some(1))
        .count();
    let big = tally
        .acknowledged
        .values()
        .filter(|b| b.len() > 1 << 20)
        .count();
    eprintln!(
        "three orchestrators, one killed 3 s into 8 s of load: requests per orchestrator (HAProxy) {:?}; \
         {} invocations, {} failed (all {} had reached a function), 0 failed unsent; {} uploads acknowledged ({} of 9 MiB), \
         {} upload attempts failed and were sent again, 0 lost; {} jobs done by the survivors \
         ({} run again after the kill), 0 dead; every copy complete {:.1} s and every job done \
         {:.1} s after the kill",
        servers,
        tally.invocations.len(),
        failed.len(),
        failed.len(),
        tally.acknowledged.len(),
        big,
        tally.upload_retries,
        settled.len(),
        retried,
        caught_up.as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
}
