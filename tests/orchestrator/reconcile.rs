//! The reconcile sweep against real Garage storage, which sends no event
//! notifications: writes made directly on a master bucket reach the objects
//! catalog and the replicas, one run lists a bounded number of keys, and a
//! periodic full sync undoes direct writes to a replica.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use harness::eventually;
use harness::garage::Garage;
use harness::orchestrator::{Options, Orchestrator};
use serde_json::json;

const RECONCILER: &str = "fado.reconciler";

async fn start(sweeps: bool, variables: Vec<(&'static str, String)>) -> Orchestrator {
    let database = harness::shared_postgres().create_database().await.unwrap();
    let opts = Options {
        replicator: true,
        sweeps,
        variables,
        ..Options::default()
    };
    Orchestrator::start_with(database, opts).await.unwrap()
}

/// `n` clusters, each with a Garage registered as storage `sN`.
async fn platform(o: &Orchestrator, n: usize) -> Vec<Garage> {
    let garages = tokio::task::spawn_blocking(move || Garage::start_many(n))
        .await
        .unwrap()
        .expect("starting Garage");
    for (i, g) in garages.iter().enumerate() {
        let n = i + 1;
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": ["germany"]}),
        )
        .await;
        o.create(
            "/api/storage-deployments",
            json!({"name": format!("s{n}"), "cluster": format!("c{n}"), "endpoint": g.endpoint,
                   "region": g.region, "access_key": g.key_id, "secret_key": g.secret}),
        )
        .await;
    }
    garages
}

/// Creates `bucket` with its master on `s1` and replicas on `replicas`, and
/// waits until the master bucket exists and every replica is ready.
async fn bucket(o: &Orchestrator, master: &Garage, bucket: &str, replicas: &[&str]) {
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "replica_override": replicas}),
    )
    .await;
    let want: Vec<(String, String)> = replicas
        .iter()
        .map(|s| (s.to_string(), "ready".to_string()))
        .collect();
    let ready = eventually(Duration::from_secs(60), || async {
        let created = master.client().head_bucket().bucket(bucket).send().await;
        (created.is_ok() && o.replica_states(bucket).await == want).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "{bucket} not ready: {:?}\n{}",
        o.replica_states(bucket).await,
        o.fado.log()
    );
}

/// Publishes a reconciler wake-up every second until `check` passes.
async fn sweep_until<T, F, Fut>(o: &Orchestrator, timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        o.publish(RECONCILER, "sweep").await;
        if let Some(v) = eventually(Duration::from_secs(1), &mut check).await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
    }
}

/// (key, size, etag) of every object the catalog lists for `bucket`.
async fn catalog(o: &Orchestrator, bucket: &str) -> Vec<(String, i64, String)> {
    let (s, page) = o
        .api(
            "GET",
            &format!("/api/buckets/{bucket}/objects?limit=1000"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{page}");
    page["items"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|o| {
            (
                o["key"].as_str().unwrap().to_string(),
                o["size"].as_i64().unwrap(),
                o["etag"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (key, size, etag) of every object in `bucket` on `g`, in key order.
async fn listing(g: &Garage, bucket: &str) -> Vec<(String, i64, String)> {
    let out = g
        .client()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("listing {bucket} on {}: {e:?}", g.name));
    out.contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap().to_string(),
                o.size().unwrap_or(0),
                o.e_tag().unwrap_or("").trim_matches('"').to_string(),
            )
        })
        .collect()
}

async fn keys(g: &Garage, bucket: &str) -> Vec<String> {
    listing(g, bucket).await.into_iter().map(|e| e.0).collect()
}

async fn put(g: &Garage, bucket: &str, key: &str, data: Vec<u8>) {
    g.client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {bucket}/{key} on {}: {e:?}", g.name));
}

/// The object's bytes, or `None` when it does not exist.
async fn get(g: &Garage, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = g
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

/// Deterministic bytes that differ per seed and position.
fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[2] ^ seed)
        .collect()
}

/// Whether the replica holds exactly the master's objects, byte for byte.
async fn same_objects(master: &Garage, replica: &Garage, bucket: &str) -> bool {
    let listed = keys(master, bucket).await;
    if keys(replica, bucket).await != listed {
        return false;
    }
    for k in &listed {
        if get(master, bucket, k).await != get(replica, bucket, k).await {
            return false;
        }
    }
    true
}

/// Writes, overwrites and deletes made straight on the master (Garage sends
/// no notification) reach the catalog and the replica once sweeps run.
#[tokio::test(flavor = "multi_thread")]
async fn direct_changes_on_the_master_reach_the_catalog_and_the_replica() {
    let o = start(true, vec![]).await;
    let g = platform(&o, 2).await;
    let b = "rec-direct";
    bucket(&o, &g[0], b, &["s2"]).await;

    put(&g[0], b, "a.txt", data(1, 9_500)).await;
    put(&g[0], b, "empty", Vec::new()).await;
    put(&g[0], b, "dir/b.bin", data(2, 70_000)).await;
    let master = listing(&g[0], b).await;
    assert_eq!(master.len(), 3);
    let seen = sweep_until(&o, Duration::from_secs(30), || async {
        (catalog(&o, b).await == master).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "catalog {:?}, master {master:?}\n{}",
        catalog(&o, b).await,
        o.fado.log()
    );
    let copied = eventually(Duration::from_secs(30), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(copied.is_some(), "replica {:?}", listing(&g[1], b).await);

    // Same size, other bytes: only the ETag tells.
    put(&g[0], b, "a.txt", data(3, 9_500)).await;
    let master = listing(&g[0], b).await;
    let etag = master.iter().find(|e| e.0 == "a.txt").unwrap().2.clone();
    let updated = sweep_until(&o, Duration::from_secs(30), || async {
        let replica = get(&g[1], b, "a.txt").await;
        (catalog(&o, b).await == master && replica == Some(data(3, 9_500))).then_some(())
    })
    .await;
    assert!(
        updated.is_some(),
        "catalog {:?} (want ETag {etag})\n{}",
        catalog(&o, b).await,
        o.fado.log()
    );

    g[0].client()
        .delete_object()
        .bucket(b)
        .key("dir/b.bin")
        .send()
        .await
        .unwrap();
    let deleted = sweep_until(&o, Duration::from_secs(30), || async {
        let in_catalog: Vec<String> = catalog(&o, b).await.into_iter().map(|e| e.0).collect();
        (in_catalog == ["a.txt", "empty"] && keys(&g[1], b).await == ["a.txt", "empty"])
            .then_some(())
    })
    .await;
    assert!(
        deleted.is_some(),
        "catalog {:?}, replica {:?}\n{}",
        catalog(&o, b).await,
        keys(&g[1], b).await,
        o.fado.log()
    );
    assert!(same_objects(&g[0], &g[1], b).await);
}

/// One run lists at most `reconcile_keys_per_sweep` keys; the walk resumes
/// where it stopped, and repeated runs converge.
#[tokio::test(flavor = "multi_thread")]
async fn each_run_lists_a_bounded_number_of_keys_and_walks_resume() {
    // No periodic sweeps: every run below is one this test asked for.
    let o = start(false, vec![("reconcile_keys_per_sweep", "5".into())]).await;
    let g = platform(&o, 1).await;
    let b = "rec-bounded";
    bucket(&o, &g[0], b, &[]).await;
    for i in 0..23 {
        put(
            &g[0],
            b,
            &format!("obj-{i:02}"),
            data(i, 100 + usize::from(i)),
        )
        .await;
    }

    o.publish(RECONCILER, "sweep").await;
    let first = eventually(Duration::from_secs(30), || async {
        let n = catalog(&o, b).await.len();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(first, Some(5), "{}", o.fado.log());
    // The run is over: nothing more arrives until the next wake-up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recorded: Vec<String> = catalog(&o, b).await.into_iter().map(|e| e.0).collect();
    assert_eq!(recorded, ["obj-00", "obj-01", "obj-02", "obj-03", "obj-04"]);
    let db = o.db().await.unwrap();
    let cursor: String = db
        .query_one("SELECT reconcile_after FROM buckets WHERE name = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cursor, "obj-04");

    let master = listing(&g[0], b).await;
    let all = sweep_until(&o, Duration::from_secs(60), || async {
        (catalog(&o, b).await == master).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "{} of 23 recorded\n{}",
        catalog(&o, b).await.len(),
        o.fado.log()
    );
    let row = db
        .query_one(
            "SELECT reconcile_after, reconciled_at IS NOT NULL AS ended FROM buckets WHERE name = $1",
            &[&b],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "");
    assert!(row.get::<_, bool>(1), "the walk ended");
}

/// Replicas are read-only: a write made directly to one is undone by the
/// full sync a completed walk queues once `replica_resync_seconds` passed.
#[tokio::test(flavor = "multi_thread")]
async fn direct_writes_to_a_replica_are_undone_by_a_resync() {
    let o = start(false, vec![("replica_resync_seconds", "0".into())]).await;
    let g = platform(&o, 2).await;
    let b = "rec-resync";
    bucket(&o, &g[0], b, &["s2"]).await;
    put(&g[0], b, "keep", data(5, 4_000)).await;
    let copied = sweep_until(&o, Duration::from_secs(30), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(copied.is_some(), "{}", o.fado.log());

    put(&g[1], b, "stray", data(6, 10)).await;
    put(&g[1], b, "keep", data(7, 4_000)).await;
    let undone = sweep_until(&o, Duration::from_secs(60), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(
        undone.is_some(),
        "replica {:?}\n{}",
        listing(&g[1], b).await,
        o.fado.log()
    );
    assert_eq!(get(&g[1], b, "keep").await, Some(data(5, 4_000)));
    let db = o.db().await.unwrap();
    let syncs: i64 = db
        .query_one(
            "SELECT count(*) FROM jobs WHERE kind = 'sync_replica' AND bucket_name = $1",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    assert!(syncs >= 1, "no resync was queued");
}
