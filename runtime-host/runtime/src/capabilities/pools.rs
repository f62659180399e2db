//! Connection pools by address, shared by the database capabilities.
//!
//! A pooled session's socket is driven by the tokio runtime that opened it.
//! An HTTP worker runs its own single-threaded runtime (one per core), so it
//! gets pools of its own: its queries never wait for another runtime's
//! thread to read their answers, nor for sessions the Redis-triggered
//! components hold. Every other runtime shares one pool per address.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::runtime::{Handle, RuntimeFlavor};

thread_local! {
    /// The pools of a thread that runs its own single-threaded runtime, by
    /// the registry they belong to and address.
    static THREAD_POOLS: RefCell<HashMap<(u64, String), Box<dyn Any>>> =
        RefCell::new(HashMap::new());
}

/// Identifies a registry in [`THREAD_POOLS`]; never reused, unlike an address.
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(0);

/// The pools of one capability of one application.
pub struct PoolsByAddress<P> {
    id: u64,
    shared: Mutex<HashMap<String, P>>,
}

impl<P> Default for PoolsByAddress<P> {
    fn default() -> Self {
        Self {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            shared: Mutex::new(HashMap::new()),
        }
    }
}

impl<P: Clone + 'static> PoolsByAddress<P> {
    /// The pool for `address` as seen from the calling thread, made by
    /// `make` the first time.
    pub fn get<E>(&self, address: &str, make: impl FnOnce() -> Result<P, E>) -> Result<P, E> {
        let own_runtime =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if own_runtime {
            let key = (self.id, address.to_string());
            let known = THREAD_POOLS.with(|m| {
                m.borrow()
                    .get(&key)
                    .and_then(|p| p.downcast_ref::<P>())
                    .cloned()
            });
            if let Some(pool) = known {
                return Ok(pool);
            }
            let pool = make()?;
            THREAD_POOLS.with(|m| m.borrow_mut().insert(key, Box::new(pool.clone())));
            return Ok(pool);
        }
        let mut shared = self.shared.lock().expect("pool registry lock");
        if let Some(pool) = shared.get(address) {
            return Ok(pool.clone());
        }
        let pool = make()?;
        shared.insert(address.to_string(), pool.clone());
        Ok(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::PoolsByAddress;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(made: &Arc<AtomicUsize>) -> Result<usize, Infallible> {
        Ok(made.fetch_add(1, Ordering::SeqCst))
    }

    #[test]
    fn each_worker_runtime_has_its_own_pool_and_others_share_one() {
        let pools = Arc::new(PoolsByAddress::<usize>::default());
        let made = Arc::new(AtomicUsize::new(0));
        let on_worker = |pools: Arc<PoolsByAddress<usize>>, made: Arc<AtomicUsize>| {
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let _guard = rt.enter();
                let a = pools.get("a", || counting(&made)).unwrap();
                assert_eq!(pools.get("a", || counting(&made)).unwrap(), a);
                a
            })
            .join()
            .unwrap()
        };
        let first = on_worker(pools.clone(), made.clone());
        let second = on_worker(pools.clone(), made.clone());
        assert_ne!(first, second, "each worker thread made its own pool");
        let shared = pools.get("a", || counting(&made)).unwrap();
        assert_eq!(pools.get("a", || counting(&made)).unwrap(), shared);
        assert_ne!(pools.get("b", || counting(&made)).unwrap(), shared);
        assert_eq!(made.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn two_registries_never_share_a_pool() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let one = PoolsByAddress::<u8>::default();
        let two = PoolsByAddress::<u8>::default();
        assert_eq!(one.get("a", || Ok::<_, Infallible>(1)).unwrap(), 1);
        assert_eq!(two.get("a", || Ok::<_, Infallible>(2)).unwrap(), 2);
    }
}
