//! The REST verbs every catalog resource shares: a collection (`GET` lists,
//! `POST` creates) and items addressed by id or name (`GET`, `PATCH`/`PUT`,
//! `DELETE`). One dispatcher maps methods to handlers and answers 405 with
//! the methods allowed, so every resource behaves alike.

use fado_store::lookup::Table;

use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};
use crate::{Ctx, lookup};

pub struct Resource {
    /// Table the item segment is looked up in.
    pub table: Table,
    pub list: fn(&Ctx, &Req) -> ApiResult<Reply>,
    pub create: fn(&Ctx, &Req) -> ApiResult<Reply>,
    pub get: fn(&Ctx, i64) -> ApiResult<Reply>,
    pub update: fn(&Ctx, &Req, i64) -> ApiResult<Reply>,
    pub delete: fn(&Ctx, &Req, i64) -> ApiResult<Reply>,
}

impl Resource {
    pub fn collection(&self, ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
        match req.method.as_str() {
            "GET" => (self.list)(ctx, req),
            "POST" => (self.create)(ctx, req),
            _ => Err(ApiError::method_not_allowed(&["GET", "POST"])),
        }
    }

    pub fn item(&self, ctx: &Ctx, req: &Req, segment: &str) -> ApiResult<Reply> {
        let id = lookup::segment(&ctx.db, self.table, segment)?;
        match req.method.as_str() {
            "GET" => (self.get)(ctx, id),
            "PATCH" | "PUT" => (self.update)(ctx, req, id),
            "DELETE" => (self.delete)(ctx, req, id),
            _ => Err(ApiError::method_not_allowed(&[
                "GET", "PATCH", "PUT", "DELETE",
            ])),
        }
    }
}
