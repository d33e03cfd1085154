//! Typed records over the [`StateStore`]: where each kind of record lives, and read-modify-write with
//! conditional writes.

use crate::model::*;
use crate::ports::{Cond, Key, StateStore};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// A record kind: its partition, and whether each mailbox has a partition of its own.
pub trait Record: Serialize + DeserializeOwned + Send + Sync {
    /// The partition, or for records kept per mailbox the partition's prefix (`{KIND}#{mailbox}`).
    const KIND: &'static str;
    /// Kept per mailbox: reached through [`PerMailbox::of`], never as one partition.
    const PER_MAILBOX: bool = false;
}

impl Record for ServerProfile {
    const KIND: &'static str = "profile";
}
impl Record for Mailbox {
    const KIND: &'static str = "mailbox";
}
impl Record for MailboxHealth {
    const KIND: &'static str = "health";
}
impl Record for ProfileHealth {
    const KIND: &'static str = "profilehealth";
}
impl Record for AppConsent {
    const KIND: &'static str = "consent";
}
impl Record for TestRun {
    const KIND: &'static str = "testrun";
}
impl Record for SubscriptionRecord {
    const KIND: &'static str = "subscription";
}
impl Record for SubscriptionRef {
    const KIND: &'static str = "subref";
    const PER_MAILBOX: bool = true;
}
impl Record for DeltaCursor {
    const KIND: &'static str = "cursor";
    const PER_MAILBOX: bool = true;
}
impl Record for ImportState {
    const KIND: &'static str = "import";
    const PER_MAILBOX: bool = true;
}
impl Record for crate::services::pace::PaceRecord {
    const KIND: &'static str = "pace";
}
impl Record for crate::services::upkeep::UpkeepRecord {
    const KIND: &'static str = "upkeep";
}
impl Record for PendingAuth {
    const KIND: &'static str = "authstate";
}
/// Sealed token sets are stored as their ciphertext envelope.
impl Record for crate::crypto::Sealed {
    const KIND: &'static str = "token";
}

/// A record with the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Typed access to the records of one partition.
pub struct Repo<T> {
    store: Arc<dyn StateStore>,
    partition: String,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Repo<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            partition: self.partition.clone(),
            _kind: PhantomData,
        }
    }
}

/// The records of a kind kept per mailbox: one [`Repo`] per mailbox's partition.
pub struct PerMailbox<T> {
    store: Arc<dyn StateStore>,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Clone for PerMailbox<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _kind: PhantomData,
        }
    }
}

impl<T: Record> PerMailbox<T> {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        const { assert!(T::PER_MAILBOX, "this record kind is not kept per mailbox") };
        Self {
            store,
            _kind: PhantomData,
        }
    }

    /// The records of one mailbox.
    pub fn of(&self, mailbox_id: &str) -> Repo<T> {
        Repo {
            store: self.store.clone(),
            partition: format!("{}#{mailbox_id}", T::KIND),
            _kind: PhantomData,
        }
    }
}

impl<T: Record> Repo<T> {
    /// The one partition of a kind that is not kept per mailbox.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        const {
            assert!(
                !T::PER_MAILBOX,
                "records of this kind are kept per mailbox: use PerMailbox"
            )
        };
        Self {
            store,
            partition: T::KIND.to_string(),
            _kind: PhantomData,
        }
    }

    /// The partition this repository reads and writes.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    fn key(&self, id: &str) -> Key {
        Key::new(self.partition.clone(), id)
    }

    fn decode(body: &str) -> Result<T> {
        serde_json::from_str(body)
            .map_err(|e| Error::Storage(format!("corrupt {} record: {e}", T::KIND)))
    }

    fn encode(value: &T) -> Result<String> {
        serde_json::to_string(value)
            .map_err(|e| Error::Storage(format!("cannot encode {}: {e}", T::KIND)))
    }

    pub async fn get(&self, id: &str) -> Result<Option<Versioned<T>>> {
        match self.store.get(&self.key(id)).await? {
            Some(s) => Ok(Some(Versioned {
                value: Self::decode(&s.body)?,
                version: s.version,
            })),
            None => Ok(None),
        }
    }

    pub async fn put(&self, id: &str, value: &T, cond: Cond) -> Result<u64> {
        self.put_expiring(id, value, cond, None).await
    }

    pub async fn put_expiring(
        &self,
        id: &str,
        value: &T,
        cond: Cond,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        self.store
            .put(&self.key(id), Self::encode(value)?, cond, expires_at)
            .await
    }

    /// Removes and returns the record; of concurrent takes exactly one gets it (single use).
    pub async fn take(&self, id: &str) -> Result<Option<T>> {
        match self.store.take(&self.key(id)).await? {
            Some(s) => Ok(Some(Self::decode(&s.body)?)),
            None => Ok(None),
        }
    }

    pub async fn list(&self) -> Result<Vec<(String, Versioned<T>)>> {
        let mut out = Vec::new();
        for (id, s) in self.store.list(&self.partition).await? {
            out.push((
                id,
                Versioned {
                    value: Self::decode(&s.body)?,
                    version: s.version,
                },
            ));
        }
        Ok(out)
    }

    /// Every record of the partition by its id, without versions.
    pub async fn by_id(&self) -> Result<std::collections::HashMap<String, T>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|(id, v)| (id, v.value))
            .collect())
    }

    /// Every record of the partition, without keys or versions.
    pub async fn values(&self) -> Result<Vec<T>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|(_, v)| v.value)
            .collect())
    }

    /// Read-modify-write under a conditional write, retried when another writer won.
    /// `f` gets the current value (if any) and returns the new one, or `None` to leave it as it is.
    pub async fn update<F>(&self, id: &str, mut f: F) -> Result<Option<T>>
    where
        F: FnMut(Option<T>) -> Option<T> + Send,
    {
        for _ in 0..16 {
            let current = self.get(id).await?;
            let cond = current
                .as_ref()
                .map_or(Cond::Absent, |c| Cond::Version(c.version));
            let Some(next) = f(current.map(|c| c.value)) else {
                return Ok(None);
            };
            match self.put(id, &next, cond).await {
                Ok(_) => return Ok(Some(next)),
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::retry(format!(
            "too much contention on {} {id}",
            T::KIND
        )))
    }
}

/// A mailbox's index of its subscriptions, beside the records kept by id for the webhook: a
/// mailbox's subscriptions are found without reading every other mailbox's.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SubscriptionRef {
    pub folder_id: String,
}

/// Every repository the services use, over one store.
#[derive(Clone)]
pub struct Repos {
    pub profiles: Repo<ServerProfile>,
    pub mailboxes: Repo<Mailbox>,
    pub health: Repo<MailboxHealth>,
    pub profile_health: Repo<ProfileHealth>,
    pub subscriptions: Repo<SubscriptionRecord>,
    pub subscription_refs: PerMailbox<SubscriptionRef>,
    pub cursors: PerMailbox<DeltaCursor>,
    pub imports: PerMailbox<ImportState>,
    pub auth_states: Repo<PendingAuth>,
    pub tokens: Repo<crate::crypto::Sealed>,
    pub upkeep: Repo<crate::services::upkeep::UpkeepRecord>,
    /// The latest test run of each profile.
    pub test_runs: Repo<TestRun>,
    /// Administrators' consents to organisation-wide profiles, by profile id.
    pub consents: Repo<AppConsent>,
}

impl Repos {
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self {
            profiles: Repo::new(store.clone()),
            mailboxes: Repo::new(store.clone()),
            health: Repo::new(store.clone()),
            profile_health: Repo::new(store.clone()),
            subscriptions: Repo::new(store.clone()),
            subscription_refs: PerMailbox::new(store.clone()),
            cursors: PerMailbox::new(store.clone()),
            imports: PerMailbox::new(store.clone()),
            auth_states: Repo::new(store.clone()),
            tokens: Repo::new(store.clone()),
            upkeep: Repo::new(store.clone()),
            test_runs: Repo::new(store.clone()),
            consents: Repo::new(store),
        }
    }

    /// Stores a subscription, its mailbox's index entry first: an entry whose record is missing
    /// is skipped, a record without an entry would be lost to its mailbox.
    pub async fn save_subscription(&self, s: &SubscriptionRecord) -> Result<()> {
        let entry = SubscriptionRef {
            folder_id: s.folder_id.clone(),
        };
        self.subscription_refs
            .of(&s.mailbox_id)
            .put(&s.id, &entry, Cond::Any)
            .await?;
        self.subscriptions.put(&s.id, s, Cond::Any).await?;
        Ok(())
    }

    /// A mailbox's subscriptions, through its index.
    pub async fn mailbox_subscriptions(&self, mailbox_id: &str) -> Result<Vec<SubscriptionRecord>> {
        let mut out = Vec::new();
        for (id, _) in self.subscription_refs.of(mailbox_id).list().await? {
            if let Some(v) = self.subscriptions.get(&id).await? {
                out.push(v.value);
            }
        }
        Ok(out)
    }

    /// Forgets a subscription: the record, then its index entry.
    pub async fn forget_subscription(&self, s: &SubscriptionRecord) -> Result<()> {
        self.subscriptions.take(&s.id).await?;
        self.subscription_refs.of(&s.mailbox_id).take(&s.id).await?;
        Ok(())
    }

    pub async fn mailbox(&self, id: &str) -> Result<Mailbox> {
        self.mailboxes
            .get(id)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| Error::NotFound(format!("mailbox {id}")))
    }

    pub async fn profile(&self, id: &str) -> Result<ServerProfile> {
        self.profiles
            .get(id)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| Error::NotFound(format!("server profile {id}")))
    }
}
