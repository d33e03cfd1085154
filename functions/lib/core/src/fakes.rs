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

/// The in-memory state store (a real adapter, in `crate::state`), under the fakes' name.
pub type InMemoryStateStore = crate::state::MemoryStore;

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

/// A queue that keeps what is sent, for tests to inspect; it can be told to refuse sends.
#[derive(Default)]
pub struct InMemoryQueue {
    jobs: Mutex<Vec<Job>>,
    refusing: std::sync::atomic::AtomicBool,
}

impl InMemoryQueue {
    /// From now on, every send fails (`true`) or works again (`false`).
    pub fn refuse(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::SeqCst);
    }

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
        if self.refusing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Storage("the queue refused the jobs".into()));
        }
        self.jobs.lock().unwrap().extend_from_slice(jobs);
        Ok(())
    }
}

#[derive(Default)]
pub struct InMemorySecrets {
    values: Mutex<HashMap<String, Secret>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl InMemorySecrets {
    pub fn set(&self, name: &str, value: Secret) {
        self.values.lock().unwrap().insert(name.into(), value);
    }

    /// How many times a secret was asked for.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl SecretStore for InMemorySecrets {
    async fn get(&self, name: &str) -> Result<Secret> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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

/// A deployment with no certificate keys: signing is a configuration error.
pub struct NoKeys;

#[async_trait]
impl crate::ports::KeySigner for NoKeys {
    async fn sign_rs256(&self, key: &crate::model::KeyRef, _message: &[u8]) -> Result<Vec<u8>> {
        Err(Error::Config {
            code: "no-key-store".into(),
            reason: format!("no key store here holds {key:?}"),
        })
    }
}

/// Keeps the events published, for tests to inspect.
#[derive(Default)]
pub struct InMemoryEvents {
    events: Mutex<Vec<MessageImported>>,
    alerts: Mutex<Vec<crate::model::AlertEvent>>,
    /// While set, alert events are refused (an event bus that is down).
    pub refuse_alerts: std::sync::atomic::AtomicBool,
}

impl InMemoryEvents {
    pub fn events(&self) -> Vec<MessageImported> {
        self.events.lock().unwrap().clone()
    }

    pub fn alerts(&self) -> Vec<crate::model::AlertEvent> {
        self.alerts.lock().unwrap().clone()
    }
}

#[async_trait]
impl EventSink for InMemoryEvents {
    async fn publish(&self, event: &MessageImported) -> Result<()> {
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }

    async fn alert(&self, event: &crate::model::AlertEvent) -> Result<()> {
        if self.refuse_alerts.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(crate::Error::retry("the event bus is down"));
        }
        self.alerts.lock().unwrap().push(event.clone());
        Ok(())
    }
}

use crate::model::{
    AuthType, Cloud, ConnectionState, CreatedSubscription, DeltaItem, DeltaPage, FolderChoice,
    GraphFolder, GraphUser, Mailbox, MailboxKind, NewSubscription, ServerProfile,
    SubscriptionAnswer, TokenSet,
};
use std::collections::VecDeque;

/// A mailbox tenant in memory, for the services' unit tests: each user's folders and messages,
/// delta rounds over them, and failures to answer on demand. Delta links are
/// `delta:{user}:{folder}:{position}`; a link of an older epoch than [`FakeGraph::expire_deltas`]
/// set answers `SyncReset`, as Graph's 410 does.
#[derive(Default)]
pub struct FakeGraph {
    state: Mutex<FakeGraphState>,
}

/// A message of a fake mailbox: id, MIME, when it was received.
type FakeMessage = (String, Bytes, DateTime<Utc>);

#[derive(Default)]
struct FakeGraphState {
    /// (user, folder) → messages in arrival order.
    folders: BTreeMap<(String, String), Vec<FakeMessage>>,
    /// Call name → errors to answer next, in order.
    failures: HashMap<&'static str, VecDeque<Error>>,
    calls: HashMap<&'static str, u32>,
    epoch: u32,
    next_subscription: u32,
    /// Graph's next answers to subscription creations, before it creates them again.
    subscription_answers: VecDeque<SubscriptionAnswer>,
    /// Announce a larger `Content-Length` than the body (or none at all).
    announce: Option<Option<u64>>,
}

impl FakeGraph {
    /// Puts a message into a user's folder.
    pub fn deliver(
        &self,
        user: &str,
        folder: &str,
        id: &str,
        mime: &[u8],
        received: DateTime<Utc>,
    ) {
        self.state
            .lock()
            .unwrap()
            .folders
            .entry((user.into(), folder.into()))
            .or_default()
            .push((id.into(), Bytes::copy_from_slice(mime), received));
    }

    /// The next call named `call` (`mime`, `delta`, `me`, …) answers `error`.
    /// Graph's next answers to subscription creations (409, a refused lifetime), in order.
    pub fn answer_subscriptions(&self, answers: impl IntoIterator<Item = SubscriptionAnswer>) {
        self.state
            .lock()
            .unwrap()
            .subscription_answers
            .extend(answers);
    }

    pub fn fail_next(&self, call: &'static str, error: Error) {
        self.state
            .lock()
            .unwrap()
            .failures
            .entry(call)
            .or_default()
            .push_back(error);
    }

    /// Makes every delta link given so far stale.
    pub fn expire_deltas(&self) {
        self.state.lock().unwrap().epoch += 1;
    }

    /// What `$value` announces as its length from now on (`None`: no length).
    pub fn announce_length(&self, length: Option<u64>) {
        self.state.lock().unwrap().announce = Some(length);
    }

    /// How many times `call` was made.
    pub fn calls(&self, call: &'static str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(call)
            .copied()
            .unwrap_or(0)
    }

    /// Counts a call and answers its injected failure, if any.
    fn call(&self, call: &'static str) -> Result<()> {
        self.enter(call).map(drop)
    }

    fn enter(&self, call: &'static str) -> Result<std::sync::MutexGuard<'_, FakeGraphState>> {
        let mut s = self.state.lock().unwrap();
        *s.calls.entry(call).or_default() += 1;
        match s.failures.get_mut(call).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(s),
        }
    }
}

#[async_trait]
impl MailGraph for FakeGraph {
    async fn me(&self, _ctx: GraphCtx<'_>) -> Result<GraphUser> {
        self.call("me")?;
        Ok(GraphUser {
            id: "user-1".into(),
            display_name: "Adèle Vance".into(),
            mail: Some("adele@contoso.example".into()),
            user_principal_name: "adele@contoso.example".into(),
        })
    }

    async fn user(&self, _ctx: GraphCtx<'_>, id_or_upn: &str) -> Result<GraphUser> {
        self.call("user")?;
        Ok(GraphUser {
            id: id_or_upn.into(),
            display_name: id_or_upn.into(),
            mail: Some(id_or_upn.into()),
            user_principal_name: id_or_upn.into(),
        })
    }

    async fn users(&self, _ctx: GraphCtx<'_>) -> Result<Vec<crate::model::DirectoryUser>> {
        self.call("users")?;
        Ok(Vec::new())
    }

    async fn folder(
        &self,
        _ctx: GraphCtx<'_>,
        _user_id: &str,
        folder: &str,
    ) -> Result<GraphFolder> {
        self.call("folder")?;
        Ok(GraphFolder {
            id: folder.into(),
            display_name: folder.into(),
            parent_folder_id: None,
            child_folder_count: 0,
        })
    }

    async fn child_folders(
        &self,
        _ctx: GraphCtx<'_>,
        _user_id: &str,
        _folder_id: &str,
    ) -> Result<Vec<GraphFolder>> {
        self.call("child_folders")?;
        Ok(Vec::new())
    }

    async fn create_subscription(
        &self,
        _ctx: GraphCtx<'_>,
        req: &NewSubscription,
    ) -> Result<SubscriptionAnswer> {
        let mut s = self.enter("create_subscription")?;
        if let Some(answer) = s.subscription_answers.pop_front() {
            return Ok(answer);
        }
        s.next_subscription += 1;
        Ok(SubscriptionAnswer::Created(CreatedSubscription {
            id: format!("sub-{}", s.next_subscription),
            expires_at: req.expiration,
        }))
    }

    async fn renew_subscription(
        &self,
        _ctx: GraphCtx<'_>,
        _id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        self.call("renew_subscription")?;
        Ok(expiration)
    }

    async fn delete_subscription(&self, _ctx: GraphCtx<'_>, _id: &str) -> Result<()> {
        self.call("delete_subscription")?;
        Ok(())
    }

    async fn delta(
        &self,
        _ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
        link: Option<&str>,
    ) -> Result<DeltaPage> {
        let s = self.enter("delta")?;
        let from = match link {
            None => 0,
            Some(link) => {
                let parts: Vec<&str> = link.split(':').collect();
                let epoch: u32 = parts.get(3).and_then(|e| e.parse().ok()).unwrap_or(0);
                if epoch != s.epoch {
                    return Err(Error::SyncReset("the delta token expired".into()));
                }
                parts.get(4).and_then(|p| p.parse().ok()).unwrap_or(0)
            }
        };
        let messages = s
            .folders
            .get(&(user_id.to_string(), folder_id.to_string()))
            .cloned()
            .unwrap_or_default();
        Ok(DeltaPage {
            items: messages[from.min(messages.len())..]
                .iter()
                .map(|(id, _, received)| DeltaItem::Message {
                    id: id.clone(),
                    received_at: Some(*received),
                })
                .collect(),
            next_link: None,
            delta_link: Some(format!(
                "delta:{user_id}:{folder_id}:{}:{}",
                s.epoch,
                messages.len()
            )),
        })
    }

    async fn add_category(
        &self,
        _ctx: GraphCtx<'_>,
        _user_id: &str,
        _message_id: &str,
        _category: &str,
    ) -> Result<()> {
        self.call("add_category")?;
        Ok(())
    }

    async fn message_mime(
        &self,
        _ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
    ) -> Result<MimeDownload> {
        let s = self.enter("mime")?;
        let mime = s
            .folders
            .iter()
            .filter(|((user, _), _)| user == user_id)
            .flat_map(|(_, messages)| messages)
            .find(|(id, _, _)| id == message_id)
            .map(|(_, mime, _)| mime.clone())
            .ok_or_else(|| Error::NotFound(format!("message {message_id}")))?;
        Ok(MimeDownload {
            length: s.announce.unwrap_or(Some(mime.len() as u64)),
            body: Box::new(Some(mime)),
        })
    }
}

/// Entra ID in memory: every refresh rotates the refresh token (`rt-1`, `rt-2`, …); a grant can
/// be revoked; refreshes can be made to wait for each other, to stage a race.
#[derive(Default)]
pub struct FakeIdentity {
    issued: Mutex<u32>,
    revoked: Mutex<bool>,
    /// Refreshes wait here, so that concurrent ones all read the same stored token first.
    pub refresh_barrier: Mutex<Option<Arc<tokio::sync::Barrier>>>,
    /// A client secret Entra refuses, as an expired one (AADSTS7000222).
    refused_secret: Mutex<Option<String>>,
}

impl FakeIdentity {
    fn issue(&self, lifetime: chrono::Duration) -> TokenSet {
        let mut n = self.issued.lock().unwrap();
        *n += 1;
        TokenSet {
            access_token: Secret::new(format!("at-{n}")),
            expires_at: Utc::now() + lifetime,
            refresh_token: Some(Secret::new(format!("rt-{n}"))),
            tenant_id: Some("tenant-1".into()),
            roles: Vec::new(),
        }
    }

    /// Token sets issued so far.
    pub fn issued(&self) -> u32 {
        *self.issued.lock().unwrap()
    }

    /// Refuses every refresh from now on, as a revoked grant does (AADSTS50173).
    pub fn revoke(&self) {
        *self.revoked.lock().unwrap() = true;
    }

    /// Refuses this client secret from now on, as Entra refuses an expired one.
    pub fn refuse_secret(&self, secret: &str) {
        *self.refused_secret.lock().unwrap() = Some(secret.into());
    }

    /// The token endpoint's answer to the credential itself.
    fn check(&self, credential: &crate::model::ClientCredential) -> Result<()> {
        let refused = self.refused_secret.lock().unwrap().clone();
        match (credential, refused) {
            (crate::model::ClientCredential::Secret(s), Some(r)) if s.expose() == r => {
                Err(Error::Config {
                    code: "AADSTS7000222".into(),
                    reason: "the client secret has expired".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Identity for FakeIdentity {
    fn authorize_url(&self, _profile: &ServerProfile, req: &AuthorizeRequest) -> Result<String> {
        Ok(format!(
            "https://login.example/authorize?state={}",
            req.state.expose()
        ))
    }

    fn admin_consent_url(
        &self,
        _profile: &ServerProfile,
        _redirect_uri: &str,
        state: &Secret,
    ) -> Result<String> {
        Ok(format!(
            "https://login.example/adminconsent?state={}",
            state.expose()
        ))
    }

    async fn exchange_code(
        &self,
        _profile: &ServerProfile,
        credential: &crate::model::ClientCredential,
        _code: &str,
        _pkce_verifier: &Secret,
        _redirect_uri: &str,
    ) -> Result<TokenSet> {
        self.check(credential)?;
        Ok(self.issue(chrono::Duration::hours(1)))
    }

    async fn refresh(
        &self,
        _profile: &ServerProfile,
        credential: &crate::model::ClientCredential,
        _refresh_token: &Secret,
    ) -> Result<TokenSet> {
        let barrier = self.refresh_barrier.lock().unwrap().clone();
        if let Some(b) = barrier {
            b.wait().await;
        }
        self.check(credential)?;
        if *self.revoked.lock().unwrap() {
            return Err(Error::ReauthRequired {
                code: "AADSTS50173".into(),
                reason: "the grant was revoked".into(),
            });
        }
        Ok(self.issue(chrono::Duration::hours(1)))
    }

    async fn client_credentials(
        &self,
        _profile: &ServerProfile,
        credential: &crate::model::ClientCredential,
    ) -> Result<TokenSet> {
        self.check(credential)?;
        Ok(self.issue(chrono::Duration::hours(1)))
    }
}

/// Keeps the metrics recorded, for tests to inspect.
#[derive(Default)]
pub struct RecordedMetrics {
    recorded: Mutex<Vec<Metric>>,
}

impl RecordedMetrics {
    pub fn recorded(&self) -> Vec<Metric> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Metrics for RecordedMetrics {
    fn record(&self, metric: Metric) {
        self.recorded.lock().unwrap().push(metric);
    }
}

/// Every port in memory, and the mailbox services over them: what the services' unit tests start
/// from.
pub struct FakeWorld {
    pub store: Arc<InMemoryStateStore>,
    pub secrets: Arc<InMemorySecrets>,
    pub identity: Arc<FakeIdentity>,
    pub graph: Arc<FakeGraph>,
    pub queue: Arc<InMemoryQueue>,
    pub blobs: Arc<InMemoryBlobStore>,
    pub events: Arc<InMemoryEvents>,
    pub clock: Arc<ShiftedClock>,
    pub metrics: Arc<RecordedMetrics>,
    pub services: crate::services::MailServices,
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new(crate::services::Settings::new("https://mailbridge.example"))
    }
}

impl FakeWorld {
    pub fn new(settings: crate::services::Settings) -> Self {
        let store = Arc::new(InMemoryStateStore::default());
        let secrets = Arc::new(InMemorySecrets::default());
        secrets.set(
            &settings.token_key_name,
            crate::crypto::SealingKey::generate_base64(),
        );
        secrets.set(
            "mailbridge/profiles/contoso/client-secret",
            Secret::new("client-secret"),
        );
        let identity = Arc::new(FakeIdentity::default());
        let graph = Arc::new(FakeGraph::default());
        let queue = Arc::new(InMemoryQueue::default());
        let clock = Arc::new(ShiftedClock::default());
        let metrics = Arc::new(RecordedMetrics::default());
        let events = Arc::new(InMemoryEvents::default());
        let services = crate::services::MailServices::new(
            crate::services::MailPorts {
                store: store.clone(),
                pace_store: store.clone(),
                secrets: secrets.clone(),
                identity: identity.clone(),
                graph: graph.clone(),
                queue: queue.clone(),
                signer: Arc::new(NoKeys),
                events: events.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            },
            settings,
        )
        .expect("the fake world's settings are sound");
        Self {
            store,
            secrets,
            identity,
            graph,
            queue,
            blobs: Arc::new(InMemoryBlobStore::default()),
            events,
            clock,
            metrics,
            services,
        }
    }

    /// The profile every fake mailbox uses.
    pub fn profile() -> ServerProfile {
        ServerProfile {
            id: "contoso".into(),
            name: "Contoso".into(),
            cloud: Cloud::Global,
            auth: AuthType::Delegated,
            tenant: "organizations".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            client_secret_ref: "mailbridge/profiles/contoso/client-secret".into(),
            client_secret_expires_at: None,
            is_default: true,
            approval_required: false,
            backfill_days: 0,
            outlook_category: None,
            certificate: None,
        }
    }

    /// The fake mailbox's record: `user-1`'s, connected and approved, its Inbox chosen.
    pub fn mailbox_record(now: DateTime<Utc>) -> Mailbox {
        Mailbox {
            id: "mbx_1".into(),
            profile_id: "contoso".into(),
            kind: MailboxKind::User,
            address: "adele@contoso.example".into(),
            display_name: "Adèle Vance".into(),
            user_id: "user-1".into(),
            tenant_id: "tenant-1".into(),
            via: None,
            approved: true,
            enabled: true,
            connection: ConnectionState::Connected,
            folders: vec![FolderChoice {
                id: "inbox".into(),
                display_name: "Inbox".into(),
            }],
            created_at: now,
            updated_at: now,
        }
    }

    /// The fake mailbox, stored, with a token stored that is good for an hour.
    pub async fn mailbox(&self) -> Mailbox {
        let repos = &self.services.repos;
        repos
            .profiles
            .put("contoso", &Self::profile(), Cond::Any)
            .await
            .unwrap();
        let mailbox = Self::mailbox_record(self.clock.now());
        repos
            .mailboxes
            .put(&mailbox.id, &mailbox, Cond::Any)
            .await
            .unwrap();
        let tokens = self
            .identity
            .exchange_code(
                &Self::profile(),
                &crate::model::ClientCredential::Secret(Secret::new("s")),
                "code",
                &Secret::new("v"),
                "r",
            )
            .await
            .unwrap();
        self.services
            .tokens
            .store(&mailbox.id, &tokens, Cond::Any)
            .await
            .unwrap();
        mailbox
    }
}
