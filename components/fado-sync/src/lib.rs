//! Replication decisions, free of I/O so they are tested natively: the
//! difference between a master bucket and a replica (rsync-like, by size and
//! ETag), how a copy is cut into bounded parts, the retry schedule of a
//! failed job, and which jobs of a claimed batch may run side by side. The
//! replicator component feeds them listings and carries out what they
//! decide.

use std::collections::BTreeMap;
use std::time::Duration;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// Without the surrounding quotes S3 puts on it.
    pub etag: String,
}

/// User metadata key under which a copy records its source's ETag: a
/// multipart copy gets an ETag of its own, so the copy's ETag alone cannot
/// say whether it matches the master.
pub const SOURCE_ETAG_META: &str = "fado-source-etag";

/// What a replica needs to match its master.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Missing on the replica, or of another size: copy them.
    pub copy: Vec<Entry>,
    /// Same size, other ETag: copy unless the replica's recorded source ETag
    /// (see [`SOURCE_ETAG_META`]) equals the master's ETag.
    pub check: Vec<Entry>,
    /// On the replica only: delete them (replicas are read-only).
    pub delete: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.check.is_empty() && self.delete.is_empty()
    }
}

/// Strips the quotes S3 wraps ETags in.
pub fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// Compares two complete listings. Each list may come in any order and hold
/// a key at most once; the result is ordered by key.
pub fn diff(master: &[Entry], replica: &[Entry]) -> Diff {
    let replica: BTreeMap<&str, &Entry> = replica.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut out = Diff::default();
    let mut sorted: Vec<&Entry> = master.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for m in &sorted {
        match replica.get(m.key.as_str()) {
            None => out.copy.push((*m).clone()),
            Some(r) if r.size != m.size => out.copy.push((*m).clone()),
            Some(r) if r.etag != m.etag => out.check.push((*m).clone()),
            Some(_) => {}
        }
    }
    let master_keys: std::collections::BTreeSet<&str> =
        master.iter().map(|e| e.key.as_str()).collect();
    out.delete = replica
        .keys()
        .filter(|k| !master_keys.contains(*k))
        .map(|k| k.to_string())
        .collect();
    out
}

/// Byte ranges (inclusive ends, as in an HTTP `Range` header) that copy an
/// object of `size` bytes in parts of at most `part_size`. An empty object
/// has no parts.
pub fn parts(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    assert!(part_size > 0, "part size must be positive");
    (0..size.div_ceil(part_size))
        .map(|i| {
            let start = i * part_size;
            (start, (start + part_size).min(size) - 1)
        })
        .collect()
}

/// S3 allows at most this many parts in a multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// And parts of at least this size, except the last.
pub const MIN_PART: u64 = 5 * 1024 * 1024;

/// The part size for an object: `preferred`, grown when the object would
/// otherwise need more than [`MAX_PARTS`] parts.
pub fn part_size(size: u64, preferred: u64) -> u64 {
    let preferred = preferred.max(MIN_PART);
    preferred.max(size.div_ceil(MAX_PARTS))
}

/// Delay before attempt `attempts + 1` of a job that failed `attempts`
/// times: exponential from `base`, capped at `cap`, scaled by `jitter` in
/// [0.5, 1.0] so retries of many jobs do not march in step.
pub fn backoff(attempts: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    exp.min(cap).mul_f64(jitter.clamp(0.5, 1.0))
}

/// How the objects catalog must change to match one page of a master
/// bucket's listing (a reconcile sweep).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    /// On the master, but missing from the catalog or recorded with another
    /// size or ETag.
    pub put: Vec<Entry>,
    /// In the catalog, but not on the master.
    pub delete: Vec<String>,
}

impl CatalogDiff {
    pub fn len(&self) -> usize {
        self.put.len() + self.delete.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Compares one page of a master listing with the catalog's rows for the
/// same key range. The catalog records the master's own ETags, so unlike
/// [`diff`] an ETag that differs is a change. Keys in `newer` were recorded
/// after the listing began (by the object API or a notification): the
/// catalog knows better than the listing there, so they are left alone.
/// The result is ordered by key.
pub fn catalog_diff(listed: &[Entry], catalog: &[Entry], newer: &[String]) -> CatalogDiff {
    let newer: std::collections::BTreeSet<&str> = newer.iter().map(String::as_str).collect();
    let recorded: BTreeMap<&str, &Entry> = catalog.iter().map(|e| (e.key.as_str(), e)).collect();
    let listed: BTreeMap<&str, &Entry> = listed.iter().map(|e| (e.key.as_str(), e)).collect();
    let put = listed
        .iter()
        .filter(|(k, _)| !newer.contains(*k))
        .filter(|(k, m)| {
            recorded
                .get(*k)
                .is_none_or(|c| c.size != m.size || c.etag != m.etag)
        })
        .map(|(_, m)| (*m).clone())
        .collect();
    let delete = recorded
        .keys()
        .filter(|k| !newer.contains(*k) && !listed.contains_key(*k))
        .map(|k| k.to_string())
        .collect();
    CatalogDiff { put, delete }
}

/// What one page of a reconcile walk settles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// The last key the page settles, where the next page starts after;
    /// `None` when it settles every key after the walk's cursor (the walk
    /// ends).
    pub end: Option<String>,
    pub diff: CatalogDiff,
}

/// Settles one page of a reconcile walk. `listed`: the master's keys after
/// the cursor; `catalog`: the catalog's rows after the cursor and, unless
/// the listing is complete, up to its last key; both in key order and each
/// possibly cut short (`*_complete` false). The page covers the keys both
/// sides saw in full, so a long run of keys the master lost is settled over
/// several pages rather than read at once. `None` when the listing claims
/// more keys but holds none: nothing can be settled.
pub fn settle_page(
    listed: &[Entry],
    listing_complete: bool,
    catalog: &[Entry],
    catalog_complete: bool,
    newer: &[String],
) -> Option<Settled> {
    let last = |entries: &[Entry], complete: bool| -> Option<Option<String>> {
        if complete {
            Some(None)
        } else {
            entries.last().map(|e| Some(e.key.clone()))
        }
    };
    let end = match (
        last(listed, listing_complete)?,
        last(catalog, catalog_complete)?,
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let within = |entries: &[Entry]| -> Vec<Entry> {
        entries
            .iter()
            .filter(|e| end.as_ref().is_none_or(|end| e.key <= *end))
            .cloned()
            .collect()
    };
    let diff = catalog_diff(&within(listed), &within(catalog), newer);
    Some(Settled { end, diff })
}

/// What a replication job works on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub bucket: String,
    pub storage: Option<i64>,
    /// The object; `None` for work on the whole replica (a full sync, its
    /// creation or removal).
    pub object: Option<String>,
}

/// Splits a batch of claimed jobs, in claim order, into lanes that may run
/// side by side. Jobs on the same object of the same replica share a lane,
/// and so does everything on a replica that a whole-replica job of the
/// batch works on; within a lane the claim order holds, so an older change
/// is never copied after a newer one.
pub fn lanes<T>(jobs: Vec<T>, target: impl Fn(&T) -> Target) -> Vec<Vec<T>> {
    let whole: std::collections::HashSet<(String, Option<i64>)> = jobs
        .iter()
        .map(&target)
        .filter(|t| t.object.is_none())
        .map(|t| (t.bucket, t.storage))
        .collect();
    let mut index: std::collections::HashMap<Target, usize> = Default::default();
    let mut lanes: Vec<Vec<T>> = Vec::new();
    for job in jobs {
        let mut t = target(&job);
        if whole.contains(&(t.bucket.clone(), t.storage)) {
            t.object = None;
        }
        let next = lanes.len();
        let lane = *index.entry(t).or_insert(next);
        if lane == next {
            lanes.push(Vec::new());
        }
        lanes[lane].push(job);
    }
    lanes
}

#[cfg(test)]
mod tests;
