//! Replication against real storage: three single-node Garage instances,
//! one per simulated cluster, and the replicator component working off the
//! job ledger.

use std::time::Duration;

use harness::eventually;
use harness::garage::{Garage, data};
use harness::orchestrator::{Options, Orchestrator};
use serde_json::json;

pub(crate) async fn start() -> Orchestrator {
    let database = harness::shared_postgres().create_database().await.unwrap();
    let opts = Options {
        replicator: true,
        ..Options::default()
    };
    Orchestrator::start_with(database, opts).await.unwrap()
}

/// Three clusters in `germany`, the first two also `high-performance`, each
/// with a Garage (`sN`) and a FaaS deployment (`fN`).
pub(crate) async fn platform(o: &Orchestrator) -> Vec<Garage> {
    let garages = Garage::launch(3).await;
    for (i, g) in garages.iter().enumerate() {
        let n = i + 1;
        let zones = if n < 3 {
            json!(["germany", "high-performance"])
        } else {
            json!(["germany"])
        };
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": zones}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{n}"), "cluster": format!("c{n}"), "platform": "spin",
                   "base_url": format!("http://10.0.0.{n}")}),
        )
        .await;
        o.create(
            "/api/storage-deployments",
            g.storage_body(&format!("s{n}"), &format!("c{n}")),
        )
        .await;
    }
    garages
}

async fn bucket_exists(g: &Garage, bucket: &str) -> bool {
    g.client().head_bucket().bucket(bucket).send().await.is_ok()
}

/// The thesis' section 7.2 replication-policy scenario with real copies
/// (three clusters in `germany`, two also `high-performance`; the policy of
/// `rep-policy-demo` changes): replicas are created,
/// synced byte for byte (a multipart copy included), join the route once
/// ready, and are removed from storage when the zones no longer allow them.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_are_synced_for_real_and_removed_when_policy_changes() {
    let o = start().await;
    let g = platform(&o).await;
    let bucket = "rep-policy-demo";
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"], "target_replicas": 0}),
    )
    .await;
    let created = eventually(Duration::from_secs(30), || async {
        bucket_exists(&g[0], bucket).await.then_some(())
    })
    .await;
    assert!(
        created.is_some(),
        "the master bucket was not created:\n{}",
        o.fado.log()
    );

    // Data written straight to the master: a small object, an empty one, and
    // one of 12 MiB that the replicator copies in 8 MiB parts.
    let big = data(7, 12 << 20);
    g[0].put(bucket, "image-1.png", data(1, 9_500)).await;
    g[0].put(bucket, "empty", Vec::new()).await;
    g[0].put(bucket, "dir/big.bin", big.clone()).await;

    let (s, b) = o
        .api(
            "PATCH",
            &format!("/api/buckets/{bucket}"),
            Some(json!({"target_replicas": 2})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let ready = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states(bucket).await;
        (states.len() == 2 && states.iter().all(|(_, s)| s == "ready")).then_some(states)
    })
    .await;
    assert!(
        ready.is_some(),
        "replicas not ready: {:?}\n{}",
        o.replica_states(bucket).await,
        o.fado.log()
    );
    for replica in &g[1..] {
        let mut listed = replica.keys(bucket).await;
        listed.sort();
        assert_eq!(
            listed,
            [
                ("dir/big.bin".to_string(), 12 << 20),
                ("empty".to_string(), 0),
                ("image-1.png".to_string(), 9_500)
            ],
            "on {}",
            replica.name
        );
        assert!(
            replica.get(bucket, "dir/big.bin").await == Some(big.clone()),
            "big.bin differs on {}",
            replica.name
        );
        assert_eq!(
            replica.get(bucket, "image-1.png").await,
            Some(data(1, 9_500))
        );
    }
    assert_eq!(o.route_targets(bucket).await, ["f1", "f2", "f3"]);

    // Narrowed to high-performance: the replica on c3 is removed from its
    // storage, and from the route.
    let (s, b) = o
        .api(
            "PATCH",
            &format!("/api/buckets/{bucket}"),
            Some(json!({"allowed_zones": ["high-performance"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let removed = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states(bucket).await;
        (states == [("s2".to_string(), "ready".to_string())] && !bucket_exists(&g[2], bucket).await)
            .then_some(())
    })
    .await;
    assert!(
        removed.is_some(),
        "the c3 replica stayed: {:?}\n{}",
        o.replica_states(bucket).await,
        o.fado.log()
    );
    assert_eq!(o.route_targets(bucket).await, ["f1", "f2"]);
    // Only one place qualifies for the two replicas asked for: the bucket is
    // under-replicated, visibly, not failed.
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    assert_eq!(b["under_replicated"], true, "{b}");
    assert_eq!(b["replica_shortfall"], 1, "{b}");
    assert!(!b["plan_notes"].as_array().unwrap().is_empty(), "{b}");
    let (_, summary) = o.api("GET", "/api/resources", None).await;
    assert_eq!(summary["buckets"]["under_replicated"], 1, "{summary}");

    // A later sync brings a changed, a new and a deleted object across, and
    // overwrites a write made directly to the replica (replicas are read-only).
    g[0].put(bucket, "image-1.png", data(2, 9_500)).await;
    g[0].put(bucket, "image-2.png", data(3, 100)).await;
    g[0].client()
        .delete_object()
        .bucket(bucket)
        .key("empty")
        .send()
        .await
        .unwrap();
    g[1].put(bucket, "stray", data(4, 10)).await;
    let db = o.db().await.unwrap();
    db.batch_execute(&format!(
        "INSERT INTO jobs (kind, bucket_name, storage_id) SELECT 'sync_replica', '{bucket}', id
         FROM storage_deployments WHERE name = 's2'"
    ))
    .await
    .unwrap();
    o.publish(fado_model::channels::REPLICATOR, "test").await;
    let db_done = eventually(Duration::from_secs(30), || async {
        let mut listed = g[1].keys(bucket).await;
        listed.sort();
        (listed
            == [
                ("dir/big.bin".to_string(), 12 << 20),
                ("image-1.png".to_string(), 9_500),
                ("image-2.png".to_string(), 100),
            ])
        .then_some(())
    })
    .await;
    assert!(
        db_done.is_some(),
        "sync did not converge: {:?}",
        g[1].keys(bucket).await
    );
    assert_eq!(g[1].get(bucket, "image-1.png").await, Some(data(2, 9_500)));

    // Deleting the bucket (with force) removes every copy.
    let (s, b) = o
        .api("DELETE", &format!("/api/buckets/{bucket}?force=true"), None)
        .await;
    assert_eq!(s, 204, "{b}");
    let gone = eventually(Duration::from_secs(30), || async {
        (!bucket_exists(&g[0], bucket).await && !bucket_exists(&g[1], bucket).await).then_some(())
    })
    .await;
    assert!(gone.is_some(), "copies remain:\n{}", o.fado.log());
}

/// A job that keeps failing is retried with backoff, then dead-lettered
/// with its error visible; a retry through the API runs it again.
#[tokio::test(flavor = "multi_thread")]
async fn failing_jobs_back_off_then_die_visibly_and_can_be_retried() {
    let o = start().await;
    let g = platform(&o).await;
    // s3's credentials stop working: its replica cannot be created. (The
    // API would refuse them; `verify=false` stores them unchecked.)
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s3?verify=false",
            Some(json!({"secret_key": "not-the-secret"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let db = o.db().await.unwrap();
    db.batch_execute("ALTER TABLE jobs ALTER COLUMN max_attempts SET DEFAULT 2")
        .await
        .unwrap();
    o.create(
        "/api/buckets",
        json!({"name": "doomed", "master_storage": "s1", "replica_override": ["s3"]}),
    )
    .await;
    let dead = eventually(Duration::from_secs(60), || async {
        let (_, jobs) = o.api("GET", "/api/jobs?state=dead", None).await;
        jobs["items"].as_array().unwrap().first().cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no job died:\n{}", o.fado.log()));
    assert_eq!(dead["kind"], "create_replica", "{dead}");
    assert_eq!(dead["attempts"], 2, "{dead}");
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.contains("doomed"), "{error}");
    // What failed, in words for the operator; the SDK's dump is in the log.
    for dump in ["ServiceError", "SdkBody", "Extensions"] {
        assert!(
            !error.contains(dump),
            "{dump:?} in the job's error: {error}"
        );
    }
    assert!(o.fado.log().contains("SdkBody"), "the log keeps the detail");
    assert_eq!(
        o.replica_states("doomed").await,
        [("s3".to_string(), "failed".to_string())]
    );
    let (_, bucket) = o.api("GET", "/api/buckets/doomed", None).await;
    assert!(bucket["replicas"][0]["last_error"].is_string(), "{bucket}");

    // Fixed credentials and a retry: the replica gets synced.
    let (s, _) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s3",
            Some(json!({"secret_key": g[2].secret})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = o
        .api("POST", &format!("/api/jobs/{}/retry", dead["id"]), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let ready = eventually(Duration::from_secs(30), || async {
        (o.replica_states("doomed").await == [("s3".to_string(), "ready".to_string())])
            .then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "{:?}\n{}",
        o.replica_states("doomed").await,
        o.fado.log()
    );
    assert!(bucket_exists(&g[2], "doomed").await);
}

/// S3 at `127.0.0.1:<port>` that lists no buckets at once (so health checks
/// pass) and answers anything else with a 500 after `delay`. Returns the
/// endpoint and the count of slow answers sent.
async fn slow_failing_s3(
    delay: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let response = if seen.starts_with(b"GET / ") {
                    let body =
                        "<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>";
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    tokio::time::sleep(delay).await;
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = "<Error><Code>InternalError</Code><Message>slow and failing</Message></Error>";
                    format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (endpoint, answered)
}

/// Jobs cancelled because their storage deployment was deleted stay
/// cancelled, even when the attempt that was running on that storage ends
/// afterwards (it used to put them back in the queue, naming no storage).
#[tokio::test(flavor = "multi_thread")]
async fn jobs_cancelled_with_their_storage_stay_cancelled() {
    let o = start().await;
    let (endpoint, answered) = slow_failing_s3(Duration::from_secs(3)).await;
    o.create("/api/clusters", json!({"name": "c1", "zones": ["germany"]}))
        .await;
    let (s, b) = o
        .api(
            "POST",
            "/api/storage-deployments?verify=false",
            Some(
                json!({"name": "hole", "cluster": "c1", "endpoint": endpoint,
                        "region": "garage", "access_key": "GK0", "secret_key": "secret"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let buckets = ["stuck-1", "stuck-2", "stuck-3"];
    for name in buckets {
        o.create(
            "/api/buckets",
            json!({"name": name, "master_storage": "hole"}),
        )
        .await;
    }
    let running = eventually(Duration::from_secs(30), || async {
        let (_, jobs) = o.api("GET", "/api/jobs?state=running", None).await;
        (!jobs["items"].as_array().unwrap().is_empty()).then_some(())
    })
    .await;
    assert!(running.is_some(), "no job started:\n{}", o.fado.log());
    for name in buckets {
        let (s, b) = o
            .api("DELETE", &format!("/api/buckets/{name}?force=true"), None)
            .await;
        assert_eq!(s, 204, "{b}");
    }
    let (s, b) = o.api("DELETE", "/api/storage-deployments/hole", None).await;
    assert_eq!(s, 204, "{b}");
    // The attempt that was running when the storage went ends (the SDK
    // retries the 500 first), and the replicator records its failure.
    let ended = eventually(Duration::from_secs(60), || async {
        o.fado.log().contains(") failed: ").then_some(())
    })
    .await;
    assert!(ended.is_some(), "no attempt ended:\n{}", o.fado.log());
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst) > 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, jobs) = o.api("GET", "/api/jobs?limit=100", None).await;
    for job in jobs["items"].as_array().unwrap() {
        assert_eq!(job["state"], "done", "a cancelled job came back: {job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("cancelled"), "{job}");
    }
}
