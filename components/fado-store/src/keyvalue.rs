//! Reads through `wasi:keyvalue` that every host FaDO runs on answers
//! correctly.
//!
//! Spin's Redis store (3.x and 4.0) implements `batch.get-many` with Redis
//! `KEYS` in place of `MGET`: two keys or more fail with a wrong-arity
//! error, and one key returns key names, not values (see
//! docs/deploy.md, "Under Spin"). So the components read key by key: under
//! `fado` each read is a lookup in process memory, and under Spin one Redis
//! round trip per key.

use spin_sdk::wit::wasi::keyvalue::store::{Bucket, Error};

/// A key and its value (`None` when the store lacks it).
pub type Entry = (String, Option<Vec<u8>>);

/// The entries of `keys`, in order.
pub fn get_each(bucket: &Bucket, keys: &[String]) -> Result<Vec<Entry>, Error> {
    keys.iter()
        .map(|k| Ok((k.clone(), bucket.get(k)?)))
        .collect()
}
