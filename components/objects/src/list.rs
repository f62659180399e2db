//! `GET /api/buckets/{bucket}/objects`: the objects catalog, in key (byte)
//! order, filtered by `prefix`, a page at a time.

use fado_api::{ApiError, ApiResult};
use fado_model::ObjectInfo;
use fado_store::Param;

use crate::{Ctx, Out, location};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

pub fn objects(
    ctx: &Ctx,
    bucket: &str,
    query: &[(String, String)],
    out: &mut Out,
) -> ApiResult<()> {
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("{s:?} is not a number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let prefix = param("prefix").unwrap_or("");
    if !prefix.is_empty() {
        fado_model::validate::object_key("prefix", prefix)?;
    }
    // The cursor is the last key of the previous page of this bucket's list.
    let list = format!("objects of {bucket}");
    let after = match param("cursor").filter(|c| !c.is_empty()) {
        None => String::new(),
        Some(c) => fado_api::cursor::decode(&list, c)?,
    };
    let b = location::bucket(ctx, bucket)?;
    let rows = ctx.db.query(
        "SELECT key, size, etag, content_type, updated_at FROM objects
         WHERE bucket_id = $1 AND key > $2 AND key LIKE $3 ORDER BY key LIMIT $4",
        &[
            Param::Int64(b.id),
            Param::Str(after),
            // LIKE with a literal prefix: the "C" collation lets it use the index.
            Param::Str(format!("{}%", like_escape(prefix))),
            Param::Int64(limit + 1),
        ],
    )?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(ObjectInfo {
                key: r.str("key")?,
                size: r.i64("size")?,
                etag: r.str("etag")?,
                content_type: r.opt_str("content_type")?,
                updated_at: r.time("updated_at")?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let page = fado_api::cursor::page(&list, items, limit, |o| o.key.clone());
    let body = serde_json::to_value(page)
        .map_err(|e| ApiError::new(500, "internal", format!("encoding the response: {e}")))?;
    crate::respond_json(out, 200, &body, &[]);
    Ok(())
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
