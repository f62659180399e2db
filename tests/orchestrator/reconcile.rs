//! The reconcile sweep against real Garage storage, which sends no event
//! notifications: writes made directly on a master bucket reach the objects
//! catalog and the replicas, one run lists a bounded number of keys, and a
//! periodic full sync undoes direct writes to a replica.

use std::time::{Duration, Instant};

use harness::eventually;
use harness::garage::{Garage, data};
use harness::orchestrator::{Options, Orchestrator};
use serde_json::json;

const RECONCILER: &str = fado_model::channels::RECONCILER;

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
    let garages = Garage::launch(n).await;
    for (i, g) in garages.iter().enumerate() {
        let n = i + 1;
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": ["germany"]}),
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

async fn keys(g: &Garage, bucket: &str) -> Vec<String> {
    g.listing(bucket).await.into_iter().map(|e| e.0).collect()
}

/// Whether the replica holds exactly the master's objects, byte for byte.
async fn same_objects(master: &Garage, replica: &Garage, bucket: &str) -> bool {
    let listed = keys(master, bucket).await;
    if keys(replica, bucket).await != listed {
        return false;
    }
    for k in &listed {
        if master.get(bucket, k).await != replica.get(bucket, k).await {
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

    g[0].put(b, "a.txt", data(1, 9_500)).await;
    g[0].put(b, "empty", Vec::new()).await;
    g[0].put(b, "dir/b.bin", data(2, 70_000)).await;
    let master = g[0].listing(b).await;
    assert_eq!(master.len(), 3);
    let seen = sweep_until(&o, Duration::from_secs(30), || async {
        (o.object_listing(b).await == master).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "catalog {:?}, master {master:?}\n{}",
        o.object_listing(b).await,
        o.fado.log()
    );
    let copied = eventually(Duration::from_secs(30), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(copied.is_some(), "replica {:?}", g[1].listing(b).await);

    // Same size, other bytes: only the ETag tells.
    g[0].put(b, "a.txt", data(3, 9_500)).await;
    let master = g[0].listing(b).await;
    let etag = master.iter().find(|e| e.0 == "a.txt").unwrap().2.clone();
    let updated = sweep_until(&o, Duration::from_secs(30), || async {
        let replica = g[1].get(b, "a.txt").await;
        (o.object_listing(b).await == master && replica == Some(data(3, 9_500))).then_some(())
    })
    .await;
    assert!(
        updated.is_some(),
        "catalog {:?} (want ETag {etag})\n{}",
        o.object_listing(b).await,
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
        let in_catalog: Vec<String> = o.object_listing(b).await.into_iter().map(|e| e.0).collect();
        (in_catalog == ["a.txt", "empty"] && keys(&g[1], b).await == ["a.txt", "empty"])
            .then_some(())
    })
    .await;
    assert!(
        deleted.is_some(),
        "catalog {:?}, replica {:?}\n{}",
        o.object_listing(b).await,
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
        g[0].put(b, &format!("obj-{i:02}"), data(i, 100 + usize::from(i)))
            .await;
    }

    o.publish(RECONCILER, "sweep").await;
    let first = eventually(Duration::from_secs(30), || async {
        let n = o.object_listing(b).await.len();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(first, Some(5), "{}", o.fado.log());
    // The run is over: nothing more arrives until the next wake-up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let recorded: Vec<String> = o.object_listing(b).await.into_iter().map(|e| e.0).collect();
    assert_eq!(recorded, ["obj-00", "obj-01", "obj-02", "obj-03", "obj-04"]);
    let db = o.db().await.unwrap();
    let cursor: String = db
        .query_one("SELECT reconcile_after FROM buckets WHERE name = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(cursor, "obj-04");

    let master = g[0].listing(b).await;
    let all = sweep_until(&o, Duration::from_secs(60), || async {
        (o.object_listing(b).await == master).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "{} of 23 recorded\n{}",
        o.object_listing(b).await.len(),
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
    g[0].put(b, "keep", data(5, 4_000)).await;
    let copied = sweep_until(&o, Duration::from_secs(30), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(copied.is_some(), "{}", o.fado.log());

    g[1].put(b, "stray", data(6, 10)).await;
    g[1].put(b, "keep", data(7, 4_000)).await;
    let undone = sweep_until(&o, Duration::from_secs(60), || async {
        same_objects(&g[0], &g[1], b).await.then_some(())
    })
    .await;
    assert!(
        undone.is_some(),
        "replica {:?}\n{}",
        g[1].listing(b).await,
        o.fado.log()
    );
    assert_eq!(g[1].get(b, "keep").await, Some(data(5, 4_000)));
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
