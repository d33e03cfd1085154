//! Ports: the narrow traits that services depend on. Adapters implement them at the edge.

use crate::model::*;
use crate::secret::Secret;
use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The key of one stored item: a partition and a sort key within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub partition: String,
    pub sort: String,
}

impl Key {
    pub fn new(partition: impl Into<String>, sort: impl Into<String>) -> Self {
        Self {
            partition: partition.into(),
            sort: sort.into(),
        }
    }
}

/// The condition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Write whatever is there.
    Any,
    /// Write only if nothing is stored under the key.
    Absent,
    /// Write only if the stored item has this version.
    Version(u64),
}

impl Cond {
    /// Whether the condition holds for an item whose current version is `current` (None: absent).
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Cond::Any => true,
            Cond::Absent => current.is_none(),
            Cond::Version(v) => current == Some(v),
        }
    }
}

/// A stored body with its version (incremented by each write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: String,
    pub version: u64,
}

/// Durable state with conditional writes (DynamoDB on AWS, SQLite locally). Bodies are JSON.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn get(&self, key: &Key) -> Result<Option<Stored>>;
    /// Writes `body` if `cond` holds and returns the new version; `Error::Conflict` if it does not.
    /// `expires_at` lets the store delete the item some time after that instant.
    async fn put(
        &self,
        key: &Key,
        body: String,
        cond: Cond,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<u64>;
    /// Deletes the item and returns what was there; of concurrent takes, exactly one gets it.
    async fn take(&self, key: &Key) -> Result<Option<Stored>>;
    /// Every item of a partition, by sort key.
    async fn list(&self, partition: &str) -> Result<Vec<(String, Stored)>>;
}

/// Where imported messages go (S3 on AWS, a directory locally).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Starts the object under `key`, written piece by piece; it replaces what is there (keys are
    /// deterministic, so a replay writes the same bytes) only when committed. A reader never sees
    /// a partial object.
    async fn create(&self, key: &str, content_type: &str) -> Result<Box<dyn BlobWriter>>;
    /// Stores a small object in one piece.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<()> {
        let mut w = self.create(key, content_type).await?;
        match w.write(body).await {
            Ok(()) => w.commit().await,
            Err(e) => {
                w.abort().await;
                Err(e)
            }
        }
    }
    /// Where a person finds the object (an `s3://` URI, a file path).
    fn locate(&self, key: &str) -> String;
}

/// Reads stored objects back: the consuming application's side, the demo and the tests. No
/// deployed function reads messages back.
#[async_trait]
pub trait BlobReader: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
}

/// An object being written. Dropped without `commit`, it never appears (a crash leaves at most an
/// unfinished upload, which the store expires).
#[async_trait]
pub trait BlobWriter: Send {
    async fn write(&mut self, piece: Bytes) -> Result<()>;
    /// Makes the whole object visible under its key.
    async fn commit(self: Box<Self>) -> Result<()>;
    /// Gives up and removes what was written.
    async fn abort(self: Box<Self>);
}

/// A body that arrives in pieces, so that it never needs to be whole in memory.
#[async_trait]
pub trait ByteSource: Send {
    /// The next piece; `None` at the end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>>;
}

/// A body already in memory, as one piece.
#[async_trait]
impl ByteSource for Option<Bytes> {
    async fn next_piece(&mut self) -> Result<Option<Bytes>> {
        Ok(self.take())
    }
}

/// A message's raw MIME as Graph sends it.
pub struct MimeDownload {
    /// The length Graph announced (`Content-Length`), if it did.
    pub length: Option<u64>,
    pub body: Box<dyn ByteSource>,
}

/// Tells the consuming application what was imported, and operators which alerts were raised or
/// cleared (EventBridge on AWS; a log file and an optional HTTP hook locally). Delivery is at least
/// once: an event's id is the same on a replay.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: &MessageImported) -> Result<()>;
    async fn alert(&self, event: &AlertEvent) -> Result<()>;
}

/// The import queue (SQS on AWS, a durable SQLite queue locally).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Persists every job or fails: never some silently.
    async fn send(&self, jobs: &[Job]) -> Result<()>;
}

/// A received job, for queues that the runner polls itself.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub receipt: String,
    pub job_body: String,
    pub receive_count: u32,
}

/// Hands a received job back to its queue (an SQS visibility change): what the import function
/// does for Retry-After, since Lambda's SQS trigger receives and deletes for it.
#[async_trait]
pub trait Redelivery: Send + Sync {
    /// Makes the job visible again after `delay`.
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()>;
}

/// The receiving side of a queue that is polled by mailbridge itself (the local runner).
#[async_trait]
pub trait JobSource: Redelivery {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>>;
    async fn ack(&self, receipt: &str) -> Result<()>;
}

/// Signs with a private key that stays where it is kept (AWS KMS; the sealed store locally).
#[async_trait]
pub trait KeySigner: Send + Sync {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256) of `message`.
    async fn sign_rs256(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>>;
}

/// Secrets by name (Secrets Manager on AWS, an encrypted file locally).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Secret>;
}

/// What operators watch: counted where mailbridge decides it (the worker's record of a job, the
/// paced Graph port). CloudWatch's embedded metric format on AWS: no API call, no extra latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A message stored; its size, and the time from its job's queueing (a notification's intake,
    /// a sweep) to its record.
    Imported { bytes: u64, latency_ms: Option<u64> },
    /// A message refused for good (too large).
    Refused,
    /// Graph answered 429 (or 503 with Retry-After).
    GraphThrottled,
    /// Graph failed otherwise for now (5xx, a timeout, a broken connection).
    GraphFailed,
    /// An alert was raised on a mailbox (one that was not already raised).
    AlertRaised,
    /// A job waits for a person: sign in again, consent, licence, approval.
    NeedsPerson,
}

/// Where metrics go.
pub trait Metrics: Send + Sync {
    fn record(&self, metric: Metric);
}

/// Metrics nowhere (the local runner, which has no CloudWatch).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, _metric: Metric) {}
}

/// Time, injectable for tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What a sign-in request asks of the authorize endpoint.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The scopes asked for: the profile's mail scopes to connect a mailbox, or only the sign-in
    /// scopes to open the console.
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub state: Secret,
    pub pkce_challenge: String,
    pub login_hint: Option<String>,
    pub prompt: Option<String>,
}

/// The Microsoft identity platform (Entra ID v2.0 endpoints).
#[async_trait]
pub trait Identity: Send + Sync {
    fn authorize_url(&self, profile: &ServerProfile, req: &AuthorizeRequest) -> Result<String>;
    /// Where an administrator grants the profile's application permissions for the tenant
    /// (the v2.0 admin-consent endpoint, with the `.default` scope).
    fn admin_consent_url(
        &self,
        profile: &ServerProfile,
        redirect_uri: &str,
        state: &Secret,
    ) -> Result<String>;
    async fn exchange_code(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
        code: &str,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet>;
    /// Redeems a refresh token. Microsoft rotates it: the answer carries the new one.
    async fn refresh(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
        refresh_token: &Secret,
    ) -> Result<TokenSet>;
    async fn client_credentials(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
    ) -> Result<TokenSet>;
}

/// Microsoft's identity platform and Graph, as the mailbox services take them.
pub type Microsoft = (std::sync::Arc<dyn Identity>, std::sync::Arc<dyn MailGraph>);

/// Which Graph, with which token, for which mailbox.
#[derive(Debug, Clone, Copy)]
pub struct GraphCtx<'a> {
    pub graph_base: &'a str,
    pub token: &'a Secret,
    /// The mailbridge mailbox the call is for: the key of Graph's per-mailbox limits (empty
    /// before the mailbox exists, while a sign-in completes).
    pub mailbox: &'a str,
}

/// The handful of Microsoft Graph calls mailbridge makes.
#[async_trait]
pub trait MailGraph: Send + Sync {
    async fn me(&self, ctx: GraphCtx<'_>) -> Result<GraphUser>;
    async fn user(&self, ctx: GraphCtx<'_>, id_or_upn: &str) -> Result<GraphUser>;
    /// Every user of the tenant (`GET /users`, every page): needs `User.Read.All`.
    async fn users(&self, ctx: GraphCtx<'_>) -> Result<Vec<DirectoryUser>>;
    /// A folder by id or well-known name (`inbox`, `sentitems`, ...).
    async fn folder(&self, ctx: GraphCtx<'_>, user_id: &str, folder: &str) -> Result<GraphFolder>;
    async fn child_folders(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Vec<GraphFolder>>;
    async fn create_subscription(
        &self,
        ctx: GraphCtx<'_>,
        req: &NewSubscription,
    ) -> Result<SubscriptionAnswer>;
    async fn renew_subscription(
        &self,
        ctx: GraphCtx<'_>,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;
    async fn delete_subscription(&self, ctx: GraphCtx<'_>, id: &str) -> Result<()>;
    /// One page of a folder's message delta: from `link` (a nextLink or deltaLink) or a new round.
    async fn delta(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
        link: Option<&str>,
    ) -> Result<DeltaPage>;
    /// Adds `category` to a message's Outlook categories (kept if already there).
    async fn add_category(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
        category: &str,
    ) -> Result<()>;
    /// The raw MIME of a message (`GET .../messages/{id}/$value`), byte-exact, as it streams in.
    async fn message_mime(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
    ) -> Result<MimeDownload>;
}
