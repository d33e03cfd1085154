//! State kept in memory: for what a single process need not keep across a restart (the local
//! runner's Graph pace records), and for tests.

use crate::ports::{Cond, Key, StateStore, Stored};
use crate::{Error, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct MemoryStore {
    items: Mutex<BTreeMap<Key, Stored>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemoryStore {
    /// How many writes (puts and takes) the store has taken.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>> {
        Ok(self.items.lock().unwrap().get(key).cloned())
    }

    async fn put(
        &self,
        key: &Key,
        body: String,
        cond: Cond,
        _expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let mut items = self.items.lock().unwrap();
        let current = items.get(key).map(|s| s.version);
        if !cond.holds(current) {
            return Err(Error::Conflict(format!("{}/{}", key.partition, key.sort)));
        }
        let version = current.unwrap_or(0) + 1;
        items.insert(key.clone(), Stored { body, version });
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(version)
    }

    async fn take(&self, key: &Key) -> Result<Option<Stored>> {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.items.lock().unwrap().remove(key))
    }

    async fn list(&self, partition: &str) -> Result<Vec<(String, Stored)>> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .range(Key::new(partition, "")..)
            .take_while(|(k, _)| k.partition == partition)
            .map(|(k, v)| (k.sort.clone(), v.clone()))
            .collect())
    }
}
