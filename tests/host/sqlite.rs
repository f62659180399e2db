//! SQLite through `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`:
//! every value type both ways, v3's counters, access rules, SQLite's error
//! messages, where database files live (state directory, runtime config),
//! persistence across restarts, two processes on one file, and start-up
//! refusal of labels configured nowhere.

use std::path::Path;
use std::time::Duration;

use harness::{AppDir, Fado, FadoOptions, fado_fails, http};
use serde_json::{Value, json};

/// The `sqlite-probe` component as `store`, granted `databases`.
fn sqlite_app(databases: &[&str]) -> AppDir {
    let list: Vec<String> = databases.iter().map(|d| format!("{d:?}")).collect();
    AppDir::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "sqlite"
[[trigger.http]]
route = "/..."
component = "store"
[component.store]
source = "{{{{wasm:sqlite-probe}}}}"
sqlite_databases = [{}]
"#,
        list.join(", ")
    ))
    .unwrap()
}

/// Writes `conf/runtime-config.toml` (so relative paths resolve against
/// `conf/`, not the manifest's directory) and returns the CLI arguments.
fn runtime_config(app: &AppDir, text: &str) -> Vec<String> {
    let path = app.write("conf/runtime-config.toml", text).unwrap();
    vec!["--runtime-config-file".into(), path.display().to_string()]
}

fn start(app: &AppDir, args: Vec<String>) -> Fado {
    Fado::start_with(
        app,
        FadoOptions {
            args,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Runs a script (see the component) and returns its report.
async fn script(fado: &Fado, api: &str, db: &str, steps: Value) -> Value {
    let r = http()
        .post(fado.url("/sqlite"))
        .json(&json!({"api": api, "db": db, "steps": steps}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}\nlog:\n{}", fado.log());
    serde_json::from_str(&text).unwrap()
}

/// The results of a script that must open its database.
async fn results(fado: &Fado, api: &str, db: &str, steps: Value) -> Vec<Value> {
    let report = script(fado, api, db, steps).await;
    report["results"]
        .as_array()
        .unwrap_or_else(|| panic!("the script did not run: {report}"))
        .clone()
}

fn sql(text: &str) -> Value {
    json!({"sql": text})
}

fn sql_with(text: &str, params: Value) -> Value {
    json!({"sql": text, "params": params})
}

fn op(name: &str) -> Value {
    json!({"op": name})
}

#[tokio::test]
async fn every_value_type_round_trips_through_both_interfaces() {
    let app = sqlite_app(&["default"]);
    let fado = start(&app, vec![]);
    for api in ["v2", "v3"] {
        let table = format!("types_{api}");
        let row_a = json!([
            {"integer": i64::MIN},
            {"real": -2.5},
            {"text": "héllo wörld ✓"},
            {"blob": [0, 1, 127, 128, 255]},
            "null",
        ]);
        let row_b = json!([
            {"integer": i64::MAX},
            {"real": 1.0e300},
            {"text": ""},
            {"blob": []},
            "null",
        ]);
        let r = results(
            &fado,
            api,
            "default",
            json!([
                sql(&format!("CREATE TABLE {table} (i, r, s, b, n)")),
                sql_with(&format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?)"), row_a.clone()),
                sql_with(&format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?)"), row_b.clone()),
                sql(&format!("SELECT i, r, s, b, n FROM {table} ORDER BY i")),
                sql(&format!(
                    "SELECT typeof(i), typeof(r), typeof(s), typeof(b), typeof(n) FROM {table} LIMIT 1"
                )),
                sql_with("SELECT ? + 1 AS next, ? AS same", json!([{"integer": 41}, {"real": 0.5}])),
            ]),
        )
        .await;
        assert_eq!(r[0], json!({"columns": [], "rows": []}), "{api}");
        assert_eq!(r[3]["columns"], json!(["i", "r", "s", "b", "n"]), "{api}");
        assert_eq!(r[3]["rows"], json!([row_a, row_b]), "{api}");
        assert_eq!(
            r[4]["rows"],
            json!([[{"text": "integer"}, {"text": "real"}, {"text": "text"}, {"text": "blob"}, {"text": "null"}]]),
            "{api}: each value is stored as its own SQLite type"
        );
        assert_eq!(r[5]["columns"], json!(["next", "same"]), "{api}");
        assert_eq!(
            r[5]["rows"],
            json!([[{"integer": 42}, {"real": 0.5}]]),
            "{api}"
        );
    }
}

#[tokio::test]
async fn v3_counts_last_insert_rowid_and_changes_per_connection() {
    let app = sqlite_app(&["default"]);
    let fado = start(&app, vec![]);
    let r = results(
        &fado,
        "v3",
        "default",
        json!([
            op("last_insert_rowid"),
            op("changes"),
            sql("CREATE TABLE counted (id INTEGER PRIMARY KEY, v TEXT)"),
            sql("INSERT INTO counted (v) VALUES ('a'), ('b'), ('c')"),
            op("last_insert_rowid"),
            op("changes"),
            sql("UPDATE counted SET v = 'z' WHERE id >= 2"),
            op("changes"),
            op("last_insert_rowid"),
            sql_with(
                "INSERT INTO counted (id, v) VALUES (?, ?)",
                json!([{"integer": 42}, {"text": "x"}])
            ),
            sql("SELECT count(*) FROM counted"),
            op("last_insert_rowid"),
            op("changes"),
            // A second connection has counters of its own.
            op("open"),
            op("last_insert_rowid"),
            op("changes"),
            sql("DELETE FROM counted WHERE id < 42"),
            op("changes"),
            op("last_insert_rowid"),
        ]),
    )
    .await;
    let values: Vec<Value> = r
        .iter()
        .filter_map(|x| {
            x.get("last_insert_rowid")
                .or_else(|| x.get("changes"))
                .cloned()
        })
        .collect();
    assert_eq!(
        values,
        json!([0, 0, 3, 3, 2, 3, 42, 1, 0, 0, 3, 0])
            .as_array()
            .unwrap()
            .clone(),
        "{r:?}"
    );
    assert_eq!(r[10]["rows"], json!([[{"integer": 4}]]));
    // Spin 2's interface has no counters; the component reports null.
    let r = results(&fado, "v2", "default", json!([op("changes")])).await;
    assert_eq!(r[0], json!({"changes": null}));
}

#[tokio::test]
async fn transactions_belong_to_their_connection_and_abandoned_ones_roll_back() {
    let app = sqlite_app(&["default"]);
    let fado = start(&app, vec![]);
    let count = || {
        results(
            &fado,
            "v2",
            "default",
            json!([sql("SELECT count(*) FROM tx")]),
        )
    };
    let r = results(
        &fado,
        "v3",
        "default",
        json!([
            sql("CREATE TABLE tx (n)"),
            sql("BEGIN"),
            sql("INSERT INTO tx VALUES (1)"),
            sql("SELECT count(*) FROM tx"),
            // Another connection does not see the open transaction's row.
            op("open"),
            sql("SELECT count(*) FROM tx"),
        ]),
    )
    .await;
    assert_eq!(r[3]["rows"], json!([[{"integer": 1}]]), "{r:?}");
    assert_eq!(r[5]["rows"], json!([[{"integer": 0}]]), "{r:?}");
    // The script ended without COMMIT: its connection closed, rolling back.
    assert_eq!(count().await[0]["rows"], json!([[{"integer": 0}]]));
    let r = results(
        &fado,
        "v2",
        "default",
        json!([
            sql("BEGIN"),
            sql("INSERT INTO tx VALUES (1)"),
            sql("INSERT INTO tx VALUES (2)"),
            sql("COMMIT"),
        ]),
    )
    .await;
    assert!(r.iter().all(|x| x.get("error").is_none()), "{r:?}");
    assert_eq!(count().await[0]["rows"], json!([[{"integer": 2}]]));
}

#[tokio::test]
async fn unlisted_databases_are_denied_whether_or_not_they_exist() {
    let app = sqlite_app(&["default"]);
    let args = runtime_config(
        &app,
        "[sqlite_database.other]\ntype = \"spin\"\npath = \"other.db\"\n",
    );
    let fado = start(&app, args);
    for api in ["v2", "v3"] {
        let report = script(&fado, api, "other", json!([])).await;
        assert_eq!(
            report,
            json!({"open_error": {"kind": "access-denied"}}),
            "{api}: configured, but not listed by the component"
        );
        let report = script(&fado, api, "nowhere", json!([])).await;
        assert_eq!(
            report,
            json!({"open_error": {"kind": "access-denied"}}),
            "{api}: configured nowhere (Spin answers access-denied before looking)"
        );
        let r = results(&fado, api, "default", json!([sql("SELECT 1")])).await;
        assert_eq!(r[0]["rows"], json!([[{"integer": 1}]]), "{api}");
    }
    assert!(
        !app.path().join("conf/other.db").exists(),
        "a database nobody may open is never created"
    );
}

#[tokio::test]
async fn sql_errors_reach_the_guest_with_sqlites_message() {
    let app = sqlite_app(&["default"]);
    let fado = start(&app, vec![]);
    for api in ["v2", "v3"] {
        let table = format!("unique_{api}");
        let other = app.path().join(format!("elsewhere-{api}.db"));
        let r = results(
            &fado,
            api,
            "default",
            json!([
                sql("SELECT * FROM no_such_table"),
                sql("SELEC 1"),
                sql(&format!("CREATE TABLE {table} (k PRIMARY KEY)")),
                sql_with(
                    &format!("INSERT INTO {table} VALUES (?)"),
                    json!([{"integer": 1}])
                ),
                sql_with(
                    &format!("INSERT INTO {table} VALUES (?)"),
                    json!([{"integer": 1}])
                ),
                sql_with("SELECT ?", json!([])),
                // A guest may not reach other files through SQL.
                sql(&format!("ATTACH DATABASE '{}' AS other", other.display())),
                sql(&format!("SELECT count(*) FROM {table}")),
            ]),
        )
        .await;
        let io = |i: usize| -> String {
            assert_eq!(r[i]["error"]["kind"], "io", "{api} step {i}: {}", r[i]);
            r[i]["error"]["message"].as_str().unwrap().to_string()
        };
        assert_eq!(io(0), "no such table: no_such_table", "{api}");
        assert!(io(1).contains("syntax error"), "{api}: {}", io(1));
        assert_eq!(
            io(4),
            format!("UNIQUE constraint failed: {table}.k"),
            "{api}"
        );
        assert!(
            io(5).to_lowercase().contains("parameter"),
            "{api}: {}",
            io(5)
        );
        assert!(io(6).contains("attached"), "{api}: {}", io(6));
        assert!(!other.exists(), "{api}: ATTACH created {}", other.display());
        assert_eq!(
            r[7]["rows"],
            json!([[{"integer": 1}]]),
            "{api}: the connection works after errors"
        );
    }
}

#[tokio::test]
async fn databases_live_where_configured_and_survive_a_restart() {
    let app = sqlite_app(&["default", "orders"]);
    let config = "[sqlite_database.orders]\ntype = \"spin\"\npath = \"data/orders.db\"\n";
    let apps = app.data_home().join("fado/apps");
    let orders_file = app.path().join("conf/data/orders.db");
    assert!(!apps.exists() && !orders_file.exists());
    {
        let fado = start(&app, runtime_config(&app, config));
        for db in ["default", "orders"] {
            let r = results(
                &fado,
                "v3",
                db,
                json!([
                    sql("CREATE TABLE kept (who TEXT)"),
                    sql_with("INSERT INTO kept VALUES (?)", json!([{"text": db}])),
                ]),
            )
            .await;
            assert!(r.iter().all(|x| x.get("error").is_none()), "{db}: {r:?}");
        }
        // The state directory is the application's one under the data home.
        let states: Vec<_> = std::fs::read_dir(&apps)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            matches!(&states[..], [d] if d.join("sqlite_db.db").is_file()),
            "default is sqlite_db.db in the state directory: {states:?}"
        );
        assert!(
            orders_file.is_file(),
            "orders is at the configured path, relative to the runtime-config file"
        );
    }
    let fado = start(&app, runtime_config(&app, config));
    for (api, db) in [("v2", "default"), ("v3", "orders")] {
        let r = results(&fado, api, db, json!([sql("SELECT who FROM kept")])).await;
        assert_eq!(r[0]["rows"], json!([[{"text": db}]]), "{api} {db}");
    }
}

#[tokio::test]
async fn two_processes_on_one_file_wait_for_each_others_writes() {
    let app = sqlite_app(&["default"]);
    let state = app.path().join("shared-state").display().to_string();
    let args = vec!["--state-dir".to_string(), state.clone()];
    let first = start(&app, args.clone());
    let second = start(&app, args);
    let r = results(
        &first,
        "v3",
        "default",
        json!([sql("CREATE TABLE busy (n)")]),
    )
    .await;
    assert!(r[0].get("error").is_none(), "{r:?}");
    // The first process holds the write lock for a while (one big insert);
    // the second's insert, started meanwhile, must wait for it, not fail.
    let long = results(
        &first,
        "v3",
        "default",
        json!([sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) \
             INSERT INTO busy SELECT x FROM c"
        )]),
    );
    let short = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        results(
            &second,
            "v3",
            "default",
            json!([sql("INSERT INTO busy VALUES (-1)"), op("changes")]),
        )
        .await
    };
    let (long, short) = tokio::join!(long, short);
    assert!(long[0].get("error").is_none(), "{long:?}");
    assert!(short[0].get("error").is_none(), "{short:?}");
    assert_eq!(short[1], json!({"changes": 1}));
    let r = results(
        &second,
        "v2",
        "default",
        json!([sql("SELECT count(*) FROM busy")]),
    )
    .await;
    assert_eq!(r[0]["rows"], json!([[{"integer": 1_000_001}]]));
    assert!(Path::new(&state).join("sqlite_db.db").is_file());
}

#[tokio::test]
async fn start_up_refuses_labels_configured_nowhere_and_bad_runtime_config() {
    let app = sqlite_app(&["default", "ledger"]);
    let out = fado_fails(&app, &[], &[]).unwrap();
    assert!(
        out.contains("component.store.sqlite_databases[1]")
            && out.contains("\"store\"")
            && out.contains("\"ledger\""),
        "the error names the component and the label:\n{out}"
    );
    for (config, field) in [
        (
            "[sqlite_database.ledger]\ntype = \"libsql\"\nurl = \"https://db.example.com\"\n",
            "sqlite_database.ledger.type",
        ),
        (
            "[sqlite_database.ledger]\ntype = \"postgres\"\npath = \"l.db\"\n",
            "sqlite_database.ledger.type",
        ),
        (
            "[sqlite_database.ledger]\ntype = \"spin\"\n",
            "sqlite_database.ledger.path",
        ),
    ] {
        let path = app.write("bad.toml", config).unwrap();
        let out = fado_fails(
            &app,
            &["--runtime-config-file", path.to_str().unwrap()],
            &[],
        )
        .unwrap();
        assert!(
            out.contains("bad.toml") && out.contains(field),
            "{config}: the error names the file and {field}:\n{out}"
        );
    }
    // A bad label in the manifest is refused with its field.
    let bad = sqlite_app(&["Ledger"]);
    let out = fado_fails(&bad, &[], &[]).unwrap();
    assert!(out.contains("component.store.sqlite_databases[0]"), "{out}");
}
