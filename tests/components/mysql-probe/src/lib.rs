//! Test component for outbound MySQL. Each request is a JSON script, run
//! with spin-sdk as any Spin application would, and the answer reports
//! every step so the integration tests can assert on it:
//! `{"address", "steps": [{"op": "query"|"execute", "sql",
//!   "params": [{"int8": 1}, "null", ...]}]}`.

use serde_json::{Value, json};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::mysql::{self, DbDataType, DbValue, ParameterValue};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let script: Value = serde_json::from_slice(req.body())?;
    let (status, body) = mysql_script(&script);
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn mysql_script(script: &Value) -> (u16, Value) {
    let conn = match mysql::Connection::open(text(script, "address")) {
        Ok(c) => c,
        Err(e) => return (500, json!({"error": format!("open: {e:?}")})),
    };
    let mut results = Vec::new();
    for step in script["steps"].as_array().into_iter().flatten() {
        let params = match step["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parameter)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(p) => p,
            Err(e) => return (400, json!({"error": e})),
        };
        let sql = text(step, "sql");
        let result = match text(step, "op") {
            "execute" => match conn.execute(sql, &params) {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"error": format!("{e:?}")}),
            },
            _ => match conn.query(sql, &params) {
                Ok(rs) => json!({
                    "columns": rs.columns.iter().map(|c| json!({
                        "name": c.name,
                        "type": data_type(c.data_type),
                    })).collect::<Vec<_>>(),
                    "rows": rs.rows.iter().map(|r| r.iter().map(db_value).collect::<Vec<_>>()).collect::<Vec<_>>(),
                }),
                Err(e) => json!({"error": format!("{e:?}")}),
            },
        };
        results.push(result);
    }
    (200, json!({"results": results}))
}

fn parameter(v: &Value) -> Result<ParameterValue, String> {
    use ParameterValue as P;
    if v == "null" {
        return Ok(P::DbNull);
    }
    let (kind, x) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(|| format!("bad parameter {v}"))?;
    let int = || x.as_i64().ok_or_else(|| format!("bad integer {x}"));
    let uint = || {
        x.as_u64()
            .ok_or_else(|| format!("bad unsigned integer {x}"))
    };
    let narrow = |e: std::num::TryFromIntError| e.to_string();
    Ok(match kind.as_str() {
        "boolean" => P::Boolean(x.as_bool().unwrap_or_default()),
        "int8" => P::Int8(int()?.try_into().map_err(narrow)?),
        "int16" => P::Int16(int()?.try_into().map_err(narrow)?),
        "int32" => P::Int32(int()?.try_into().map_err(narrow)?),
        "int64" => P::Int64(int()?),
        "uint8" => P::Uint8(uint()?.try_into().map_err(narrow)?),
        "uint16" => P::Uint16(uint()?.try_into().map_err(narrow)?),
        "uint32" => P::Uint32(uint()?.try_into().map_err(narrow)?),
        "uint64" => P::Uint64(uint()?),
        "floating32" => P::Floating32(x.as_f64().unwrap_or_default() as f32),
        "floating64" => P::Floating64(x.as_f64().unwrap_or_default()),
        "str" => P::Str(x.as_str().unwrap_or_default().to_string()),
        "binary" => P::Binary(
            x.as_array()
                .into_iter()
                .flatten()
                .map(|b| b.as_u64().unwrap_or_default() as u8)
                .collect(),
        ),
        other => return Err(format!("unknown parameter kind {other}")),
    })
}

fn data_type(t: DbDataType) -> &'static str {
    match t {
        DbDataType::Boolean => "boolean",
        DbDataType::Int8 => "int8",
        DbDataType::Int16 => "int16",
        DbDataType::Int32 => "int32",
        DbDataType::Int64 => "int64",
        DbDataType::Uint8 => "uint8",
        DbDataType::Uint16 => "uint16",
        DbDataType::Uint32 => "uint32",
        DbDataType::Uint64 => "uint64",
        DbDataType::Floating32 => "floating32",
        DbDataType::Floating64 => "floating64",
        DbDataType::Str => "str",
        DbDataType::Binary => "binary",
        DbDataType::Other => "other",
    }
}

fn db_value(v: &DbValue) -> Value {
    match v {
        DbValue::Boolean(x) => json!({"boolean": x}),
        DbValue::Int8(x) => json!({"int8": x}),
        DbValue::Int16(x) => json!({"int16": x}),
        DbValue::Int32(x) => json!({"int32": x}),
        DbValue::Int64(x) => json!({"int64": x}),
        DbValue::Uint8(x) => json!({"uint8": x}),
        DbValue::Uint16(x) => json!({"uint16": x}),
        DbValue::Uint32(x) => json!({"uint32": x}),
        DbValue::Uint64(x) => json!({"uint64": x}),
        DbValue::Floating32(x) => json!({"floating32": x}),
        DbValue::Floating64(x) => json!({"floating64": x}),
        DbValue::Str(x) => json!({"str": x}),
        DbValue::Binary(x) => json!({"binary": x}),
        DbValue::DbNull => json!("null"),
        DbValue::Unsupported => json!("unsupported"),
    }
}
