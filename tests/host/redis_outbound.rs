//! `fermyon:spin/redis`: every command against a real Redis, and denial.

use harness::{Fado, http, probe_app, shared_redis};
use serde_json::{Value, json};

#[tokio::test]
async fn every_redis_command_round_trips() {
    let redis = shared_redis();
    let fado = Fado::start(&probe_app(&[redis.url()])).unwrap();
    let r = http()
        .get(fado.url("/redis"))
        .query(&[("addr", redis.url().as_str()), ("prefix", "ops")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["get"], "hello");
    assert_eq!(v["missing"], true);
    assert_eq!(v["incr"], json!([1, 2]));
    assert_eq!(v["type_error"], "Error::TypeError");
    assert_eq!(v["sadd"], 3);
    assert_eq!(v["srem"], 1);
    assert_eq!(v["smembers"], json!(["a", "c"]));
    assert_eq!(v["execute"], json!([{"int64": 1}]));
    assert_eq!(v["hgetall"], json!([{"binary": "field"}, {"binary": "7"}]));
    assert_eq!(v["ping"], json!([{"status": "PONG"}]));
    assert_eq!(v["del"], 4);
}

#[tokio::test]
async fn addresses_outside_allowed_hosts_are_invalid() {
    let redis = shared_redis();
    // Allowed: a different port than the server's.
    let fado = Fado::start(&probe_app(&[format!(
        "redis://127.0.0.1:{}",
        redis.port + 1
    )]))
    .unwrap();
    let r = http()
        .get(fado.url("/redis"))
        .query(&[("addr", redis.url().as_str()), ("prefix", "denied")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "open: Error::InvalidAddress");
    let mut conn = redis.conn().await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg("denied:str")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "nothing was written through a denied address");
}
