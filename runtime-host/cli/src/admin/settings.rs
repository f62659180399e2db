//! `fado settings show|set`: routing settings.

use anyhow::Result;
use clap::Subcommand;
use fado_model::{Settings, SettingsInput};

use super::output::{self, fields, time};
use super::{Ctx, about};

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Show the settings.
    #[command(visible_alias = "get")]
    Show,
    /// Change settings.
    #[command(visible_alias = "update")]
    Set {
        /// Selection policy of routes without an override of their own.
        #[arg(long)]
        default_policy: Option<String>,
        /// The header naming an invocation's bucket(s).
        #[arg(long)]
        match_header: Option<String>,
        /// What an invocation without it gets: reject or any.
        #[arg(long)]
        missing_header: Option<String>,
    },
}

pub async fn run(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    let s = match cmd {
        Cmd::Show => about(ctx.client.settings().await, "reading settings")?,
        Cmd::Set {
            default_policy,
            match_header,
            missing_header,
        } => {
            let input = SettingsInput {
                default_policy,
                match_header,
                missing_header,
            };
            about(ctx.client.update_settings(&input).await, "settings")?
        }
    };
    show(ctx, &s)
}

fn show(ctx: &Ctx, s: &Settings) -> Result<()> {
    if ctx.json {
        return output::json(s);
    }
    output::print(&fields(vec![
        ("default policy", s.default_policy.to_string()),
        ("match header", s.match_header.clone()),
        ("missing header", s.missing_header.to_string()),
        ("updated", time(&s.updated_at)),
    ]));
    Ok(())
}
