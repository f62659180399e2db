//! Outbound HTTP: allowed and denied hosts, templates, streaming, self
//! requests and service chaining.

use harness::upstream::{pattern, upstream};
use harness::{AppDir, Fado, http};
use serde_json::Value;

fn app() -> AppDir {
    let port = upstream().port();
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "outbound"

[variables]
upstream = {{ default = "127.0.0.1:{port}" }}

[[trigger.http]]
route = "/..."
component = "caller"
[[trigger.http]]
route = "/templated/..."
component = "templated"
[[trigger.http]]
route = "/hello"
component = "hello"
[[trigger.http]]
route = {{ private = true }}
component = "backend"

[component.caller]
source = "{{{{wasm:probe}}}}"
environment = {{ PROBE_NAME = "caller" }}
allowed_outbound_hosts = ["http://127.0.0.1:{port}", "http://self", "http://backend.spin.internal"]

[component.templated]
source = "{{{{wasm:probe}}}}"
environment = {{ PROBE_NAME = "templated" }}
allowed_outbound_hosts = ["http://{{{{ upstream }}}}"]

[component.hello]
source = "{{{{wasm:hello}}}}"

[component.backend]
source = "{{{{wasm:probe}}}}"
environment = {{ PROBE_NAME = "backend" }}
"#
    ))
    .unwrap()
}

async fn fetch(fado: &Fado, via: &str, url: &str) -> (u16, bytes::Bytes) {
    let r = http()
        .get(fado.url(&format!("{via}/fetch")))
        .query(&[("url", url)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap())
}

#[tokio::test]
async fn allowed_hosts_are_reached_and_bodies_stream_through() {
    let fado = Fado::start(&app()).unwrap();
    let up = upstream();
    let (status, body) = fetch(&fado, "/x", &format!("http://{up}/hello")).await;
    assert_eq!((status, &body[..]), (200, &b"upstream hello"[..]));

    let (status, body) = fetch(&fado, "/x", &format!("http://{up}/big?bytes=5242880")).await;
    assert_eq!(status, 200);
    assert!(
        body[..] == pattern(5 << 20)[..],
        "streamed upstream body differs"
    );

    let (status, _) = fetch(&fado, "/x", &format!("http://{up}/status/418")).await;
    assert_eq!(status, 418, "upstream status passes through");

    // The templated rule resolves {{ upstream }} from the variable's default.
    let (status, body) = fetch(&fado, "/templated/x", &format!("http://{up}/hello")).await;
    assert_eq!((status, &body[..]), (200, &b"upstream hello"[..]));
}

#[tokio::test]
async fn other_hosts_ports_and_schemes_are_denied_as_in_spin() {
    let fado = Fado::start(&app()).unwrap();
    let up = upstream();
    for url in [
        format!("http://localhost:{}/hello", up.port()),
        format!("http://127.0.0.1:{}/hello", up.port() + 1),
        format!("https://127.0.0.1:{}/hello", up.port()),
        "http://example.com/".to_string(),
    ] {
        let (status, body) = fetch(&fado, "/x", &url).await;
        assert_eq!(status, 502, "{url} should be denied");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            v["error"].as_str().unwrap().contains("HttpRequestDenied"),
            "{url}: {v}"
        );
    }
    // The templated component may reach only its templated host.
    let (status, _) = fetch(&fado, "/templated/x", "http://self.alt/hello").await;
    assert_eq!(status, 502);
    assert!(fado.log().contains("outbound HTTP denied"));
}

#[tokio::test]
async fn self_requests_and_service_chaining_stay_in_process() {
    let fado = Fado::start(&app()).unwrap();
    let (status, body) = fetch(&fado, "/x", "http://self.alt/hello").await;
    assert_eq!((status, &body[..]), (200, &b"Hello from FaDO\n"[..]));

    // The private component is reachable only through service chaining.
    let (status, body) = fetch(&fado, "/x", "http://backend.spin.internal/info").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["path"], "/info");
    assert_eq!(v["headers"]["spin-path-info"], "/info");
    let r = http().get(fado.url("/info")).send().await.unwrap();
    assert_eq!(
        r.headers()["x-probe-name"],
        "caller",
        "no public route reaches the private component"
    );
}
