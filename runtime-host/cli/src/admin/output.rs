//! How results look: borderless tables (names first) for people, JSON for
//! scripts, and progress bars on a terminal.

use std::io::IsTerminal;

use anyhow::Result;
use comfy_table::{Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// A table with these column headers, in the style of `kubectl get`.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING).set_header(header.to_vec());
    t
}

/// A two-column table of field names and values, for one resource.
pub fn fields(rows: Vec<(&str, String)>) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    for (k, v) in rows {
        t.add_row(vec![format!("{k}:"), v]);
    }
    t
}

pub fn print(t: &Table) {
    println!("{}", t.to_string().trim_end());
}

pub fn json<T: Serialize + ?Sized>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `2026-12-01T21:41:14.123Z` → `2026-12-01 21:41:14`.
pub fn time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replacen('T', " ", 1)
}

pub fn opt_time(t: &Option<String>) -> String {
    t.as_deref().map_or_else(|| "-".into(), time)
}

/// Long ids (ETags) cut to a width that still tells them apart in a listing.
pub fn short(s: &str) -> String {
    if s.chars().count() > 12 {
        format!("{}…", s.chars().take(11).collect::<String>())
    } else {
        s.to_string()
    }
}

pub fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

pub fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

pub fn bytes(n: i64) -> String {
    bytesize::ByteSize(n.max(0) as u64)
        .display()
        .iec()
        .to_string()
}

/// A byte progress bar on stderr, hidden unless stderr is a terminal.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:30!} {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("a valid progress template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// Feeds a transfer's progress into a bar. `sized` bars take their length
/// from the transfer; bars over several files keep the total they were given.
pub struct Bar {
    pub bar: ProgressBar,
    pub sized: bool,
}

impl fado_client::Progress for Bar {
    fn start(&self, total: Option<u64>) {
        if self.sized
            && let Some(t) = total
        {
            self.bar.set_length(t);
        }
    }

    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_ids_are_shortened_for_tables() {
        assert_eq!(time("2026-12-01T21:41:14.123456Z"), "2026-12-01 21:41:14");
        assert_eq!(time("soon"), "soon");
        assert_eq!(short("0123456789abcdef-3"), "0123456789a…");
        assert_eq!(short("abc"), "abc");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
