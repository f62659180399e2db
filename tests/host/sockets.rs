//! `wasi:sockets`: TCP and UDP to what `allowed_outbound_hosts` allows, as in
//! Spin (its `tcp-sockets*` conformance cases), and nothing else: no name
//! lookup, no listening. The `socket-probe` component reports the WASI error
//! code it saw.

use harness::{AppDir, Fado, http};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the socket probe sends and expects back.
const MESSAGE: &str = "fado socket probe\n";

/// A TCP server on loopback that echoes what each connection sends.
async fn tcp_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A UDP server on loopback that sends every datagram back.
async fn udp_echo() -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    port
}

/// A manifest with one socket-probe component per `(name, rules)`, each on
/// `/<name>/...`, plus `extra` (variables, say).
fn manifest(components: &[(&str, Vec<String>)], extra: &str) -> String {
    let mut m = format!("spin_manifest_version = 2\n[application]\nname = \"sockets\"\n{extra}\n");
    for (name, rules) in components {
        let rules: Vec<String> = rules.iter().map(|r| format!("{r:?}")).collect();
        m += &format!(
            "[[trigger.http]]\nroute = \"/{name}/...\"\ncomponent = \"{name}\"\n\
             [component.{name}]\nsource = \"{{{{wasm:socket-probe}}}}\"\n\
             allowed_outbound_hosts = [{}]\n",
            rules.join(", ")
        );
    }
    m
}

/// `GET /<component>/<probe>?<query>`: the status and the probe's report.
async fn probe(fado: &Fado, component: &str, probe: &str, query: &str) -> (u16, Value) {
    let r = http()
        .get(fado.url(&format!("/{component}/{probe}?{query}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let report = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{component}/{probe}: not JSON ({e}): {body}"));
    (status, report)
}

#[tokio::test]
async fn tcp_connects_only_where_allowed_outbound_hosts_allow() {
    let port = tcp_echo().await;
    // A port range beside the echo server's that leaves it out.
    let beside = if port > 1000 {
        format!("{}..{port}", port - 1000)
    } else {
        format!("{}..{}", port + 1, port + 1000)
    };
    let components = [
        ("exact", vec![format!("*://127.0.0.1:{port}")]),
        ("range", vec![format!("*://127.0.0.0/24:{port}")]),
        (
            "templated-range",
            vec![format!(
                "*://{{{{ addr_prefix }}}}/{{{{ prefix_len }}}}:{port}"
            )],
        ),
        ("tcp-scheme", vec![format!("tcp://127.0.0.1:{port}")]),
        ("any-port", vec!["*://127.0.0.1:*".to_string()]),
        ("other-ip", vec![format!("*://127.0.0.2:{port}")]),
        ("other-port", vec![format!("*://127.0.0.1:{beside}")]),
        ("udp-only", vec![format!("udp://127.0.0.1:{port}")]),
        ("http-only", vec![format!("http://127.0.0.1:{port}")]),
        ("by-name", vec![format!("*://localhost:{port}")]),
        ("nothing", vec![]),
    ];
    // Spin's `tcp-sockets-ip-range-variable-permission` case.
    let variables =
        "[variables]\naddr_prefix = { default = \"127.0.0.0\" }\nprefix_len = { default = \"24\" }";
    let app = AppDir::new(&manifest(&components, variables)).unwrap();
    let fado = Fado::start(&app).unwrap();
    let address = format!("address=127.0.0.1:{port}");

    for allowed in [
        "exact",
        "range",
        "templated-range",
        "tcp-scheme",
        "any-port",
    ] {
        let (status, report) = probe(&fado, allowed, "tcp", &address).await;
        assert_eq!(status, 200, "{allowed}: {report}");
        assert_eq!(report["echo"], MESSAGE, "{allowed}: {report}");
    }
    // Refused when the connection is made, with WASI's `access-denied`.
    for refused in ["other-ip", "other-port", "udp-only", "http-only", "nothing"] {
        let (status, report) = probe(&fado, refused, "tcp", &address).await;
        assert_eq!(status, 500, "{refused}: {report}");
        assert_eq!(report["step"], "connect", "{refused}: {report}");
        assert_eq!(report["code"], "access-denied", "{refused}: {report}");
    }
    // Names are not resolved for a component, nor do name rules match the
    // address it connects to.
    let (status, report) = probe(
        &fado,
        "by-name",
        "tcp",
        &format!("address=localhost:{port}"),
    )
    .await;
    assert_eq!(status, 500, "{report}");
    assert_eq!(report["step"], "lookup", "{report}");
    assert_eq!(report["code"], "permanent-resolver-failure", "{report}");
    let (_, report) = probe(&fado, "by-name", "tcp", &address).await;
    assert_eq!(report["code"], "access-denied", "{report}");
}

#[tokio::test]
async fn udp_is_checked_under_its_scheme_and_nothing_listens() {
    let tcp = tcp_echo().await;
    let udp = udp_echo().await;
    let components = [
        ("udp", vec!["udp://127.0.0.1:*".to_string()]),
        ("tcp", vec!["tcp://127.0.0.1:*".to_string()]),
        ("all", vec!["*://*:*".to_string()]),
    ];
    let app = AppDir::new(&manifest(&components, "")).unwrap();
    let fado = Fado::start(&app).unwrap();

    let datagram = format!("address=127.0.0.1:{udp}&bind=127.0.0.1:0");
    let (status, report) = probe(&fado, "udp", "udp", &datagram).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["echo"], MESSAGE);
    let (status, report) = probe(&fado, "tcp", "udp", &datagram).await;
    assert_eq!(status, 500, "{report}");
    assert_eq!(report["step"], "bind", "{report}");
    assert_eq!(report["code"], "access-denied", "{report}");
    let (status, report) = probe(&fado, "udp", "tcp", &format!("address=127.0.0.1:{tcp}")).await;
    assert_eq!(
        (status, &report["code"]),
        (500, &Value::from("access-denied"))
    );

    // Even allowed everything, a component cannot serve TCP: binding to an
    // address is refused, and so is listening after binding to the
    // unspecified one (which a connect does implicitly).
    let (status, report) = probe(&fado, "all", "tcp", &format!("address=127.0.0.1:{tcp}")).await;
    assert_eq!(status, 200, "{report}");
    let (status, report) = probe(&fado, "all", "listen", "bind=127.0.0.1:0").await;
    assert_eq!(status, 500, "{report}");
    assert_eq!(report["step"], "bind", "{report}");
    assert_eq!(report["code"], "access-denied", "{report}");
    let (status, report) = probe(&fado, "all", "listen", "bind=0.0.0.0:0").await;
    assert_eq!(status, 500, "{report}");
    assert_eq!(report["step"], "listen", "{report}");
    assert_eq!(report["code"], "access-denied", "{report}");
}
