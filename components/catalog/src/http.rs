//! Request parsing and response helpers for the API handlers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

pub struct Req {
    pub method: String,
    pub path: String,
    query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a handler answers with.
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub location: Option<String>,
    /// A non-JSON body and its content type (metrics), instead of `body`.
    pub text: Option<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: impl Serialize) -> ApiResult<Reply> {
        Ok(Reply {
            status: 200,
            body: Some(to_json(body)?),
            location: None,
            text: None,
        })
    }

    pub fn text(content_type: &'static str, text: String) -> ApiResult<Reply> {
        Ok(Reply {
            status: 200,
            body: None,
            location: None,
            text: Some((content_type, text)),
        })
    }

    pub fn created(location: String, body: impl Serialize) -> ApiResult<Reply> {
        Ok(Reply {
            status: 201,
            body: Some(to_json(body)?),
            location: Some(location),
            text: None,
        })
    }

    pub fn no_content() -> ApiResult<Reply> {
        Ok(Reply {
            status: 204,
            body: None,
            location: None,
            text: None,
        })
    }
}

fn to_json(body: impl Serialize) -> ApiResult<Value> {
    serde_json::to_value(body)
        .map_err(|e| ApiError::new(500, "internal", format!("encoding the response: {e}")))
}

/// Pagination: `?limit=` (1 to 1000, default 100) and an opaque `?cursor=`
/// that only the list it came from accepts (see [`fado_api::cursor`]).
pub struct PageParams {
    pub limit: i64,
    pub cursor: Option<String>,
    /// The list's name, which its cursors carry.
    list: &'static str,
}

pub const MAX_LIMIT: i64 = 1000;
pub const DEFAULT_LIMIT: i64 = 100;

impl Req {
    pub fn new(method: String, path_and_query: &str, body: Vec<u8>) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self {
            method,
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            body,
        }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Refuses a NUL character in any query parameter or JSON string (or
    /// key) of the body, naming where it is. No name, reference or text in
    /// FaDO may hold one, and PostgreSQL cannot store it in `text`: without
    /// this check it reached the database and came back as a 500.
    pub fn refuse_nul(&self) -> ApiResult<()> {
        for (k, v) in &self.query {
            if k.contains('\0') || v.contains('\0') {
                return Err(ApiError::invalid(k.as_str(), NUL_MESSAGE));
            }
        }
        // Raw JSON cannot hold a NUL byte in a string, only the escape.
        if !self
            .body
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        {
            return Ok(());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => match nul_in(&v, "") {
                Some(field) => Err(ApiError::invalid(field, NUL_MESSAGE)),
                None => Ok(()),
            },
            // Not JSON: `json()` names that problem.
            Err(_) => Ok(()),
        }
    }

    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        self.flag_or(name, false)
    }

    /// A `true`/`false` query parameter that is `default` when absent.
    pub fn flag_or(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.param(name) {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") | Some("") => Ok(true),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("{other:?} is not true or false"),
            )),
        }
    }

    /// Decodes the JSON body, naming the offending field on failure.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "body",
                "the request needs a JSON object body",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let mut value = Value::deserialize(&mut de)
            .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
        // serde would also read a struct from an array; the API takes objects.
        if !value.is_object() {
            return Err(ApiError::invalid(
                "body",
                "the request body must be a JSON object",
            ));
        }
        // One JSON value and nothing after it (whitespace aside).
        de.end().map_err(|e| {
            ApiError::invalid_json(format!("the body holds more than one JSON value: {e}"))
        })?;
        integral_floats_to_integers(&mut value);
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = match e.path().to_string() {
                f if f == "." => "body".to_string(),
                f => f,
            };
            ApiError::invalid(field, e.into_inner().to_string())
        })
    }

    pub fn page(&self, list: &'static str) -> ApiResult<PageParams> {
        let limit = match self.param("limit") {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("{s:?} is not a number from 1 to {MAX_LIMIT}"),
                    ));
                }
            },
        };
        Ok(PageParams {
            limit,
            // Empty is no cursor: what a client sends back for a null
            // `next_cursor` when it fills the parameter in blindly.
            cursor: self
                .param("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            list,
        })
    }
}

impl PageParams {
    /// The cursor of an id-ordered list: the last id seen.
    pub fn id_cursor(&self) -> ApiResult<i64> {
        match self.text_cursor()? {
            None => Ok(0),
            Some(c) => c
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this list returned")),
        }
    }

    /// The cursor of a text-ordered list: the last text seen.
    pub fn text_cursor(&self) -> ApiResult<Option<String>> {
        self.cursor
            .as_deref()
            .map(|c| fado_api::cursor::decode(self.list, c))
            .transpose()
    }

    /// Builds a page from `limit + 1` fetched items; `position` is what a
    /// cursor resumes after.
    pub fn page<T>(&self, items: Vec<T>, position: impl Fn(&T) -> String) -> fado_model::Page<T> {
        fado_api::cursor::page(self.list, items, self.limit, position)
    }
}

/// JSON does not tell `7` from `7.0`, and JSON Schema calls both an
/// integer; serde reads only the first as one.
fn integral_floats_to_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Within ±2^63, where the conversion is exact.
            if f.fract() == 0.0 && f.abs() < 9.223_372_036_854_776e18 {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

const NUL_MESSAGE: &str =
    "contains a NUL character (U+0000), which FaDO does not accept in any name or value";

/// Where the first string or key holding a NUL is, as `a.b[2]`.
fn nul_in(v: &Value, at: &str) -> Option<String> {
    let here = || {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_in(x, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(path)
            } else {
                nul_in(x, &path)
            }
        }),
        _ => None,
    }
}
