//! Test component that exercises every host interface a FaDO component may
//! use, one path each, and reports what happened as JSON so the integration
//! tests can assert on it. Every response carries `x-probe-name` (from the
//! `PROBE_NAME` environment variable) so a test can tell which manifest
//! component served it.

use std::collections::BTreeMap;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingResponse, Request, ResponseOutparam,
};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;
use spin_sdk::pg4::{self as pg, DbValue, ParameterValue, RangeBoundKind};
use spin_sdk::redis::{Connection as RedisConnection, RedisParameter, RedisResult};
use spin_sdk::variables;

/// Requests this instance served through `/count`.
static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let path_and_query = req.path_with_query().unwrap_or_default();
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path_and_query.clone(), String::new()),
    };
    let params = parse_query(&query);
    let param = |k: &str| params.get(k).cloned().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default().to_string();

    match last.as_str() {
        "echo" => echo(req, out).await,
        "fetch" => fetch(&param("url"), out).await,
        "trap" => panic!("deliberate trap requested by the test"),
        "count" => {
            // Requests this instance has served: 1 unless the host reuses
            // instances.
            let n = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            respond(out, 200, json!({"served": n})).await
        }
        "busy" => {
            // Computes for `ms` milliseconds, then answers like `/count`: an
            // execution-time budget sees all of it as guest time.
            let ms: u64 = param("ms").parse().unwrap_or(0);
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            let mut x: u64 = 0;
            while std::time::Instant::now() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let n = SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            respond(out, 200, json!({"served": n})).await
        }
        "oom" => {
            // 1 GiB, far beyond the instance memory limit the test sets.
            let v = vec![1u8; 1 << 30];
            std::hint::black_box(&v);
            respond(out, 200, json!({"allocated": v.len()})).await
        }
        "spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "redis" => {
            let r = redis_ops(&param("addr"), &param("prefix"));
            respond_result(out, r).await
        }
        "pg" => {
            let r = pg_types(&param("addr"), &param("table"));
            respond_result(out, r).await
        }
        "pg-tx" => {
            let r = pg_transaction(&param("addr"), &param("table"), &param("mode"));
            respond_result(out, r).await
        }
        "pg-error" => {
            let r = pg_error(&param("addr"));
            respond_result(out, r).await
        }
        "pg-session" => {
            let r = pg_session(&param("addr"), &param("mode"));
            respond_result(out, r).await
        }
        "vars" => match variables::get(&param("name")) {
            Ok(v) => respond(out, 200, json!({"value": v})).await,
            Err(e) => respond(out, 404, json!({"error": format!("{e:?}")})).await,
        },
        "kv" => {
            let body = req.into_body().await.unwrap_or_default();
            let r = kv(&param("store"), &param("op"), &param("key"), body);
            respond_result(out, r).await
        }
        "wkv" => {
            let body = req.into_body().await.unwrap_or_default();
            let r = wasi_kv(
                &param("store"),
                &param("op"),
                &param("key"),
                &param("arg"),
                body,
            );
            respond_result(out, r).await
        }
        _ => {
            // Anything else reports what the host told the component.
            let headers: BTreeMap<String, String> = req
                .headers()
                .entries()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect();
            let method = format!("{:?}", req.method());
            respond(
                out,
                200,
                json!({"path": path_and_query, "method": method, "headers": headers}),
            )
            .await
        }
    }
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(x) = u8::from_str_radix(hex, 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn probe_headers(content_type: &str) -> Fields {
    let name = std::env::var("PROBE_NAME").unwrap_or_default();
    Fields::from_list(&[
        ("content-type".to_string(), content_type.as_bytes().to_vec()),
        ("x-probe-name".to_string(), name.into_bytes()),
    ])
    .expect("valid headers")
}

async fn respond(out: ResponseOutparam, status: u16, body: Value) {
    let response = OutgoingResponse::new(probe_headers("application/json"));
    response.set_status_code(status).expect("valid status");
    let _ = out
        .set_with_body(response, body.to_string().into_bytes())
        .await;
}

async fn respond_result(out: ResponseOutparam, r: Result<Value, String>) {
    match r {
        Ok(v) => respond(out, 200, v).await,
        Err(e) => respond(out, 500, json!({"error": e})).await,
    }
}

/// Streams the request body back as it arrives, so the client can see
/// chunk N echoed before it sends chunk N+1.
async fn echo(req: IncomingRequest, out: ResponseOutparam) {
    let response = OutgoingResponse::new(probe_headers("application/octet-stream"));
    response.set_status_code(200).expect("valid status");
    let mut sink = response.take_body();
    out.set(response);
    let mut stream = req.into_body_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if sink.send(bytes).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Outbound GET; the upstream body streams through to the client.
async fn fetch(url: &str, out: ResponseOutparam) {
    let request = Request::builder().method(Method::Get).uri(url).build();
    let response: Result<spin_sdk::http::IncomingResponse, _> = spin_sdk::http::send(request).await;
    match response {
        Ok(upstream) => {
            let response = OutgoingResponse::new(probe_headers("application/octet-stream"));
            response
                .set_status_code(upstream.status())
                .expect("valid status");
            let mut sink = response.take_body();
            out.set(response);
            let mut stream = upstream.take_body_stream();
            while let Some(Ok(chunk)) = stream.next().await {
                if sink.send(chunk).await.is_err() {
                    return;
                }
            }
        }
        Err(e) => respond(out, 502, json!({"error": format!("{e:?}")})).await,
    }
}

fn redis_ops(addr: &str, prefix: &str) -> Result<Value, String> {
    let conn = RedisConnection::open(addr).map_err(|e| format!("open: {e:?}"))?;
    let k = |s: &str| format!("{prefix}:{s}");
    let e = |what: &'static str| move |err| format!("{what}: {err:?}");
    conn.set(&k("str"), b"hello".as_ref()).map_err(e("set"))?;
    let got = conn.get(&k("str")).map_err(e("get"))?;
    let missing = conn.get(&k("missing")).map_err(e("get missing"))?;
    let incr1 = conn.incr(&k("counter")).map_err(e("incr"))?;
    let incr2 = conn.incr(&k("counter")).map_err(e("incr"))?;
    let type_error = conn.incr(&k("str")).map_err(|err| format!("{err:?}")).err();
    let added = conn
        .sadd(&k("set"), &["a".into(), "b".into(), "c".into()])
        .map_err(e("sadd"))?;
    let removed = conn.srem(&k("set"), &["b".into()]).map_err(e("srem"))?;
    let mut members = conn.smembers(&k("set")).map_err(e("smembers"))?;
    members.sort();
    conn.publish(&k("channel"), b"ping".as_ref())
        .map_err(e("publish"))?;
    let exec = conn
        .execute(
            "HSET",
            &[
                RedisParameter::Binary(k("hash").into_bytes()),
                RedisParameter::Binary(b"field".to_vec()),
                RedisParameter::Int64(7),
            ],
        )
        .map_err(e("execute HSET"))?;
    let exec_get = conn
        .execute("HGETALL", &[RedisParameter::Binary(k("hash").into_bytes())])
        .map_err(e("execute HGETALL"))?;
    let status = conn.execute("PING", &[]).map_err(e("execute PING"))?;
    let deleted = conn
        .del(&[k("str"), k("counter"), k("set"), k("hash"), k("missing")])
        .map_err(e("del"))?;
    Ok(json!({
        "get": got.map(|v| String::from_utf8_lossy(&v).into_owned()),
        "missing": missing.is_none(),
        "incr": [incr1, incr2],
        "type_error": type_error,
        "sadd": added,
        "srem": removed,
        "smembers": members,
        "execute": exec.iter().map(redis_result).collect::<Vec<_>>(),
        "hgetall": exec_get.iter().map(redis_result).collect::<Vec<_>>(),
        "ping": status.iter().map(redis_result).collect::<Vec<_>>(),
        "del": deleted,
    }))
}

fn redis_result(r: &RedisResult) -> Value {
    match r {
        RedisResult::Nil => json!({"nil": null}),
        RedisResult::Status(s) => json!({"status": s}),
        RedisResult::Int64(i) => json!({"int64": i}),
        RedisResult::Binary(b) => json!({"binary": String::from_utf8_lossy(b)}),
    }
}

const PG_COLUMNS: &str = "b boolean, c \"char\", i2 smallint, i4 integer, i8 bigint, f4 real, \
    f8 double precision, t text, vc varchar(40), bin bytea, d date, tm time, ts timestamp, \
    tstz timestamptz, ts2 timestamptz, u uuid, j json, jb jsonb, n numeric, r4 int4range, \
    r8 int8range, rn numrange, a4 int4[], a8 int8[], an numeric[], at text[], iv interval";

fn pg_types(addr: &str, table: &str) -> Result<Value, String> {
    let conn = pg::Connection::open(addr).map_err(|e| format!("open: {e:?}"))?;
    conn.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])
        .map_err(|e| format!("drop: {e:?}"))?;
    conn.execute(
        &format!("CREATE TABLE {table} (id int primary key, {PG_COLUMNS})"),
        &[],
    )
    .map_err(|e| format!("create: {e:?}"))?;
    use ParameterValue as P;
    let incl = RangeBoundKind::Inclusive;
    let excl = RangeBoundKind::Exclusive;
    let values = vec![
        P::Int32(1),
        P::Boolean(true),
        P::Int8(-5),
        P::Int16(-12345),
        P::Int32(2_000_000_000),
        P::Int64(9_000_000_000_000),
        P::Floating32(1.5),
        P::Floating64(-2.25),
        P::Str("héllo wörld".into()),
        P::Str("varchar".into()),
        P::Binary(vec![0, 1, 2, 255]),
        P::Date((2024, 2, 29)),
        P::Time((23, 59, 58, 123_456_000)),
        P::Datetime((2021, 7, 4, 12, 30, 45, 500_000_000)),
        P::Datetime((2021, 7, 4, 12, 30, 45, 0)),
        P::Timestamp(1_700_000_000),
        P::Uuid("6f2c8f1e-3b1a-4c5d-9e8f-0a1b2c3d4e5f".into()),
        P::Jsonb(br#"{"kind":"json","n":[1,2]}"#.to_vec()),
        P::Jsonb(br#"{"kind":"jsonb","ok":true}"#.to_vec()),
        P::Decimal("12345.678900".into()),
        P::RangeInt32((Some((1, incl)), Some((10, excl)))),
        P::RangeInt64((Some((5_000_000_000, incl)), None)),
        P::RangeDecimal((Some(("1.5".into(), excl)), Some(("2.5".into(), incl)))),
        P::ArrayInt32(vec![Some(1), None, Some(3)]),
        P::ArrayInt64(vec![Some(i64::MAX), Some(i64::MIN)]),
        P::ArrayDecimal(vec![Some("0.1".into()), None]),
        P::ArrayStr(vec![Some("x".into()), None, Some("z".into())]),
        P::Interval(pg::Interval {
            micros: 3_600_000_123,
            days: 2,
            months: 14,
        }),
    ];
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
    let inserted = conn
        .execute(
            &format!("INSERT INTO {table} VALUES ({})", placeholders.join(", ")),
            &values,
        )
        .map_err(|e| format!("insert: {e:?}"))?;
    let mut nulls = vec![P::Int32(2)];
    nulls.extend(std::iter::repeat_n(P::DbNull, values.len() - 1));
    conn.execute(
        &format!("INSERT INTO {table} VALUES ({})", placeholders.join(", ")),
        &nulls,
    )
    .map_err(|e| format!("insert nulls: {e:?}"))?;
    let rows = conn
        .query(&format!("SELECT * FROM {table} ORDER BY id"), &[])
        .map_err(|e| format!("select: {e:?}"))?;
    let columns: Vec<Value> = rows
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": format!("{:?}", c.data_type)}))
        .collect();
    let rows: Vec<Vec<Value>> = rows
        .rows
        .iter()
        .map(|r| r.iter().map(db_value).collect())
        .collect();
    // A parameterised lookup binding a timestamptz through `timestamp`.
    let found = conn
        .query(
            &format!("SELECT id FROM {table} WHERE ts2 = $1"),
            &[P::Timestamp(1_700_000_000)],
        )
        .map_err(|e| format!("lookup: {e:?}"))?;
    Ok(
        json!({"inserted": inserted, "columns": columns, "rows": rows, "lookup_rows": found.rows.len()}),
    )
}

fn db_value(v: &DbValue) -> Value {
    use DbValue as V;
    let kind = |k: RangeBoundKind| match k {
        RangeBoundKind::Inclusive => "inclusive",
        RangeBoundKind::Exclusive => "exclusive",
    };
    match v {
        V::Boolean(b) => json!({"boolean": b}),
        V::Int8(i) => json!({"int8": i}),
        V::Int16(i) => json!({"int16": i}),
        V::Int32(i) => json!({"int32": i}),
        V::Int64(i) => json!({"int64": i}),
        V::Floating32(f) => json!({"floating32": f}),
        V::Floating64(f) => json!({"floating64": f}),
        V::Str(s) => json!({"str": s}),
        V::Binary(b) => json!({"binary": b}),
        V::Date(d) => json!({"date": [d.0, d.1, d.2]}),
        V::Time(t) => json!({"time": [t.0, t.1, t.2, t.3]}),
        V::Datetime(t) => json!({"datetime": [t.0, t.1, t.2, t.3, t.4, t.5, t.6]}),
        V::Timestamp(t) => json!({"timestamp": t}),
        V::Uuid(u) => json!({"uuid": u}),
        V::Jsonb(j) => json!({"jsonb": serde_json::from_slice::<Value>(j).unwrap_or(Value::Null)}),
        V::Decimal(d) => json!({"decimal": d}),
        V::RangeInt32((lo, hi)) => json!({"range_int32": [
            lo.map(|(v, k)| json!([v, kind(k)])), hi.map(|(v, k)| json!([v, kind(k)]))]}),
        V::RangeInt64((lo, hi)) => json!({"range_int64": [
            lo.map(|(v, k)| json!([v, kind(k)])), hi.map(|(v, k)| json!([v, kind(k)]))]}),
        V::RangeDecimal((lo, hi)) => json!({"range_decimal": [
            lo.as_ref().map(|(v, k)| json!([v, kind(*k)])), hi.as_ref().map(|(v, k)| json!([v, kind(*k)]))]}),
        V::ArrayInt32(a) => json!({"array_int32": a}),
        V::ArrayInt64(a) => json!({"array_int64": a}),
        V::ArrayDecimal(a) => json!({"array_decimal": a}),
        V::ArrayStr(a) => json!({"array_str": a}),
        V::Interval(i) => json!({"interval": [i.micros, i.days, i.months]}),
        V::DbNull => json!("null"),
        V::Unsupported(b) => json!({"unsupported": b}),
    }
}

/// `mode=rollback`: BEGIN, INSERT, ROLLBACK. `mode=abandon`: BEGIN, INSERT,
/// then return without finishing, leaving the host to clean up.
/// `mode=count`: count the rows.
fn pg_transaction(addr: &str, table: &str, mode: &str) -> Result<Value, String> {
    let conn = pg::Connection::open(addr).map_err(|e| format!("open: {e:?}"))?;
    let e = |what: &'static str| move |err| format!("{what}: {err:?}");
    conn.execute(&format!("CREATE TABLE IF NOT EXISTS {table} (v int)"), &[])
        .map_err(e("create"))?;
    match mode {
        "rollback" | "abandon" => {
            conn.execute("BEGIN", &[]).map_err(e("begin"))?;
            conn.execute(
                &format!("INSERT INTO {table} VALUES ($1)"),
                &[ParameterValue::Int32(1)],
            )
            .map_err(e("insert"))?;
            if mode == "rollback" {
                conn.execute("ROLLBACK", &[]).map_err(e("rollback"))?;
            }
        }
        _ => {}
    }
    let rows = conn
        .query(&format!("SELECT count(*) FROM {table}"), &[])
        .map_err(e("count"))?;
    let count = match rows.rows.first().and_then(|r| r.first()) {
        Some(DbValue::Int64(n)) => *n,
        other => return Err(format!("unexpected count {other:?}")),
    };
    Ok(json!({"count": count}))
}

/// Session state a guest may leave behind. `mode=dirty` takes advisory
/// lock 4242, changes a setting, makes a temporary table and opens a
/// transaction (behind a comment, so no keyword test sees it), then traps.
/// `mode=inspect` reports what the session it gets carries.
fn pg_session(addr: &str, mode: &str) -> Result<Value, String> {
    let conn = pg::Connection::open(addr).map_err(|e| format!("open: {e:?}"))?;
    let e = |what: &'static str| move |err| format!("{what}: {err:?}");
    if mode == "dirty" {
        for statement in [
            "SELECT pg_advisory_lock(4242)",
            "SET application_name = 'dirty-guest'",
            "CREATE TEMP TABLE IF NOT EXISTS dirty_temp (v int)",
            "/* left open */ BEGIN",
            "SELECT 1",
        ] {
            conn.execute(statement, &[]).map_err(e("dirty"))?;
        }
        panic!("trapping with the session dirty");
    }
    let rows = conn
        .query(
            "SELECT current_setting('application_name') AS app, \
                    to_regclass('pg_temp.dirty_temp') IS NOT NULL AS temp, \
                    txid_current() AS xid, \
                    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                        AND pid = pg_backend_pid()) AS locks",
            &[],
        )
        .map_err(e("inspect"))?;
    let row = rows.rows.first().ok_or("no row")?;
    // Outside a transaction block every statement has its own transaction.
    let again = conn
        .query("SELECT txid_current()", &[])
        .map_err(e("inspect"))?;
    let open_transaction = match (again.rows.first().and_then(|r| r.first()), &row[2]) {
        (Some(DbValue::Int64(a)), DbValue::Int64(b)) => a == b,
        other => return Err(format!("unexpected transaction ids {other:?}")),
    };
    let text = |v: &DbValue| match v {
        DbValue::Str(s) => json!(s),
        DbValue::Boolean(b) => json!(b),
        DbValue::Int64(n) => json!(n),
        other => json!(format!("{other:?}")),
    };
    Ok(json!({
        "application_name": text(&row[0]),
        "temp_table": text(&row[1]),
        "open_transaction": open_transaction,
        "advisory_locks": text(&row[3]),
    }))
}

fn pg_error(addr: &str) -> Result<Value, String> {
    let conn = pg::Connection::open(addr).map_err(|e| format!("open: {e:?}"))?;
    match conn.query("SELECT * FROM no_such_table_anywhere", &[]) {
        Ok(_) => Err("query on a missing table succeeded".into()),
        Err(pg::PgError::QueryFailed(pg::QueryError::DbError(db))) => {
            Ok(json!({"code": db.code, "severity": db.severity, "message": db.message}))
        }
        Err(other) => Err(format!("unexpected error {other:?}")),
    }
}

fn kv(store: &str, op: &str, key: &str, body: Vec<u8>) -> Result<Value, String> {
    let store = Store::open(store).map_err(|e| format!("open: {e:?}"))?;
    let e = |err| format!("{op}: {err:?}");
    Ok(match op {
        "set" => {
            store.set(key, &body).map_err(e)?;
            json!({"ok": true})
        }
        "get" => {
            json!({"value": store.get(key).map_err(e)?.map(|v| String::from_utf8_lossy(&v).into_owned())})
        }
        "delete" => {
            store.delete(key).map_err(e)?;
            json!({"ok": true})
        }
        "exists" => json!({"exists": store.exists(key).map_err(e)?}),
        "keys" => {
            let mut keys = store.get_keys().map_err(e)?;
            keys.sort();
            json!({"keys": keys})
        }
        other => return Err(format!("unknown op {other:?}")),
    })
}

/// `wasi:keyvalue` (store, atomics, batch) on store `label`: `get`, `set`
/// (the body), `delete`, `exists`, `list` (every page), `incr` (by `arg`),
/// `cas` (from `arg`, `-` for "absent", to the body; says whether it
/// swapped and, when not, the value it found), `get-many` (keys `a,b,c`
/// in `key`), `set-many` (`k=v,…` in the body), `delete-many` (keys in
/// `key`).
fn wasi_kv(label: &str, op: &str, key: &str, arg: &str, body: Vec<u8>) -> Result<Value, String> {
    use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
    let bucket = store::open(label).map_err(|e| format!("open: {e:?}"))?;
    let e = |err: store::Error| format!("{op}: {err:?}");
    let text = |v: Option<Vec<u8>>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
    let keys = || key.split(',').map(str::to_string).collect::<Vec<_>>();
    Ok(match op {
        "get" => json!({"value": text(bucket.get(key).map_err(e)?)}),
        "set" => {
            bucket.set(key, &body).map_err(e)?;
            json!({"ok": true})
        }
        "delete" => {
            bucket.delete(key).map_err(e)?;
            json!({"ok": true})
        }
        "exists" => json!({"exists": bucket.exists(key).map_err(e)?}),
        "list" => {
            let (mut keys, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let page = bucket.list_keys(cursor.as_deref()).map_err(e)?;
                keys.extend(page.keys);
                pages += 1;
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            keys.sort();
            keys.dedup();
            json!({"keys": keys, "pages": pages})
        }
        "incr" => {
            let delta: i64 = arg
                .parse()
                .map_err(|_| format!("incr: {arg:?} is not a number"))?;
            json!({"value": atomics::increment(&bucket, key, delta).map_err(e)?})
        }
        "cas" => {
            let cas = atomics::Cas::new(&bucket, key).map_err(e)?;
            let seen = text(cas.current().map_err(e)?);
            let expected = (arg != "-").then(|| arg.to_string());
            if seen != expected {
                return Ok(json!({"swapped": false, "found": seen}));
            }
            match atomics::swap(cas, &body) {
                Ok(()) => json!({"swapped": true}),
                Err(atomics::CasError::CasFailed(c)) => {
                    json!({"swapped": false, "found": text(c.current().map_err(e)?)})
                }
                Err(atomics::CasError::StoreError(err)) => return Err(e(err)),
            }
        }
        "get-many" => {
            let found = batch::get_many(&bucket, &keys()).map_err(e)?;
            json!({"values": found.into_iter().map(|(k, v)| json!([k, text(v)])).collect::<Vec<_>>()})
        }
        "set-many" => {
            let pairs: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&body)
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            batch::set_many(&bucket, &pairs).map_err(e)?;
            json!({"ok": true})
        }
        "delete-many" => {
            batch::delete_many(&bucket, &keys()).map_err(e)?;
            json!({"ok": true})
        }
        other => return Err(format!("unknown op {other:?}")),
    })
}
