//! The Redis trigger: delivery, failing handlers, and resubscription after
//! Redis restarts.

use std::time::Duration;

use harness::{AppDir, Fado, Redis, eventually, shared_redis};

fn app(redis_url: &str, key: &str) -> AppDir {
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "sink"
[application.trigger.redis]
address = "{redis_url}"
[variables]
sink_key = {{ default = "{key}" }}
[[trigger.redis]]
channel = "jobs"
component = "sink"
[component.sink]
source = "{{{{wasm:redis-sink}}}}"
allowed_outbound_hosts = ["{redis_url}"]
[component.sink.variables]
sink_address = "{redis_url}"
sink_key = "{{{{ sink_key }}}}"
"#
    ))
    .unwrap()
}

async fn received(redis: &Redis, key: &str) -> Vec<String> {
    let mut conn = redis.conn().await.unwrap();
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn publish(redis: &Redis, payload: &str) -> i64 {
    let mut conn = redis.conn().await.unwrap();
    redis::cmd("PUBLISH")
        .arg("jobs")
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_reach_the_handler_and_a_trap_does_not_stop_delivery() {
    let redis = shared_redis();
    let key = format!("sink-{}", std::process::id());
    let fado = Fado::start(&app(&redis.url(), &key)).unwrap();
    let subscribed = eventually(Duration::from_secs(10), || async {
        (publish(redis, "first").await > 0).then_some(())
    })
    .await;
    assert!(
        subscribed.is_some(),
        "fado never subscribed; log:\n{}",
        fado.log()
    );
    publish(redis, "trap").await;
    publish(redis, "second").await;
    // Each message runs in its own instance, concurrently (as in Spin), so
    // handlers may finish in any order.
    let mut got = eventually(Duration::from_secs(10), || async {
        let got = received(redis, &key).await;
        (got.len() >= 2).then_some(got)
    })
    .await
    .unwrap_or_else(|| panic!("messages not delivered; log:\n{}", fado.log()));
    got.sort();
    assert_eq!(
        got,
        ["first", "second"],
        "each message handled once, the trap not at all"
    );
    let trap_logged = eventually(Duration::from_secs(10), || async {
        fado.log().contains("Redis handler failed").then_some(())
    })
    .await;
    assert!(trap_logged.is_some(), "the trap is logged:\n{}", fado.log());
}

#[tokio::test]
async fn the_trigger_resubscribes_when_redis_restarts() {
    let mut redis = Redis::start().unwrap();
    let key = "restart-sink";
    let fado = Fado::start(&app(&redis.url(), key)).unwrap();
    let first = eventually(Duration::from_secs(10), || async {
        (publish(&redis, "before").await > 0).then_some(())
    })
    .await;
    assert!(first.is_some(), "no subscriber; log:\n{}", fado.log());

    redis.restart().unwrap();
    // Until fado has resubscribed nobody receives (PUBLISH reports 0), and the
    // handler's first Redis command may meet the pooled connection still
    // reconnecting; keep publishing until a message lands.
    let got = eventually(Duration::from_secs(30), || async {
        publish(&redis, "after").await;
        let got = received(&redis, key).await;
        got.contains(&"after".to_string()).then_some(got)
    })
    .await;
    assert!(
        got.is_some(),
        "no message handled after the restart; log:\n{}",
        fado.log()
    );
    let log = fado.log();
    assert!(log.contains("resubscribing"), "the loss is logged:\n{log}");
    assert!(
        log.matches("subscribed to Redis channels").count() >= 2,
        "{log}"
    );
}
