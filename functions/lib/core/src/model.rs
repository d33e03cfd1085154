//! Domain types: server profiles, mailboxes, subscriptions, cursors, import records, alerts, jobs.

use crate::say::Say;
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which Microsoft cloud a profile talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Cloud {
    /// Global Azure (also GCC moderate).
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
    /// Explicit URLs: a private endpoint, a proxy, or the simulator.
    Custom {
        login: String,
        graph: String,
        resource: String,
    },
}

/// The base URLs of one cloud, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Entra ID authority host, e.g. `https://login.microsoftonline.com`.
    pub login: String,
    /// Graph host that requests go to, e.g. `https://graph.microsoft.com`.
    pub graph: String,
    /// Graph resource identifier that scopes are qualified with (the audience of the access token).
    pub resource: String,
}

impl Cloud {
    pub fn endpoints(&self) -> Endpoints {
        let (login, graph) = match self {
            Cloud::Global => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            Cloud::UsGov => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            Cloud::UsGovDod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            Cloud::China => (
                "https://login.partner.microsoftonline.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
            Cloud::Custom {
                login,
                graph,
                resource,
            } => {
                return Endpoints {
                    login: login.trim_end_matches('/').to_string(),
                    graph: graph.trim_end_matches('/').to_string(),
                    resource: resource.trim_end_matches('/').to_string(),
                }
            }
        };
        Endpoints {
            login: login.into(),
            graph: graph.into(),
            resource: graph.into(),
        }
    }
}

/// How a profile authenticates against Microsoft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// A user signs in (authorization code + PKCE); mailbridge keeps a rotating refresh token.
    Delegated,
    /// An app registration with application permissions (client credentials), organisation-wide.
    Application,
}

/// A server profile: which cloud, which app registration, how mailboxes connected with it behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerProfile {
    pub id: String,
    pub name: String,
    pub cloud: Cloud,
    pub auth: AuthType,
    /// `common`, `organizations`, `consumers` or a tenant id / domain.
    pub tenant: String,
    pub client_id: String,
    /// Name of the client secret in the secret store (never the secret itself).
    pub client_secret_ref: String,
    /// When the client secret expires, so that maintenance can warn before it does.
    #[serde(default)]
    pub client_secret_expires_at: Option<DateTime<Utc>>,
    /// New mailboxes use the default profile.
    #[serde(default)]
    pub is_default: bool,
    /// Whether an administrator must approve a mailbox before its mail is processed.
    #[serde(default)]
    pub approval_required: bool,
    /// Import mail received up to this many days before the connection (0: only new mail).
    #[serde(default)]
    pub backfill_days: u32,
    /// Marks each imported message in Outlook with this category, so that people see what is
    /// filed. Needs Mail.ReadWrite instead of Mail.Read.
    #[serde(default)]
    pub outlook_category: Option<String>,
    /// A certificate instead of the client secret (Microsoft's recommendation): mailbridge signs
    /// a client assertion with its private key, which never leaves where it is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateCredential>,
}

/// Where a certificate's private key is kept; mailbridge asks it to sign and never reads it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "snake_case")]
pub enum KeyRef {
    /// An asymmetric RSA key in AWS KMS (`SIGN_VERIFY`), named by an alias under
    /// `alias/mailbridge/`: KMS signs (`Sign`, RSASSA-PKCS1-v1_5 SHA-256).
    Kms { key_id: String },
    /// A PEM private key in the deployment's secret store, under the profile prefix (the local
    /// runner's sealed store).
    SecretStore { name: String },
}

/// A certificate registered on the app registration (Certificates & secrets → Certificates), and
/// where its private key is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateCredential {
    /// The certificate (public part, PEM), as uploaded to the app registration.
    pub certificate_pem: String,
    pub key: KeyRef,
}

/// How mailbridge proves the app's identity at the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    Secret(Secret),
    /// A signed client assertion (a JWT with the certificate's thumbprints), good for minutes.
    Assertion(Secret),
}

impl ServerProfile {
    /// When the profile's credential expires: its certificate's `notAfter`, or the client
    /// secret's expiry as the administrator gave it.
    pub fn credential_expires_at(&self) -> Option<DateTime<Utc>> {
        match &self.certificate {
            Some(c) => crate::crypto::certificate_der(&c.certificate_pem)
                .and_then(|der| crate::crypto::certificate_not_after(&der))
                .ok(),
            None => self.client_secret_expires_at,
        }
    }

    /// Which credential the profile proves itself with, for sentences about it.
    pub fn credential(&self) -> crate::say::Credential {
        if self.certificate.is_some() {
            crate::say::Credential::Certificate
        } else {
            crate::say::Credential::Secret
        }
    }

    /// Delegated scopes, fully qualified with the cloud's Graph resource as national clouds require.
    pub fn delegated_scopes(&self) -> Vec<String> {
        let r = self.cloud.endpoints().resource;
        let mail = if self.outlook_category.is_some() {
            "Mail.ReadWrite"
        } else {
            "Mail.Read"
        };
        vec![
            "offline_access".into(),
            "openid".into(),
            "profile".into(),
            "email".into(),
            format!("{r}/User.Read"),
            // The user's own mailbox, with change notifications.
            format!("{r}/{mail}"),
            // The shared mailboxes the user is a delegate of (polled: no notifications there).
            format!("{r}/{mail}.Shared"),
        ]
    }

    /// The console's sign-in scopes: who the person is, nothing of their mail.
    pub fn sign_in_scopes(&self) -> Vec<String> {
        let r = self.cloud.endpoints().resource;
        vec!["openid".into(), "profile".into(), format!("{r}/User.Read")]
    }

    /// The scope for the client credentials grant.
    pub fn application_scope(&self) -> String {
        format!("{}/.default", self.cloud.endpoints().resource)
    }
}

/// Stable identifier of a mailbox in mailbridge.
pub type MailboxId = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// The signed-in user's own mailbox.
    User,
    /// A shared mailbox reached through a delegate's sign-in (polled by delta: Graph refuses
    /// subscriptions made with `.Shared` delegated permissions).
    Shared,
    /// A mailbox reached with application permissions (organisation-wide import).
    Application,
}

/// Whether the connection to Microsoft works, and if not, what a person must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Connected,
    /// The refresh token no longer works (AADSTS code kept): someone must sign in again.
    ReauthRequired {
        code: String,
        reason: String,
    },
    /// Graph cannot reach this mailbox (licence missing, on-premises, soft-deleted, outside the
    /// app's scope).
    NotReachable {
        reason: String,
    },
    /// An administrator granted consent lately and Graph still answers 403 while the permission
    /// propagates (Microsoft: up to two hours); tried again with backoff, no failure alert before
    /// `until`.
    PermissionPropagating {
        until: DateTime<Utc>,
    },
}

/// A folder chosen for import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderChoice {
    /// Graph folder id.
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: MailboxId,
    pub profile_id: String,
    pub kind: MailboxKind,
    /// SMTP address.
    pub address: String,
    pub display_name: String,
    /// Graph object id of the mailbox's user.
    pub user_id: String,
    pub tenant_id: String,
    /// For shared mailboxes: the mailbox whose sign-in (token) reaches this one.
    #[serde(default)]
    pub via: Option<MailboxId>,
    pub approved: bool,
    pub enabled: bool,
    pub connection: ConnectionState,
    pub folders: Vec<FolderChoice>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Mailbox {
    /// Mail is processed only for a mailbox that is approved, enabled and connected.
    pub fn is_active(&self) -> bool {
        self.approved && self.enabled && self.connection == ConnectionState::Connected
    }

    /// Whether this mailbox can receive change notifications (else it is polled by delta).
    pub fn can_subscribe(&self) -> bool {
        self.kind != MailboxKind::Shared
    }

    /// The mailbox whose token is used to reach this one.
    pub fn token_owner(&self) -> &str {
        self.via.as_deref().unwrap_or(&self.id)
    }
}

/// The outcome of the last incoming-mail run, as the status page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IncomingStatus {
    #[default]
    NotRun,
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    ReauthRequired,
    LicenceMissing,
    ConsentRevoked,
    /// A profile's client secret (or certificate) expires soon.
    SecretExpiring,
    /// A profile's client secret (or certificate) has expired: no mailbox of it can connect.
    SecretExpired,
    Throttled,
    MessageTooLarge,
    ImportFailing,
    CategoryNotSet,
    /// Application permissions do not reach this mailbox: Exchange's RBAC for Applications or an
    /// application access policy leaves it out of the app's scope.
    OutsideScope,
    /// Entra ID refuses the profile's credential (a wrong or expired secret or certificate, its
    /// key unusable): no mailbox of the profile gets a token.
    CredentialRefused,
}

impl AlertKind {
    /// Whether this alert stands for jobs held back until a person acts (a sign-in, a new secret,
    /// a licence, a consent): when it clears, they can go on at once.
    pub fn holds_jobs(self) -> bool {
        match self {
            AlertKind::ReauthRequired
            | AlertKind::LicenceMissing
            | AlertKind::ConsentRevoked
            | AlertKind::SecretExpired
            | AlertKind::ImportFailing
            | AlertKind::OutsideScope
            | AlertKind::CredentialRefused => true,
            AlertKind::Throttled
            | AlertKind::MessageTooLarge
            | AlertKind::SecretExpiring
            | AlertKind::CategoryNotSet => false,
        }
    }
}

/// An alert that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AlertRecord", into = "AlertRecord")]
pub struct Alert {
    pub kind: AlertKind,
    /// What happened and what to do, said in the reader's language where it is shown.
    pub say: Say,
    pub since: DateTime<Utc>,
}

impl Alert {
    /// The sentence in English, as the API and events carry it.
    pub fn message(&self) -> String {
        self.say.to_string()
    }
}

/// An alert as kept and served: the English sentence for readers of the record, the sentence as
/// data for pages in other languages (absent in records kept before it was).
#[derive(Serialize, Deserialize)]
struct AlertRecord {
    kind: AlertKind,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    say: Option<Say>,
    since: DateTime<Utc>,
}

impl From<AlertRecord> for Alert {
    fn from(r: AlertRecord) -> Self {
        Alert {
            kind: r.kind,
            say: r.say.unwrap_or(Say::Text { text: r.message }),
            since: r.since,
        }
    }
}

impl From<Alert> for AlertRecord {
    fn from(a: Alert) -> Self {
        AlertRecord {
            kind: a.kind,
            message: a.say.to_string(),
            say: Some(a.say),
            since: a.since,
        }
    }
}

/// An alert raised or cleared, kept with the alerts it changed (one conditional write) until it
/// has been announced: an outbox, so that an event that could not go out is sent later, not lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertChange {
    pub kind: AlertKind,
    pub raised: bool,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// The most alert changes an outbox keeps while events cannot go out; older ones are dropped
/// (the alerts themselves stay on the record and in the console).
pub const MAX_UNANNOUNCED: usize = 64;

/// A list of alerts with its outbox: what [`MailboxHealth`] and [`ProfileHealth`] share.
pub trait AlertBoard {
    fn alerts(&self) -> &[Alert];
    fn alerts_mut(&mut self) -> &mut Vec<Alert>;
    fn unannounced(&self) -> &[AlertChange];
    fn unannounced_mut(&mut self) -> &mut Vec<AlertChange>;

    /// Raises an alert, or updates the sentence of one already raised.
    fn raise(&mut self, kind: AlertKind, say: impl Into<Say>, now: DateTime<Utc>) {
        let say = say.into();
        match self.alerts_mut().iter_mut().find(|a| a.kind == kind) {
            Some(a) => a.say = say,
            None => self.alerts_mut().push(Alert {
                kind,
                say,
                since: now,
            }),
        }
    }

    fn has(&self, kind: AlertKind) -> bool {
        self.alerts().iter().any(|a| a.kind == kind)
    }

    fn clear(&mut self, kind: AlertKind) {
        self.alerts_mut().retain(|a| a.kind != kind);
    }

    /// Puts in the outbox what changed since `before`: the alerts raised and cleared.
    fn note_changes(&mut self, before: &[Alert], now: DateTime<Utc>) {
        let after = self.alerts().to_vec();
        let outbox = self.unannounced_mut();
        for a in &after {
            if !before.iter().any(|b| b.kind == a.kind) {
                outbox.push(AlertChange {
                    kind: a.kind,
                    raised: true,
                    message: a.message(),
                    at: now,
                });
            }
        }
        for b in before {
            if !after.iter().any(|a| a.kind == b.kind) {
                outbox.push(AlertChange {
                    kind: b.kind,
                    raised: false,
                    message: b.message(),
                    at: now,
                });
            }
        }
        if outbox.len() > MAX_UNANNOUNCED {
            let extra = outbox.len() - MAX_UNANNOUNCED;
            outbox.drain(..extra);
        }
    }
}

/// [`AlertBoard`] for a record with `alerts` and `unannounced` fields.
macro_rules! alert_board {
    ($record:ty) => {
        impl AlertBoard for $record {
            fn alerts(&self) -> &[Alert] {
                &self.alerts
            }
            fn unannounced(&self) -> &[AlertChange] {
                &self.unannounced
            }
            fn alerts_mut(&mut self) -> &mut Vec<Alert> {
                &mut self.alerts
            }
            fn unannounced_mut(&mut self) -> &mut Vec<AlertChange> {
                &mut self.unannounced
            }
        }
    };
}

/// How many 429s in a row (with no call getting through between them) raise the alert
/// "throttled", or one whose `Retry-After` is [`THROTTLED_LONG`] or more.
pub const THROTTLED_IN_A_ROW: u32 = 3;
pub const THROTTLED_LONG: std::time::Duration = std::time::Duration::from_secs(300);

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Per-mailbox health, kept apart from the mailbox's settings so that busy workers do not contend
/// with administrators' edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MailboxHealth {
    pub incoming: IncomingStatus,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub imported: u64,
    /// Graph's 429s for this mailbox since the last call that got through. The alert "throttled"
    /// waits for [`THROTTLED_IN_A_ROW`] of them: a passing 429 is Graph's normal pacing, not news.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_in_a_row: u32,
    pub alerts: Vec<Alert>,
    /// Alert changes not yet announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unannounced: Vec<AlertChange>,
    /// The last test of the mailbox's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_test: Option<TestReport>,
}

impl MailboxHealth {
    /// Graph answered 429 for this mailbox. One is Graph's pacing; a run of
    /// [`THROTTLED_IN_A_ROW`], or a wait of [`THROTTLED_LONG`] or more, raises the alert.
    pub fn throttled(&mut self, after: std::time::Duration, now: DateTime<Utc>) {
        self.throttled_in_a_row = self.throttled_in_a_row.saturating_add(1);
        if self.throttled_in_a_row >= THROTTLED_IN_A_ROW || after >= THROTTLED_LONG {
            self.raise(
                AlertKind::Throttled,
                Say::ThrottledImportsResume {
                    seconds: after.as_secs(),
                },
                now,
            );
        }
    }

    /// A call to Graph got through: the run of 429s ends, and the alert with it.
    pub fn got_through(&mut self) {
        self.throttled_in_a_row = 0;
        self.clear(AlertKind::Throttled);
    }
}

alert_board!(MailboxHealth);

/// One check of a test and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CheckRecord", into = "CheckRecord")]
pub struct Check {
    pub check: CheckKind,
    pub result: CheckResult,
    /// What was found.
    pub detail: Say,
    /// What to do, when it failed.
    pub action: Option<Say>,
}

/// A check as kept and served: its sentences in English, and as data (see [`AlertRecord`]).
#[derive(Serialize, Deserialize)]
struct CheckRecord {
    check: CheckKind,
    result: CheckResult,
    detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    say: Option<CheckSay>,
}

#[derive(Serialize, Deserialize)]
struct CheckSay {
    detail: Say,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<Say>,
}

impl From<CheckRecord> for Check {
    fn from(r: CheckRecord) -> Self {
        let (detail, action) = match r.say {
            Some(s) => (s.detail, s.action),
            None => (Say::from(r.detail), r.action.map(Say::from)),
        };
        Check {
            check: r.check,
            result: r.result,
            detail,
            action,
        }
    }
}

impl From<Check> for CheckRecord {
    fn from(c: Check) -> Self {
        CheckRecord {
            check: c.check,
            result: c.result,
            detail: c.detail.to_string(),
            action: c.action.as_ref().map(Say::to_string),
            say: Some(CheckSay {
                detail: c.detail,
                action: c.action,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A token can be obtained with the profile's app registration and the mailbox's grant.
    Token,
    /// Graph reaches the mailbox (it exists, has an Exchange Online licence, access is granted).
    Mailbox,
    /// Every chosen folder can be read.
    Folders,
    /// An administrator approved the mailbox (when its profile asks for approval).
    Approval,
    /// Graph accepted a change-notification subscription on every chosen folder, or the mailbox is
    /// polled (a shared mailbox under delegated permissions).
    Notifications,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Passed,
    Failed,
    /// Not run: an earlier check failed, or it applies once the mailbox is enabled.
    Skipped,
}

/// A test's outcome, kept on the mailbox's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub passed: bool,
    /// Whether the mailbox is enabled after the test.
    pub enabled: bool,
    pub at: DateTime<Utc>,
    pub checks: Vec<Check>,
    /// The profile-wide run this test was part of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// A test of every mailbox of a profile, started in the background.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRun {
    pub id: String,
    pub profile_id: String,
    pub enable: bool,
    pub started_at: DateTime<Utc>,
    pub mailboxes: Vec<MailboxId>,
}

/// How close a profile's credential (client secret or certificate) is to its expiry: the warnings
/// go out at 30, 7 and 1 days, each once, then the expiry itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryStage {
    Days30,
    Days7,
    Days1,
    Expired,
}

impl ExpiryStage {
    /// The stage at `now` of a credential expiring at `expires_at`; `None` more than 30 days ahead.
    pub fn at(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<ExpiryStage> {
        let left = expires_at - now;
        if left <= chrono::Duration::zero() {
            Some(ExpiryStage::Expired)
        } else if left <= chrono::Duration::days(1) {
            Some(ExpiryStage::Days1)
        } else if left <= chrono::Duration::days(7) {
            Some(ExpiryStage::Days7)
        } else if left <= chrono::Duration::days(30) {
            Some(ExpiryStage::Days30)
        } else {
            None
        }
    }
}

/// A profile's health: its alerts (the credential's expiry concerns every mailbox of the profile,
/// so it is raised once, here) and the expiry stage already announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProfileHealth {
    pub alerts: Vec<Alert>,
    /// The stage last raised for the credential's expiry, and the expiry it was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warned: Option<(ExpiryStage, DateTime<Utc>)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unannounced: Vec<AlertChange>,
}

alert_board!(ProfileHealth);

/// The event sent when an alert is raised or cleared (`MailboxAlert` on EventBridge; the hook and
/// `alerts.jsonl` locally), for operators to route to e-mail or chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    /// The same on every delivery of this change: consumers drop what they have seen.
    pub event_id: String,
    /// `raised` or `cleared`.
    pub state: String,
    pub kind: AlertKind,
    /// What happened and what to do.
    pub message: String,
    pub at: DateTime<Utc>,
    pub profile_id: String,
    /// The mailbox, for a mailbox's alert; none for a profile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_id: Option<MailboxId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_address: Option<String>,
    /// Where a person acts on it (the sign-in link for a dead grant), when there is such a place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_url: Option<String>,
}

/// A Graph change-notification subscription mailbridge created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: String,
    pub mailbox_id: MailboxId,
    pub folder_id: String,
    pub resource: String,
    /// SHA-256 (hex) of the clientState: the value itself is never stored.
    pub client_state_sha256: String,
    pub expires_at: DateTime<Utc>,
}

/// Where the delta query of one folder stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaCursor {
    pub mailbox_id: MailboxId,
    pub folder_id: String,
    pub delta_link: String,
    pub updated_at: DateTime<Utc>,
}

/// What became of one message, keyed by mailbox and immutable message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ImportState {
    /// A worker holds the message until `lease_until`; after that another may take it over.
    InProgress {
        lease_until: DateTime<Utc>,
        attempts: u32,
    },
    /// Stored: the `.eml` and its metadata are at `eml_key` / `metadata_key`.
    Imported {
        eml_key: String,
        metadata_key: String,
        sha256: String,
        size: u64,
        at: DateTime<Utc>,
    },
    /// The message was gone (deleted) before it could be fetched.
    Gone { at: DateTime<Utc> },
    /// The message cannot be imported (too large, refused); the reason says why.
    Refused { reason: String, at: DateTime<Utc> },
}

impl ImportState {
    pub fn is_final(&self) -> bool {
        !matches!(self, ImportState::InProgress { .. })
    }
}

/// What revealed the message an import job is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Notification,
    Sweep,
}

/// Why a sweep or a resubscription was queued. Graph's lifecycle events keep Graph's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The maintenance round's sweep of every active mailbox.
    #[serde(rename = "schedule")]
    Schedule,
    /// Lifecycle `missed`: Graph could not deliver some notifications.
    #[serde(rename = "missed")]
    Missed,
    /// Lifecycle `subscriptionRemoved`: Graph dropped the subscription.
    #[serde(rename = "subscriptionRemoved")]
    SubscriptionRemoved,
    /// Lifecycle `reauthorizationRequired`: the subscription must be renewed to keep delivering.
    #[serde(rename = "reauthorizationRequired")]
    ReauthorizationRequired,
    /// Graph stopped throttling the mailbox: notifications may have been lost meanwhile.
    #[serde(rename = "after throttling")]
    AfterThrottling,
    /// The local runner started again: notifications may have been lost while it was down.
    #[serde(rename = "restart")]
    Restart,
}

impl Reason {
    /// The reason for one of Graph's lifecycle events; `None` for an event mailbridge does not know.
    pub fn of_lifecycle(event: &str) -> Option<Reason> {
        match event {
            "missed" => Some(Reason::Missed),
            "subscriptionRemoved" => Some(Reason::SubscriptionRemoved),
            "reauthorizationRequired" => Some(Reason::ReauthorizationRequired),
            _ => None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Schedule => "schedule",
            Reason::Missed => "missed",
            Reason::SubscriptionRemoved => "subscriptionRemoved",
            Reason::ReauthorizationRequired => "reauthorizationRequired",
            Reason::AfterThrottling => "after throttling",
            Reason::Restart => "restart",
        })
    }
}

/// A unit of work on the import queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Fetch one message's MIME and store it.
    Import {
        mailbox_id: MailboxId,
        message_id: String,
        /// Serialised as `source`, the name queued jobs have always carried.
        #[serde(rename = "source")]
        origin: Origin,
        /// When the job was queued (a notification's intake, a sweep), for the latency metric.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queued_at: Option<DateTime<Utc>>,
    },
    /// Run the delta query of a mailbox's folders (all chosen folders when `folder_id` is none).
    Sweep {
        mailbox_id: MailboxId,
        folder_id: Option<String>,
        reason: Reason,
    },
    /// Renew or recreate a folder's subscription (lifecycle `reauthorizationRequired`,
    /// `subscriptionRemoved`), then sweep the folder.
    Resubscribe {
        mailbox_id: MailboxId,
        folder_id: String,
        reason: Reason,
    },
    /// Do what the schedule finds due for a mailbox: warn of its client secret, use its grant,
    /// renew its subscriptions, sweep its folders.
    Upkeep { mailbox_id: MailboxId },
    /// Do what the schedule finds due for a profile: its credential's expiry warnings, its alert
    /// events.
    ProfileUpkeep { profile_id: String },
    /// Test a mailbox (and enable it when every check passes, with `enable`), for a profile's run.
    Test {
        mailbox_id: MailboxId,
        enable: bool,
        run: String,
    },
}

impl Job {
    /// Its kind, as queued (`type`): for logs and counts, which never show a job's ids.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Import { .. } => "import",
            Job::Sweep { .. } => "sweep",
            Job::Resubscribe { .. } => "resubscribe",
            Job::Upkeep { .. } => "upkeep",
            Job::ProfileUpkeep { .. } => "profile_upkeep",
            Job::Test { .. } => "test",
        }
    }

    /// The mailbox the job works on; none for a profile's upkeep.
    pub fn mailbox_id(&self) -> Option<&str> {
        match self {
            Job::Import { mailbox_id, .. }
            | Job::Sweep { mailbox_id, .. }
            | Job::Resubscribe { mailbox_id, .. }
            | Job::Upkeep { mailbox_id }
            | Job::Test { mailbox_id, .. } => Some(mailbox_id),
            Job::ProfileUpkeep { .. } => None,
        }
    }
}

/// What a pending authorization is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthPurpose {
    /// A person signs in to connect their mailbox.
    #[default]
    SignIn,
    /// An administrator grants an organisation-wide profile's application permissions.
    AdminConsent,
    /// A person signs in to the console (no mail permission asked).
    ConsoleSignIn,
}

/// An administrator's consent to an organisation-wide profile, as the consent's answer gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConsent {
    pub profile_id: String,
    pub tenant_id: String,
    pub granted_at: DateTime<Utc>,
}

/// A user of the tenant's directory, as discovery lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub id: String,
    pub display_name: String,
    pub address: String,
    /// Whether the user has a licence (a user mailbox); shared mailboxes have none.
    pub licensed: bool,
}

/// A sign-in in progress, kept server-side under the hash of its `state` until the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingAuth {
    #[serde(default)]
    pub purpose: AuthPurpose,
    pub profile_id: String,
    pub pkce_verifier: Secret,
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
}

/// Tokens for one mailbox (or one application profile), sealed before storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub expires_at: DateTime<Utc>,
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// The tenant the signed-in user belongs to (the ID token's `tid`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The app roles the signed-in user holds in the app registration (the ID token's `roles`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// The identity of the signed-in user, as Graph's `/me` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphUser {
    pub id: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub user_principal_name: String,
}

impl GraphUser {
    pub fn address(&self) -> String {
        self.mail
            .clone()
            .unwrap_or_else(|| self.user_principal_name.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFolder {
    pub id: String,
    pub display_name: String,
    pub parent_folder_id: Option<String>,
    pub child_folder_count: u32,
}

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub resource: String,
    pub notification_url: String,
    pub lifecycle_notification_url: String,
    pub client_state: Secret,
    pub expiration: DateTime<Utc>,
}

/// What Graph answered on subscription creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSubscription {
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

/// How Graph answered a subscription's creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionAnswer {
    Created(CreatedSubscription),
    /// 409: Graph holds a subscription of this app for the same resource already; its id.
    Exists {
        id: String,
    },
    /// 400 on the requested expiration: this tenant allows a shorter lifetime (Graph's message).
    LifetimeRefused(String),
}

/// The lifetime older tenants (and Graph's older documents) allow Outlook message subscriptions,
/// asked for when the longer one is refused.
pub const FALLBACK_SUBSCRIPTION_MINUTES: i64 = 4230;

/// One item of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaItem {
    Message {
        id: String,
        received_at: Option<DateTime<Utc>>,
    },
    Removed {
        id: String,
    },
}

/// One page of a delta round: more pages follow while `next_link` is set; the round ends with `delta_link`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPage {
    pub items: Vec<DeltaItem>,
    pub next_link: Option<String>,
    pub delta_link: Option<String>,
}

/// The event published after each import: which message, and where its objects are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageImported {
    /// The same for every replay of this message's import: consumers drop what they have seen.
    pub event_id: String,
    pub mailbox_id: MailboxId,
    pub mailbox_address: String,
    /// Graph's immutable id of the message.
    pub message_id: String,
    pub internet_message_id: Option<String>,
    pub eml_key: String,
    pub metadata_key: String,
    /// Where the objects are (`s3://bucket/key`, a file path).
    pub eml_location: String,
    pub metadata_location: String,
    pub size: u64,
    pub sha256: String,
    pub imported_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_kind_is_the_type_it_is_queued_with() {
        let mailbox_id: MailboxId = "mbx_1".into();
        let jobs = [
            Job::Import {
                mailbox_id: mailbox_id.clone(),
                message_id: "AAMk".into(),
                origin: Origin::Notification,
                queued_at: None,
            },
            Job::Sweep {
                mailbox_id: mailbox_id.clone(),
                folder_id: None,
                reason: Reason::Missed,
            },
            Job::Resubscribe {
                mailbox_id: mailbox_id.clone(),
                folder_id: "inbox".into(),
                reason: Reason::SubscriptionRemoved,
            },
            Job::Upkeep {
                mailbox_id: mailbox_id.clone(),
            },
            Job::ProfileUpkeep {
                profile_id: "contoso".into(),
            },
            Job::Test {
                mailbox_id,
                enable: false,
                run: "run_1".into(),
            },
        ];
        for job in jobs {
            let queued = serde_json::to_value(&job).unwrap();
            assert_eq!(queued["type"], job.kind(), "{job:?}");
        }
    }
}
