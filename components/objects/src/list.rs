//! `GET /api/buckets/{bucket}/objects`: the objects catalog, in key (byte)
//! order, filtered by `prefix`, a page at a time.

use fado_api::{ApiError, ApiResult};

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
    let items = fado_store::objects::list(&ctx.db, b.id, &after, prefix, limit + 1)?;
    let page = fado_api::cursor::page(&list, items, limit, |o| o.key.clone());
    crate::respond_json(out, 200, &page, &[]);
    Ok(())
}
