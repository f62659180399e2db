//! `/api/settings`: the load balancer's global settings.

use fado_model::{MissingHeader, SelectionPolicy, Settings, SettingsInput, required, validate};
use fado_store::Db;

use crate::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::http::{Reply, Req};

pub fn get(db: &Db) -> ApiResult<Settings> {
    let rows = db.query(
        "SELECT default_policy, match_header, missing_header, updated_at FROM settings",
        &[],
    )?;
    let r = rows.one()?;
    Ok(Settings {
        default_policy: SelectionPolicy::parse("default_policy", &r.str("default_policy")?)?,
        match_header: r.str("match_header")?,
        missing_header: MissingHeader::parse("missing_header", &r.str("missing_header")?)?,
        updated_at: r.time("updated_at")?,
    })
}

pub fn handle(ctx: &Ctx, req: &Req) -> ApiResult<Reply> {
    match req.method.as_str() {
        "GET" => Reply::ok(get(&ctx.db)?),
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
            let settings = ctx.db.transaction(|db| {
                db.execute(
                    "UPDATE settings SET default_policy = coalesce($1, default_policy),
                         match_header = coalesce($2, match_header), missing_header = coalesce($3, missing_header),
                         updated_at = now()",
                    &[
                        fado_store::opt_text(policy.map(|p| p.as_str())),
                        fado_store::opt_text(input.match_header.as_deref()),
                        fado_store::opt_text(missing.map(|m| m.as_str())),
                    ],
                )?;
                ctx.changed()?;
                get(db)
            })?;
            Reply::ok(settings)
        }
        _ => Err(ApiError::method_not_allowed(&["GET", "PATCH", "PUT"])),
    }
}
