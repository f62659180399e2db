//! FaDO end to end on the S3 server embedded in `fado` instead of Garage:
//! three `fado s3 serve` processes, one per simulated cluster, registered
//! (and checked) as storage deployments; uploads through the object API,
//! replication, the reconcile sweep, health checks and deletes all run
//! against them.

use std::time::Duration;

use harness::eventually;
use harness::garage::data;
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use harness::s3_server::S3Server;
use serde_json::json;

use crate::replication::start;

/// Three clusters in `germany`, each with an embedded S3 server (`sN`) and
/// a FaaS deployment (`fN`).
pub(crate) async fn platform(o: &Orchestrator) -> Vec<S3Server> {
    let servers = S3Server::launch(3).await;
    for (i, s) in servers.iter().enumerate() {
        let n = i + 1;
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": ["germany"]}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{n}"), "cluster": format!("c{n}"), "platform": "spin",
                   "base_url": format!("http://10.0.0.{n}")}),
        )
        .await;
        // Checked against the server for real (no verify=false).
        let created = o
            .create(
                "/api/storage-deployments",
                s.storage_body(&format!("s{n}"), &format!("c{n}")),
            )
            .await;
        assert_eq!(created["health"], "healthy", "{created}");
    }
    servers
}

async fn put(
    o: &Orchestrator,
    master: &S3Server,
    bucket: &str,
    path_key: &str,
    body: Vec<u8>,
) -> serde_json::Value {
    let resp = harness::http()
        .put(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/{path_key}")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-test")
        .body(body)
        .send()
        .await
        .expect("the object API answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(
        status,
        200,
        "PUT {path_key}: {text}\n{}\n{}",
        o.fado.log(),
        master.log()
    );
    serde_json::from_str(&text).expect("a JSON answer")
}

/// Waits until every server holds exactly `want` as `bucket/key` (`None`: absent).
async fn everywhere(
    o: &Orchestrator,
    s: &[S3Server],
    bucket: &str,
    key: &str,
    want: Option<&[u8]>,
) {
    for server in s {
        let got = eventually(Duration::from_secs(60), || async {
            (server.get(bucket, key).await.as_deref() == want).then_some(())
        })
        .await;
        assert!(
            got.is_some(),
            "{} does not hold the expected {bucket}/{key} ({}):\n{}\n{}",
            server.name,
            if want.is_some() { "bytes" } else { "absence" },
            o.fado.log(),
            server.log()
        );
    }
}

/// The whole data path on embedded S3 servers: registration checks,
/// replicas created and synced, small and multipart uploads copied byte for
/// byte with the master's ETag recorded, ranged downloads, a direct write
/// found by the reconcile sweep, deletes propagated, the bucket removed.
#[tokio::test(flavor = "multi_thread")]
async fn fado_replicates_across_embedded_s3_servers() {
    let o = start().await;

    // Registration is checked against the server: what is wrong is named.
    let probe = S3Server::launch(1).await.remove(0);
    o.create(
        "/api/clusters",
        json!({"name": "probe", "zones": ["elsewhere"]}),
    )
    .await;
    // The registration body with `patch` merged in; `null` leaves a field out.
    let with = |patch: serde_json::Value| {
        let mut body = probe.storage_body("probe-s3", "probe");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (patch, field) in [
        (json!({"secret_key": "not-the-secret"}), "secret_key"),
        (json!({"access_key": "NOBODY"}), "access_key"),
        (json!({"region": "us-west-2"}), "region"),
    ] {
        let (s, b) = o
            .api(
                "POST",
                "/api/storage-deployments",
                Some(with(patch.clone())),
            )
            .await;
        assert_eq!(s, 400, "{patch}: {b}");
        assert_eq!(b["error"]["field"], field, "{patch}: {b}");
    }
    // Without a region, FaDO's first guess (us-east-1) is the server's.
    let created = o
        .create("/api/storage-deployments", with(json!({"region": null})))
        .await;
    assert_eq!(created["region"], "us-east-1", "{created}");
    let (s, b) = o
        .api("DELETE", "/api/storage-deployments/probe-s3", None)
        .await;
    assert_eq!(s, 204, "{b}");

    let s = platform(&o).await;
    let bucket = "embedded-demo";
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"], "target_replicas": 2}),
    )
    .await;
    let ready = eventually(Duration::from_secs(90), || async {
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

    // Small, empty, multipart (20 MiB in 8 MiB parts) and awkward keys: any
    // key S3 allows is stored as it is, however it would look as a path
    // (`..`, empty segments, leading and trailing `/`, one key a path
    // prefix of another, a 300-byte segment).
    let small = data(1, 10_000);
    let big = data(2, 20 << 20);
    let long_segment = "s".repeat(300);
    let uploads: Vec<(String, String, &[u8])> = [
        ("small.txt", "small.txt", &small[..]),
        ("empty", "empty", &[][..]),
        ("dir/big.bin", "dir/big.bin", &big[..]),
        (
            "a%20b/%C3%BCn%C3%AFcode%20%E2%82%AC",
            "a b/ünïcode €",
            &small[..],
        ),
        ("a%2F..%2Fb", "a/../b", &small[..]),
        ("x%2F%2Fy", "x//y", &small[..]),
        ("%2Flead", "/lead", &small[..]),
        ("trail%2F", "trail/", &small[..]),
        ("k", "k", &small[..]),
        ("k%2Fsub", "k/sub", &small[..]),
    ]
    .into_iter()
    .map(|(p, k, b)| (p.to_string(), k.to_string(), b))
    .chain([(
        format!("seg/{long_segment}"),
        format!("seg/{long_segment}"),
        &small[..],
    )])
    .collect();
    let mut etags = Vec::new();
    for (path_key, _, bytes) in &uploads {
        let answer = put(&o, &s[0], bucket, path_key, bytes.to_vec()).await;
        assert_eq!(answer["size"], bytes.len(), "{answer}");
        assert_eq!(answer["replica_jobs"], 2, "{answer}");
        etags.push(answer["etag"].as_str().unwrap().to_string());
    }
    // The object API's ETags are the server's: MD5 for one part, MD5-of-MD5s for three.
    assert!(!etags[0].contains('-'), "{etags:?}");
    assert!(etags[2].ends_with("-3"), "{etags:?}");
    for (_, key, bytes) in &uploads {
        everywhere(&o, &s, bucket, key, Some(bytes)).await;
    }
    // Every copy is byte-identical, listed with the same sizes, and records
    // the master's ETag (what the replicator compares on its next sync).
    let master = s[0].listing(bucket).await;
    assert_eq!(master.len(), uploads.len(), "{master:?}");
    for replica in &s[1..] {
        let listed = replica.listing(bucket).await;
        let sizes: Vec<(&str, i64)> = listed.iter().map(|(k, n, _)| (k.as_str(), *n)).collect();
        let want: Vec<(&str, i64)> = master.iter().map(|(k, n, _)| (k.as_str(), *n)).collect();
        assert_eq!(sizes, want, "on {}", replica.name);
        for (key, _, etag) in &master {
            let head = replica
                .client()
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
            assert_eq!(
                head.metadata().and_then(|m| m.get("fado-source-etag")),
                Some(etag),
                "{key} on {}",
                replica.name
            );
        }
    }
    let ready = eventually(Duration::from_secs(60), || async {
        let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
        b["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["lag_objects"] == 0)
            .then_some(())
    })
    .await;
    assert!(ready.is_some(), "replicas kept lagging:\n{}", o.fado.log());

    // Downloads through the object API, whole and ranged.
    let resp = harness::http()
        .get(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/dir/big.bin")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .header("range", "bytes=8388600-8388700")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.bytes().await.unwrap(), big[8_388_600..=8_388_700]);
    let resp = harness::http()
        .get(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/dir/big.bin")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await.unwrap() == big, "the download differs");

    // Awkward keys read back byte for byte through the object API; a key
    // S3 does not allow (over 1024 bytes) is refused, naming it, and
    // nothing is written.
    for path_key in ["a%2F..%2Fb", "%2Flead", "x%2F%2Fy"] {
        let resp = harness::http()
            .get(
                o.fado
                    .url(&format!("/api/buckets/{bucket}/objects/{path_key}")),
            )
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path_key}");
        assert!(resp.bytes().await.unwrap() == small, "{path_key} differs");
    }
    let too_long = "k".repeat(1025);
    let resp = harness::http()
        .put(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/{too_long}")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "key", "{body}");
    assert_eq!(s[0].listing(bucket).await.len(), uploads.len());

    // A write made directly on the master is found by the reconcile sweep
    // (by listing, ETags included) and copied to the replicas.
    let direct = data(5, 50_000);
    s[0].put(bucket, "direct/write.bin", direct.clone()).await;
    let found = eventually(Duration::from_secs(60), || async {
        o.publish(fado_model::channels::RECONCILER, "sweep").await;
        let listing = o.object_listing(bucket).await;
        listing
            .iter()
            .any(|(k, _, _)| k == "direct/write.bin")
            .then_some(())
    })
    .await;
    assert!(
        found.is_some(),
        "the reconciler missed the write:\n{}",
        o.fado.log()
    );
    everywhere(&o, &s, bucket, "direct/write.bin", Some(&direct)).await;

    // The health checker probes the servers: healthy.
    let (_, list) = o.api("GET", "/api/storage-deployments", None).await;
    for d in list["items"].as_array().unwrap() {
        assert_eq!(d["health"], "healthy", "{d}");
    }

    // Deletes propagate; the bucket's removal empties every server.
    let resp = harness::http()
        .delete(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/dir/big.bin")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    everywhere(&o, &s, bucket, "dir/big.bin", None).await;
    everywhere(&o, &s, bucket, "small.txt", Some(&small)).await;

    let (status, b) = o
        .api("DELETE", &format!("/api/buckets/{bucket}?force=true"), None)
        .await;
    assert_eq!(status, 204, "{b}");
    let gone = eventually(Duration::from_secs(60), || async {
        for server in &s {
            if server
                .client()
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .is_ok()
            {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert!(gone.is_some(), "copies remain:\n{}", o.fado.log());
}
