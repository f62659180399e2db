//! The thesis' replication-policy scenario (section 7.2), replayed through
//! the API: three clusters in zone `germany`, two of them also in
//! `high-performance`, and bucket `rep-policy-demo` whose policy changes.
//!
//! Until the replicator lands, "synced" is what the replicator will record
//! in the ledger (`Orchestrator::mark_synced`); the replication issue
//! switches this test to real syncs.

use harness::orchestrator::Orchestrator;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn thesis_replication_policy_scenario() {
    let o = Orchestrator::start().await.unwrap();
    // The thesis' three MinIO + OpenFaaS clusters.
    let zones = [
        ("cluster-1", json!(["germany", "high-performance"])),
        ("cluster-2", json!(["germany", "high-performance"])),
        ("cluster-3", json!(["germany"])),
    ];
    for (i, (name, zones)) in zones.iter().enumerate() {
        let n = i + 1;
        o.create("/api/clusters", json!({"name": name, "zones": zones}))
            .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("openfaas-{n}"), "cluster": name, "platform": "openfaas",
                   "base_url": format!("http://192.168.0.{n}:8080")}),
        )
        .await;
        // Made-up endpoints: registered unchecked.
        o.create(
            "/api/storage-deployments?verify=false",
            json!({"name": format!("minio-{n}"), "cluster": name,
                   "endpoint": format!("http://192.168.0.{n}:9000"),
                   "access_key": "minioadmin", "secret_key": "minioadmin"}),
        )
        .await;
    }

    // Target 0: the master only, and routes go to its cluster.
    o.create(
        "/api/buckets",
        json!({"name": "rep-policy-demo", "master_storage": "minio-1",
               "allowed_zones": ["germany"], "target_replicas": 0}),
    )
    .await;
    assert_eq!(o.route_targets("rep-policy-demo").await, ["openfaas-1"]);
    assert!(o.replica_states("rep-policy-demo").await.is_empty());

    // Target 2: two replicas, on the two other clusters; routes wait for them.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/rep-policy-demo",
            Some(json!({"target_replicas": 2})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        o.route_targets("rep-policy-demo").await,
        ["openfaas-1"],
        "replicas join routes only once synced"
    );
    assert_eq!(
        o.replica_states("rep-policy-demo").await,
        [
            ("minio-2".into(), "pending".into()),
            ("minio-3".into(), "pending".into())
        ]
    );
    let (_, jobs) = o.api("GET", "/api/jobs?kind=create_replica", None).await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 2, "{jobs}");

    o.mark_synced("rep-policy-demo").await;
    assert_eq!(
        o.route_targets("rep-policy-demo").await,
        ["openfaas-1", "openfaas-2", "openfaas-3"]
    );

    // Allowed zones narrowed to high-performance: the replica on cluster-3
    // goes, and so does its route entry.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/rep-policy-demo",
            Some(json!({"allowed_zones": ["high-performance"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        o.route_targets("rep-policy-demo").await,
        ["openfaas-1", "openfaas-2"]
    );
    assert_eq!(
        o.replica_states("rep-policy-demo").await,
        [
            ("minio-2".into(), "ready".into()),
            ("minio-3".into(), "deleting".into())
        ]
    );
    let (_, jobs) = o.api("GET", "/api/jobs?kind=delete_replica", None).await;
    assert_eq!(jobs["items"][0]["storage_id"], 3, "{jobs}");

    // Only one place qualifies for the two replicas asked for: the bucket is
    // under-replicated, visibly, not failed.
    let (_, bucket) = o.api("GET", "/api/buckets/rep-policy-demo", None).await;
    assert_eq!(bucket["under_replicated"], true, "{bucket}");
    assert_eq!(bucket["replica_shortfall"], 1, "{bucket}");
    assert!(
        !bucket["plan_notes"].as_array().unwrap().is_empty(),
        "{bucket}"
    );
    let (_, summary) = o.api("GET", "/api/resources", None).await;
    assert_eq!(summary["buckets"]["under_replicated"], 1, "{summary}");
}
