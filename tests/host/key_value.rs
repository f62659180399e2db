//! Key-value stores: the local default store (persistent across restarts),
//! a Redis-backed store from a runtime-config file, access rules, and the
//! near-cache of Redis (reads from memory, invalidation, outages).

use std::time::Duration;

use harness::{AppDir, Fado, FadoOptions, Redis, fado_fails, http, shared_redis};
use serde_json::{Value, json};

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "kv"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{{wasm:probe}}"
key_value_stores = ["default", "shared"]
"#;

async fn kv(fado: &Fado, store: &str, op: &str, key: &str, body: &str) -> (u16, Value) {
    let r = http()
        .post(fado.url("/kv"))
        .query(&[("store", store), ("op", op), ("key", key)])
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn runtime_config(app: &AppDir) -> Vec<String> {
    let path = app
        .write(
            "runtime-config.toml",
            &format!(
                "[key_value_store.shared]\ntype = \"redis\"\nurl = \"{}\"\n",
                shared_redis().url()
            ),
        )
        .unwrap();
    vec!["--runtime-config-file".into(), path.display().to_string()]
}

/// Starts the app with the runtime config that defines the `shared` store.
fn start(app: &AppDir) -> Fado {
    Fado::start_with(
        app,
        FadoOptions {
            args: runtime_config(app),
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn default_store_persists_across_restarts() {
    let app = AppDir::new(APP).unwrap();
    {
        let fado = start(&app);
        assert_eq!(kv(&fado, "default", "set", "alpha", "one").await.0, 200);
        assert_eq!(kv(&fado, "default", "set", "beta", "two").await.0, 200);
        assert_eq!(kv(&fado, "default", "delete", "beta", "").await.0, 200);
        assert_eq!(
            kv(&fado, "default", "exists", "beta", "").await.1,
            json!({"exists": false})
        );
    }
    let fado = start(&app);
    assert_eq!(
        kv(&fado, "default", "get", "alpha", "").await.1,
        json!({"value": "one"})
    );
    assert_eq!(
        kv(&fado, "default", "get", "beta", "").await.1,
        json!({"value": null})
    );
    assert_eq!(
        kv(&fado, "default", "keys", "", "").await.1,
        json!({"keys": ["alpha"]})
    );
    // State lives in a directory of its own under the data home, named
    // after the app's directory; nothing is written beside the manifest.
    let apps = app.data_home().join("fado/apps");
    let dirs: Vec<_> = std::fs::read_dir(&apps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let name = app.path().file_name().unwrap().to_str().unwrap();
    assert!(
        matches!(&dirs[..], [d] if d.file_name().unwrap().to_str().unwrap().starts_with(&format!("{name}-"))),
        "{dirs:?}"
    );
    assert!(dirs[0].join("key_value/default.redb").exists());
    assert!(!app.path().join(".fado").exists());
}

/// State an earlier version kept beside the manifest (`.fado/`) stays in use.
#[tokio::test]
async fn state_beside_the_manifest_from_earlier_versions_is_kept() {
    let app = AppDir::new(APP).unwrap();
    std::fs::create_dir_all(app.path().join(".fado/key_value")).unwrap();
    let fado = start(&app);
    assert_eq!(kv(&fado, "default", "set", "alpha", "one").await.0, 200);
    assert!(app.path().join(".fado/key_value/default.redb").exists());
    assert!(!app.data_home().exists());
}

#[tokio::test]
async fn runtime_config_backs_a_store_with_redis() {
    let app = AppDir::new(APP).unwrap();
    let fado = start(&app);
    let key = format!("kv-test-{}", std::process::id());
    assert_eq!(kv(&fado, "shared", "set", &key, "in redis").await.0, 200);
    let mut conn = shared_redis().conn().await.unwrap();
    let stored: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored, "in redis");
    assert_eq!(
        kv(&fado, "shared", "exists", &key, "").await.1,
        json!({"exists": true})
    );
    let (_, keys) = kv(&fado, "shared", "keys", "", "").await;
    assert!(keys["keys"].as_array().unwrap().contains(&json!(key)));
    assert_eq!(kv(&fado, "shared", "delete", &key, "").await.0, 200);
    assert_eq!(
        kv(&fado, "shared", "get", &key, "").await.1,
        json!({"value": null})
    );
}

#[tokio::test]
async fn stores_not_granted_are_denied_and_unknown_labels_stop_start_up() {
    let app = AppDir::new(APP).unwrap();
    let fado = start(&app);
    let (status, v) = kv(&fado, "other", "get", "x", "").await;
    assert_eq!(status, 500);
    assert!(v["error"].as_str().unwrap().contains("AccessDenied"), "{v}");
    // A second host on the same state directory is refused with a clear reason.
    let out = fado_fails(
        &app,
        &runtime_config(&app)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
    )
    .unwrap();
    assert!(out.contains("in use by another process"), "{out}");
    drop(fado);

    // Without the runtime config, "shared" is not a store at all.
    let out = fado_fails(&app, &[], &[]).unwrap();
    assert!(out.contains("component.probe.key_value_stores[1]"), "{out}");
    let bad = app
        .write("bad.toml", "[key_value_store.shared]\ntype = \"cosmos\"\n")
        .unwrap();
    let out = fado_fails(&app, &["--runtime-config-file", bad.to_str().unwrap()], &[]).unwrap();
    assert!(
        out.contains("bad.toml") && out.contains("key_value_store.shared"),
        "{out}"
    );
}

// ---- the near-cache backend (`type = "redis_near_cache"`) -----------------

const NEAR_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "kv-near"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{{wasm:probe}}"
key_value_stores = ["near"]
"#;

/// A fado process whose store `near` is a near-cache of `redis`.
fn start_near(app: &AppDir, redis: &Redis) -> Fado {
    let path = app
        .write(
            "near.toml",
            &format!(
                "[key_value_store.near]\ntype = \"redis_near_cache\"\nurl = \"{}\"\n",
                redis.url()
            ),
        )
        .unwrap();
    Fado::start_with(
        app,
        FadoOptions {
            args: vec!["--runtime-config-file".into(), path.display().to_string()],
            ..Default::default()
        },
    )
    .unwrap()
}

async fn near_get(fado: &Fado, key: &str) -> Value {
    let (s, v) = kv(fado, "near", "get", key, "").await;
    assert_eq!(s, 200, "{v}");
    v["value"].clone()
}

/// A value from the admin listener's metrics, 0 when absent.
async fn metric(fado: &Fado, line_start: &str) -> f64 {
    fado.metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn redis_set(redis: &Redis, key: &str, value: &str) {
    let mut c = redis.conn().await.unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
}

/// Reads are served from memory: repeated reads send Redis nothing, and a
/// write by another client reaches this process's cache within 10 ms (the
/// next read after that sees it).
#[tokio::test]
async fn a_near_cache_reads_from_memory_and_sees_other_writers_within_10_ms() {
    let redis = Redis::start().unwrap();
    let app = AppDir::new(NEAR_APP).unwrap();
    let fado = start_near(&app, &redis);
    assert_eq!(kv(&fado, "near", "set", "k", "one").await.0, 200);
    assert_eq!(
        near_get(&fado, "k").await,
        json!("one"),
        "reads its own write"
    );
    assert_eq!(near_get(&fado, "missing").await, json!(null));
    let gets =
        redis.command_calls("get").await.unwrap() + redis.command_calls("mget").await.unwrap();
    for _ in 0..20 {
        assert_eq!(near_get(&fado, "k").await, json!("one"));
        assert_eq!(near_get(&fado, "missing").await, json!(null));
    }
    let after =
        redis.command_calls("get").await.unwrap() + redis.command_calls("mget").await.unwrap();
    assert_eq!(
        after, gets,
        "cached reads (values and absences) went to Redis"
    );
    for i in 0..20 {
        let value = format!("v{i}");
        redis_set(&redis, "k", &value).await;
        redis_set(&redis, "missing", &value).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(near_get(&fado, "k").await, json!(value), "change {i}");
        assert_eq!(near_get(&fado, "missing").await, json!(value), "change {i}");
    }
    assert!(metric(&fado, "fado_kv_cache_invalidations_total{store=\"near\"}").await >= 40.0);
    assert!(metric(&fado, "fado_kv_cache_hits_total{store=\"near\"}").await >= 40.0);
}

/// Invalidations sent while the tracking connection was gone are lost, so
/// a cache that lost its connection is dropped once tracking is back, and
/// refilled from Redis.
#[tokio::test]
async fn the_near_cache_is_dropped_and_refilled_after_its_connection_is_killed() {
    let redis = Redis::start().unwrap();
    let app = AppDir::new(NEAR_APP).unwrap();
    let fado = start_near(&app, &redis);
    assert_eq!(kv(&fado, "near", "set", "k", "before").await.0, 200);
    assert_eq!(near_get(&fado, "k").await, json!("before"));
    let flushes = metric(&fado, "fado_kv_cache_flushes_total{store=\"near\"}").await;
    let mut c = redis.conn().await.unwrap();
    // Redis drops the killed client's tracking at once; this write's
    // invalidation has nobody to go to.
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(killed >= 1, "no client to kill");
    redis_set(&redis, "k", "after").await;
    let seen = harness::eventually(Duration::from_secs(5), || async {
        (near_get(&fado, "k").await == json!("after")).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "the cache kept a value it could not know was stale:\n{}",
        fado.log()
    );
    assert!(metric(&fado, "fado_kv_cache_flushes_total{store=\"near\"}").await > flushes);
    assert_eq!(
        metric(&fado, "fado_kv_cache_connected{store=\"near\"}").await,
        1.0
    );
}

/// While Redis is unreachable the cache serves what it holds (and counts
/// those reads as stale); a key it does not hold is an error, not a guess.
/// When Redis is back the cache refills from it.
#[tokio::test]
async fn the_near_cache_serves_what_it_holds_while_redis_is_down() {
    let mut redis = Redis::start().unwrap();
    let app = AppDir::new(NEAR_APP).unwrap();
    let fado = start_near(&app, &redis);
    assert_eq!(kv(&fado, "near", "set", "k", "kept").await.0, 200);
    assert_eq!(near_get(&fado, "k").await, json!("kept"));
    redis.stop();
    let down = harness::eventually(Duration::from_secs(5), || async {
        (metric(&fado, "fado_kv_cache_connected{store=\"near\"}").await == 0.0).then_some(())
    })
    .await;
    assert!(down.is_some(), "the lost connection went unnoticed");
    for _ in 0..5 {
        assert_eq!(near_get(&fado, "k").await, json!("kept"));
    }
    assert!(metric(&fado, "fado_kv_cache_stale_hits_total{store=\"near\"}").await >= 5.0);
    let (s, v) = kv(&fado, "near", "get", "never-read", "").await;
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unreachable"), "{v}");
    let (s, v) = kv(&fado, "near", "set", "k", "x").await;
    assert_eq!(s, 500, "a write while Redis is down must fail: {v}");

    redis.restart().unwrap();
    // The restarted server holds nothing; once reconnected the cache says so.
    let refilled = harness::eventually(Duration::from_secs(10), || async {
        (near_get(&fado, "k").await == json!(null)).then_some(())
    })
    .await;
    assert!(refilled.is_some(), "{}", fado.log());
    assert_eq!(kv(&fado, "near", "set", "k", "again").await.0, 200);
    assert_eq!(near_get(&fado, "k").await, json!("again"));
}

// ---- wasi:keyvalue on every backend ---------------------------------------

const WASI_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "wasi-kv"
[[trigger.http]]
route = "/..."
component = "probe"
[component.probe]
source = "{{wasm:probe}}"
key_value_stores = ["mem", "file", "plain", "near"]
"#;

async fn wkv(fado: &Fado, store: &str, op: &str, key: &str, arg: &str, body: &str) -> Value {
    let r = http()
        .post(fado.url("/wkv"))
        .query(&[("store", store), ("op", op), ("key", key), ("arg", arg)])
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{store} {op} {key}: {v}");
    v
}

/// `wasi:keyvalue` store, atomics and batch give the same answers whatever
/// backs the label: process memory, a local file, Redis, or the near-cache
/// of Redis.
#[tokio::test]
async fn wasi_keyvalue_behaves_the_same_on_every_backend() {
    let redis = Redis::start().unwrap();
    let app = AppDir::new(WASI_APP).unwrap();
    let path = app
        .write(
            "rt.toml",
            &format!(
                "[key_value_store.mem]\ntype = \"memory\"\n\
                 [key_value_store.file]\ntype = \"spin\"\npath = \"kv.redb\"\n\
                 [key_value_store.plain]\ntype = \"redis\"\nurl = \"{0}\"\n\
                 [key_value_store.near]\ntype = \"redis_near_cache\"\nurl = \"{0}\"\n",
                redis.url()
            ),
        )
        .unwrap();
    let fado = Fado::start_with(
        &app,
        FadoOptions {
            args: vec!["--runtime-config-file".into(), path.display().to_string()],
            ..Default::default()
        },
    )
    .unwrap();
    for store in ["mem", "file", "plain", "near"] {
        // Redis-backed labels share one keyspace here: prefix the keys.
        let k = |name: &str| format!("{store}-{name}");
        wkv(&fado, store, "set", &k("a"), "", "1").await;
        assert_eq!(
            wkv(&fado, store, "get", &k("a"), "", "").await,
            json!({"value": "1"})
        );
        assert_eq!(
            wkv(&fado, store, "get", &k("none"), "", "").await,
            json!({"value": null})
        );
        assert_eq!(
            wkv(&fado, store, "exists", &k("a"), "", "").await,
            json!({"exists": true})
        );
        assert_eq!(
            wkv(&fado, store, "incr", &k("n"), "5", "").await,
            json!({"value": 5})
        );
        assert_eq!(
            wkv(&fado, store, "incr", &k("n"), "-7", "").await,
            json!({"value": -2})
        );
        assert_eq!(
            wkv(&fado, store, "get", &k("n"), "", "").await,
            json!({"value": "-2"})
        );
        assert_eq!(
            wkv(&fado, store, "incr", &k("a"), "1", "").await,
            json!({"value": 2})
        );
        wkv(&fado, store, "set", &k("t"), "", "text").await;
        let r = http()
            .post(fado.url("/wkv"))
            .query(&[
                ("store", store),
                ("op", "incr"),
                ("key", &k("t")),
                ("arg", "1"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            500,
            "{store}: incrementing text must fail"
        );

        let cas = |from: &'static str, to: &'static str| {
            let (fado, key) = (&fado, k("c"));
            async move { wkv(fado, store, "cas", &key, from, to).await }
        };
        assert_eq!(cas("-", "v1").await, json!({"swapped": true}));
        assert_eq!(
            cas("-", "v2").await,
            json!({"swapped": false, "found": "v1"})
        );
        assert_eq!(
            cas("v0", "v2").await,
            json!({"swapped": false, "found": "v1"})
        );
        assert_eq!(cas("v1", "v2").await, json!({"swapped": true}));
        assert_eq!(
            wkv(&fado, store, "get", &k("c"), "", "").await,
            json!({"value": "v2"})
        );

        let pairs = format!("{}=1,{}=2", k("x"), k("y"));
        wkv(&fado, store, "set-many", "", "", &pairs).await;
        let many = format!("{},{},{}", k("x"), k("y"), k("z"));
        assert_eq!(
            wkv(&fado, store, "get-many", &many, "", "").await,
            json!({"values": [[k("x"), "1"], [k("y"), "2"], [k("z"), null]]})
        );
        wkv(&fado, store, "delete-many", &many, "", "").await;
        wkv(&fado, store, "delete", &k("a"), "", "").await;
        assert_eq!(
            wkv(&fado, store, "exists", &k("a"), "", "").await,
            json!({"exists": false})
        );
        assert_eq!(
            wkv(&fado, store, "get-many", &many, "", "").await,
            json!({"values": [[k("x"), null], [k("y"), null], [k("z"), null]]})
        );

        // Listing pages through every key.
        for chunk in 0..6 {
            let pairs: Vec<String> = (0..200)
                .map(|i| format!("{}={i}", k(&format!("l{:04}", chunk * 200 + i))))
                .collect();
            wkv(&fado, store, "set-many", "", "", &pairs.join(",")).await;
        }
        let listed = wkv(&fado, store, "list", "", "", "").await;
        let ours: Vec<&str> = listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|v| v.starts_with(&k("l")))
            .collect();
        assert_eq!(ours.len(), 1200, "{store}");
        if matches!(store, "mem" | "file") {
            assert!(
                listed["pages"].as_u64().unwrap() >= 2,
                "{store}: {}",
                listed["pages"]
            );
        }
    }
}

/// A process always reads its own writes, even while other requests of
/// the same process read the key at the same moment: a read whose answer
/// left Redis before the write must not leave the old value in the cache.
#[tokio::test(flavor = "multi_thread")]
async fn a_near_cache_reads_its_own_writes_under_concurrent_reads() {
    let redis = Redis::start().unwrap();
    let app = AppDir::new(NEAR_APP).unwrap();
    let fado = std::sync::Arc::new(start_near(&app, &redis));
    assert_eq!(kv(&fado, "near", "set", "k", "0").await.0, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..6)
        .map(|_| {
            let (fado, stop) = (fado.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    near_get(&fado, "k").await;
                }
            })
        })
        .collect();
    for i in 1..=300 {
        let value = i.to_string();
        assert_eq!(kv(&fado, "near", "set", "k", &value).await.0, 200);
        assert_eq!(near_get(&fado, "k").await, json!(value), "write {i}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}
