//! `fermyon:spin/mqtt@2.0.0` against real Mosquitto brokers: every QoS as a
//! subscriber sees it, credentials, and the errors Spin gives for denied,
//! malformed and unreachable addresses.

use std::time::Duration;

use harness::mqtt::Mosquitto;
use harness::{Fado, FadoOptions, free_port, http, one_component_app};
use rumqttc::QoS;
use serde_json::{Value, json};

fn allow(broker: &Mosquitto) -> Vec<String> {
    vec![format!("mqtt://127.0.0.1:{}", broker.port)]
}

async fn run(fado: &Fado, script: Value) -> (u16, Value) {
    let r = http()
        .post(fado.url("/"))
        .json(&script)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn publishes_at_every_qos_reach_a_subscriber_after_the_broker_acknowledges() {
    let broker = Mosquitto::start().unwrap();
    let mut sub = broker.subscribe("fado/qos/#", None).await.unwrap();
    let fado = Fado::start(&one_component_app("mqtt-probe", &allow(&broker))).unwrap();
    let big = "x".repeat(100 * 1024);
    let (status, v) = run(
        &fado,
        json!({
            "address": broker.address("fado-qos"),
            "publishes": [
                {"topic": "fado/qos/0", "payload": "at most once", "qos": 0},
                {"topic": "fado/qos/1", "payload": "at least once", "qos": 1},
                {"topic": "fado/qos/2", "payload": "exactly once", "qos": 2},
                {"topic": "fado/qos/big", "payload": big, "qos": 1},
            ],
        }),
    )
    .await;
    assert_eq!((status, &v["published"]), (200, &json!(4)), "{v}");
    // The guest had its answer only after the broker's PUBACK (QoS 1) and
    // PUBCOMP (QoS 2): the broker logged the whole exchange by now.
    let log = broker.log();
    for line in [
        "Received PUBLISH from fado-qos (d0, q0",
        "Received PUBLISH from fado-qos (d0, q1",
        "Sending PUBACK to fado-qos",
        "Received PUBLISH from fado-qos (d0, q2",
        "Sending PUBREC to fado-qos",
        "Received PUBREL from fado-qos",
        "Sending PUBCOMP to fado-qos",
    ] {
        assert!(log.contains(line), "broker log lacks {line:?}:\n{log}");
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = sub
            .next(Duration::from_secs(10))
            .await
            .expect("the subscriber receives every message");
        got.push(m);
    }
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    let seen: Vec<(&str, &[u8], QoS)> = got
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.as_slice(), m.qos))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("fado/qos/0", &b"at most once"[..], QoS::AtMostOnce),
            ("fado/qos/1", &b"at least once"[..], QoS::AtLeastOnce),
            ("fado/qos/2", &b"exactly once"[..], QoS::ExactlyOnce),
            ("fado/qos/big", big.as_bytes(), QoS::AtLeastOnce),
        ]
    );
    // The guest dropped its connection: the session ends with DISCONNECT.
    let ended = harness::eventually(Duration::from_secs(5), || async {
        broker
            .log()
            .contains("Received DISCONNECT from fado-qos")
            .then_some(())
    })
    .await;
    assert!(ended.is_some(), "no DISCONNECT:\n{}", broker.log());
}

#[tokio::test]
async fn username_and_password_are_sent_and_a_wrong_one_fails_to_connect() {
    let broker = Mosquitto::start_with_password("sensor", "s3cret pass").unwrap();
    let mut sub = broker
        .subscribe("fado/auth", Some(("sensor", "s3cret pass")))
        .await
        .unwrap();
    let fado = Fado::start(&one_component_app("mqtt-probe", &allow(&broker))).unwrap();
    let script = |password: &str| {
        json!({
            "address": broker.address("fado-auth"),
            "username": "sensor",
            "password": password,
            "publishes": [{"topic": "fado/auth", "payload": "signed in", "qos": 1}],
        })
    };
    let (status, v) = run(&fado, script("s3cret pass")).await;
    assert_eq!(status, 200, "{v}");
    let m = sub.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(m.payload, b"signed in");

    let (status, v) = run(&fado, script("wrong")).await;
    assert_eq!(status, 500);
    let e = v["error"].as_str().unwrap();
    assert!(
        e.starts_with("publish: Error::ConnectionFailed(") && e.contains("NotAuthorized"),
        "{e}"
    );
    // Anonymous is refused by this broker too.
    let mut anonymous = script("");
    anonymous["username"] = json!("");
    let (status, v) = run(&fado, anonymous).await;
    assert_eq!(status, 500);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("publish: Error::ConnectionFailed("),
        "{v}"
    );
    assert!(sub.next(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn addresses_outside_allowed_hosts_are_refused() {
    let broker = Mosquitto::start().unwrap();
    let mut sub = broker.subscribe("fado/denied", None).await.unwrap();
    // Allowed: the broker's host on another port, and its port under another scheme.
    let fado = Fado::start(&one_component_app(
        "mqtt-probe",
        &[
            format!("mqtt://127.0.0.1:{}", broker.port + 1),
            format!("redis://127.0.0.1:{}", broker.port),
        ],
    ))
    .unwrap();
    let address = broker.address("fado-denied");
    let (status, v) = run(
        &fado,
        json!({
            "address": address,
            "publishes": [{"topic": "fado/denied", "payload": "no", "qos": 0}],
        }),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        v["error"],
        format!("open: Error::ConnectionFailed(\"address {address} is not permitted\")")
    );
    assert!(sub.next(Duration::from_millis(500)).await.is_none());
}

#[tokio::test]
async fn malformed_and_unreachable_addresses_fail_as_in_spin() {
    let dead = free_port();
    let fado = Fado::start(&one_component_app(
        "mqtt-probe",
        &["mqtt://127.0.0.1:*".to_string()],
    ))
    .unwrap();
    // Spin's address form requires a client id.
    let (status, v) = run(
        &fado,
        json!({"address": format!("mqtt://127.0.0.1:{dead}"), "publishes": []}),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (500, Some("open: Error::InvalidAddress"))
    );
    // Nothing listens: opening succeeds (the session connects on first
    // use, as in Spin) and the publish fails to connect.
    let (status, v) = run(
        &fado,
        json!({
            "address": format!("mqtt://127.0.0.1:{dead}?client_id=fado-dead"),
            "publishes": [{"topic": "t", "payload": "p", "qos": 1}],
        }),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(v["published"], 0);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("publish: Error::ConnectionFailed("),
        "{v}"
    );
}

#[tokio::test]
async fn runtime_config_limits_the_payload_size() {
    let broker = Mosquitto::start().unwrap();
    let mut sub = broker.subscribe("fado/limit", None).await.unwrap();
    let app = one_component_app("mqtt-probe", &allow(&broker));
    let rc = app
        .write(
            "runtime-config.toml",
            "[outbound_mqtt]\nmax_payload_size_bytes = 8\nmax_connections = 1\n",
        )
        .unwrap();
    let fado = Fado::start_with(
        &app,
        FadoOptions {
            args: vec!["--runtime-config-file".into(), rc.display().to_string()],
            ..Default::default()
        },
    )
    .unwrap();
    let (status, v) = run(
        &fado,
        json!({
            "address": broker.address("fado-limit"),
            "publishes": [
                {"topic": "fado/limit", "payload": "8 bytes!", "qos": 1},
                {"topic": "fado/limit", "payload": "nine byte", "qos": 1},
            ],
        }),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(v["published"], 1);
    assert_eq!(
        v["error"],
        "publish: Error::Other(\"payload size 9 exceeds the maximum allowed size of 8 bytes\")"
    );
    assert_eq!(
        sub.next(Duration::from_secs(10)).await.unwrap().payload,
        b"8 bytes!"
    );
    // One connection at a time: the first request's closed, so a second runs.
    let (status, v) = run(
        &fado,
        json!({
            "address": broker.address("fado-limit"),
            "publishes": [{"topic": "fado/limit", "payload": "again", "qos": 0}],
        }),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}
