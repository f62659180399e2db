//! `fermyon:spin/mysql@2.0.0` against a real MariaDB: every column type as
//! Spin maps it, parameters, `execute`, pooled sessions reset between
//! guests, server errors, and refused connections.

use harness::mysql::{MariaDb, shared_mariadb};
use harness::{Fado, free_port, http, one_component_app};
use serde_json::{Value, json};

fn allowed(db: &MariaDb) -> Vec<String> {
    vec![format!("mysql://127.0.0.1:{}", db.port)]
}

async fn run(fado: &Fado, address: &str, steps: Value) -> Value {
    let r = http()
        .post(fado.url("/"))
        .json(&json!({"address": address, "steps": steps}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(status == 200 || v["error"].is_string(), "{status}: {v}");
    v
}

fn query(sql: &str, params: Value) -> Value {
    json!({"op": "query", "sql": sql, "params": params})
}

fn execute(sql: &str, params: Value) -> Value {
    json!({"op": "execute", "sql": sql, "params": params})
}

/// `results[i]`, which must not be an error.
fn ok(v: &Value, i: usize) -> &Value {
    let r = &v["results"][i];
    assert!(r["error"].is_null(), "step {i} failed: {r}\nall: {v}");
    r
}

fn error(v: &Value, i: usize) -> String {
    v["results"][i]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("step {i} did not fail: {v}"))
        .to_string()
}

const TABLE: &str = "CREATE TABLE every_type (
    id INT PRIMARY KEY,
    ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
    mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
    bi BIGINT, bu BIGINT UNSIGNED, b BOOLEAN, f FLOAT, d DOUBLE,
    vc VARCHAR(32), c CHAR(4), tx TEXT, mt MEDIUMTEXT,
    vb VARBINARY(16), bn BINARY(4), bl BLOB,
    de DECIMAL(10,3), dt DATE, tm TIME, dtm DATETIME, ts TIMESTAMP NULL, yr YEAR
)";

#[tokio::test]
async fn every_column_type_round_trips_as_spin_maps_it() {
    let db = shared_mariadb();
    let name = db.create_database().unwrap();
    let fado = Fado::start(&one_component_app("mysql-probe", &allowed(db))).unwrap();
    let nulls: Vec<Value> = (0..26).map(|_| json!("null")).collect();
    let mut null_row = vec![json!({"int32": 2})];
    null_row.extend(nulls);
    let v = run(
        &fado,
        &db.address(&name),
        json!([
            execute(TABLE, json!([])),
            execute(
                "INSERT INTO every_type VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                json!([
                    {"int32": 1},
                    {"int8": -128}, {"uint8": 255}, {"int16": -32768}, {"uint16": 65535},
                    {"int32": -8388608}, {"uint32": 16777215},
                    {"int32": -2147483648_i64}, {"uint32": 4294967295_u64},
                    {"int64": i64::MIN}, {"uint64": u64::MAX},
                    {"boolean": true}, {"floating32": 1.5}, {"floating64": -2.25},
                    {"str": "héllo wörld"}, {"str": "abcd"}, {"str": "text"}, {"str": "medium"},
                    {"binary": [0, 1, 255]}, {"binary": [1, 2, 3, 4]}, {"binary": [9, 8]},
                    {"str": "12345.678"}, {"str": "2024-02-29"}, {"str": "23:59:58"},
                    {"str": "2021-07-04 12:30:45"}, {"str": "2023-11-14 22:13:20"},
                    {"int16": 2024},
                ]),
            ),
            execute(
                "INSERT INTO every_type VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Value::Array(null_row),
            ),
            query(
                "SELECT id, ti, tu, si, su, mi, mu, i, iu, bi, bu, b, f, d, vc, c, tx, mt, vb, bn, bl \
                 FROM every_type ORDER BY id",
                json!([]),
            ),
            // Spin has no case for these: their type is `other`, NULL reads
            // as db-null, and a value fails to convert.
            query("SELECT de, dt, tm, dtm, ts, yr FROM every_type WHERE id = 2", json!([])),
            query("SELECT de FROM every_type WHERE id = 1", json!([])),
            query("SELECT dt FROM every_type WHERE id = 1", json!([])),
            query("SELECT tm FROM every_type WHERE id = 1", json!([])),
            query("SELECT dtm FROM every_type WHERE id = 1", json!([])),
            query("SELECT ts FROM every_type WHERE id = 1", json!([])),
            query("SELECT yr FROM every_type WHERE id = 1", json!([])),
            // ... and read as text.
            query(
                "SELECT CAST(de AS CHAR) AS de, CAST(dt AS CHAR) AS dt, CAST(tm AS CHAR) AS tm, \
                 CAST(dtm AS CHAR) AS dtm, CAST(ts AS CHAR) AS ts, CAST(yr AS CHAR) AS yr \
                 FROM every_type WHERE id = 1",
                json!([]),
            ),
        ]),
    )
    .await;
    for i in 0..3 {
        assert_eq!(ok(&v, i), &json!({"ok": true}));
    }
    let rs = ok(&v, 3);
    let types: Vec<(&str, &str)> = rs["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("id", "int32"),
            ("ti", "int8"),
            ("tu", "uint8"),
            ("si", "int16"),
            ("su", "uint16"),
            ("mi", "int32"),
            ("mu", "uint32"),
            ("i", "int32"),
            ("iu", "uint32"),
            ("bi", "int64"),
            ("bu", "uint64"),
            ("b", "int8"),
            ("f", "floating32"),
            ("d", "floating64"),
            ("vc", "str"),
            ("c", "str"),
            ("tx", "str"),
            ("mt", "str"),
            ("vb", "binary"),
            ("bn", "binary"),
            ("bl", "binary"),
        ]
    );
    assert_eq!(
        rs["rows"][0],
        json!([
            {"int32": 1},
            {"int8": -128}, {"uint8": 255}, {"int16": -32768}, {"uint16": 65535},
            {"int32": -8388608}, {"uint32": 16777215},
            {"int32": -2147483648_i64}, {"uint32": 4294967295_u64},
            {"int64": i64::MIN}, {"uint64": u64::MAX},
            {"int8": 1}, {"floating32": 1.5}, {"floating64": -2.25},
            {"str": "héllo wörld"}, {"str": "abcd"}, {"str": "text"}, {"str": "medium"},
            {"binary": [0, 1, 255]}, {"binary": [1, 2, 3, 4]}, {"binary": [9, 8]},
        ])
    );
    let mut expected_nulls = vec![json!({"int32": 2})];
    expected_nulls.extend((0..20).map(|_| json!("null")));
    assert_eq!(rs["rows"][1], Value::Array(expected_nulls));

    let others = ok(&v, 4);
    assert!(
        others["columns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] == "other"),
        "{others}"
    );
    assert_eq!(
        others["rows"],
        json!([["null", "null", "null", "null", "null", "null"]])
    );
    for i in 5..11 {
        let e = error(&v, i);
        assert!(
            e.starts_with("Error::ValueConversionFailed("),
            "step {i}: {e}"
        );
    }
    let text = ok(&v, 11);
    assert!(
        text["columns"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] == "str"),
        "{text}"
    );
    assert_eq!(
        text["rows"],
        json!([[
            {"str": "12345.678"}, {"str": "2024-02-29"}, {"str": "23:59:58"},
            {"str": "2021-07-04 12:30:45"}, {"str": "2023-11-14 22:13:20"}, {"str": "2024"},
        ]])
    );
}

#[tokio::test]
async fn parameters_select_rows_and_execute_runs_statements() {
    let db = shared_mariadb();
    let name = db.create_database().unwrap();
    let fado = Fado::start(&one_component_app("mysql-probe", &allowed(db))).unwrap();
    let v = run(
        &fado,
        &db.address(&name),
        json!([
            execute(
                "CREATE TABLE pets (name VARCHAR(20) PRIMARY KEY, age INT)",
                json!([])
            ),
            execute(
                "INSERT INTO pets VALUES (?, ?), (?, ?)",
                json!([
                    {"str": "rex"}, {"int32": 3}, {"str": "tom"}, {"int32": 7},
                ])
            ),
            execute(
                "UPDATE pets SET age = age + ? WHERE name = ?",
                json!([{"int8": 1}, {"str": "rex"}])
            ),
            query(
                "SELECT name, age FROM pets WHERE age > ? ORDER BY name",
                json!([{"int64": 2}])
            ),
            query(
                "SELECT name FROM pets WHERE name = ?",
                json!([{"str": "nobody"}])
            ),
            // `execute` runs a SELECT and discards its rows.
            execute("SELECT * FROM pets", json!([])),
            // `query` runs a statement without rows too: no columns, no rows.
            query("DELETE FROM pets WHERE name = ?", json!([{"str": "tom"}])),
            query(
                "SELECT COUNT(*) AS n, ? AS echoed FROM pets",
                json!([{"str": "hi"}])
            ),
            execute("INSERT INTO pets VALUES (?, ?)", json!([{"str": "one"}])),
        ]),
    )
    .await;
    for i in [0, 1, 2, 5] {
        assert_eq!(ok(&v, i), &json!({"ok": true}), "step {i}");
    }
    assert_eq!(
        ok(&v, 3)["rows"],
        json!([[{"str": "rex"}, {"int32": 4}], [{"str": "tom"}, {"int32": 7}]])
    );
    assert_eq!(ok(&v, 4)["rows"], json!([]));
    assert_eq!(
        ok(&v, 4)["columns"],
        json!([{"name": "name", "type": "str"}])
    );
    assert_eq!(ok(&v, 6), &json!({"columns": [], "rows": []}));
    assert_eq!(
        ok(&v, 7)["rows"],
        json!([[{"int64": 1}, {"str": "hi"}]]),
        "the DELETE ran"
    );
    let e = error(&v, 8);
    assert!(
        e.starts_with("Error::QueryFailed(") && e.contains("StmtParamsMismatch"),
        "{e}"
    );
}

#[tokio::test]
async fn sessions_are_reset_before_another_guest_gets_them() {
    let db = shared_mariadb();
    let name = db.create_database().unwrap();
    let fado = Fado::start(&one_component_app("mysql-probe", &allowed(db))).unwrap();
    let address = db.address(&name);
    run(
        &fado,
        &address,
        json!([execute("CREATE TABLE tx (n INT)", json!([]))]),
    )
    .await;
    for round in 0..6 {
        // Left open: a transaction and a session variable.
        let v = run(
            &fado,
            &address,
            json!([
                execute("SET autocommit = 0", json!([])),
                execute("SET @left_behind = 1", json!([])),
                execute("INSERT INTO tx VALUES (?)", json!([{"int32": round}])),
            ]),
        )
        .await;
        for i in 0..3 {
            ok(&v, i);
        }
        // Had the next guest the same session unreset, this would commit it.
        let v = run(
            &fado,
            &address,
            json!([
                execute("COMMIT", json!([])),
                query("SELECT COUNT(*) FROM tx", json!([])),
                // Not in one statement with COUNT(*): over an empty table,
                // MariaDB answers 0 for @@autocommit there.
                query("SELECT @left_behind IS NULL, @@autocommit", json!([])),
            ]),
        )
        .await;
        assert_eq!(ok(&v, 1)["rows"], json!([[{"int64": 0}]]), "round {round}");
        assert_eq!(
            ok(&v, 2)["rows"],
            json!([[{"int32": 1}, {"int64": 1}]]),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn sql_errors_reach_the_guest_with_the_server_message() {
    let db = shared_mariadb();
    let name = db.create_database().unwrap();
    let fado = Fado::start(&one_component_app("mysql-probe", &allowed(db))).unwrap();
    let v = run(
        &fado,
        &db.address(&name),
        json!([
            query("SELECT * FROM no_such_table", json!([])),
            execute("SELEKT 1", json!([])),
            execute("CREATE TABLE u (k INT PRIMARY KEY)", json!([])),
            execute("INSERT INTO u VALUES (1), (1)", json!([])),
        ]),
    )
    .await;
    let e = error(&v, 0);
    assert!(
        e.starts_with("Error::QueryFailed(")
            && e.contains("1146")
            && e.contains("no_such_table")
            && e.contains("doesn't exist"),
        "{e}"
    );
    let e = error(&v, 1);
    assert!(
        e.starts_with("Error::QueryFailed(") && e.contains("SQL syntax"),
        "{e}"
    );
    let e = error(&v, 3);
    assert!(
        e.starts_with("Error::QueryFailed(") && e.contains("Duplicate entry"),
        "{e}"
    );
}

#[tokio::test]
async fn denied_addresses_bad_passwords_and_dead_servers_fail_to_connect() {
    let db = shared_mariadb();
    let name = db.create_database().unwrap();
    // Allowed: the server's host on another port, and its port under another scheme.
    let fado = Fado::start(&one_component_app(
        "mysql-probe",
        &[
            format!("mysql://127.0.0.1:{}", db.port + 1),
            format!("postgres://127.0.0.1:{}", db.port),
            "mysql://localhost:*".to_string(),
        ],
    ))
    .unwrap();
    let address = db.address(&name);
    let v = run(&fado, &address, json!([])).await;
    assert_eq!(
        v["error"],
        format!("open: Error::ConnectionFailed(\"address {address} is not permitted\")")
    );
    // `localhost` is allowed on any port: a wrong password, then no server.
    let wrong = db
        .address_with(&name, "wrong")
        .replace("127.0.0.1", "localhost");
    let v = run(&fado, &wrong, json!([])).await;
    let e = v["error"].as_str().unwrap();
    assert!(
        e.starts_with("open: Error::ConnectionFailed(") && e.contains("Access denied"),
        "{e}"
    );
    let dead = format!("mysql://fado:x@localhost:{}/db", free_port());
    let v = run(&fado, &dead, json!([])).await;
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("open: Error::ConnectionFailed("), "{e}");
}
