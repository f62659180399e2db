//! Table `settings`: the load balancer's global settings (one row).

use fado_model::{MissingHeader, SelectionPolicy, Settings};

use crate::{Db, Result, opt_text};

pub fn get(db: &Db) -> Result<Settings> {
    let rows = db.query(
        "SELECT default_policy, match_header, missing_header, updated_at FROM settings",
        &[],
    )?;
    let r = rows.one()?;
    Ok(Settings {
        default_policy: r.parse("default_policy", SelectionPolicy::parse)?,
        match_header: r.str("match_header")?,
        missing_header: r.parse("missing_header", MissingHeader::parse)?,
        updated_at: r.time("updated_at")?,
    })
}

/// Sets the settings given (`None` keeps one).
pub fn update(
    db: &Db,
    policy: Option<SelectionPolicy>,
    match_header: Option<&str>,
    missing: Option<MissingHeader>,
) -> Result<()> {
    db.execute(
        "UPDATE settings SET default_policy = coalesce($1, default_policy),
             match_header = coalesce($2, match_header), missing_header = coalesce($3, missing_header),
             updated_at = now()",
        &[
            opt_text(policy.map(|p| p.as_str())),
            opt_text(match_header),
            opt_text(missing.map(|m| m.as_str())),
        ],
    )?;
    Ok(())
}
