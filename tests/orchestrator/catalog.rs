//! The catalog API against real PostgreSQL and Redis: every status code the
//! API promises (201, 200, 204, 400, 401, 404, 405, 409, 503), pagination,
//! and secrets that never come back out.

use std::time::Duration;

use harness::eventually;
use harness::orchestrator::Orchestrator;
use serde_json::{Value, json};

/// Three clusters in `germany`, the first two also `high-performance`, each
/// with one OpenFaaS deployment `fN` and one storage deployment `sN` (made-up
/// endpoints, so registered with `?verify=false`).
async fn platform(o: &Orchestrator) {
    for i in 1..=3 {
        let zones = if i < 3 {
            json!(["germany", "high-performance"])
        } else {
            json!(["germany"])
        };
        o.create(
            "/api/clusters",
            json!({"name": format!("c{i}"), "zones": zones}),
        )
        .await;
        o.create(
            "/api/faas-deployments",
            json!({"name": format!("f{i}"), "cluster": format!("c{i}"), "platform": "openfaas",
                   "base_url": format!("http://10.0.0.{i}:8080")}),
        )
        .await;
        o.create(
            "/api/storage-deployments?verify=false",
            json!({"name": format!("s{i}"), "cluster": format!("c{i}"),
                   "endpoint": format!("http://10.0.0.{i}:9000"),
                   "access_key": format!("AK{i}"), "secret_key": format!("very-secret-{i}")}),
        )
        .await;
    }
}

/// Asserts the standard error body and returns its message.
fn error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) -> String {
    assert_eq!(status, want_status, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert_eq!(e["field"].as_str(), field, "{body}");
    let message = e["message"].as_str().expect("a message").to_string();
    assert!(!message.is_empty());
    message
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_token_is_required_except_for_probes() {
    let o = Orchestrator::start().await.unwrap();
    let (s, b) = o.api_as(None, "GET", "/api/clusters", None).await;
    error(s, &b, 401, "unauthorized", None);
    let (s, b) = o
        .api_as(
            Some("test-admin-token-0123456780"),
            "GET",
            "/api/clusters",
            None,
        )
        .await;
    error(s, &b, 401, "unauthorized", None);
    let (s, b) = o
        .api_as(None, "POST", "/api/clusters", Some(json!({"name": "x"})))
        .await;
    error(s, &b, 401, "unauthorized", None);

    let (s, b) = o.api_as(None, "GET", "/healthz", None).await;
    assert_eq!((s, &b["status"]), (200, &json!("ok")));
    let (s, b) = o.api_as(None, "GET", "/readyz", None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["postgres"]["ok"], true);
    assert_eq!(b["redis"]["ok"], true);
    let (s, b) = o.api_as(None, "GET", "/api/openapi.json", None).await;
    assert_eq!((s, &b["openapi"]), (200, &json!("3.1.0")));

    // Nothing was written by the refused requests.
    let (_, list) = o.api("GET", "/api/clusters", None).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_methods_and_bodies() {
    let o = Orchestrator::start().await.unwrap();
    let (s, b) = o.api("GET", "/api/nothing-here", None).await;
    error(s, &b, 404, "not_found", None);
    let (s, b) = o.api("DELETE", "/api/clusters", None).await;
    let m = error(s, &b, 405, "method_not_allowed", None);
    assert!(m.contains("GET") && m.contains("POST"), "{m}");

    // Malformed JSON, wrong types, unknown fields: 400 naming the problem.
    let r = harness::http()
        .post(o.fado.url("/api/clusters"))
        .bearer_auth(harness::orchestrator::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    error(400, &b, 400, "invalid_json", Some("body"));
    let (s, b) = o
        .api("POST", "/api/clusters", Some(json!({"name": 7})))
        .await;
    error(s, &b, 400, "invalid", Some("name"));
    let (s, b) = o.api("POST", "/api/clusters", Some(json!([1]))).await;
    error(s, &b, 400, "invalid", Some("body"));
    let (s, b) = o
        .api(
            "POST",
            "/api/clusters",
            Some(json!({"name": "a", "zonez": []})),
        )
        .await;
    let m = error(s, &b, 400, "invalid", Some("zonez"));
    assert!(m.contains("zonez"), "{m}");
    let (s, b) = o.api("POST", "/api/clusters", Some(json!({}))).await;
    error(s, &b, 400, "invalid", Some("name"));
    let (s, b) = o
        .api("POST", "/api/clusters", Some(json!({"name": "Bad_Name"})))
        .await;
    error(s, &b, 400, "invalid", Some("name"));
    let (s, b) = o
        .api(
            "POST",
            "/api/clusters",
            Some(json!({"name": "ok", "zones": ["fine", "not fine"]})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("zones[1]"));
    let (s, b) = o.api("GET", "/api/clusters?limit=0", None).await;
    error(s, &b, 400, "invalid", Some("limit"));
    let (s, b) = o.api("GET", "/api/clusters?cursor=%%%", None).await;
    error(s, &b, 400, "invalid", Some("cursor"));
    let (s, b) = o.api("GET", "/api/clusters/999", None).await;
    let m = error(s, &b, 404, "not_found", None);
    assert!(m.contains("999"), "{m}");
    let (s, b) = o.api("GET", "/api/buckets/no-such-bucket", None).await;
    let m = error(s, &b, 404, "not_found", None);
    assert!(m.contains("no-such-bucket"), "{m}");
}

/// `null` for a field that cannot be null was read as "unchanged"; a
/// missing required field was blamed on `body`; one list's cursor paged
/// another; the object API answered 400 to a request without the token.
#[tokio::test(flavor = "multi_thread")]
async fn lenient_input_is_refused_naming_the_field() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "strict", "master_storage": "s1", "target_replicas": 1}),
    )
    .await;
    for (path, body, field) in [
        (
            "/api/buckets/strict",
            json!({"target_replicas": null}),
            "target_replicas",
        ),
        (
            "/api/buckets/strict",
            json!({"allowed_zones": null}),
            "allowed_zones",
        ),
        ("/api/clusters/c1", json!({"name": null}), "name"),
        (
            "/api/faas-deployments/f1",
            json!({"timeout_ms": null}),
            "timeout_ms",
        ),
        (
            "/api/storage-deployments/s1?verify=false",
            json!({"region": null}),
            "region",
        ),
        (
            "/api/settings",
            json!({"missing_header": null}),
            "missing_header",
        ),
    ] {
        let (s, b) = o.api("PATCH", path, Some(body.clone())).await;
        error(s, &b, 400, "invalid", Some(field));
    }
    // Nothing changed: the refused nulls were not taken as "leave it".
    let (_, bucket) = o.api("GET", "/api/buckets/strict", None).await;
    assert_eq!(bucket["target_replicas"], 1, "{bucket}");
    // `null` still clears a replica override, as documented.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/strict",
            Some(json!({"replica_override": null})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/strict/route-override",
            Some(json!({"policy": "random"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("faas"));

    // A cursor works on the list it came from only.
    let (_, page) = o.api("GET", "/api/clusters?limit=1", None).await;
    let cursor = page["next_cursor"]
        .as_str()
        .expect("more than one cluster")
        .to_string();
    let (s, _) = o
        .api(
            "GET",
            &format!("/api/clusters?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    for other in [
        "/api/faas-deployments",
        "/api/storage-deployments",
        "/api/jobs",
        "/api/buckets",
    ] {
        let (s, b) = o
            .api("GET", &format!("{other}?cursor={cursor}"), None)
            .await;
        error(s, &b, 400, "invalid", Some("cursor"));
    }

    // The object API asks for the token before it looks at the path.
    for path in [
        "/api/buckets/strict/objects/a",
        "/api/buckets/%00/objects/%00",
        "/api/buckets//objects",
    ] {
        let (s, b) = o.api_as(None, "GET", path, None).await;
        error(s, &b, 401, "unauthorized", None);
    }
}

/// JSON has one number type, and JSON Schema counts `2.0` as the integer 2:
/// integer fields and ids took only `2` (a schema-valid request refused,
/// found by schemathesis), and the large ids of floats like
/// `4064342690212598.0` were read a half off.
#[tokio::test(flavor = "multi_thread")]
async fn integral_numbers_are_integers_however_they_are_written() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    let (_, s2) = o.api("GET", "/api/storage-deployments/s2", None).await;
    let s2 = s2["id"].as_i64().unwrap();
    let (_, c1) = o.api("GET", "/api/clusters/c1", None).await;
    let c1 = c1["id"].as_i64().unwrap();
    let (s, b) = o
        .api(
            "POST",
            "/api/buckets",
            Some(
                json!({"name": "floats", "master_storage": "s1", "target_replicas": 1.0,
                        "replica_override": [s2 as f64]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["target_replicas"], 1, "{b}");
    assert_eq!(b["replica_override"], json!([s2]), "{b}");
    let (s, b) = o
        .api(
            "PATCH",
            "/api/faas-deployments/f1",
            Some(json!({"timeout_ms": 1.5e3, "cluster": c1 as f64})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["timeout_ms"], 1500, "{b}");
    // A reference that no resource has is still a conflict, not a misread.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/floats",
            Some(json!({"replica_override": [4_064_342_690_212_598.0]})),
        )
        .await;
    let message = error(s, &b, 409, "conflict", Some("replica_override[0]"));
    assert!(message.contains("4064342690212598"), "{message}");
    for (body, field) in [
        (json!({"target_replicas": 1.5}), "target_replicas"),
        (json!({"replica_override": [2.5]}), "replica_override[0]"),
        (json!({"target_replicas": 1e19}), "target_replicas"),
    ] {
        let (s, b) = o.api("PATCH", "/api/buckets/floats", Some(body)).await;
        error(s, &b, 400, "invalid", Some(field));
    }
}

/// NUL reached PostgreSQL (which cannot store it in `text`) and came back
/// as a 500; trailing bytes after the JSON object were ignored.
#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_and_trailing_bytes_are_refused_naming_the_field() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "kept", "master_storage": "s1", "target_replicas": 0}),
    )
    .await;
    let bodies = [
        (
            "/api/faas-deployments",
            json!({"name": "fx", "cluster": "c\u{0}1", "platform": "openfaas",
                   "base_url": "http://10.0.0.9:8080"}),
            "cluster",
        ),
        (
            "/api/buckets",
            json!({"name": "nul", "master_storage": "s1\u{0}"}),
            "master_storage",
        ),
        (
            "/api/buckets",
            json!({"name": "nul", "master_storage": "s1", "replica_override": ["s2", "\u{0}"]}),
            "replica_override[1]",
        ),
        (
            "/api/faas-deployments",
            json!({"name": "fx", "cluster": "c1", "platform": "openfaas",
                   "base_url": "http://10.0.0.9:8080", "labels": ["gpu", "a\u{0}"]}),
            "labels[1]",
        ),
        (
            "/api/clusters",
            json!({"name": "ok", "a\u{0}": 1}),
            "a\u{0}",
        ),
    ];
    for (path, body, field) in bodies {
        let (s, b) = o.api("POST", path, Some(body)).await;
        let m = error(s, &b, 400, "invalid", Some(field));
        assert!(m.contains("NUL"), "{m}");
    }
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/kept/route-override",
            Some(json!({"faas": ["f1", "f\u{0}2"]})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("faas[1]"));
    for (query, field) in [
        ("/api/buckets?zone=ger%00many", "zone"),
        ("/api/buckets?cluster=%00", "cluster"),
        ("/api/buckets?prefix=a%00", "prefix"),
        ("/api/jobs?bucket=kept%00", "bucket"),
        ("/api/clusters?cursor=%00", "cursor"),
    ] {
        let (s, b) = o.api("GET", query, None).await;
        error(s, &b, 400, "invalid", Some(field));
    }
    // An escaped backslash before "u0000" is text, not a NUL.
    let (s, b) = o
        .api(
            "POST",
            "/api/storage-deployments?verify=false",
            Some(
                json!({"name": "s9", "cluster": "c3", "endpoint": "http://10.0.0.9:9000",
                        "access_key": "AK\\u0000", "secret_key": "x"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{b}");

    let r = harness::http()
        .post(o.fado.url("/api/clusters"))
        .bearer_auth(harness::orchestrator::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"name": "trailing"} {"name": "second"}"#)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    error(s, &b, 400, "invalid_json", Some("body"));
    let (_, list) = o.api("GET", "/api/clusters?limit=1000", None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c1", "c2", "c3"]);
}

/// PATCHes of one bucket racing route-override PUTs and DELETEs deadlocked
/// in PostgreSQL and answered 500. Every change of a bucket now locks its
/// rows in one order, so none deadlocks (PostgreSQL counts them); a
/// conflict that still happens is retried (these methods are idempotent),
/// and one that loses every retry answers 503 `retry`, having changed
/// nothing. Never a 500.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_changes_to_one_bucket_all_succeed() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "busy", "master_storage": "s1", "allowed_zones": ["germany"],
               "target_replicas": 1}),
    )
    .await;
    let db = o.db().await.unwrap();
    let deadlocks = || async {
        // A backend reports its counters when it goes idle, within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let n: i64 = db
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    let deadlocks_before = deadlocks().await;
    let mut failures = Vec::new();
    let mut retry_answers = 0;
    for round in 0..5 {
        let calls = (0..24).map(|i| {
            let o = &o;
            async move {
                let (method, path, body) = match i % 3 {
                    0 => (
                        "PATCH",
                        "/api/buckets/busy",
                        Some(json!({"target_replicas": 1 + (i + round) % 2})),
                    ),
                    1 => (
                        "PUT",
                        "/api/buckets/busy/route-override",
                        Some(json!({"faas": ["f1", "f2"], "policy": "round_robin"})),
                    ),
                    _ => ("DELETE", "/api/buckets/busy/route-override", None),
                };
                let (s, b) = o.api(method, path, body).await;
                (method, s, b)
            }
        });
        for (method, s, b) in futures::future::join_all(calls).await {
            if s == 503 && b["error"]["code"] == "retry" {
                retry_answers += 1;
            } else if !(200..300).contains(&s) {
                failures.push(format!("{method} {s} {b}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        deadlocks().await - deadlocks_before,
        0,
        "changes of one bucket deadlocked in PostgreSQL"
    );
    assert_eq!(retry_answers, 0, "requests lost every retry");
    let (s, b) = o.api("GET", "/api/buckets/busy", None).await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn clusters_create_read_update_delete() {
    let o = Orchestrator::start().await.unwrap();
    let r = harness::http()
        .post(o.fado.url("/api/clusters"))
        .bearer_auth(harness::orchestrator::ADMIN_TOKEN)
        .json(&json!({"name": "edge-1", "zones": ["germany", "eu"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let c: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/clusters/{}", c["id"]));
    assert_eq!(
        c["zones"],
        json!(["eu", "germany"]),
        "zones are a sorted set"
    );
    let (s, b) = o
        .api(
            "POST",
            "/api/clusters",
            Some(json!({"name": "edge-2", "zones": ["eu", "eu"]})),
        )
        .await;
    let m = error(s, &b, 400, "invalid", Some("zones[1]"));
    assert!(m.contains("twice"), "{m}");

    let (s, b) = o
        .api("POST", "/api/clusters", Some(json!({"name": "edge-1"})))
        .await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("name already exists"), "{m}");

    // By id and by name.
    let (s, by_name) = o.api("GET", "/api/clusters/edge-1", None).await;
    assert_eq!(s, 200);
    let (_, by_id) = o.api("GET", &location, None).await;
    assert_eq!(by_name, by_id);

    let (s, b) = o
        .api(
            "PATCH",
            "/api/clusters/edge-1",
            Some(json!({"zones": ["eu"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["zones"], json!(["eu"]));
    assert_eq!(b["name"], "edge-1");
    let (s, b) = o
        .api("PATCH", "/api/clusters/edge-1", Some(json!({"name": "-x"})))
        .await;
    error(s, &b, 400, "invalid", Some("name"));

    let (s, b) = o.api("DELETE", "/api/clusters/edge-1", None).await;
    assert_eq!((s, b), (204, Value::Null));
    let (s, _) = o.api("GET", &location, None).await;
    assert_eq!(s, 404);
    let (s, _) = o.api("DELETE", &location, None).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_list_is_paginated() {
    let o = Orchestrator::start().await.unwrap();
    for i in 0..7 {
        o.create(
            "/api/clusters",
            json!({"name": format!("site-{i}"), "zones": ["z"]}),
        )
        .await;
    }
    // An empty cursor (a client that sent back a null `next_cursor`) is
    // the first page, for id- and text-ordered lists alike.
    for list in ["/api/clusters", "/api/buckets"] {
        let (s, page) = o.api("GET", &format!("{list}?limit=3&cursor="), None).await;
        assert_eq!(s, 200, "{list}: {page}");
        let (_, first) = o.api("GET", &format!("{list}?limit=3"), None).await;
        assert_eq!(page, first, "{list}");
    }
    let mut seen = Vec::new();
    let mut path = "/api/clusters?limit=3".to_string();
    let mut pages = 0;
    loop {
        let (s, page) = o.api("GET", &path, None).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/clusters?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..7).map(|i| format!("site-{i}")).collect();
    assert_eq!(seen, want, "every row exactly once, in order");

    // Every collection answers with the same page shape.
    for list in [
        "/api/faas-deployments",
        "/api/storage-deployments",
        "/api/buckets",
        "/api/jobs",
        "/api/routes",
        "/api/route-overrides",
    ] {
        let (s, page) = o.api("GET", &format!("{list}?limit=1"), None).await;
        assert_eq!(s, 200, "{list}: {page}");
        assert!(page["items"].is_array(), "{list}: {page}");
        assert!(page.get("next_cursor").is_some(), "{list}: {page}");
        let (s, b) = o.api("GET", &format!("{list}?limit=1001"), None).await;
        error(s, &b, 400, "invalid", Some("limit"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn faas_deployments_validate_urls_and_templates() {
    let o = Orchestrator::start().await.unwrap();
    o.create("/api/clusters", json!({"name": "c1"})).await;
    let f = o
        .create(
            "/api/faas-deployments",
            json!({"name": "knative", "cluster": "c1", "platform": "knative",
                   "base_url": "https://fn.example.org", "labels": ["gpu"], "timeout_ms": 5000}),
        )
        .await;
    assert_eq!(f["path_template"], "/{function}", "the platform's default");
    assert_eq!(f["labels"], json!(["gpu"]));
    assert_eq!(f["health"], "unknown");
    let lambda = o
        .create(
            "/api/faas-deployments",
            json!({"name": "lambda", "cluster": "c1", "platform": "lambda",
                   "base_url": "https://abc.lambda-url.eu-central-1.on.aws"}),
        )
        .await;
    assert_eq!(lambda["path_template"], "");

    let bad = [
        (
            json!({"name": "x", "cluster": "c1", "platform": "openfaas", "base_url": "ftp://h"}),
            "base_url",
        ),
        (
            json!({"name": "x", "cluster": "c1", "platform": "openfaas", "base_url": "http://h", "path_template": "fn/{function}"}),
            "path_template",
        ),
        (
            json!({"name": "x", "cluster": "c1", "platform": "mainframe", "base_url": "http://h"}),
            "platform",
        ),
        (
            json!({"name": "x", "cluster": "c1", "platform": "spin", "base_url": "http://h", "timeout_ms": 0}),
            "timeout_ms",
        ),
        (
            json!({"name": "x", "cluster": "c1", "platform": "spin", "base_url": "http://h", "labels": ["GPU!"]}),
            "labels[0]",
        ),
        (
            json!({"name": "x", "platform": "spin", "base_url": "http://h"}),
            "cluster",
        ),
    ];
    for (body, field) in bad {
        let (s, b) = o
            .api("POST", "/api/faas-deployments", Some(body.clone()))
            .await;
        error(s, &b, 400, "invalid", Some(field));
    }
    // A reference to a cluster that does not exist names the field.
    let (s, b) = o
        .api(
            "POST",
            "/api/faas-deployments",
            Some(json!({"name": "x", "cluster": "nowhere", "platform": "spin", "base_url": "http://h"})),
        )
        .await;
    let m = error(s, &b, 409, "conflict", Some("cluster"));
    assert!(m.contains("nowhere"), "{m}");

    let (s, b) = o
        .api(
            "PATCH",
            "/api/faas-deployments/knative",
            Some(json!({"base_url": "http://fn.internal:8080", "timeout_ms": 100})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["base_url"].as_str(),
            b["timeout_ms"].as_i64(),
            b["platform"].as_str()
        ),
        (Some("http://fn.internal:8080"), Some(100), Some("knative"))
    );
    let (s, _) = o.api("DELETE", "/api/faas-deployments/lambda", None).await;
    assert_eq!(s, 204);
    let (_, list) = o.api("GET", "/api/faas-deployments?cluster=c1", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_secrets_are_write_only_and_encrypted_at_rest() {
    let o = Orchestrator::start().await.unwrap();
    o.create("/api/clusters", json!({"name": "c1"})).await;
    let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    let s1 = o
        .create(
            "/api/storage-deployments?verify=false",
            json!({"name": "garage", "cluster": "c1", "endpoint": "http://127.0.0.1:3900",
                   "region": "garage", "access_key": "GK123", "secret_key": secret}),
        )
        .await;
    assert_eq!(s1["region"], "garage");
    assert_eq!(s1["access_key"], "GK123");

    let (s, b) = o
        .api(
            "POST",
            "/api/storage-deployments",
            Some(json!({"name": "nokey", "cluster": "c1", "endpoint": "http://h", "access_key": "a"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("secret_key"));
    let (s, b) = o
        .api(
            "POST",
            "/api/storage-deployments",
            Some(json!({"name": "badurl", "cluster": "c1", "endpoint": "h:9000", "access_key": "a", "secret_key": "b"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("endpoint"));

    let new_secret = "another-secret-value-0123456789";
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/garage?verify=false",
            Some(json!({"secret_key": new_secret})),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // No answer carries the secret, in any form.
    let mut answers = vec![s1, b];
    for path in [
        "/api/storage-deployments",
        "/api/storage-deployments/garage",
        "/api/resources",
    ] {
        answers.push(o.api("GET", path, None).await.1);
    }
    for a in &answers {
        let text = a.to_string();
        assert!(
            !text.contains(secret) && !text.contains(new_secret),
            "{text}"
        );
        assert!(!text.contains("secret_key"), "{text}");
    }

    // At rest: encrypted, and not the plain bytes.
    let db = o.db().await.unwrap();
    let row = db
        .query_one(
            "SELECT secret_key_enc FROM storage_deployments WHERE name = 'garage'",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert!(stored.len() > new_secret.len(), "nonce and tag are stored");
    assert!(
        !stored
            .windows(new_secret.len())
            .any(|w| w == new_secret.as_bytes()),
        "the secret is stored in clear"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_is_checked_unless_verify_is_false() {
    let o = Orchestrator::start().await.unwrap();
    o.create("/api/clusters", json!({"name": "c1"})).await;
    // Nothing listens there, so the check fails fast.
    let endpoint = format!("http://127.0.0.1:{}", harness::free_port());
    let body = json!({"name": "down", "cluster": "c1", "endpoint": endpoint,
                      "access_key": "GK-down", "secret_key": "down-secret"});

    for path in [
        "/api/storage-deployments",
        "/api/storage-deployments?verify=true",
    ] {
        let (s, b) = o.api("POST", path, Some(body.clone())).await;
        let m = error(s, &b, 400, "invalid", Some("endpoint"));
        assert!(m.contains("verify=false"), "{m}");
    }
    for bad in ["maybe", "yes", "2"] {
        let (s, b) = o
            .api(
                "POST",
                &format!("/api/storage-deployments?verify={bad}"),
                Some(body.clone()),
            )
            .await;
        error(s, &b, 400, "invalid", Some("verify"));
    }
    let (_, list) = o.api("GET", "/api/storage-deployments", None).await;
    assert_eq!(list["items"], json!([]), "a refused check stores nothing");

    let created = o
        .create("/api/storage-deployments?verify=false", body.clone())
        .await;
    assert_eq!(created["health"], "unknown", "{created}");
    assert_eq!(created["region"], "us-east-1", "{created}");
    assert_eq!(created["notifications"], false, "{created}");

    // Changing how the storage is reached is checked too; other fields not.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down",
            Some(json!({"access_key": "GK-other"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("endpoint"));
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down?verify=maybe",
            Some(json!({"access_key": "GK-other"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("verify"));
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down?verify=false",
            Some(json!({"access_key": "GK-other"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["access_key"], &b["health"]),
        (&json!("GK-other"), &json!("unknown"))
    );
    let (s, b) = o
        .api("PUT", "/api/storage-deployments/down", Some(body.clone()))
        .await;
    error(s, &b, 400, "invalid", Some("endpoint"));

    // The notify token: write-only, at least 16 characters, "" turns it off.
    let token = "notify-token-0123456789";
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down",
            Some(json!({"notify_token": token})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["notifications"], true, "{b}");
    assert!(!b.to_string().contains(token), "{b}");
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down",
            Some(json!({"notify_token": "too-short"})),
        )
        .await;
    error(s, &b, 400, "invalid", Some("notify_token"));
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/down",
            Some(json!({"notify_token": ""})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["notifications"], false, "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_validate_names_zones_and_overrides() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    let b = o
        .create(
            "/api/buckets",
            json!({"name": "photos.eu", "master_storage": "s1",
                   "allowed_zones": ["high-performance"], "target_replicas": 1}),
        )
        .await;
    assert_eq!(b["master_storage"], "s1");
    assert_eq!(b["master_cluster"], "c1");
    assert_eq!(b["replica_override"], Value::Null);

    let bad = [
        (
            json!({"name": "Photos", "master_storage": "s1"}),
            "name",
            400,
            "invalid",
        ),
        (
            json!({"name": "ab", "master_storage": "s1"}),
            "name",
            400,
            "invalid",
        ),
        (
            json!({"name": "192.168.0.1", "master_storage": "s1"}),
            "name",
            400,
            "invalid",
        ),
        (
            json!({"name": "a..b", "master_storage": "s1"}),
            "name",
            400,
            "invalid",
        ),
        (json!({"name": "good"}), "master_storage", 400, "invalid"),
        (
            json!({"name": "good", "master_storage": "s9"}),
            "master_storage",
            409,
            "conflict",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "target_replicas": -1}),
            "target_replicas",
            400,
            "invalid",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "target_replicas": 65}),
            "target_replicas",
            400,
            "invalid",
        ),
        // The master must sit inside the allowed zones.
        (
            json!({"name": "good", "master_storage": "s3", "allowed_zones": ["high-performance"]}),
            "master_storage",
            409,
            "conflict",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "replica_override": ["s1"]}),
            "replica_override[0]",
            409,
            "conflict",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "replica_override": ["s2", "s2"]}),
            "replica_override[1]",
            400,
            "invalid",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "allowed_zones": ["high-performance"], "replica_override": ["s3"]}),
            "replica_override[0]",
            409,
            "conflict",
        ),
        (
            json!({"name": "good", "master_storage": "s1", "replica_override": ["s7"]}),
            "replica_override[0]",
            409,
            "conflict",
        ),
    ];
    // Malformed: 400; well-formed but against the platform's state
    // (including naming what does not exist): 409. Each names the field.
    for (body, field, status, code) in bad {
        let (s, b) = o.api("POST", "/api/buckets", Some(body.clone())).await;
        error(s, &b, status, code, Some(field));
    }
    let (s, b) = o
        .api(
            "POST",
            "/api/buckets",
            Some(json!({"name": "photos.eu", "master_storage": "s2"})),
        )
        .await;
    error(s, &b, 409, "conflict", None);
    let (_, list) = o.api("GET", "/api/buckets", None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "refused writes left nothing"
    );

    // A replica override, then clearing it with an explicit null.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/photos.eu",
            Some(json!({"replica_override": ["s2"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["replica_override"], json!([2]));
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/photos.eu",
            Some(json!({"target_replicas": 2})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["replica_override"],
        json!([2]),
        "absent keeps the override"
    );
    let (s, b) = o
        .api(
            "PATCH",
            "/api/buckets/photos.eu",
            Some(json!({"replica_override": null})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["replica_override"], Value::Null);

    // Narrowing a cluster's zones may not strand a master outside its bucket's zones.
    let (s, b) = o
        .api(
            "PATCH",
            "/api/clusters/c1",
            Some(json!({"zones": ["germany"]})),
        )
        .await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("photos.eu"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_what_holds_a_master_copy_is_refused_with_the_bucket_names() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    for name in ["alpha", "beta"] {
        o.create(
            "/api/buckets",
            json!({"name": name, "master_storage": "s1", "target_replicas": 1}),
        )
        .await;
    }
    o.settled().await;

    let (s, b) = o.api("DELETE", "/api/clusters/c1", None).await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("alpha") && m.contains("beta"), "{m}");
    let (s, b) = o.api("DELETE", "/api/storage-deployments/s1", None).await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("alpha") && m.contains("beta"), "{m}");
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s1",
            Some(json!({"cluster": "c2"})),
        )
        .await;
    assert!(s == 409 || s == 400, "{s} {b}");
    let (s, _) = o.api("GET", "/api/clusters/c1", None).await;
    assert_eq!(s, 200, "the refused delete kept the cluster");

    // A cluster holding only replicas can go: its replicas are dropped and
    // the planner places them elsewhere.
    let (_, alpha) = o.api("GET", "/api/buckets/alpha", None).await;
    let replica_cluster = alpha["replicas"][0]["cluster"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, b) = o
        .api("DELETE", &format!("/api/clusters/{replica_cluster}"), None)
        .await;
    assert_eq!(s, 204, "{b}");
    o.settled().await;
    let (_, alpha) = o.api("GET", "/api/buckets/alpha", None).await;
    let clusters: Vec<&str> = alpha["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters.len(), 1, "{alpha}");
    assert_ne!(clusters[0], replica_cluster);
    // The deleted storage's queued jobs were finished, not left dangling.
    let db = o.db().await.unwrap();
    let dangling: i64 = db
        .query_one(
            "SELECT count(*) FROM jobs WHERE storage_id IS NULL AND state IN ('queued', 'running') AND kind <> 'create_bucket'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dangling, 0);

    // Buckets go first (force, since they hold objects), then the cluster.
    db.batch_execute(
        "INSERT INTO objects (bucket_id, key, size, etag) SELECT id, 'k', 1, 'e' FROM buckets WHERE name = 'alpha'",
    )
    .await
    .unwrap();
    let (s, b) = o.api("DELETE", "/api/buckets/alpha", None).await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("force=true"), "{m}");
    let (s, _) = o.api("DELETE", "/api/buckets/alpha?force=true", None).await;
    assert_eq!(s, 204);
    let (s, _) = o.api("DELETE", "/api/buckets/beta", None).await;
    assert_eq!(s, 204);
    let (s, _) = o.api("DELETE", "/api/clusters/c1", None).await;
    assert_eq!(s, 204);
    // Removing the buckets queued the work that deletes every copy.
    let (_, jobs) = o
        .api("GET", "/api/jobs?kind=delete_bucket&limit=100", None)
        .await;
    let names: Vec<&str> = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["bucket"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alpha") && names.contains(&"beta"),
        "{jobs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_listed_by_prefix_in_key_order() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "logs", "master_storage": "s1"}),
    )
    .await;
    let db = o.db().await.unwrap();
    db.batch_execute(
        "INSERT INTO objects (bucket_id, key, size, etag, content_type)
         SELECT b.id, k, length(k), md5(k), 'text/plain'
         FROM buckets b, unnest(ARRAY['2026/01/a', '2026/01/b', '2026/02/a', '2026_x', 'B', 'a%b']) AS k
         WHERE b.name = 'logs'",
    )
    .await
    .unwrap();

    let mut keys = Vec::new();
    let mut path = "/api/buckets/logs/objects?prefix=2026/&limit=2".to_string();
    loop {
        let (s, page) = o.api("GET", &path, None).await;
        assert_eq!(s, 200, "{page}");
        for obj in page["items"].as_array().unwrap() {
            keys.push(obj["key"].as_str().unwrap().to_string());
            assert_eq!(
                obj["size"].as_i64().unwrap() as usize,
                obj["key"].as_str().unwrap().len()
            );
            assert_eq!(obj["content_type"], "text/plain");
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/buckets/logs/objects?prefix=2026/&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(keys, ["2026/01/a", "2026/01/b", "2026/02/a"]);
    // LIKE metacharacters in a prefix are literal; order is bytewise.
    let (_, page) = o
        .api("GET", "/api/buckets/logs/objects?prefix=a%25", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    let (_, page) = o.api("GET", "/api/buckets/logs/objects", None).await;
    let all: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        all,
        ["2026/01/a", "2026/01/b", "2026/02/a", "2026_x", "B", "a%b"]
    );

    let (_, bucket) = o.api("GET", "/api/buckets/logs", None).await;
    assert_eq!(bucket["object_count"], 6);
    let (s, b) = o
        .api("GET", "/api/buckets/logs/objects?prefix=%01", None)
        .await;
    error(s, &b, 400, "invalid", Some("prefix"));
    let (s, b) = o.api("GET", "/api/buckets/nope/objects", None).await;
    error(s, &b, 404, "not_found", None);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_and_route_overrides() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "ml-data", "master_storage": "s1"}),
    )
    .await;

    let (s, b) = o.api("GET", "/api/settings", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            &b["default_policy"],
            &b["match_header"],
            &b["missing_header"]
        ),
        (
            &json!("round_robin"),
            &json!("X-FaDO-Bucket"),
            &json!("reject")
        )
    );
    for (body, field) in [
        (json!({"default_policy": "fastest"}), "default_policy"),
        (json!({"match_header": "bad header"}), "match_header"),
        (json!({"missing_header": "drop"}), "missing_header"),
    ] {
        let (s, b) = o.api("PATCH", "/api/settings", Some(body)).await;
        error(s, &b, 400, "invalid", Some(field));
    }
    let (s, b) = o
        .api(
            "PATCH",
            "/api/settings",
            Some(json!({"default_policy": "least_conn", "match_header": "X-Data-Bucket", "missing_header": "any"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let routes = o.settled().await;
    assert_eq!(routes["settings"]["match_header"], "X-Data-Bucket");
    assert_eq!(routes["settings"]["missing_header"], "any");
    assert_eq!(routes["items"][0]["policy"], "least_conn");

    // A route override wins over placement and settings.
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/ml-data/route-override",
            Some(json!({"faas": ["f2", "f3"], "policy": "p2c"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let routes = o.settled().await;
    let route = &routes["items"][0];
    assert_eq!(
        (&route["overridden"], &route["policy"]),
        (&json!(true), &json!("p2c"))
    );
    let names: Vec<&str> = route["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f2", "f3"]);
    let (_, overrides) = o.api("GET", "/api/route-overrides", None).await;
    assert_eq!(
        overrides["items"].as_array().unwrap().len(),
        1,
        "{overrides}"
    );

    // Deployments may be named by id too; the bucket by id in the path.
    let f2 = route["targets"][0]["faas_id"].as_i64().expect("faas_id");
    let (_, bucket) = o.api("GET", "/api/buckets/ml-data", None).await;
    let bucket_id = bucket["id"].as_i64().expect("bucket id");
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/ml-data/route-override",
            Some(json!({"faas": [f2, "f3"], "policy": "p2c"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["faas_ids"][0], f2, "{b}");
    let (s, b) = o
        .api(
            "PUT",
            &format!("/api/buckets/{bucket_id}/route-override"),
            Some(json!({"faas": ["f2", "f3"], "policy": "p2c"})),
        )
        .await;
    assert_eq!((s, &b["faas_ids"][0]), (200, &json!(f2)), "{b}");
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/no-such-bucket/route-override",
            Some(json!({"faas": ["f1"]})),
        )
        .await;
    error(s, &b, 404, "not_found", None);
    assert!(b.to_string().contains("no-such-bucket"), "{b}");

    // Malformed: 400; naming deployments that do not exist: 409.
    for (body, field, status, code) in [
        (json!({"faas": []}), "faas", 400, "invalid"),
        (json!({"faas": ["f9"]}), "faas[0]", 409, "conflict"),
        (json!({"faas": ["f2", "f9"]}), "faas[1]", 409, "conflict"),
        (json!({"faas": [f2, "f2"]}), "faas[1]", 400, "invalid"),
        (json!({"faas": [999_999]}), "faas[0]", 409, "conflict"),
        (
            json!({"faas": ["f1"], "policy": "sometimes"}),
            "policy",
            400,
            "invalid",
        ),
    ] {
        let (s, b) = o
            .api("PUT", "/api/buckets/ml-data/route-override", Some(body))
            .await;
        error(s, &b, status, code, Some(field));
    }

    let (s, _) = o
        .api("DELETE", "/api/buckets/ml-data/route-override", None)
        .await;
    assert_eq!(s, 204);
    let routes = o.settled().await;
    let route = &routes["items"][0];
    assert_eq!(route["overridden"], false);
    assert_eq!(route["targets"][0]["name"], "f1");
    let (s, b) = o
        .api("GET", "/api/buckets/ml-data/route-override", None)
        .await;
    error(s, &b, 404, "not_found", None);
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_jobs_are_visible_and_can_be_retried() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "retry-me", "master_storage": "s1", "target_replicas": 1}),
    )
    .await;
    o.settled().await;
    let db = o.db().await.unwrap();
    let id: i64 = db
        .query_one(
            "UPDATE jobs SET state = 'dead', attempts = max_attempts, last_error = 'SlowDown: try later'
             WHERE kind = 'create_replica' RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let (_, dead) = o.api("GET", "/api/jobs?state=dead", None).await;
    assert_eq!(dead["items"][0]["id"], id, "{dead}");
    assert_eq!(dead["items"][0]["last_error"], "SlowDown: try later");
    let (_, summary) = o.api("GET", "/api/resources", None).await;
    assert_eq!(summary["dead_jobs"][0]["id"], id, "{summary}");

    let (s, b) = o.api("POST", &format!("/api/jobs/{id}/retry"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((&b["state"], &b["attempts"]), (&json!("queued"), &json!(0)));
    let (s, b) = o.api("POST", &format!("/api/jobs/{id}/retry"), None).await;
    error(s, &b, 409, "conflict", None);
    // A dead job whose target already has a queued job cannot be retried.
    let twin: i64 = db
        .query_one(
            "INSERT INTO jobs (kind, bucket_name, storage_id, object_key, state, attempts, last_error, finished_at)
             SELECT kind, bucket_name, storage_id, object_key, 'dead', max_attempts, 'SlowDown', now()
             FROM jobs WHERE id = $1 RETURNING id",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let (s, b) = o
        .api("POST", &format!("/api/jobs/{twin}/retry"), None)
        .await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains(&format!("job {id} ")), "{m}");
    let (s, b) = o.api("GET", &format!("/api/jobs/{id}"), None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (&b["object_size"], &b["bytes_copied"], &b["last_attempt_ms"]),
        (&Value::Null, &json!(0), &Value::Null),
        "{b}"
    );
    let (s, b) = o.api("POST", "/api/jobs/424242/retry", None).await;
    error(s, &b, 404, "not_found", None);
    let (s, b) = o.api("GET", "/api/jobs/abc", None).await;
    assert!(s == 400 || s == 404, "{s} {b}");
    let (s, b) = o.api("GET", "/api/jobs?state=sleeping", None).await;
    error(s, &b, 400, "invalid", Some("state"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_summary_is_bounded() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    // More under-replicated buckets than the summary lists.
    let db = o.db().await.unwrap();
    db.batch_execute(
        "INSERT INTO buckets (name, master_storage_id, target_replicas, replica_shortfall)
         SELECT 'bulk-' || g, (SELECT id FROM storage_deployments WHERE name = 's1'), 5, 3
         FROM generate_series(1, 300) g;
         UPDATE catalog_generation SET value = value + 1;
         -- Replication lag: two object copies waiting (one of known size),
         -- and jobs that are not object work or not unfinished.
         INSERT INTO jobs (kind, bucket_name, storage_id, object_key, object_size, state, created_at)
         VALUES ('copy_object', 'bulk-1', 1, 'a', 1000, 'queued', '2026-01-02T03:04:05Z'),
                ('delete_object', 'bulk-2', 1, 'b', NULL, 'running', now()),
                ('copy_object', 'bulk-3', 1, 'c', 99, 'done', '2020-01-01T00:00:00Z'),
                ('sync_replica', 'bulk-4', 1, NULL, NULL, 'queued', '2020-01-01T00:00:00Z');",
    )
    .await
    .unwrap();
    let (s, summary) = o.api("GET", "/api/resources", None).await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(
        summary["replication_lag"],
        json!({"objects": 2, "bytes": 1000, "oldest": "2026-01-02T03:04:05.000000Z"})
    );
    assert_eq!(summary["buckets"]["total"], 300);
    assert_eq!(summary["clusters"], 3);
    let listed = summary["under_replicated_buckets"]
        .as_array()
        .unwrap()
        .len();
    assert!(listed > 0 && listed <= 20, "{listed} listed");
    assert!(
        summary.to_string().len() < 16 * 1024,
        "the summary stays small"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_redis_and_postgres() {
    let mut o = Orchestrator::start().await.unwrap();
    o.redis.stop();
    let (s, b) = o.api_as(None, "GET", "/readyz", None).await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(b["redis"]["ok"], false);
    assert_eq!(b["postgres"]["ok"], true);
    assert!(
        b["redis"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{b}"
    );
    // Liveness does not depend on dependencies.
    let (s, _) = o.api_as(None, "GET", "/healthz", None).await;
    assert_eq!(s, 200);
    // The catalog itself still serves from Postgres.
    let (s, _) = o.api("GET", "/api/clusters", None).await;
    assert_eq!(s, 200);

    o.redis.restart().unwrap();
    let ready = eventually(Duration::from_secs(10), || async {
        let (s, _) = o.api_as(None, "GET", "/readyz", None).await;
        (s == 200).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ready again after Redis came back");
}

/// A failure the API cannot explain answers 500 with an incident id and
/// what to do; the database's own words (its process ids, tables, values)
/// reach only the log, under that id.
#[tokio::test(flavor = "multi_thread")]
async fn database_failures_answer_without_the_databases_words() {
    let o = Orchestrator::start().await.unwrap();
    let (s, _) = o.api("GET", "/api/clusters", None).await; // the schema is made
    assert_eq!(s, 200);
    let db = o.db().await.unwrap();
    db.batch_execute(
        "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'internal-detail of backend %', pg_backend_pid(); END $$;
         CREATE TRIGGER test_refuse BEFORE INSERT ON clusters
             FOR EACH ROW EXECUTE FUNCTION test_refuse();",
    )
    .await
    .unwrap();
    let (s, b) = o
        .api(
            "POST",
            "/api/clusters",
            Some(json!({"name": "c9", "zones": ["germany"]})),
        )
        .await;
    assert_eq!((s, &b["error"]["code"]), (500, &json!("internal")), "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    for leak in ["internal-detail", "backend", "PostgreSQL", "P0001"] {
        assert!(!message.contains(leak), "{leak:?} in the answer: {b}");
    }
    let incident = message
        .split("incident ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no incident id: {b}"));
    let log = o.fado.log();
    assert!(
        log.lines()
            .any(|l| l.contains(incident) && l.contains("internal-detail of backend")),
        "the log has no line with incident {incident} and the detail:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_a_master_storage_in_place_and_dropping_an_overridden_faas() {
    let o = Orchestrator::start().await.unwrap();
    platform(&o).await;
    o.create(
        "/api/buckets",
        json!({"name": "kept", "master_storage": "s1"}),
    )
    .await;

    // PUT names the cluster the storage already is in: that is no move.
    let (s, b) = o
        .api(
            "PUT",
            "/api/storage-deployments/s1?verify=false",
            Some(
                json!({"name": "s1", "cluster": "c1", "endpoint": "http://10.0.0.1:9001",
                        "access_key": "AK1", "secret_key": "rotated"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["endpoint"], "http://10.0.0.1:9001");
    let (s, b) = o
        .api(
            "PATCH",
            "/api/storage-deployments/s1",
            Some(json!({"cluster": "c2"})),
        )
        .await;
    let m = error(s, &b, 409, "conflict", None);
    assert!(m.contains("kept"), "{m}");

    // An override naming only a deleted deployment falls back to placement.
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/kept/route-override",
            Some(json!({"faas": ["f3"]})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _) = o.api("DELETE", "/api/faas-deployments/f3", None).await;
    assert_eq!(s, 204);
    let (_, bucket) = o.api("GET", "/api/buckets/kept", None).await;
    assert_eq!(bucket["route_override"], Value::Null, "{bucket}");
    assert_eq!(o.route_targets("kept").await, ["f1"]);

    // The same when the deployment goes with its cluster.
    let (s, b) = o
        .api(
            "PUT",
            "/api/buckets/kept/route-override",
            Some(json!({"faas": ["f2"], "policy": "p2c"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = o.api("DELETE", "/api/clusters/c2", None).await;
    assert_eq!(s, 204, "{b}");
    let (_, bucket) = o.api("GET", "/api/buckets/kept", None).await;
    assert_eq!(bucket["route_override"], Value::Null, "{bucket}");
    assert_eq!(o.route_targets("kept").await, ["f1"]);
}
