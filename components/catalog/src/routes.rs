//! `GET /api/routes`: the route table as last published by the planner (the
//! thesis's "raw configuration"), paginated by bucket name.

use fado_model::api::RouteTablePage;
use fado_model::{BucketRoute, RouteMeta};

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn table(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    if req.method != "GET" {
        return Err(ApiError::method_not_allowed(&["GET"]));
    }
    let p = req.page("routes")?;
    let after = p.text_cursor()?.unwrap_or_default();
    let only = req.param("bucket");
    let table = fado_store::routes::latest(&ctx.db)?;
    let (version, meta, routes) = match table {
        None => (0, None, Vec::new()),
        Some(t) => {
            let meta = RouteMeta {
                match_header: t.match_header,
                missing_header: t.missing_header,
                default_policy: t.default_policy,
            };
            (t.version, Some(meta), t.routes)
        }
    };
    let items: Vec<BucketRoute> = routes
        .into_iter()
        .filter(|r| r.bucket.as_str() > after.as_str() && only.is_none_or(|b| r.bucket == b))
        .take(p.limit as usize + 1)
        .collect();
    let page = p.page(items, |r| r.bucket.clone());
    Reply::ok(RouteTablePage {
        version,
        settings: meta,
        items: page.items,
        next_cursor: page.next_cursor,
    })
}
