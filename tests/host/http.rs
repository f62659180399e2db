//! HTTP trigger: routing, Spin's request headers, streaming, 404s.

use bytes::Bytes;
use harness::{AppDir, Fado, http};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::Value;

const ROUTES: &str = r#"
spin_manifest_version = 2
[application]
name = "routes"

[[trigger.http]]
route = "/..."
component = "catch-all"
[[trigger.http]]
route = "/users/..."
component = "users"
[[trigger.http]]
route = "/users/:id"
component = "user"
[[trigger.http]]
route = "/users/me"
component = "me"
[[trigger.http]]
route = { private = true }
component = "hidden"

[component.catch-all]
source = "{{wasm:probe}}"
environment = { PROBE_NAME = "catch-all" }
[component.users]
source = "{{wasm:probe}}"
environment = { PROBE_NAME = "users" }
[component.user]
source = "{{wasm:probe}}"
environment = { PROBE_NAME = "user" }
[component.me]
source = "{{wasm:probe}}"
environment = { PROBE_NAME = "me" }
[component.hidden]
source = "{{wasm:probe}}"
environment = { PROBE_NAME = "hidden" }
"#;

async fn get(fado: &Fado, path: &str) -> (String, Value) {
    let r = http().get(fado.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    let name = r.headers()["x-probe-name"].to_str().unwrap().to_string();
    (name, r.json().await.unwrap())
}

#[tokio::test]
async fn most_specific_route_wins_and_gets_spin_headers() {
    let app = AppDir::new(ROUTES).unwrap();
    let fado = Fado::start(&app).unwrap();

    assert_eq!(get(&fado, "/users/me").await.0, "me");
    let (name, body) = get(&fado, "/users/42?x=1").await;
    assert_eq!(name, "user");
    let h = &body["headers"];
    assert_eq!(h["spin-path-match-id"], "42");
    assert_eq!(h["spin-matched-route"], "/users/:id");
    assert_eq!(
        h["spin-full-url"],
        format!("http://{}/users/42?x=1", fado.addr)
    );
    assert_eq!(h["spin-base-path"], "/");
    assert!(
        h["spin-client-addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    let (name, body) = get(&fado, "/users/42/posts/7").await;
    assert_eq!(name, "users");
    let h = &body["headers"];
    assert_eq!(h["spin-path-info"], "/42/posts/7");
    assert_eq!(h["spin-matched-route"], "/users/...");
    assert_eq!(h["spin-component-route"], "/users");
    assert_eq!(h["spin-raw-component-route"], "/users/...");

    let (name, body) = get(&fado, "/elsewhere").await;
    assert_eq!(name, "catch-all");
    assert_eq!(body["headers"]["spin-path-info"], "/elsewhere");
    assert!(
        body["headers"].get("connection").is_none(),
        "transport headers are not passed on"
    );

    // A private component has no public route: the catch-all answers.
    assert_eq!(get(&fado, "/hidden").await.0, "catch-all");
}

/// Spin's `request-shape` conformance case: route parameters arrive with
/// Spin's header names (underscores become dashes), and the component gets
/// exactly Spin's `spin-*` headers.
#[tokio::test]
async fn route_parameters_arrive_under_spins_header_names() {
    let app = AppDir::new(
        r#"
spin_manifest_version = 2
[application]
name = "request-shape"
[[trigger.http]]
route = "/base/:path_segment/:path_end/..."
component = "request-shape"
[component.request-shape]
source = "{{wasm:probe}}"
"#,
    )
    .unwrap();
    let fado = Fado::start(&app).unwrap();
    let r = http()
        .get(fado.url("/base/path/end/rest?key=value"))
        .header("host", "example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let headers = body["headers"].as_object().unwrap();
    let spin: std::collections::BTreeMap<&str, &str> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("spin-") || k.starts_with("spin_"))
        .filter(|(k, _)| *k != "spin-client-addr")
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let expected: std::collections::BTreeMap<&str, &str> = [
        (
            "spin-raw-component-route",
            "/base/:path_segment/:path_end/...",
        ),
        (
            "spin-full-url",
            "http://example.com/base/path/end/rest?key=value",
        ),
        ("spin-path-info", "/rest"),
        ("spin-base-path", "/"),
        ("spin-component-route", "/base/:path_segment/:path_end"),
        ("spin-path-match-path-segment", "path"),
        ("spin-path-match-path-end", "end"),
        ("spin-matched-route", "/base/:path_segment/:path_end/..."),
    ]
    .into_iter()
    .collect();
    assert_eq!(spin, expected);
    assert_eq!(body["path"], "/base/path/end/rest?key=value");
}

#[tokio::test]
async fn env_flag_overrides_component_environment() {
    let app = AppDir::new(ROUTES).unwrap();
    let fado = harness::Fado::start_with(
        &app,
        harness::FadoOptions {
            args: vec!["--env".into(), "PROBE_NAME=from-flag".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(get(&fado, "/users/me").await.0, "from-flag");
}

#[tokio::test]
async fn unknown_route_is_a_json_404_and_health_answers() {
    let app = AppDir::new(
        r#"
spin_manifest_version = 2
[application]
name = "one-route"
[[trigger.http]]
route = "/only"
component = "hello"
[component.hello]
source = "{{wasm:hello}}"
"#,
    )
    .unwrap();
    let fado = Fado::start(&app).unwrap();
    let r = http().get(fado.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("/nope"));
    let r = http().get(fado.url("/only")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "Hello from FaDO\n");
    let r = http()
        .get(fado.url("/.well-known/spin/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn large_bodies_round_trip_intact() {
    let app = harness::probe_app(&[]);
    let fado = Fado::start(&app).unwrap();
    let data = harness::upstream::pattern(8 << 20);
    let r = http()
        .post(fado.url("/echo"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back = r.bytes().await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back[..] == data[..], "echoed body differs");
}

/// An HTTP/1.0 request naming no host, as HAProxy's health checks send,
/// is served as addressed to the listening socket (it answered 400: a
/// component's request needs an authority).
#[tokio::test]
async fn a_request_without_a_host_is_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = AppDir::new(ROUTES).unwrap();
    let fado = Fado::start(&app).unwrap();
    let mut stream = tokio::net::TcpStream::connect(fado.addr).await.unwrap();
    stream
        .write_all(b"GET /users/7 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body["headers"]["spin-full-url"],
        format!("http://{}/users/7", fado.addr)
    );
}

/// Each chunk comes back before the next one is sent: the request and the
/// response stream at the same time, nothing is buffered whole.
#[tokio::test]
async fn bodies_stream_both_ways_at_once() {
    let app = harness::probe_app(&[]);
    let fado = Fado::start(&app).unwrap();
    let stream = tokio::net::TcpStream::connect(fado.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) =
        futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(1);
    let req = hyper::Request::post("/echo")
        .header("host", fado.addr.to_string())
        .body(StreamBody::new(rx))
        .unwrap();
    let mut tx = tx;
    use futures::SinkExt;
    tx.send(Ok(Frame::data(Bytes::from_static(b"chunk-0;"))))
        .await
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = Vec::new();
    for i in 1..=5 {
        // Wait until everything sent so far has been echoed.
        while received.len() < format!("chunk-{};", i - 1).len() * i {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
                .await
                .expect("echo of an earlier chunk arrived before the request ended")
                .unwrap()
                .unwrap();
            if let Ok(d) = frame.into_data() {
                received.extend_from_slice(&d);
            }
        }
        if i < 5 {
            tx.send(Ok(Frame::data(Bytes::from(format!("chunk-{i};")))))
                .await
                .unwrap();
        }
    }
    drop(tx);
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            received.extend_from_slice(&d);
        }
    }
    assert_eq!(
        String::from_utf8(received).unwrap(),
        "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;"
    );
}
