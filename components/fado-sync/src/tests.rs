use super::*;
use proptest::prelude::*;

fn e(key: &str, size: u64, etag: &str) -> Entry {
    Entry {
        key: key.into(),
        size,
        etag: etag.into(),
    }
}

#[test]
fn diff_finds_missing_changed_and_extra_objects() {
    let master = [
        e("b", 2, "x"),
        e("a", 1, "m"),
        e("c", 3, "new"),
        e("d", 4, "same"),
    ];
    let replica = [
        e("a", 1, "m"),
        e("c", 3, "old"),
        e("d", 5, "same"),
        e("z", 9, "q"),
    ];
    let d = diff(&master, &replica);
    assert_eq!(d.copy, [e("b", 2, "x"), e("d", 4, "same")]);
    assert_eq!(d.check, [e("c", 3, "new")]);
    assert_eq!(d.delete, ["z"]);
}

#[test]
fn identical_buckets_need_nothing() {
    let both = [
        e("a", 1, "m"),
        e("b/c", 0, "d41d8cd98f00b204e9800998ecf8427e"),
    ];
    assert!(diff(&both, &both).is_empty());
    assert!(diff(&[], &[]).is_empty());
}

#[test]
fn etags_lose_their_quotes() {
    assert_eq!(normalize_etag("\"abc-2\""), "abc-2");
    assert_eq!(normalize_etag("abc"), "abc");
}

#[test]
fn parts_cover_the_object_exactly() {
    assert_eq!(parts(0, 10), []);
    assert_eq!(parts(10, 10), [(0, 9)]);
    assert_eq!(parts(25, 10), [(0, 9), (10, 19), (20, 24)]);
}

#[test]
fn part_size_respects_s3_limits() {
    assert_eq!(part_size(1, 1), MIN_PART);
    assert_eq!(part_size(100 << 20, 8 << 20), 8 << 20);
    let huge = 5u64 << 40; // 5 TiB, S3's largest object
    assert!(huge.div_ceil(part_size(huge, 8 << 20)) <= MAX_PARTS);
}

#[test]
fn backoff_grows_then_caps() {
    let (base, cap) = (Duration::from_secs(2), Duration::from_secs(300));
    let at = |n| backoff(n, base, cap, 1.0);
    assert_eq!(at(1), Duration::from_secs(2));
    assert_eq!(at(2), Duration::from_secs(4));
    assert_eq!(at(5), Duration::from_secs(32));
    assert_eq!(at(30), cap);
    assert_eq!(
        backoff(3, base, cap, 0.0),
        Duration::from_secs(4),
        "jitter is clamped to 0.5"
    );
}

fn listing() -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::btree_map("[a-c]{1,3}", (0u64..4, "[xy]"), 0..12).prop_map(|m| {
        m.into_iter()
            .map(|(key, (size, etag))| Entry { key, size, etag })
            .collect()
    })
}

proptest! {
    /// Carrying out a diff makes the replica equal to the master.
    #[test]
    fn applying_the_diff_converges(master in listing(), replica in listing()) {
        let d = diff(&master, &replica);
        let mut result: BTreeMap<String, Entry> =
            replica.iter().map(|e| (e.key.clone(), e.clone())).collect();
        for k in &d.delete {
            result.remove(k);
        }
        for e in d.copy.iter().chain(&d.check) {
            result.insert(e.key.clone(), e.clone());
        }
        let want: BTreeMap<String, Entry> =
            master.iter().map(|e| (e.key.clone(), e.clone())).collect();
        prop_assert_eq!(result, want);
        // Nothing is both copied and deleted, and equal objects are left alone.
        prop_assert!(diff(&master, &master).is_empty());
    }

    #[test]
    fn parts_are_contiguous_and_bounded(size in 0u64..10_000, part in 1u64..700) {
        let ps = parts(size, part);
        let mut next = 0;
        for (start, end) in &ps {
            prop_assert_eq!(*start, next);
            prop_assert!(end >= start && end - start < part);
            next = end + 1;
        }
        prop_assert_eq!(next, size);
    }
}
