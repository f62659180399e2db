//! Test component for outbound MQTT. Each request is a JSON script, run
//! with spin-sdk as any Spin application would, and the answer reports how
//! far it got so the integration tests can assert on it:
//! `{"address", "username", "password", "keep_alive",
//!   "publishes": [{"topic", "payload", "qos": 0|1|2}]}`.

use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::mqtt::{self, Qos};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let script: Value = serde_json::from_slice(req.body())?;
    let (status, body) = mqtt_script(&script);
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn mqtt_script(script: &Value) -> (u16, Value) {
    let conn = match mqtt::Connection::open(
        text(script, "address"),
        text(script, "username"),
        text(script, "password"),
        script["keep_alive"].as_u64().unwrap_or(30),
    ) {
        Ok(c) => c,
        Err(e) => return (500, json!({"error": format!("open: {e:?}")})),
    };
    let mut published = 0;
    for p in script["publishes"].as_array().into_iter().flatten() {
        let qos = match p["qos"].as_u64() {
            Some(1) => Qos::AtLeastOnce,
            Some(2) => Qos::ExactlyOnce,
            _ => Qos::AtMostOnce,
        };
        if let Err(e) = conn.publish(text(p, "topic"), text(p, "payload").as_bytes(), qos) {
            return (
                500,
                json!({"error": format!("publish: {e:?}"), "published": published}),
            );
        }
        published += 1;
    }
    (200, json!({"published": published}))
}
