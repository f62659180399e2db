//! `fermyon:spin/key-value`: the local default store (persistent across
//! restarts), a Redis-backed store from a runtime-config file, and access rules.

use harness::{AppDir, Fado, FadoOptions, fado_fails, http, shared_redis};
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
    assert!(app.path().join(".fado/key_value/default.redb").exists());
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
