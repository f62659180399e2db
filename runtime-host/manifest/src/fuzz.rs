//! Fuzzing of what reads operator input: manifests, runtime configs and
//! `allowed_outbound_hosts` rules. Inputs are arbitrary text or real files
//! with random edits (so most reach deep into the parsers); each must give
//! a value or an error, never a panic. PROPTEST_CASES sets how many inputs
//! a run tries (docs/reliability.md records a run of ten million each).

use std::path::Path;

use proptest::prelude::*;

use crate::{AllowedHosts, Manifest, RuntimeConfig};

const MANIFESTS: [&str; 2] = [
    include_str!("../../../spin.toml"),
    include_str!("../../../examples/functions/spin.toml"),
];
const RUNTIME_CONFIG: &str = include_str!("../../../infra/spin/runtime-config.toml");

/// `seed` with each edit applied: insert, remove or replace one character.
fn mutated(seed: &str, edits: &[(usize, char, u8)]) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for &(at, c, op) in edits {
        let at = at % (text.len() + 1);
        match op {
            0 => text.insert(at, c),
            1 if at < text.len() => {
                text.remove(at);
            }
            _ if at < text.len() => text[at] = c,
            _ => {}
        }
    }
    text.into_iter().collect()
}

/// Arbitrary text, or one of `seeds` with a few random edits.
fn text_near(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (
            proptest::sample::select(seeds),
            proptest::collection::vec((any::<usize>(), any::<char>(), 0..3u8), 1..8),
        )
            .prop_map(|(seed, edits)| mutated(seed, &edits)),
    ]
}

proptest! {
    #[test]
    fn manifests_parse_or_are_refused(text in text_near(&MANIFESTS)) {
        let _ = Manifest::parse(Path::new("/fuzz/spin.toml"), &text);
    }

    #[test]
    fn runtime_configs_parse_or_are_refused(text in text_near(&[RUNTIME_CONFIG])) {
        let _ = RuntimeConfig::parse(Path::new("/fuzz/runtime-config.toml"), &text);
    }

    #[test]
    fn host_rules_parse_or_are_refused_and_answer_any_address(
        rules in proptest::collection::vec(text_near(&[
            "https://*.example.com:443", "*://127.0.0.0/24:5432", "postgres://db:*",
            "http://[::1]:8080", "redis://{{ host }}", "*://*:*", "mqtt://broker",
        ]), 1..4),
        scheme in text_near(&["https", "postgres", "tcp"]),
        host in text_near(&["api.example.com", "127.0.0.7", "::1", "db"]),
        port in proptest::option::of(any::<u16>()),
    ) {
        if let Ok(allowed) = AllowedHosts::parse(&rules) {
            let _ = allowed.allows(&scheme, &host, port);
            let _ = allowed.allows_url(&format!("{scheme}://{host}/"));
        }
    }
}
