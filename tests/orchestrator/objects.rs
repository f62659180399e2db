//! The unified object API against real storage (three Garage instances):
//! uploads reach every replica, downloads fall back to a replica, deletes
//! follow, storage that goes down is caught up when it comes back, and
//! registering storage checks it for real.

use std::time::Duration;

use harness::eventually;
use harness::garage::{Garage, data};
use harness::orchestrator::{ADMIN_TOKEN, Orchestrator};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::replication::{platform, start};

/// One raw request to the object API.
async fn object(
    o: &Orchestrator,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = harness::http()
        .request(method.parse().unwrap(), o.fado.url(path))
        .bearer_auth(ADMIN_TOKEN);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, headers, bytes)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// A bucket on `s1` with two replicas, ready.
async fn replicated_bucket(o: &Orchestrator, g: &[Garage], bucket: &str) {
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"], "target_replicas": 2}),
    )
    .await;
    let ready = eventually(Duration::from_secs(60), || async {
        let states = o.replica_states(bucket).await;
        (states.len() == 2 && states.iter().all(|(_, s)| s == "ready")).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "replicas of {bucket} did not become ready: {:?}\n{}",
        o.replica_states(bucket).await,
        o.fado.log()
    );
    for garage in g {
        assert!(garage.keys(bucket).await.is_empty());
    }
}

/// Waits until every Garage holds exactly `want` for `key` (`None`: absent).
async fn everywhere(o: &Orchestrator, g: &[Garage], bucket: &str, key: &str, want: Option<&[u8]>) {
    for garage in g {
        let got = eventually(Duration::from_secs(30), || async {
            (garage.get(bucket, key).await.as_deref() == want).then_some(())
        })
        .await;
        assert!(
            got.is_some(),
            "{} does not hold the expected {bucket}/{key} ({}):\n{}",
            garage.name,
            if want.is_some() { "bytes" } else { "absence" },
            o.fado.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_reach_every_replica_and_deletes_follow() {
    let o = start().await;
    let g = platform(&o).await;
    let bucket = "objects-demo";
    replicated_bucket(&o, &g, bucket).await;

    // A small object, an empty one, one above the 8 MiB part size (multipart
    // upload, Content-Length known), and a key that needs percent-encoding.
    let small = data(1, 10_000);
    let big = data(2, 20 << 20);
    let uploads: [(&str, &str, &[u8]); 4] = [
        ("small.txt", "small.txt", &small),
        ("empty", "empty", &[]),
        ("dir/big.bin", "dir/big.bin", &big),
        ("a%20b%3Fc%23%E2%82%AC", "a b?c#€", &small),
    ];
    for (path_key, _, bytes) in uploads {
        let (s, h, b) = object(
            &o,
            "PUT",
            &format!("/api/buckets/{bucket}/objects/{path_key}"),
            Some(bytes.to_vec()),
            &[("content-type", "application/x-test")],
        )
        .await;
        assert_eq!(s, 200, "PUT {path_key}: {}", String::from_utf8_lossy(&b));
        let body = json_of(&b);
        assert_eq!(body["size"], bytes.len(), "{body}");
        assert_eq!(body["storage"], "s1", "{body}");
        assert_eq!(body["replica_jobs"], 2, "{body}");
        assert!(h.contains_key("etag"));
    }
    for (_, key, bytes) in uploads {
        everywhere(&o, &g, bucket, key, Some(bytes)).await;
    }
    // The 20 MiB object went up in parts: its ETag is a multipart one.
    let (_, h, _) = object(
        &o,
        "HEAD",
        &format!("/api/buckets/{bucket}/objects/dir/big.bin"),
        None,
        &[],
    )
    .await;
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.contains('-'), "expected a multipart ETag, got {etag}");
    assert_eq!(h["content-length"], (20 << 20).to_string().as_str());
    assert_eq!(h["content-type"], "application/x-test");

    // Downloads: whole, ranged, from the end.
    let (s, h, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/dir/big.bin"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    assert!(b == big, "the download differs from the upload");
    assert_eq!(h["x-fado-storage"], "s1");
    let (s, h, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/dir/big.bin"),
        None,
        &[("range", "bytes=8388600-8388700")],
    )
    .await;
    assert_eq!(s, 206);
    assert_eq!(b, big[8_388_600..=8_388_700]);
    assert_eq!(
        h["content-range"],
        format!("bytes 8388600-8388700/{}", big.len()).as_str()
    );
    let (s, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/small.txt"),
        None,
        &[("range", "bytes=-10")],
    )
    .await;
    assert_eq!((s, b.as_slice()), (206, &small[small.len() - 10..]));
    let (s, h, _) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/small.txt"),
        None,
        &[("range", "bytes=99999-")],
    )
    .await;
    assert_eq!(s, 416);
    assert_eq!(h["content-range"], "bytes */10000");
    let (s, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/empty"),
        None,
        &[],
    )
    .await;
    assert_eq!((s, b.len()), (200, 0));

    // A body sent without Content-Length (chunked) above the part size.
    let streamed = data(3, 9 << 20);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        streamed.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let resp = harness::http()
        .put(
            o.fado
                .url(&format!("/api/buckets/{bucket}/objects/streamed")),
        )
        .bearer_auth(ADMIN_TOKEN)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    everywhere(&o, &g, bucket, "streamed", Some(&streamed)).await;

    // The listing is the catalog's view: sizes, ETags, content types.
    let (s, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects?prefix=dir/"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 200);
    let page = json_of(&b);
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["key"], "dir/big.bin");
    assert_eq!(page["items"][0]["size"], 20 << 20);
    assert_eq!(
        format!("\"{}\"", page["items"][0]["etag"].as_str().unwrap()),
        etag
    );
    let (_, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects?limit=2"),
        None,
        &[],
    )
    .await;
    let first = json_of(&b);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects?limit=10&cursor={cursor}"),
        None,
        &[],
    )
    .await;
    assert_eq!(json_of(&b)["items"].as_array().unwrap().len(), 3);

    // Overwrite, then delete: replicas follow both.
    let newer = data(9, 5_000);
    let (s, _, _) = object(
        &o,
        "PUT",
        &format!("/api/buckets/{bucket}/objects/small.txt"),
        Some(newer.clone()),
        &[],
    )
    .await;
    assert_eq!(s, 200);
    everywhere(&o, &g, bucket, "small.txt", Some(&newer)).await;
    let (s, _, b) = object(
        &o,
        "DELETE",
        &format!("/api/buckets/{bucket}/objects/dir/big.bin"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 204, "{}", String::from_utf8_lossy(&b));
    everywhere(&o, &g, bucket, "dir/big.bin", None).await;
    let (s, _, b) = object(
        &o,
        "GET",
        &format!("/api/buckets/{bucket}/objects/dir/big.bin"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(json_of(&b)["error"]["code"], "not_found");
    // Deleting what is not there is fine, as in S3.
    let (s, _, _) = object(
        &o,
        "DELETE",
        &format!("/api/buckets/{bucket}/objects/never-was"),
        None,
        &[],
    )
    .await;
    assert_eq!(s, 204);

    // The jobs that did it record what they moved.
    let (_, jobs) = o.api("GET", "/api/jobs?state=done&limit=1000", None).await;
    let copied: i64 = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "copy_object")
        .map(|j| j["bytes_copied"].as_i64().unwrap())
        .sum();
    assert!(
        copied >= 2 * (20 << 20),
        "copy jobs moved only {copied} bytes: {jobs}"
    );

    // Nothing is left behind to replicate.
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    for r in b["replicas"].as_array().unwrap() {
        let settled = eventually(Duration::from_secs(20), || async {
            let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
            b["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["lag_objects"] == 0 && r["lag_bytes"] == 0)
                .then_some(())
        })
        .await;
        assert!(settled.is_some(), "replica {r} still lags");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn object_api_refuses_bad_requests_with_clear_errors() {
    let o = start().await;
    let _g = platform(&o).await;
    let bucket = "objects-errors";
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "allowed_zones": ["germany"]}),
    )
    .await;
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        (
            "PUT",
            "/api/buckets/objects-errors/objects/bad%01key",
            400,
            Some("key"),
        ),
        (
            "PUT",
            "/api/buckets/objects-errors/objects/bad%FFkey",
            400,
            Some("key"),
        ),
        (
            "GET",
            "/api/buckets/Not_A_Bucket/objects/k",
            400,
            Some("bucket"),
        ),
        ("GET", "/api/buckets/no-such-bucket/objects/k", 404, None),
        ("GET", "/api/buckets/no-such-bucket/objects", 404, None),
        ("POST", "/api/buckets/objects-errors/objects/k", 405, None),
        ("DELETE", "/api/buckets/objects-errors/objects", 405, None),
        (
            "GET",
            "/api/buckets/objects-errors/objects?limit=0",
            400,
            Some("limit"),
        ),
        (
            "GET",
            "/api/buckets/objects-errors/objects?cursor=zz",
            400,
            Some("cursor"),
        ),
    ];
    for (method, path, status, field) in cases {
        let (s, h, b) = object(
            &o,
            method,
            path,
            Some(b"x".to_vec()).filter(|_| *method == "PUT"),
            &[],
        )
        .await;
        let body = json_of(&b);
        assert_eq!(s, *status, "{method} {path}: {body}");
        if s == 405 {
            // The same methods in the message and in `Allow`.
            let allow = h.get("allow").map(|v| v.to_str().unwrap().to_string());
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert_eq!(
                allow.as_deref(),
                message.strip_prefix("use one of: "),
                "{method} {path}"
            );
        }
        assert!(
            body["error"]["message"].is_string(),
            "{method} {path}: {body}"
        );
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], *f, "{method} {path}: {body}");
        }
    }
    // Without the token.
    let resp = harness::http()
        .get(o.fado.url("/api/buckets/objects-errors/objects/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    // Nothing was written.
    let (_, _, b) = object(&o, "GET", "/api/buckets/objects-errors/objects", None, &[]).await;
    assert_eq!(json_of(&b)["items"], json!([]));
}

/// Registration checks the service: each kind of failure names its field;
/// a region left out is learnt from the service.
#[tokio::test(flavor = "multi_thread")]
async fn registering_storage_checks_endpoint_and_credentials() {
    let o = start().await;
    let g = Garage::launch(1).await.remove(0);
    o.create("/api/clusters", json!({"name": "c1"})).await;
    let base = g.storage_body("s1", "c1");
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let refused = [
        (json!({"secret_key": "not-the-secret"}), "secret_key"),
        (
            json!({"access_key": "GK0000000000000000000000"}),
            "access_key",
        ),
        (
            json!({"endpoint": format!("http://127.0.0.1:{}", harness::free_port())}),
            "endpoint",
        ),
        (json!({"region": "us-west-2"}), "region"),
    ];
    for (patch, field) in refused {
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
    let (_, list) = o.api("GET", "/api/storage-deployments", None).await;
    assert_eq!(
        list["items"],
        json!([]),
        "a refused registration left a row"
    );

    // No region given: the one the service asks for is recorded.
    let (s, b) = o
        .api(
            "POST",
            "/api/storage-deployments",
            Some(with(json!({"region": null}))),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["region"], g.region.as_str());
    assert_eq!(b["health"], "healthy");
    // Changing credentials is checked too; other fields are not.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s1",
            Some(json!({"secret_key": "wrong-secret"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (400, Some("secret_key")),
        "{b}"
    );
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s1",
            Some(json!({"name": "s1-renamed"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Wakes the health checker until storage `name` has health `want` (a
/// minute at most); the deployment as the API shows it.
async fn health_becomes(o: &Orchestrator, name: &str, want: &str) -> Option<Value> {
    eventually(Duration::from_secs(60), || async {
        o.publish(fado_model::channels::HEALTH, "sweep").await;
        let (_, s) = o
            .api("GET", &format!("/api/storage-deployments/{name}"), None)
            .await;
        (s["health"] == want).then_some(s)
    })
    .await
}

/// A replica's storage goes down: its copy jobs wait (spending no
/// attempts) while the health checker has it unhealthy, downloads keep
/// working, and once it is back the replica catches up.
#[tokio::test(flavor = "multi_thread")]
async fn storage_that_goes_down_and_comes_back_is_caught_up() {
    let o = start().await;
    let g = platform(&o).await;
    let bucket = "objects-outage";
    replicated_bucket(&o, &g, bucket).await;
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    let down_name = b["replicas"][0]["storage"].as_str().unwrap().to_string();
    let down = &g[down_name[1..].parse::<usize>().unwrap() - 1];

    down.stop().expect("stopping Garage");
    // Two failed checks make it unhealthy; the sweep runs every 15 s, and
    // publishing wakes the checker at once.
    let unhealthy = health_becomes(&o, &down_name, "unhealthy").await;
    assert!(
        unhealthy.is_some(),
        "{down_name} was not marked unhealthy:\n{}",
        o.fado.log()
    );

    let objects: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("while-down-{i}"), data(i as u8, 50_000 + i)))
        .collect();
    for (k, v) in &objects {
        let (s, _, b) = object(
            &o,
            "PUT",
            &format!("/api/buckets/{bucket}/objects/{k}"),
            Some(v.clone()),
            &[],
        )
        .await;
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }
    // The replica on the healthy storage gets them; the other one lags.
    let up = g
        .iter()
        .find(|x| x.name != down.name && x.name != g[0].name)
        .unwrap();
    for (k, v) in &objects {
        everywhere(&o, std::slice::from_ref(up), bucket, k, Some(v)).await;
    }
    let (_, b) = o.api("GET", &format!("/api/buckets/{bucket}"), None).await;
    let lagging = b["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["storage"] == down_name.as_str())
        .unwrap()
        .clone();
    assert_eq!(lagging["lag_objects"], 5, "{lagging}");
    assert!(lagging["oldest_unsynced_at"].is_string(), "{lagging}");
    let (_, jobs) = o
        .api("GET", "/api/jobs?state=queued&limit=1000", None)
        .await;
    for j in jobs["items"].as_array().unwrap() {
        assert!(
            j["attempts"].as_i64().unwrap() <= 2,
            "a waiting job spent attempts: {j}"
        );
    }

    down.resume().expect("restarting Garage");
    let healthy = health_becomes(&o, &down_name, "healthy").await;
    assert!(
        healthy.is_some(),
        "{down_name} did not come back:\n{}",
        o.fado.log()
    );
    for (k, v) in &objects {
        everywhere(&o, &g, bucket, k, Some(v)).await;
    }
}

/// A storage deployment whose secret cannot be decrypted (stored under
/// another `encryption_key`) is marked unhealthy, saying so, and the health
/// of the others is still checked: one bad row does not stop the sweep.
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_that_cannot_be_decrypted_fails_only_its_own_storage() {
    let o = start().await;
    let _g = platform(&o).await;
    for name in ["s1", "s2", "s3"] {
        assert!(
            health_becomes(&o, name, "healthy").await.is_some(),
            "{name}"
        );
    }
    let checked_at = |s: &Value| {
        s["health_checked_at"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut before = Vec::new();
    for name in ["s1", "s3"] {
        let (_, s) = o
            .api("GET", &format!("/api/storage-deployments/{name}"), None)
            .await;
        before.push(checked_at(&s));
    }
    // As if s2's credentials had been stored under another key.
    let db = o.db().await.unwrap();
    db.execute(
        "UPDATE storage_deployments SET secret_key_enc = $1 WHERE name = 's2'",
        &[&vec![7u8; 48]],
    )
    .await
    .unwrap();
    let s2 = health_becomes(&o, "s2", "unhealthy")
        .await
        .unwrap_or_else(|| panic!("s2 stayed healthy:\n{}", o.fado.log()));
    assert!(
        s2["health_detail"]
            .as_str()
            .is_some_and(|d| d.contains("encryption_key")),
        "{s2}"
    );
    // The others were checked in the same sweeps, and are still healthy.
    for (name, before) in ["s1", "s3"].into_iter().zip(before) {
        let (_, s) = o
            .api("GET", &format!("/api/storage-deployments/{name}"), None)
            .await;
        assert_eq!(s["health"], "healthy", "{s}");
        assert_ne!(checked_at(&s), before, "{name} was not checked again: {s}");
    }
}
