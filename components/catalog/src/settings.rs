//! `/api/settings`: the load balancer's global settings.

use fado_model::{MissingHeader, SelectionPolicy, SettingsInput, required, validate};
use fado_store::settings;

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn handle(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    match req.method.as_str() {
        "GET" => Reply::ok(settings::get(&ctx.db)?),
        "PATCH" | "PUT" => {
            let input: SettingsInput = req.json()?;
            if req.method == "PUT" {
                required("default_policy", &input.default_policy)?;
                required("match_header", &input.match_header)?;
                required("missing_header", &input.missing_header)?;
            }
            let policy = input
                .default_policy
                .as_deref()
                .map(|p| SelectionPolicy::parse("default_policy", p))
                .transpose()?;
            if let Some(h) = &input.match_header {
                validate::header_name("match_header", h)?;
            }
            let missing = input
                .missing_header
                .as_deref()
                .map(|m| MissingHeader::parse("missing_header", m))
                .transpose()?;
            let stored = ctx.db.transaction(|db| {
                settings::update(db, policy, input.match_header.as_deref(), missing)?;
                ctx.changed()?;
                Ok::<_, ApiError>(settings::get(db)?)
            })?;
            Reply::ok(stored)
        }
        _ => Err(ApiError::method_not_allowed(&["GET", "PATCH", "PUT"])),
    }
}
