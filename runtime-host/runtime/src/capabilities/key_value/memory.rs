//! A process-local store (`type = "memory"`): shared by every instance in
//! this process, gone when it exits. For state that is per proxy by nature,
//! as a load balancer's counters are (Caddy's and Envoy's live in the
//! proxy process too): round-robin positions, in-flight counts, latency
//! and outlier records.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{KvError, KvResult, PAGE, parse_counter};

#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves the map whole (every
        // operation is one insert or remove).
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().get(key).cloned()
    }

    pub fn get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        let map = self.lock();
        keys.iter().map(|k| map.get(k).cloned()).collect()
    }

    pub fn set(&self, key: String, value: Vec<u8>) {
        self.lock().insert(key, value);
    }

    pub fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) {
        self.lock().extend(pairs);
    }

    pub fn delete_many(&self, keys: &[String]) {
        let mut map = self.lock();
        for k in keys {
            map.remove(k);
        }
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Keys after `after` in sorted order, a page at a time.
    pub fn list_keys(&self, after: Option<&str>) -> (Vec<String>, bool) {
        let mut keys: Vec<String> = self
            .lock()
            .keys()
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .cloned()
            .collect();
        keys.sort_unstable();
        let more = keys.len() > PAGE;
        keys.truncate(PAGE);
        (keys, more)
    }

    /// Adds `delta` to the decimal number at `key` (0 when absent), stored
    /// as decimal text as Redis stores it.
    pub fn increment(&self, key: &str, delta: i64) -> KvResult<i64> {
        let mut map = self.lock();
        let now = match map.get(key) {
            Some(v) => parse_counter(key, v)?,
            None => 0,
        };
        let next = now
            .checked_add(delta)
            .ok_or_else(|| KvError::Overflow(key.to_string()))?;
        map.insert(key.to_string(), next.to_string().into_bytes());
        Ok(next)
    }

    pub fn compare_and_swap(&self, key: &str, seen: Option<&[u8]>, value: Vec<u8>) -> bool {
        let mut map = self.lock();
        if map.get(key).map(Vec::as_slice) != seen {
            return false;
        }
        map.insert(key.to_string(), value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text_and_refuse_other_values() {
        let s = MemoryStore::default();
        assert_eq!(s.increment("n", 5).unwrap(), 5);
        assert_eq!(s.increment("n", -7).unwrap(), -2);
        assert_eq!(s.get("n").unwrap(), b"-2");
        s.set("t".into(), b"abc".to_vec());
        assert!(matches!(s.increment("t", 1), Err(KvError::NotANumber(_))));
        s.set("big".into(), i64::MAX.to_string().into_bytes());
        assert!(matches!(s.increment("big", 1), Err(KvError::Overflow(_))));
    }

    #[test]
    fn compare_and_swap_needs_the_value_seen() {
        let s = MemoryStore::default();
        assert!(s.compare_and_swap("k", None, b"1".to_vec()));
        assert!(!s.compare_and_swap("k", None, b"2".to_vec()));
        assert!(!s.compare_and_swap("k", Some(b"0"), b"2".to_vec()));
        assert!(s.compare_and_swap("k", Some(b"1"), b"2".to_vec()));
        assert_eq!(s.get("k").unwrap(), b"2");
    }

    #[test]
    fn keys_come_in_sorted_pages() {
        let s = MemoryStore::default();
        for i in 0..(PAGE + 5) {
            s.set(format!("k{i:05}"), Vec::new());
        }
        let (first, more) = s.list_keys(None);
        assert_eq!((first.len(), more), (PAGE, true));
        let (rest, more) = s.list_keys(first.last().map(String::as_str));
        assert_eq!((rest.len(), more), (5, false));
        assert!(first.last().unwrap() < &rest[0]);
    }
}
