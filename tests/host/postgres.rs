//! `spin:postgres/postgres@4.0.0` against a real PostgreSQL: every value
//! type, transactions on one session, errors, and denial.

use harness::{Fado, http, probe_app, shared_postgres};
use serde_json::{Value, json};

fn allowed() -> String {
    format!("postgres://127.0.0.1:{}", shared_postgres().port)
}

async fn call(fado: &Fado, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let addr = shared_postgres().address();
    let mut q = vec![("addr", addr.as_str())];
    q.extend_from_slice(query);
    let r = http().get(fado.url(path)).query(&q).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn every_value_type_round_trips() {
    let fado = Fado::start(&probe_app(&[allowed()])).unwrap();
    let (status, v) = call(&fado, "/pg", &[("table", "types_round_trip")]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["inserted"], 1);
    assert_eq!(
        v["lookup_rows"], 1,
        "a timestamp parameter matches a timestamptz column"
    );
    let expected = json!([
        {"int32": 1},
        {"boolean": true},
        {"int8": -5},
        {"int16": -12345},
        {"int32": 2000000000},
        {"int64": 9000000000000_i64},
        {"floating32": 1.5},
        {"floating64": -2.25},
        {"str": "héllo wörld"},
        {"str": "varchar"},
        {"binary": [0, 1, 2, 255]},
        {"date": [2024, 2, 29]},
        {"time": [23, 59, 58, 123456000]},
        {"datetime": [2021, 7, 4, 12, 30, 45, 500000000]},
        {"datetime": [2021, 7, 4, 12, 30, 45, 0]},
        {"datetime": [2023, 11, 14, 22, 13, 20, 0]},
        {"uuid": "6f2c8f1e-3b1a-4c5d-9e8f-0a1b2c3d4e5f"},
        {"jsonb": {"kind": "json", "n": [1, 2]}},
        {"jsonb": {"kind": "jsonb", "ok": true}},
        {"decimal": "12345.678900"},
        {"range_int32": [[1, "inclusive"], [10, "exclusive"]]},
        {"range_int64": [[5000000000_i64, "inclusive"], null]},
        {"range_decimal": [["1.5", "exclusive"], ["2.5", "inclusive"]]},
        {"array_int32": [1, null, 3]},
        {"array_int64": [i64::MAX, i64::MIN]},
        {"array_decimal": ["0.1", null]},
        {"array_str": ["x", null, "z"]},
        {"interval": [3600000123_i64, 2, 14]},
    ]);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let got = rows[0].as_array().unwrap();
    let want = expected.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "column {} ({})", i, v["columns"][i]["name"]);
    }
    let nulls = rows[1].as_array().unwrap();
    assert_eq!(nulls[0], json!({"int32": 2}));
    assert!(
        nulls[1..].iter().all(|x| x == "null"),
        "every NULL parameter reads back as db-null: {nulls:?}"
    );
    let types: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    for t in [
        "Boolean",
        "Int8",
        "Int16",
        "Int32",
        "Int64",
        "Floating32",
        "Floating64",
        "Str",
        "Binary",
        "Date",
        "Time",
        "Datetime",
        "Uuid",
        "Jsonb",
        "Decimal",
        "RangeInt32",
        "RangeInt64",
        "RangeDecimal",
        "ArrayInt32",
        "ArrayInt64",
        "ArrayDecimal",
        "ArrayStr",
        "Interval",
    ] {
        assert!(
            types.iter().any(|x| x.ends_with(t)),
            "no column reported as {t}: {types:?}"
        );
    }
}

#[tokio::test]
async fn transactions_stay_on_one_session_and_abandoned_ones_roll_back() {
    let fado = Fado::start(&probe_app(&[allowed()])).unwrap();
    let (s, v) = call(
        &fado,
        "/pg-tx",
        &[("table", "tx_rollback"), ("mode", "rollback")],
    )
    .await;
    assert_eq!((s, &v["count"]), (200, &json!(0)), "{v}");
    // More abandoned transactions than the pool has sessions: each must be
    // rolled back before its session is reused.
    for _ in 0..20 {
        let (s, v) = call(
            &fado,
            "/pg-tx",
            &[("table", "tx_abandon"), ("mode", "abandon")],
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let client = shared_postgres().client().await.unwrap();
    let row = client
        .query_one("SELECT count(*) FROM tx_abandon", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "no abandoned insert was committed");
    let (s, v) = call(
        &fado,
        "/pg-tx",
        &[("table", "tx_abandon"), ("mode", "count")],
    )
    .await;
    assert_eq!((s, &v["count"]), (200, &json!(0)), "{v}");
}

#[tokio::test]
async fn a_trapped_guest_leaves_nothing_on_its_pooled_session() {
    let fado = Fado::start(&probe_app(&[allowed()])).unwrap();
    let client = shared_postgres().client().await.unwrap();
    // More rounds than a pool has sessions, so every session is reused.
    for round in 0..20 {
        let addr = shared_postgres().address();
        let r = http()
            .get(fado.url("/pg-session"))
            .query(&[("addr", addr.as_str()), ("mode", "dirty")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500, "the guest trapped");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let held: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if held == 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the trapped guest's advisory lock is still held"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (s, v) = call(&fado, "/pg-session", &[("mode", "inspect")]).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v,
            json!({"application_name": "", "temp_table": false,
                   "open_transaction": false, "advisory_locks": 0}),
            "round {round}: a session came back with a trapped guest's state"
        );
    }
}

#[tokio::test]
async fn database_errors_carry_sqlstate() {
    let fado = Fado::start(&probe_app(&[allowed()])).unwrap();
    let (s, v) = call(&fado, "/pg-error", &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["code"], "42P01");
    assert_eq!(v["severity"], "ERROR");
}

#[tokio::test]
async fn addresses_outside_allowed_hosts_fail_to_connect() {
    let fado = Fado::start(&probe_app(&["postgres://db.example.com".into()])).unwrap();
    let (s, v) = call(&fado, "/pg", &[("table", "never_created")]).await;
    assert_eq!(s, 500);
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("ConnectionFailed") && e.contains("not permitted"),
        "{e}"
    );
}
