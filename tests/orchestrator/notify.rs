//! Storage event notifications (`POST /notify/{storage}`): S3 `Records`
//! bodies update the objects catalog and queue replica copies and deletes,
//! against real Garage storage; authentication per storage deployment; and
//! malformed bodies refused whole, naming the field.

use std::time::Duration;

use harness::eventually;
use harness::garage::{Garage, data};
use harness::orchestrator::{Options, Orchestrator};
use serde_json::{Value, json};

const TOKEN: &str = "notify-token-of-s1-0123456789";
const REPLICA_TOKEN: &str = "notify-token-of-s2-0123456789";

/// POSTs `body` to `/notify/{storage}`; returns the status, the JSON body
/// and the response headers.
async fn notify(
    o: &Orchestrator,
    storage: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    send(o, "POST", storage, token, body).await
}

async fn send(
    o: &Orchestrator,
    method: &str,
    storage: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = harness::http()
        .request(method, o.fado.url(&format!("/notify/{storage}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("notify answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "/notify/{storage} answered {status} without JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value, headers)
}

/// POSTs a JSON body with the right token and expects a 200.
async fn notify_ok(o: &Orchestrator, storage: &str, token: &str, body: Value) -> Value {
    let (s, b, _) = notify(o, storage, Some(token), body.to_string()).await;
    assert_eq!(s, 200, "{b}\n{}", o.fado.log());
    b
}

fn counts(accepted: u64, ignored: u64, jobs: u64) -> Value {
    json!({"accepted": accepted, "ignored": ignored, "jobs": jobs})
}

/// URL-encodes a key the way S3 event notifications carry it: form style,
/// `+` for a space.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One record as AWS S3 sends it (`ObjectCreated:Put`, unquoted ETag).
fn aws_created(bucket: &str, key: &str, size: i64, etag: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "garage",
        "eventTime": "2026-12-01T13:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "fado",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encode_key(key), "size": size, "eTag": etag,
                          "sequencer": "0055AED6DCD90281E5"}}
    })
}

fn aws_removed(bucket: &str, key: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "garage",
        "eventTime": "2026-12-01T13:00:01.000Z", "eventName": "ObjectRemoved:Delete",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
               "object": {"key": encode_key(key), "sequencer": "0055AED6DCD90281E6"}}
    })
}

/// A MinIO webhook body: `s3:`-prefixed names, a quoted ETag, the content
/// type, and MinIO's top-level `EventName`/`Key`.
fn minio_created(bucket: &str, key: &str, size: i64, etag: &str, content_type: &str) -> Value {
    json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("{bucket}/{key}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
            "eventTime": "2026-12-01T13:00:00.000Z", "eventName": "s3:ObjectCreated:Put",
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket},
                   "object": {"key": encode_key(key), "size": size, "eTag": format!("\"{etag}\""),
                              "contentType": content_type, "sequencer": "17E1F3A0B5C4D6E7"}}
        }]
    })
}

fn records(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// Jobs in the ledger, all kinds and states.
async fn job_count(o: &Orchestrator) -> i64 {
    let db = o.db().await.unwrap();
    db.query_one("SELECT count(*) AS n FROM jobs", &[])
        .await
        .unwrap()
        .get("n")
}

/// Jobs ever queued for object `key`.
async fn object_jobs(o: &Orchestrator, key: &str) -> i64 {
    let db = o.db().await.unwrap();
    db.query_one(
        "SELECT count(*) AS n FROM jobs WHERE object_key = $1",
        &[&key],
    )
    .await
    .unwrap()
    .get("n")
}

/// Asserts a 400 naming `field`.
fn invalid(status: u16, body: &Value, code: &str, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

fn error(status: u16, body: &Value, want: u16, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Writes made directly on the master storage reach the catalog as soon as
/// their notification is answered, and the replica through the jobs it
/// queued; a key with spaces and non-ASCII letters survives the URL
/// encoding; notifications from the replica's storage change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_bring_direct_writes_to_the_catalog_and_the_replicas() {
    let database = harness::shared_postgres().create_database().await.unwrap();
    let opts = Options {
        replicator: true,
        ..Options::default()
    };
    let o = Orchestrator::start_with(database, opts).await.unwrap();
    let g = Garage::launch(2).await;
    for (i, garage) in g.iter().enumerate() {
        let n = i + 1;
        o.create(
            "/api/clusters",
            json!({"name": format!("c{n}"), "zones": ["germany"]}),
        )
        .await;
        let mut storage = garage.storage_body(&format!("s{n}"), &format!("c{n}"));
        if n == 1 {
            storage["notify_token"] = json!(TOKEN);
        }
        let created = o.create("/api/storage-deployments", storage).await;
        assert_eq!(created["notifications"], n == 1, "{created}");
        assert!(created.get("notify_token").is_none(), "{created}");
    }
    let bucket = "notify-demo";
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "target_replicas": 1}),
    )
    .await;
    let ready = eventually(Duration::from_secs(60), || async {
        (o.replica_states(bucket).await == [("s2".to_string(), "ready".to_string())]).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "the replica on s2 is not ready: {:?}\n{}",
        o.replica_states(bucket).await,
        o.fado.log()
    );

    // A MinIO-style notification of a direct write: in the catalog at once
    // (ETag unquoted), on the replica soon after, byte for byte.
    let report = data(1, 70_000);
    let etag = g[0].put(bucket, "reports/q4.csv", report.clone()).await;
    let body = minio_created(bucket, "reports/q4.csv", 70_000, &etag, "text/csv");
    assert_eq!(notify_ok(&o, "s1", TOKEN, body).await, counts(1, 0, 1));
    assert_eq!(
        o.object_listing(bucket).await,
        [("reports/q4.csv".to_string(), 70_000, etag.clone())]
    );
    let copied = eventually(Duration::from_secs(30), || async {
        (g[1].get(bucket, "reports/q4.csv").await? == report).then_some(())
    })
    .await;
    assert!(copied.is_some(), "not copied to s2:\n{}", o.fado.log());

    // An AWS-style record whose key needs URL encoding, sent to the
    // storage deployment's numeric id.
    let key = "photos/summer 2026/café ☀ a+b.jpg";
    assert_eq!(
        encode_key(key),
        "photos/summer+2026/caf%C3%A9+%E2%98%80+a%2Bb.jpg"
    );
    let photo = data(2, 1_234);
    let photo_etag = g[0].put(bucket, key, photo.clone()).await;
    let (_, s1) = o.api("GET", "/api/storage-deployments/s1", None).await;
    let s1_id = s1["id"].to_string();
    let body = records(vec![aws_created(bucket, key, 1_234, &photo_etag)]);
    assert_eq!(notify_ok(&o, &s1_id, TOKEN, body).await, counts(1, 0, 1));
    assert!(
        o.object_listing(bucket)
            .await
            .contains(&(key.to_string(), 1_234, photo_etag.clone())),
        "{:?}",
        o.object_listing(bucket).await
    );
    let copied = eventually(Duration::from_secs(30), || async {
        (g[1].get(bucket, key).await? == photo).then_some(())
    })
    .await;
    assert!(copied.is_some(), "{key:?} not copied:\n{}", o.fado.log());

    // A direct delete and its notification: gone from the catalog at once,
    // from the replica soon after.
    g[0].client()
        .delete_object()
        .bucket(bucket)
        .key("reports/q4.csv")
        .send()
        .await
        .unwrap();
    let body = records(vec![aws_removed(bucket, "reports/q4.csv")]);
    assert_eq!(notify_ok(&o, "s1", TOKEN, body).await, counts(1, 0, 1));
    assert_eq!(
        o.object_listing(bucket).await,
        [(key.to_string(), 1_234, photo_etag.clone())]
    );
    let deleted = eventually(Duration::from_secs(30), || async {
        g[1].get(bucket, "reports/q4.csv")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(deleted.is_some(), "still on s2:\n{}", o.fado.log());
    assert_eq!(g[1].get(bucket, key).await, Some(photo));

    // The replica's storage: refused until it has a token, then heard and
    // ignored (replicas are read-only; the master decides).
    let body = records(vec![aws_created(bucket, "stray", 3, "abc")]);
    let (s, b, _) = notify(&o, "s2", Some(REPLICA_TOKEN), body.to_string()).await;
    error(s, &b, 403, "notifications_disabled");
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s2",
            Some(json!({"notify_token": REPLICA_TOKEN})),
        )
        .await;
    assert_eq!((s, &b["notifications"]), (200, &json!(true)), "{b}");
    assert_eq!(
        notify_ok(&o, "s2", REPLICA_TOKEN, body).await,
        counts(0, 1, 0)
    );
    // Buckets FaDO does not know, and events it does not act on, likewise.
    let body = records(vec![
        aws_created("not-a-fado-bucket", "x", 1, "abc"),
        json!({"eventName": "s3:ObjectAccessed:Get",
               "s3": {"bucket": {"name": bucket}, "object": {"key": "x"}}}),
    ]);
    assert_eq!(notify_ok(&o, "s1", TOKEN, body).await, counts(0, 2, 0));
    assert_eq!(object_jobs(&o, "stray").await, 0);
    assert_eq!(object_jobs(&o, "x").await, 0);
    assert_eq!(
        o.object_listing(bucket).await,
        [(key.to_string(), 1_234, photo_etag)]
    );
}

/// Every refusal with its status and field, and none of them changes the
/// catalog: a body is applied whole or not at all. No storage is reached,
/// so the data plane stays off.
#[tokio::test(flavor = "multi_thread")]
async fn notifications_are_authenticated_and_refused_whole_when_malformed() {
    let o = Orchestrator::start().await.unwrap();
    o.create("/api/clusters", json!({"name": "c1"})).await;
    for (name, token) in [("s1", Some(TOKEN)), ("s2", None)] {
        let mut storage = json!({"name": name, "cluster": "c1", "endpoint": "http://10.0.0.1:9000",
            "access_key": "AK", "secret_key": "very-secret"});
        if let Some(t) = token {
            storage["notify_token"] = json!(t);
        }
        // Made-up endpoints: registered unchecked.
        o.create("/api/storage-deployments?verify=false", storage)
            .await;
    }
    let bucket = "notify-checks";
    o.create(
        "/api/buckets",
        json!({"name": bucket, "master_storage": "s1", "target_replicas": 0}),
    )
    .await;
    // The ledger holds still from here on: job counts compare.
    o.settled().await;
    let good = records(vec![aws_created(bucket, "a", 1, "e1")]);

    // Who may send what.
    for storage in ["nope", "999999"] {
        let (s, b, _) = notify(&o, storage, Some(TOKEN), good.to_string()).await;
        error(s, &b, 404, "not_found");
    }
    let (s, b, _) = notify(&o, "", Some(TOKEN), good.to_string()).await;
    error(s, &b, 404, "not_found");
    for token in [
        None,
        Some("notify-token-of-s1-012345678"),
        Some(REPLICA_TOKEN),
    ] {
        let (s, b, h) = notify(&o, "s1", token, good.to_string()).await;
        error(s, &b, 401, "unauthorized");
        assert_eq!(h["www-authenticate"], "Bearer realm=\"fado\"");
    }
    let (s, b, _) = notify(&o, "s2", Some(TOKEN), good.to_string()).await;
    error(s, &b, 403, "notifications_disabled");
    for method in ["GET", "PUT", "DELETE"] {
        let (s, b, h) = send(&o, method, "s1", Some(TOKEN), "").await;
        error(s, &b, 405, "method_not_allowed");
        assert_eq!(h["allow"], "POST");
    }
    let huge = records(vec![aws_created(bucket, &"k".repeat(1 << 20), 1, "e")]);
    let (s, b, _) = notify(&o, "s1", Some(TOKEN), huge.to_string()).await;
    error(s, &b, 413, "too_large");
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
        "Time": "2026-12-01T13:00:00.000Z", "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF", "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"});
    assert_eq!(
        notify_ok(&o, "s1", TOKEN, test_event).await,
        counts(0, 0, 0)
    );

    // Malformed bodies: 400 naming the field, nothing recorded.
    let jobs = job_count(&o).await;
    let created = |key: &str, size: Value| {
        json!({"eventName": "ObjectCreated:Put",
               "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}}})
    };
    let (s, b, _) = notify(&o, "s1", Some(TOKEN), "this is not JSON").await;
    invalid(s, &b, "invalid_json", "body");
    let cases = [
        (json!({"EventName": "s3:ObjectCreated:Put"}), "Records"),
        (
            json!({"Records": {"eventName": "ObjectCreated:Put"}}),
            "Records",
        ),
        (
            records(vec![json!({"eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"size": 1}}})]),
            "Records[0].s3.object.key",
        ),
        (
            records(vec![created("a", json!(-1))]),
            "Records[0].s3.object.size",
        ),
        (
            records(vec![aws_created("Not_A_Bucket", "a", 1, "e")]),
            "Records[0].s3.bucket.name",
        ),
        (
            records(vec![
                aws_created(bucket, "a", 1, "e1"),
                created("b", json!("big")),
            ]),
            "Records[1].s3.object.size",
        ),
        (
            records(vec![
                aws_created(bucket, "a", 1, "e1"),
                aws_removed(bucket, "b"),
                created("c%zz", json!(1)),
            ]),
            "Records[2].s3.object.key",
        ),
    ];
    for (body, field) in cases {
        let (s, b, _) = notify(&o, "s1", Some(TOKEN), body.to_string()).await;
        invalid(s, &b, "invalid", field);
        let listed = o.object_listing(bucket).await;
        assert!(listed.is_empty(), "after {body}: {listed:?}");
    }
    assert_eq!(job_count(&o).await, jobs);

    // A good body: every record, the last change of a key winning; a bucket
    // without replicas queues nothing.
    let body = records(vec![
        aws_created(bucket, "a", 1, "e1"),
        aws_created(bucket, "b", 2, "e2"),
        aws_created(bucket, "a", 3, "e3"),
        aws_created(bucket, "c", 0, "e4"),
        aws_removed(bucket, "c"),
    ]);
    assert_eq!(notify_ok(&o, "s1", TOKEN, body).await, counts(5, 0, 0));
    assert_eq!(
        o.object_listing(bucket).await,
        [
            ("a".to_string(), 3, "e3".to_string()),
            ("b".to_string(), 2, "e2".to_string())
        ]
    );
    assert_eq!(job_count(&o).await, jobs);
}
