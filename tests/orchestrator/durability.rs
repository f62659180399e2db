//! Replication under crashes and concurrency: a host killed with SIGKILL in
//! the middle of a copy, and several hosts' replicators sharing one ledger.

use std::time::Duration;

use harness::eventually;
use harness::garage::data;
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use serde_json::{Value, json};

use crate::replication::{platform, start};

async fn upload(o: &Orchestrator, bucket: &str, key: &str, bytes: Vec<u8>) {
    let resp = harness::http()
        .put(o.fado.url(&format!("/api/buckets/{bucket}/objects/{key}")))
        .bearer_auth(ADMIN_TOKEN)
        .body(bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    let status = resp.status().as_u16();
    assert_eq!(
        status,
        200,
        "PUT {key}: {}",
        resp.text().await.unwrap_or_default()
    );
}

async fn jobs(o: &Orchestrator, query: &str) -> Vec<Value> {
    let (s, b) = o
        .api("GET", &format!("/api/jobs?limit=1000&{query}"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn ready_bucket(o: &Orchestrator, bucket: &str, replicas: i64) {
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"],
               "target_replicas": replicas}),
    )
    .await;
    let ready = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states(bucket).await;
        (states.len() == replicas as usize && states.iter().all(|(_, s)| s == "ready"))
            .then_some(())
    })
    .await;
    assert!(ready.is_some(), "replicas not ready:\n{}", o.fado.log());
}

/// The host dies (SIGKILL) while its replicator copies a large object in
/// parts; after a restart the job's lease runs out, the next claim copies
/// the object again from scratch, and the replica ends byte-identical.
#[tokio::test(flavor = "multi_thread")]
async fn a_replicator_killed_mid_copy_leaves_identical_copies() {
    let mut o = start().await;
    let g = platform(&o).await;
    let bucket = "crash-demo";
    ready_bucket(&o, bucket, 1).await;
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    let replica = b["replicas"][0]["storage"].as_str().unwrap().to_string();
    let replica_garage = &g[replica[1..].parse::<usize>().unwrap() - 1];

    let big = data(42, 160 << 20);
    upload(&o, bucket, "big.bin", big.clone()).await;
    let running = eventually(Duration::from_secs(30), || async {
        jobs(&o, "state=running")
            .await
            .into_iter()
            .find(|j| j["kind"] == "copy_object")
    })
    .await
    .unwrap_or_else(|| panic!("the copy never started:\n{}", o.fado.log()));
    tokio::task::block_in_place(|| o.crash_and_restart()).expect("restarting fado");
    assert!(
        replica_garage.get(bucket, "big.bin").await.is_none(),
        "the copy finished before the kill; the test proves nothing (make the object larger)"
    );

    // The dead host's lease (60 s) must run out before another claim.
    let done = eventually(Duration::from_secs(150), || async {
        let (_, j) = o
            .api("GET", &format!("/api/jobs/{}", running["id"]), None)
            .await;
        (j["state"] == "done").then_some(j)
    })
    .await
    .unwrap_or_else(|| panic!("the interrupted job was not finished:\n{}", o.fado.log()));
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["bytes_copied"], 160 << 20, "{done}");
    let copy = replica_garage
        .get(bucket, "big.bin")
        .await
        .expect("the copy");
    assert!(copy == big, "the replica's copy differs from the master's");
}

/// Three hosts serve the same deployment: their replicators claim from one
/// ledger at once, and every job runs exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn several_replicators_share_the_ledger_without_stepping_on_each_other() {
    let o = start().await;
    let g = platform(&o).await;
    let _peers = tokio::task::block_in_place(|| {
        [
            o.peer().expect("a second fado"),
            o.peer().expect("a third fado"),
        ]
    });
    let bucket = "many-hands";
    ready_bucket(&o, bucket, 2).await;
    let objects: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("obj-{i:02}"), data(i as u8, 20_000 + 997 * i)))
        .collect();
    for (k, v) in &objects {
        upload(&o, bucket, k, v.clone()).await;
    }
    for garage in &g {
        let all = eventually(Duration::from_secs(90), || async {
            (garage.keys(bucket).await.len() == objects.len()).then_some(())
        })
        .await;
        assert!(
            all.is_some(),
            "{} did not get every object:\n{}",
            garage.name,
            o.fado.log()
        );
        for (k, v) in &objects {
            assert!(
                garage.get(bucket, k).await.as_deref() == Some(v.as_slice()),
                "{}: {k}",
                garage.name
            );
        }
    }
    let copies: Vec<Value> = jobs(&o, "state=done")
        .await
        .into_iter()
        .filter(|j| j["kind"] == "copy_object")
        .collect();
    assert_eq!(copies.len(), 2 * objects.len(), "{copies:?}");
    for j in &copies {
        assert_eq!(j["attempts"], 1, "a job ran twice or failed: {j}");
        assert_eq!(j["bytes_copied"], j["object_size"], "{j}");
    }
}
