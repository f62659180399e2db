//! The local persistent store (Spin's `spin` type): one redb file per
//! label under the state directory, or where the runtime config says.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{KvError, KvResult, PAGE, parse_counter};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");

pub struct LocalStore {
    db: Arc<redb::Database>,
}

impl LocalStore {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let db = redb::Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "key-value store {} is in use by another process (is another fado running on this state directory? pass --state-dir)",
                path.display()
            ),
            e => anyhow::Error::from(e)
                .context(format!("opening key-value store {}", path.display())),
        })?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs `f` off the async executor: commits fsync.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database) -> Result<T, KvError> + Send + 'static,
    ) -> KvResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| KvError::Backend(e.to_string()))?
    }

    pub async fn get_many(&self, keys: Vec<String>) -> KvResult<Vec<Option<Vec<u8>>>> {
        self.run(move |db| {
            read(db, vec![None; keys.len()], |t| {
                keys.iter()
                    .map(|k| Ok(t.get(k.as_str())?.map(|v| v.value().to_vec())))
                    .collect()
            })
        })
        .await
    }

    pub async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> KvResult<()> {
        self.run(move |db| {
            write(db, |t| {
                for (k, v) in &pairs {
                    t.insert(k.as_str(), v.as_slice())?;
                }
                Ok(())
            })
        })
        .await
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> KvResult<()> {
        self.run(move |db| {
            write(db, |t| {
                for k in &keys {
                    t.remove(k.as_str())?;
                }
                Ok(())
            })
        })
        .await
    }

    pub async fn list_keys(&self, after: Option<String>) -> KvResult<(Vec<String>, bool)> {
        self.run(move |db| {
            read(db, (Vec::new(), false), |t| {
                let range = match &after {
                    Some(a) => t.range::<&str>((
                        std::ops::Bound::Excluded(a.as_str()),
                        std::ops::Bound::Unbounded,
                    ))?,
                    None => t.range::<&str>(..)?,
                };
                let mut keys = Vec::new();
                for item in range {
                    if keys.len() == PAGE {
                        return Ok((keys, true));
                    }
                    keys.push(item?.0.value().to_string());
                }
                Ok((keys, false))
            })
        })
        .await
    }

    pub async fn increment(&self, key: String, delta: i64) -> KvResult<i64> {
        self.run(move |db| {
            write(db, |t| {
                let now = match t.get(key.as_str())? {
                    Some(v) => parse_counter(&key, v.value())?,
                    None => 0,
                };
                let next = now
                    .checked_add(delta)
                    .ok_or_else(|| KvError::Overflow(key.clone()))?;
                t.insert(key.as_str(), next.to_string().as_bytes())?;
                Ok(next)
            })
        })
        .await
    }

    pub async fn compare_and_swap(
        &self,
        key: String,
        seen: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> KvResult<bool> {
        self.run(move |db| {
            write(db, |t| {
                let now = t.get(key.as_str())?.map(|v| v.value().to_vec());
                if now != seen {
                    return Ok(false);
                }
                t.insert(key.as_str(), value.as_slice())?;
                Ok(true)
            })
        })
        .await
    }
}

impl From<redb::Error> for KvError {
    fn from(e: redb::Error) -> Self {
        KvError::Backend(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for KvError {
            fn from(e: $t) -> Self {
                KvError::Backend(redb::Error::from(e).to_string())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Reads the table; `empty` when nothing was ever written to the store.
fn read<T>(
    db: &redb::Database,
    empty: T,
    f: impl FnOnce(&redb::ReadOnlyTable<&str, &[u8]>) -> Result<T, KvError>,
) -> Result<T, KvError> {
    let txn = db.begin_read()?;
    match txn.open_table(TABLE) {
        Ok(t) => f(&t),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(empty),
        Err(e) => Err(e.into()),
    }
}

/// Changes the table in one committed transaction.
fn write<T>(
    db: &redb::Database,
    f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, KvError>,
) -> Result<T, KvError> {
    let txn = db.begin_write()?;
    let out = {
        let mut t = txn.open_table(TABLE)?;
        f(&mut t)?
    };
    txn.commit()?;
    Ok(out)
}
