//! The simulated tenant(s): directory, app registrations, mailboxes, grants, subscriptions.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub const WELL_KNOWN: &[(&str, &str)] = &[
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
    ("archive", "Archive"),
    ("junkemail", "Junk Email"),
];

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub domain: String,
}

#[derive(Debug, Clone)]
pub struct ClientSecret {
    pub value: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub secrets: Vec<ClientSecret>,
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub upn: String,
    pub display_name: String,
    /// Whether the user accepts the consent prompt (the sim's stand-in for clicking "Accept").
    pub consents: bool,
    /// Refresh tokens issued before this instant no longer work (admin "revoke sessions").
    pub revoked_before: Option<DateTime<Utc>>,
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
    pub id: String,
    pub user_id: String,
    pub folder_id: String,
    pub mime: bytes::Bytes,
    pub received_at: DateTime<Utc>,
    pub change_key: String,
}

/// One change in a folder, for delta.
#[derive(Debug, Clone)]
pub struct Change {
    pub seq: u64,
    pub message_id: String,
    pub present: bool,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: Option<String>,
    pub scope: String,
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    pub redeemed: bool,
}

#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub client_id: String,
    pub tenant_id: String,
    /// None for app-only tokens.
    pub user_id: Option<String>,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
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
}

#[derive(Debug, Default)]
pub struct World {
    pub tenants: BTreeMap<String, Tenant>,
    pub apps: BTreeMap<String, App>,
    pub users: BTreeMap<String, User>,
    pub folders: BTreeMap<String, Folder>,
    pub messages: BTreeMap<String, Message>,
    pub changes: HashMap<String, Vec<Change>>,
    pub seq: u64,
    pub codes: HashMap<String, AuthCode>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub access_tokens: HashMap<String, AccessGrant>,
    pub subscriptions: BTreeMap<String, Subscription>,
    /// Requests served, by `{endpoint}` and `{endpoint}:{user id}`.
    pub counters: BTreeMap<String, u64>,
}

pub fn new_id(prefix: &str) -> String {
    use base64::Engine;
    let raw: [u8; 24] = rand::random();
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE.encode(raw)
    )
}

pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl World {
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
            },
        );
        id
    }

    pub fn add_user(&mut self, tenant_id: &str, upn: &str, display_name: &str) -> String {
        let id = guid();
        self.users.insert(
            id.clone(),
            User {
                id: id.clone(),
                tenant_id: tenant_id.into(),
                upn: upn.into(),
                display_name: display_name.into(),
                consents: true,
                revoked_before: None,
            },
        );
        let root = new_id("AAMkAGfolder");
        self.folders.insert(
            root.clone(),
            Folder {
                id: root.clone(),
                user_id: id.clone(),
                display_name: WELL_KNOWN[0].1.into(),
                parent_id: None,
                well_known: Some(WELL_KNOWN[0].0),
            },
        );
        for (wk, name) in &WELL_KNOWN[1..] {
            let fid = new_id("AAMkAGfolder");
            self.folders.insert(
                fid.clone(),
                Folder {
                    id: fid,
                    user_id: id.clone(),
                    display_name: (*name).into(),
                    parent_id: Some(root.clone()),
                    well_known: Some(wk),
                },
            );
        }
        id
    }

    pub fn add_folder(&mut self, user_id: &str, parent_id: &str, name: &str) -> String {
        let fid = new_id("AAMkAGfolder");
        self.folders.insert(
            fid.clone(),
            Folder {
                id: fid.clone(),
                user_id: user_id.into(),
                display_name: name.into(),
                parent_id: Some(parent_id.into()),
                well_known: None,
            },
        );
        fid
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
        let lower = id_or_name.to_ascii_lowercase();
        self.folders.values().find(|f| {
            f.user_id == user_id && (f.id == id_or_name || f.well_known.is_some_and(|w| w == lower))
        })
    }

    pub fn child_count(&self, folder_id: &str) -> usize {
        self.folders
            .values()
            .filter(|f| f.parent_id.as_deref() == Some(folder_id))
            .count()
    }

    fn log(&mut self, folder_id: &str, message_id: &str, present: bool) {
        self.seq += 1;
        let seq = self.seq;
        self.changes
            .entry(folder_id.into())
            .or_default()
            .push(Change {
                seq,
                message_id: message_id.into(),
                present,
            });
    }

    /// Puts a message into a folder, as delivery does; returns its (immutable) id.
    pub fn deliver(&mut self, user_id: &str, folder_id: &str, mime: bytes::Bytes) -> String {
        let id = new_id("AAMkAGmsg");
        self.messages.insert(
            id.clone(),
            Message {
                id: id.clone(),
                user_id: user_id.into(),
                folder_id: folder_id.into(),
                mime,
                received_at: Utc::now(),
                change_key: new_id("CQAAAB"),
            },
        );
        self.log(folder_id, &id, true);
        id
    }

    pub fn move_message(&mut self, message_id: &str, to_folder: &str) -> Option<()> {
        let m = self.messages.get_mut(message_id)?;
        let from = std::mem::replace(&mut m.folder_id, to_folder.into());
        m.change_key = new_id("CQAAAB");
        self.log(&from, message_id, false);
        self.log(to_folder, message_id, true);
        Some(())
    }

    pub fn delete_message(&mut self, message_id: &str) -> Option<()> {
        let m = self.messages.remove(message_id)?;
        self.log(&m.folder_id, message_id, false);
        Some(())
    }

    /// The messages present in a folder after the changes in (`from`, `to`], and those removed.
    pub fn delta_items(&self, folder_id: &str, from: u64, to: u64) -> Vec<(String, bool)> {
        let mut last: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
        for c in self
            .changes
            .get(folder_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if c.seq > from && c.seq <= to {
                last.insert(&c.message_id, (c.seq, c.present));
            }
        }
        let mut items: Vec<(u64, String, bool)> = last
            .into_iter()
            .filter(|(id, (_, present))| {
                let here = self
                    .messages
                    .get(*id)
                    .is_some_and(|m| m.folder_id == folder_id);
                if *present {
                    here
                } else {
                    // A removal is reported only to a client that had seen the folder before.
                    from > 0 && !here
                }
            })
            .map(|(id, (seq, present))| (seq, id.to_string(), present))
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
}
