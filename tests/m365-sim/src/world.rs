//! The simulated tenants: directory, app registrations, consents, mailboxes, folders, messages,
//! grants, subscriptions, and the change log that delta reads.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
];

/// Delegated scopes a registration asks for when nothing more specific is requested.
pub const DEFAULT_DELEGATED: &[&str] = &["User.Read", "Mail.Read", "Mail.ReadWrite"];

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub domain: String,
    /// Admin consent per app registration: when it was granted. Application permissions work
    /// only once `propagation` has passed since then.
    pub admin_consents: HashMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ClientSecret {
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

/// A certificate registered on an app (Certificates & secrets → Certificates): its DER and when it
/// expires.
#[derive(Debug, Clone)]
pub struct AppCertificate {
    pub der: Vec<u8>,
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub secrets: Vec<ClientSecret>,
    pub redirect_uris: Vec<String>,
    /// Usable by other tenants once they consent.
    pub multi_tenant: bool,
    /// Application permissions (app roles on Graph) the registration requests.
    pub app_roles: Vec<String>,
    /// Exchange's RBAC for Applications (or an application access policy): the user ids the app's
    /// application permissions reach; `None`, the whole tenant.
    pub mailbox_scope: Option<BTreeSet<String>>,
    /// Certificates whose keys may sign client assertions.
    pub certificates: Vec<AppCertificate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// A licensed user with an Exchange Online mailbox.
    #[default]
    User,
    /// A shared mailbox: no sign-in, reached by its delegates or with application permissions.
    Shared,
    /// A user without an Exchange Online licence: Graph answers `MailboxNotEnabledForRESTAPI`.
    Unlicensed,
}

/// What the user's browser does at the consent prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAnswer {
    #[default]
    Accept,
    Decline,
}

/// What stands between the user and a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignIn {
    #[default]
    Ok,
    /// AADSTS50076: multi-factor authentication is required.
    MfaRequired,
    /// AADSTS53003: blocked by Conditional Access.
    Blocked,
    /// AADSTS50057: the account is disabled.
    Disabled,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub upn: String,
    pub display_name: String,
    pub kind: MailboxKind,
    /// For a shared mailbox: the users who have full access to it.
    pub delegates: Vec<String>,
    pub consent: ConsentAnswer,
    pub sign_in: SignIn,
    /// Delegated scopes this user has granted, per app registration.
    pub grants: HashMap<String, BTreeSet<String>>,
    /// Refresh tokens issued before this instant no longer work (admin "revoke sessions").
    pub revoked_before: Option<DateTime<Utc>>,
    /// App roles assigned to the user, per app registration (client id): the ID token's `roles`.
    pub app_roles: HashMap<String, BTreeSet<String>>,
    /// Delta tokens of an older epoch are expired (`syncStateNotFound`).
    pub sync_epoch: u64,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub id: String,
    pub user_id: String,
    pub display_name: String,
    pub parent_id: Option<String>,
    pub well_known: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Message {
    /// The immutable id.
    pub id: String,
    pub user_id: String,
    pub folder_id: String,
    pub mime: bytes::Bytes,
    pub received_at: DateTime<Utc>,
    pub change_key: String,
    /// How often it was moved: the (mutable) REST id changes with each move.
    pub moves: u32,
    pub categories: Vec<String>,
    pub is_read: bool,
    /// Found once at delivery, not on every read of the message's JSON.
    pub has_attachments: bool,
}

impl Message {
    /// The id Graph shows without `Prefer: IdType="ImmutableId"`: it changes when the message moves.
    pub fn rest_id(&self) -> String {
        format!(
            "AAMkAGrest{}",
            URL_SAFE_NO_PAD.encode(format!("{}|{}", self.id, self.moves))
        )
    }

    pub fn id_for(&self, immutable: bool) -> String {
        if immutable {
            self.id.clone()
        } else {
            self.rest_id()
        }
    }
}

/// One change to an item in a change log (a folder's messages, or a user's folders), for delta.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: u64,
    pub item_id: String,
    pub present: bool,
    /// The item's REST id at the time of the change (ids that are not immutable change on move).
    pub rest_id: String,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<String>,
    pub scopes: BTreeSet<String>,
    pub user_id: String,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub user_id: String,
    pub scopes: BTreeSet<String>,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub resource: String,
    pub application_id: String,
    pub change_type: String,
    pub client_state: Option<String>,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    #[serde(serialize_with = "crate::graph::ser_time")]
    pub expiration_date_time: DateTime<Utc>,
    pub creator_id: String,
    pub latest_supported_tls_version: String,
    pub notification_content_type: String,
    #[serde(skip)]
    pub user_id: String,
    #[serde(skip)]
    pub tenant_id: String,
    /// None: every message of the mailbox.
    #[serde(skip)]
    pub folder_id: Option<String>,
    /// Created with `Prefer: IdType="ImmutableId"`.
    #[serde(skip)]
    pub immutable_ids: bool,
    /// A `reauthorizationRequired` was sent and not yet answered: notifications are not delivered.
    #[serde(skip)]
    pub needs_reauth: bool,
}

/// Graph's per app and mailbox limits (Outlook service).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub concurrent: u32,
    pub per_window: u32,
    pub window_seconds: u32,
    /// Delay between admin consent and application permissions taking effect.
    pub propagation_seconds: u32,
    /// Delta tokens older than this answer 410 (0: never).
    pub delta_token_seconds: u64,
    /// Subscriptions per mailbox (Graph: 1,000).
    pub subscriptions_per_mailbox: usize,
    /// Longest subscription lifetime accepted, in minutes (Graph: 10,080 for Outlook messages
    /// today; 4,230 in older tenants and documents).
    pub subscription_minutes: i64,
    /// Lifetime of the access tokens Entra ID issues (Entra: about an hour, 10 minutes at the
    /// least with a token lifetime policy). Shorter here, so that a test sees a revoked grant at
    /// the next refresh without waiting an hour.
    pub access_token_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            concurrent: 4,
            per_window: 10_000,
            window_seconds: 600,
            propagation_seconds: 0,
            delta_token_seconds: 0,
            subscriptions_per_mailbox: 1000,
            subscription_minutes: 10_080,
            access_token_seconds: crate::entra::ACCESS_TOKEN_SECONDS,
        }
    }
}

/// Requests of one app on one mailbox.
#[derive(Debug, Default)]
pub struct Usage {
    pub in_flight: u32,
    pub window_start: Option<DateTime<Utc>>,
    pub in_window: u32,
}

#[derive(Debug, Default)]
pub struct World {
    pub tenants: BTreeMap<String, Tenant>,
    pub apps: BTreeMap<String, App>,
    pub users: BTreeMap<String, User>,
    pub folders: BTreeMap<String, Folder>,
    pub messages: BTreeMap<String, Message>,
    /// Change logs by folder id (messages) and by `folders:{user id}` (folders).
    pub changes: HashMap<String, Vec<Change>>,
    pub seq: u64,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub limits: Limits,
    pub usage: HashMap<(String, String), Usage>,
    /// Requests served, by `{endpoint}` and `{endpoint}:{user id}`.
    pub counters: BTreeMap<String, u64>,
    /// Every access and ID token issued, so that a test can look for them where they must not be.
    pub issued_tokens: Vec<String>,
}

/// What marks a MIME part as an attachment.
const ATTACHMENT: &[u8] = b"Content-Disposition: attachment";

pub fn new_id(prefix: &str) -> String {
    let raw: [u8; 24] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(raw))
}

pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A scope without its resource prefix: `https://graph.microsoft.com/Mail.Read` → `Mail.Read`.
pub fn short_scope(s: &str) -> &str {
    if s.starts_with("https://") || s.starts_with("api://") {
        s.rsplit_once('/').map_or(s, |(_, n)| n)
    } else {
        s
    }
}

pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The most issued tokens kept (the first ones): enough for any test, bounded for long runs.
const MAX_ISSUED_KEPT: usize = 10_000;

impl World {
    pub fn keep_issued(&mut self, token: &str) {
        if self.issued_tokens.len() < MAX_ISSUED_KEPT {
            self.issued_tokens.push(token.to_string());
        }
    }

    pub fn count(&mut self, endpoint: &str, user: Option<&str>) {
        *self.counters.entry(endpoint.to_string()).or_default() += 1;
        if let Some(u) = user {
            *self.counters.entry(format!("{endpoint}:{u}")).or_default() += 1;
        }
    }

    pub fn add_tenant(&mut self, domain: &str) -> String {
        let id = guid();
        self.tenants.insert(
            id.clone(),
            Tenant {
                id: id.clone(),
                domain: domain.into(),
                admin_consents: HashMap::new(),
            },
        );
        id
    }

    /// A tenant by id or by domain.
    pub fn tenant_by(&self, id_or_domain: &str) -> Option<&Tenant> {
        self.tenants.get(id_or_domain).or_else(|| {
            self.tenants
                .values()
                .find(|t| t.domain.eq_ignore_ascii_case(id_or_domain))
        })
    }

    pub fn add_user(&mut self, tenant_id: &str, upn: &str, display_name: &str) -> String {
        self.add_mailbox(tenant_id, upn, display_name, MailboxKind::User)
    }

    pub fn add_mailbox(
        &mut self,
        tenant_id: &str,
        upn: &str,
        display_name: &str,
        kind: MailboxKind,
    ) -> String {
        let id = guid();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                tenant_id: tenant_id.into(),
                upn: upn.into(),
                display_name: display_name.into(),
                kind,
                delegates: Vec::new(),
                consent: ConsentAnswer::Accept,
                sign_in: SignIn::Ok,
                grants: HashMap::new(),
                revoked_before: None,
                app_roles: HashMap::new(),
                sync_epoch: 0,
            },
        );
        let root = self.insert_folder(&id, None, WELL_KNOWN[0].1, Some(WELL_KNOWN[0].0));
        for (wk, name) in &WELL_KNOWN[1..] {
            self.insert_folder(&id, Some(&root), name, Some(wk));
        }
        id
    }

    fn insert_folder(
        &mut self,
        user_id: &str,
        parent_id: Option<&str>,
        name: &str,
        well_known: Option<&'static str>,
    ) -> String {
        let fid = new_id("AAMkAGfolder");
        self.folders.insert(
            fid.clone(),
            Folder {
                id: fid.clone(),
                user_id: user_id.into(),
                display_name: name.into(),
                parent_id: parent_id.map(Into::into),
                well_known,
            },
        );
        self.log(&format!("folders:{user_id}"), &fid, true);
        fid
    }

    pub fn add_folder(&mut self, user_id: &str, parent_id: &str, name: &str) -> String {
        self.insert_folder(user_id, Some(parent_id), name, None)
    }

    pub fn add_app(
        &mut self,
        tenant_id: &str,
        name: &str,
        client_id: &str,
        secret: &str,
        redirect_uris: Vec<String>,
    ) {
        self.apps.insert(
            client_id.into(),
            App {
                client_id: client_id.into(),
                tenant_id: tenant_id.into(),
                display_name: name.into(),
                secrets: vec![ClientSecret {
                    value: secret.into(),
                    expires_at: Utc::now() + Duration::days(365),
                }],
                redirect_uris,
                multi_tenant: true,
                app_roles: vec!["Mail.Read".into(), "Mail.ReadWrite".into()],
                mailbox_scope: None,
                certificates: Vec::new(),
            },
        );
    }

    pub fn user_by(&self, id_or_upn: &str) -> Option<&User> {
        self.users.get(id_or_upn).or_else(|| {
            self.users
                .values()
                .find(|u| u.upn.eq_ignore_ascii_case(id_or_upn))
        })
    }

    /// A folder of a user by id or well-known name.
    pub fn folder_of(&self, user_id: &str, id_or_name: &str) -> Option<&Folder> {
        if let Some(f) = self.folders.get(id_or_name) {
            return (f.user_id == user_id).then_some(f);
        }
        let lower = id_or_name.to_ascii_lowercase();
        self.folders
            .values()
            .find(|f| f.user_id == user_id && f.well_known.is_some_and(|w| w == lower))
    }

    /// A message of a user by immutable id or by its current REST id. An outdated REST id (the
    /// message moved since) finds nothing, as on Graph.
    pub fn message_of(&self, user_id: &str, id: &str) -> Option<&Message> {
        let m = match self.messages.get(id) {
            Some(m) => m,
            None => {
                let raw = URL_SAFE_NO_PAD
                    .decode(id.strip_prefix("AAMkAGrest")?)
                    .ok()?;
                let raw = String::from_utf8(raw).ok()?;
                let (imm, moves) = raw.rsplit_once('|')?;
                let m = self.messages.get(imm)?;
                if moves.parse::<u32>().ok()? != m.moves {
                    return None;
                }
                m
            }
        };
        (m.user_id == user_id).then_some(m)
    }

    pub fn child_count(&self, folder_id: &str) -> usize {
        self.folders
            .values()
            .filter(|f| f.parent_id.as_deref() == Some(folder_id))
            .count()
    }

    fn log(&mut self, log: &str, item_id: &str, present: bool) {
        let rest_id = self
            .messages
            .get(item_id)
            .map_or_else(|| item_id.to_string(), Message::rest_id);
        self.seq += 1;
        let seq = self.seq;
        self.changes.entry(log.into()).or_default().push(Change {
            seq,
            item_id: item_id.into(),
            present,
            rest_id,
        });
    }

    /// Puts a message into a folder, as delivery does; returns its immutable id.
    pub fn deliver(&mut self, user_id: &str, folder_id: &str, mime: bytes::Bytes) -> String {
        let id = new_id("AAMkAGmsg");
        let has_attachments = mime
            .windows(ATTACHMENT.len())
            .any(|w| w.eq_ignore_ascii_case(ATTACHMENT));
        self.messages.insert(
            id.clone(),
            Message {
                id: id.clone(),
                user_id: user_id.into(),
                folder_id: folder_id.into(),
                mime,
                received_at: Utc::now(),
                change_key: new_id("CQAAAB"),
                moves: 0,
                categories: Vec::new(),
                is_read: false,
                has_attachments,
            },
        );
        self.log(folder_id, &id, true);
        id
    }

    pub fn move_message(&mut self, message_id: &str, to_folder: &str) -> Option<()> {
        let from = self.messages.get(message_id)?.folder_id.clone();
        self.log(&from, message_id, false);
        let m = self.messages.get_mut(message_id)?;
        m.folder_id = to_folder.into();
        m.change_key = new_id("CQAAAB");
        m.moves += 1;
        self.log(to_folder, message_id, true);
        Some(())
    }

    /// Records an update (categories, read state): delta reports the message again.
    pub fn touch_message(&mut self, message_id: &str) -> Option<()> {
        let m = self.messages.get_mut(message_id)?;
        m.change_key = new_id("CQAAAB");
        let folder = m.folder_id.clone();
        self.log(&folder, message_id, true);
        Some(())
    }

    pub fn delete_message(&mut self, message_id: &str) -> Option<()> {
        let folder = self.messages.get(message_id)?.folder_id.clone();
        self.log(&folder, message_id, false);
        self.messages.remove(message_id);
        Some(())
    }

    /// The items of a change log changed in (`from`, `to`]: (id, in the collection now), in change
    /// order. Which items a round lists depends on the log alone, so that its pages stay in place
    /// while messages move or go between two pages, as Graph's pages do: an item that was there at
    /// `to` keeps its place (its page shows it gone, or leaves it out of a first round), and a
    /// removal is listed only to a client that had seen the collection before.
    pub fn delta_items(
        &self,
        log: &str,
        from: u64,
        to: u64,
        here: impl Fn(&str) -> bool,
    ) -> Vec<(String, bool)> {
        let mut last: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
        for c in self.changes.get(log).map(Vec::as_slice).unwrap_or_default() {
            if c.seq > from && c.seq <= to {
                last.insert(&c.item_id, (c.seq, c.present));
            }
        }
        let mut items: Vec<(u64, String, bool)> = last
            .into_iter()
            .filter(|&(_, (_, present))| present || from > 0)
            .map(|(id, (seq, _))| (seq, id.to_string(), here(id)))
            .collect();
        items.sort();
        items.into_iter().map(|(_, id, p)| (id, p)).collect()
    }

    /// Subscriptions that cover a message in this folder of this user.
    pub fn subscriptions_for(&self, user_id: &str, folder_id: &str) -> Vec<Subscription> {
        let now = Utc::now();
        self.subscriptions
            .values()
            .filter(|s| s.user_id == user_id && s.expiration_date_time > now)
            .filter(|s| s.folder_id.as_deref().is_none_or(|f| f == folder_id))
            .cloned()
            .collect()
    }

    /// Drops subscriptions past their expiry, as Graph does.
    pub fn expire_subscriptions(&mut self) {
        let now = Utc::now();
        self.subscriptions
            .retain(|_, s| s.expiration_date_time > now);
    }
}
