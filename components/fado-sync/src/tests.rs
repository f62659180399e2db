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

#[test]
fn catalog_diff_finds_new_changed_and_vanished_objects() {
    let listed = [
        e("b", 2, "x"),
        e("a", 1, "m"),
        e("c", 3, "new"),
        e("d", 5, "same"),
    ];
    let catalog = [
        e("a", 1, "m"),
        e("c", 3, "old"),
        e("d", 4, "same"),
        e("z", 9, "q"),
    ];
    let d = catalog_diff(&listed, &catalog, &[]);
    // Unlike a replica, the catalog holds the master's ETags: "c" changed.
    assert_eq!(d.put, [e("b", 2, "x"), e("c", 3, "new"), e("d", 5, "same")]);
    assert_eq!(d.delete, ["z"]);
    assert_eq!(d.len(), 4);
    assert!(catalog_diff(&listed, &listed, &[]).is_empty());
}

#[test]
fn catalog_diff_leaves_newer_records_alone() {
    // "c" was overwritten and "z" uploaded through the object API while the
    // listing ran: the listing's view of them is older than the catalog's.
    let listed = [e("a", 1, "m"), e("c", 3, "old")];
    let catalog = [e("c", 3, "new"), e("z", 9, "q")];
    let newer = ["c".to_string(), "z".to_string()];
    let d = catalog_diff(&listed, &catalog, &newer);
    assert_eq!(d.put, [e("a", 1, "m")]);
    assert!(d.delete.is_empty());
}

proptest! {
    /// Applying a page's diff makes the catalog equal to the listing, and a
    /// second comparison finds nothing.
    #[test]
    fn applying_a_catalog_diff_converges(listed in listing(), catalog in listing()) {
        let d = catalog_diff(&listed, &catalog, &[]);
        let mut result: BTreeMap<String, Entry> =
            catalog.iter().map(|e| (e.key.clone(), e.clone())).collect();
        for k in &d.delete {
            result.remove(k);
        }
        for e in &d.put {
            result.insert(e.key.clone(), e.clone());
        }
        let want: BTreeMap<String, Entry> =
            listed.iter().map(|e| (e.key.clone(), e.clone())).collect();
        prop_assert_eq!(&result, &want);
        let after: Vec<Entry> = result.into_values().collect();
        prop_assert!(catalog_diff(&listed, &after, &[]).is_empty());
    }
}

#[test]
fn a_truncated_listing_settles_up_to_its_last_key() {
    let listed = [e("a", 1, "m"), e("b", 2, "x")];
    let catalog = [e("a", 1, "m"), e("ab", 3, "gone")];
    let s = settle_page(&listed, false, &catalog, true, &[]).unwrap();
    assert_eq!(s.end.as_deref(), Some("b"));
    assert_eq!(s.diff.put, [e("b", 2, "x")]);
    assert_eq!(s.diff.delete, ["ab"]);
}

#[test]
fn a_complete_listing_ends_the_walk_and_drops_what_the_master_lost() {
    let listed = [e("a", 1, "m")];
    let catalog = [e("a", 1, "m"), e("y", 1, "q"), e("z", 2, "q")];
    let s = settle_page(&listed, true, &catalog, true, &[]).unwrap();
    assert_eq!(s.end, None);
    assert!(s.diff.put.is_empty());
    assert_eq!(s.diff.delete, ["y", "z"]);
    let empty = settle_page(&[], true, &[], true, &[]).unwrap();
    assert_eq!(empty, Settled::default());
}

#[test]
fn a_cut_catalog_read_shortens_the_page() {
    // The master lost many keys: the catalog read stopped at "c", so the
    // page settles up to "c" and leaves "d" to the next page.
    let listed = [e("a", 1, "m"), e("d", 1, "m")];
    let catalog = [e("b", 1, "q"), e("c", 1, "q")];
    let s = settle_page(&listed, true, &catalog, false, &[]).unwrap();
    assert_eq!(s.end.as_deref(), Some("c"));
    assert_eq!(s.diff.put, [e("a", 1, "m")]);
    assert_eq!(s.diff.delete, ["b", "c"]);
    // Both cut short: the page ends at the smaller of the two last keys.
    let s = settle_page(&listed, false, &catalog[..1], false, &[]).unwrap();
    assert_eq!(s.end.as_deref(), Some("b"));
}

#[test]
fn an_empty_page_that_claims_more_settles_nothing() {
    assert_eq!(settle_page(&[], false, &[e("a", 1, "m")], true, &[]), None);
    assert_eq!(settle_page(&[e("a", 1, "m")], true, &[], false, &[]), None);
}

proptest! {
    /// Walking page by page, with listings and catalog reads of any length,
    /// makes the catalog equal to the master and ends the walk.
    #[test]
    fn a_paged_walk_converges(
        master in listing(),
        catalog in listing(),
        page in 1usize..4,
        read in 1usize..4,
    ) {
        let mut state: BTreeMap<String, Entry> =
            catalog.iter().map(|e| (e.key.clone(), e.clone())).collect();
        let mut after = String::new();
        for _ in 0..100 {
            let rest: Vec<Entry> = master.iter().filter(|e| e.key > after).cloned().collect();
            let listed: Vec<Entry> = rest.iter().take(page).cloned().collect();
            let listing_complete = listed.len() == rest.len();
            let upto = (!listing_complete).then(|| listed.last().unwrap().key.clone());
            let range: Vec<Entry> = state
                .values()
                .filter(|e| e.key > after && upto.as_ref().is_none_or(|u| e.key <= *u))
                .cloned()
                .collect();
            let read_rows: Vec<Entry> = range.iter().take(read).cloned().collect();
            let s = settle_page(&listed, listing_complete, &read_rows, read_rows.len() == range.len(), &[])
                .expect("non-empty pages");
            for k in &s.diff.delete {
                state.remove(k);
            }
            for e in &s.diff.put {
                state.insert(e.key.clone(), e.clone());
            }
            match s.end {
                Some(end) => {
                    prop_assert!(end > after, "a page always makes progress");
                    after = end;
                }
                None => {
                    let want: BTreeMap<String, Entry> =
                        master.iter().map(|e| (e.key.clone(), e.clone())).collect();
                    prop_assert_eq!(state, want);
                    return Ok(());
                }
            }
        }
        prop_assert!(false, "the walk did not end");
    }
}

fn job(id: u32, bucket: &str, storage: i64, object: Option<&str>) -> (u32, Target) {
    (
        id,
        Target {
            bucket: bucket.into(),
            storage: Some(storage),
            object: object.map(str::to_string),
        },
    )
}

fn lane_ids(jobs: Vec<(u32, Target)>) -> Vec<Vec<u32>> {
    lanes(jobs, |j| j.1.clone())
        .into_iter()
        .map(|l| l.into_iter().map(|j| j.0).collect())
        .collect()
}

#[test]
fn lanes_keep_one_object_in_order_and_others_apart() {
    let batch = vec![
        job(1, "b", 1, Some("x")),
        job(2, "b", 1, Some("y")),
        job(3, "b", 2, Some("x")),
        job(4, "b", 1, Some("x")),
        job(5, "c", 1, Some("x")),
    ];
    assert_eq!(lane_ids(batch), vec![vec![1, 4], vec![2], vec![3], vec![5]]);
}

#[test]
fn a_whole_replica_job_takes_its_replica_into_one_lane() {
    let batch = vec![
        job(1, "b", 1, Some("x")),
        job(2, "b", 1, None),
        job(3, "b", 1, Some("y")),
        job(4, "b", 2, Some("y")),
    ];
    assert_eq!(lane_ids(batch), vec![vec![1, 2, 3], vec![4]]);
}

proptest! {
    /// Every job lands in exactly one lane; jobs that touch the same object
    /// of a replica (or a replica under whole-replica work) share a lane in
    /// claim order.
    #[test]
    fn lanes_partition_the_batch_and_keep_conflicts_ordered(
        raw in proptest::collection::vec((0u8..2, 0i64..2, proptest::option::of(0u8..3)), 0..30)
    ) {
        let batch: Vec<(u32, Target)> = raw
            .iter()
            .enumerate()
            .map(|(i, (b, s, o))| {
                (i as u32, Target {
                    bucket: format!("b{b}"),
                    storage: Some(*s),
                    object: o.map(|o| format!("k{o}")),
                })
            })
            .collect();
        let lanes = lanes(batch.clone(), |j| j.1.clone());
        let mut seen: Vec<u32> = lanes.iter().flatten().map(|j| j.0).collect();
        seen.sort();
        prop_assert_eq!(seen, (0..batch.len() as u32).collect::<Vec<_>>());
        let lane_of = |id: u32| lanes.iter().position(|l| l.iter().any(|j| j.0 == id)).unwrap();
        for l in &lanes {
            prop_assert!(l.windows(2).all(|w| w[0].0 < w[1].0));
        }
        for a in &batch {
            for b in &batch {
                let same_replica = a.1.bucket == b.1.bucket && a.1.storage == b.1.storage;
                let conflict = same_replica
                    && (a.1.object.is_none() || b.1.object.is_none() || a.1.object == b.1.object);
                if conflict {
                    prop_assert_eq!(lane_of(a.0), lane_of(b.0));
                }
            }
        }
    }
}
