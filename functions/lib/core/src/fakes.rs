//! Test doubles of the ports, in memory: for unit tests and benchmarks. Nothing here survives the
//! process, and nothing here is built into a deployed function (feature `fakes`).

use crate::model::{Job, MessageImported};
use crate::ports::*;
use crate::{Error, Result, Secret};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct InMemoryStateStore {
    items: Mutex<BTreeMap<Key, Stored>>,
}

#[async_trait]
impl StateStore for InMemoryStateStore {
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
        Ok(version)
    }

    async fn take(&self, key: &Key) -> Result<Option<Stored>> {
        Ok(self.items.lock().unwrap().remove(key))
    }

    async fn list(&self, partition: &str) -> Result<Vec<(String, Stored)>> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.partition == partition)
            .map(|(k, v)| (k.sort.clone(), v.clone()))
            .collect())
    }
}

#[derive(Default)]
pub struct InMemoryBlobStore {
    objects: Arc<Mutex<HashMap<String, Bytes>>>,
}

struct InMemoryWriter {
    objects: Arc<Mutex<HashMap<String, Bytes>>>,
    key: String,
    body: BytesMut,
}

#[async_trait]
impl BlobWriter for InMemoryWriter {
    async fn write(&mut self, piece: Bytes) -> Result<()> {
        self.body.extend_from_slice(&piece);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        self.objects
            .lock()
            .unwrap()
            .insert(self.key, self.body.freeze());
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}

#[async_trait]
impl BlobStore for InMemoryBlobStore {
    async fn create(&self, key: &str, _content_type: &str) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(InMemoryWriter {
            objects: self.objects.clone(),
            key: key.into(),
            body: BytesMut::new(),
        }))
    }

    fn locate(&self, key: &str) -> String {
        format!("memory://{key}")
    }
}

#[async_trait]
impl BlobReader for InMemoryBlobStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
}

/// A queue that keeps what is sent, for tests to inspect.
#[derive(Default)]
pub struct InMemoryQueue {
    jobs: Mutex<Vec<Job>>,
}

impl InMemoryQueue {
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap().clone()
    }

    pub fn drain(&self) -> Vec<Job> {
        std::mem::take(&mut *self.jobs.lock().unwrap())
    }
}

#[async_trait]
impl JobQueue for InMemoryQueue {
    async fn send(&self, jobs: &[Job]) -> Result<()> {
        self.jobs.lock().unwrap().extend_from_slice(jobs);
        Ok(())
    }
}

#[derive(Default)]
pub struct InMemorySecrets {
    values: Mutex<HashMap<String, Secret>>,
}

impl InMemorySecrets {
    pub fn set(&self, name: &str, value: Secret) {
        self.values.lock().unwrap().insert(name.into(), value);
    }
}

#[async_trait]
impl SecretStore for InMemorySecrets {
    async fn get(&self, name: &str) -> Result<Secret> {
        self.values
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Config {
                code: "secret-missing".into(),
                reason: format!("no secret named {name}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_writes() {
        let s = InMemoryStateStore::default();
        let k = Key::new("p", "a");
        assert_eq!(s.put(&k, "1".into(), Cond::Absent, None).await.unwrap(), 1);
        assert!(matches!(
            s.put(&k, "2".into(), Cond::Absent, None).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.put(&k, "2".into(), Cond::Version(7), None).await,
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            s.put(&k, "2".into(), Cond::Version(1), None).await.unwrap(),
            2
        );
        assert_eq!(s.take(&k).await.unwrap().unwrap().body, "2");
        assert!(s.take(&k).await.unwrap().is_none());
    }
}

/// A clock that runs with the system clock, shifted by an offset that tests move forward.
#[derive(Default)]
pub struct ShiftedClock {
    offset: Mutex<chrono::Duration>,
}

impl ShiftedClock {
    pub fn advance(&self, by: chrono::Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().unwrap()
    }
}

/// Keeps the events published, for tests to inspect.
#[derive(Default)]
pub struct InMemoryEvents {
    events: Mutex<Vec<MessageImported>>,
}

impl InMemoryEvents {
    pub fn events(&self) -> Vec<MessageImported> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventSink for InMemoryEvents {
    async fn publish(&self, event: &MessageImported) -> Result<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}
