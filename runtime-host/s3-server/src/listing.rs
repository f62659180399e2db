//! One page of a listing (ListObjectsV2 and V1), computed from a bucket's
//! sorted index as S3 computes it.
//!
//! Keys compare as bytes of UTF-8, which is `str`'s order. A page holds the
//! first `max` *entries* after the marker: an entry is a key, or, with a
//! delimiter, a common prefix standing for every key that has the
//! delimiter after `prefix` (up to and including its first occurrence).
//! An entry is listed only when it sorts after the marker, so a marker that
//! is a common prefix skips every key under it, and one inside a group
//! (`a/b` with delimiter `/`) does not bring its prefix (`a/`) back.

use std::collections::BTreeMap;
use std::ops::Bound;

/// What to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    pub prefix: &'a str,
    /// `None` or empty: no grouping.
    pub delimiter: Option<&'a str>,
    /// Only entries after this one (start-after, marker or continuation).
    pub after: Option<&'a str>,
    pub max: usize,
}

/// One entry of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a, V> {
    Object(&'a str, &'a V),
    CommonPrefix(&'a str),
}

impl<V> Entry<'_, V> {
    /// The key or the common prefix: what a next page starts after.
    pub fn name(&self) -> &str {
        match self {
            Entry::Object(k, _) | Entry::CommonPrefix(k) => k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a, V> {
    pub entries: Vec<Entry<'a, V>>,
    /// Whether entries beyond these exist.
    pub truncated: bool,
}

pub fn list<'a, V>(index: &'a BTreeMap<String, V>, q: &Query<'_>) -> Page<'a, V> {
    let delimiter = q.delimiter.filter(|d| !d.is_empty());
    let mut entries = Vec::new();
    let mut truncated = false;
    if q.max == 0 {
        return Page { entries, truncated };
    }
    // Start at whichever is later: the prefix itself, or just after the marker.
    let mut from: Bound<String> = match q.after {
        Some(after) if after >= q.prefix => Bound::Excluded(after.to_string()),
        _ => Bound::Included(q.prefix.to_string()),
    };
    'scan: loop {
        let range = index.range::<str, _>((as_str(&from), Bound::Unbounded));
        for (key, value) in range {
            if !key.starts_with(q.prefix) {
                break 'scan;
            }
            let group = delimiter.and_then(|d| {
                key[q.prefix.len()..]
                    .find(d)
                    .map(|at| &key[..q.prefix.len() + at + d.len()])
            });
            let Some(group) = group else {
                if entries.len() == q.max {
                    truncated = true;
                    break 'scan;
                }
                entries.push(Entry::Object(key.as_str(), value));
                continue;
            };
            if q.after.is_none_or(|after| group > after) {
                if entries.len() == q.max {
                    truncated = true;
                    break 'scan;
                }
                entries.push(Entry::CommonPrefix(group));
            }
            // Jump past every key the group stands for.
            match after_all_with_prefix(group) {
                Some(next) => {
                    from = Bound::Included(next);
                    continue 'scan;
                }
                None => break 'scan,
            }
        }
        break;
    }
    Page { entries, truncated }
}

fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The least string greater than every string that starts with `prefix`
/// (`None`: there is none). UTF-8 sorts as its code points, so this is
/// `prefix` with its last character replaced by the next one, dropping
/// characters that have no next.
pub fn after_all_with_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'), // skip the surrogates
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The listing by definition: every entry, in order, then the cut.
    fn model(keys: &[String], q: &Query<'_>) -> (Vec<(bool, String)>, bool) {
        let delimiter = q.delimiter.filter(|d| !d.is_empty());
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut all: Vec<(bool, String)> = Vec::new();
        for key in sorted {
            let Some(rest) = key.strip_prefix(q.prefix) else {
                continue;
            };
            let entry = match delimiter.and_then(|d| rest.find(d).map(|at| (d, at))) {
                Some((d, at)) => (true, format!("{}{}", q.prefix, &rest[..at + d.len()])),
                None => (false, key.clone()),
            };
            if q.after.is_some_and(|a| entry.1.as_str() <= a) {
                continue;
            }
            if all.last() != Some(&entry) {
                all.push(entry);
            }
        }
        if q.max == 0 {
            return (Vec::new(), false);
        }
        let truncated = all.len() > q.max;
        all.truncate(q.max);
        (all, truncated)
    }

    fn run(keys: &[String], q: &Query<'_>) -> (Vec<(bool, String)>, bool) {
        let index: BTreeMap<String, ()> = keys.iter().map(|k| (k.clone(), ())).collect();
        let page = list(&index, q);
        let entries = page
            .entries
            .iter()
            .map(|e| (matches!(e, Entry::CommonPrefix(_)), e.name().to_string()))
            .collect();
        (entries, page.truncated)
    }

    /// Every page of a listing, following the truncation as a client does.
    fn walk(keys: &[String], prefix: &str, delimiter: Option<&str>, max: usize) -> Vec<String> {
        let index: BTreeMap<String, ()> = keys.iter().map(|k| (k.clone(), ())).collect();
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = list(
                &index,
                &Query {
                    prefix,
                    delimiter,
                    after: after.as_deref(),
                    max,
                },
            );
            out.extend(page.entries.iter().map(|e| e.name().to_string()));
            if !page.truncated {
                return out;
            }
            after = Some(page.entries.last().unwrap().name().to_string());
        }
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn delimiters_group_keys_as_s3_does() {
        let ks = keys(&[
            "a", "a/b", "a/c/d", "a//e", "/lead", "trail/", ".", "..", "./x", "b",
        ]);
        let q = Query {
            delimiter: Some("/"),
            max: 1000,
            ..Query::default()
        };
        let (entries, truncated) = run(&ks, &q);
        assert!(!truncated);
        assert_eq!(
            entries,
            [
                // '.' sorts before '/'
                (false, ".".to_string()),
                (false, "..".to_string()),
                (true, "./".to_string()),
                (true, "/".to_string()),
                (false, "a".to_string()),
                (true, "a/".to_string()),
                (false, "b".to_string()),
                (true, "trail/".to_string()),
            ]
        );
        let q = Query {
            prefix: "a/",
            delimiter: Some("/"),
            max: 1000,
            ..Query::default()
        };
        assert_eq!(
            run(&ks, &q).0,
            [
                (true, "a//".to_string()),
                (false, "a/b".to_string()),
                (true, "a/c/".to_string()),
            ]
        );
    }

    #[test]
    fn a_marker_that_is_a_common_prefix_skips_its_keys() {
        let ks = keys(&["a/1", "a/2", "b"]);
        let q = Query {
            delimiter: Some("/"),
            after: Some("a/"),
            max: 10,
            ..Query::default()
        };
        assert_eq!(run(&ks, &q).0, [(false, "b".to_string())]);
        let q = Query {
            delimiter: Some("/"),
            after: Some("a/1"),
            max: 10,
            ..Query::default()
        };
        assert_eq!(run(&ks, &q).0, [(false, "b".to_string())]);
    }

    #[test]
    fn pages_are_cut_exactly() {
        let ks: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let q = Query {
            max: 10,
            ..Query::default()
        };
        assert_eq!(run(&ks, &q), model(&ks, &q));
        assert!(!run(&ks, &q).1, "exactly max keys is not truncated");
        let q = Query {
            max: 9,
            ..Query::default()
        };
        assert!(run(&ks, &q).1);
        let q = Query {
            max: 0,
            ..Query::default()
        };
        assert_eq!(run(&ks, &q), (Vec::new(), false));
    }

    #[test]
    fn successors_bound_every_extension() {
        assert_eq!(after_all_with_prefix("a/").as_deref(), Some("a0"));
        assert_eq!(
            after_all_with_prefix("\u{D7FF}").as_deref(),
            Some("\u{E000}")
        );
        assert_eq!(after_all_with_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(after_all_with_prefix("\u{10FFFF}"), None);
        assert_eq!(after_all_with_prefix(""), None);
    }

    /// Keys built from the pieces that trouble file systems and parsers.
    fn key() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("//".to_string()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("a".to_string()),
            Just("b".to_string()),
            Just("-".to_string()),
            Just("%".to_string()),
            Just(" ".to_string()),
            Just("\u{1}".to_string()),
            Just("é".to_string()),
            Just("✓".to_string()),
            Just("\u{10FFFF}".to_string()),
            "[a-c/.]{0,3}".prop_map(String::from),
            Just("x".repeat(300)),
        ];
        proptest::collection::vec(piece, 1..6)
            .prop_map(|p| p.concat())
            .prop_filter("S3 keys are 1 to 1024 bytes", |k| {
                !k.is_empty() && k.len() <= 1024
            })
    }

    fn prefix() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("a".to_string()),
            Just("a/".to_string()),
            Just("/".to_string()),
            Just(".".to_string()),
            "[a-c/.]{0,2}".prop_map(String::from),
        ]
    }

    fn delimiter() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            Just(Some("/".to_string())),
            Just(Some(".".to_string())),
            Just(Some("//".to_string())),
            Just(Some("a".to_string())),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_page_is_what_the_definition_says(
            keys in proptest::collection::vec(key(), 0..40),
            prefix in prefix(),
            delimiter in delimiter(),
            after in proptest::option::of(prop_oneof![key(), prefix()]),
            max in 0usize..8,
        ) {
            let q = Query {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                after: after.as_deref(),
                max,
            };
            prop_assert_eq!(run(&keys, &q), model(&keys, &q));
        }

        #[test]
        fn walking_the_pages_lists_every_entry_once(
            keys in proptest::collection::vec(key(), 0..40),
            prefix in prefix(),
            delimiter in delimiter(),
            max in 1usize..5,
        ) {
            let all = model(&keys, &Query {
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                after: None,
                max: usize::MAX,
            }).0;
            let names: Vec<String> = all.into_iter().map(|(_, n)| n).collect();
            prop_assert_eq!(walk(&keys, &prefix, delimiter.as_deref(), max), names);
        }
    }
}
