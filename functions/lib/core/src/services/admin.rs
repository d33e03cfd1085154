//! What administrators do: profiles, mailboxes, approval, folder choice, test, status.

use crate::model::*;
use crate::ports::{Clock, Cond, MailGraph};
use crate::repo::Repos;
use crate::services::checks::{Checks, RunProgress};
use crate::services::connect::mailbox_id;
use crate::services::organisation::Organisation;
use crate::services::subscriptions::Subscriptions;
use crate::services::tokens::Tokens;
use crate::services::Settings;
use crate::{Error, Result, Say};
use serde::Serialize;
use std::sync::Arc;

pub struct Admin {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub checks: Arc<Checks>,
    pub organisation: Arc<Organisation>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// A mailbox as the console shows it: settings and health.
#[derive(Debug, Clone, Serialize)]
pub struct MailboxView {
    #[serde(flatten)]
    pub mailbox: Mailbox,
    pub health: MailboxHealth,
}

impl MailboxView {
    /// The mailbox on one line, for an operator's terminal: address, whether it is active and
    /// connected, the last incoming run, what was imported, and its alerts.
    pub fn one_line(&self) -> String {
        let m = &self.mailbox;
        let h = &self.health;
        let state = if !m.approved {
            "pending-approval".to_string()
        } else if !m.enabled {
            "disabled".to_string()
        } else {
            json_name(&m.connection)
        };
        let alerts: Vec<String> = h.alerts.iter().map(|a| json_name(&a.kind)).collect();
        format!(
            "{} {} incoming={} imported={} last-sync={} alerts={}",
            m.address,
            state,
            json_name(&h.incoming),
            h.imported,
            h.last_sync.map_or("never".into(), |t| t
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()),
            if alerts.is_empty() {
                "none".into()
            } else {
                alerts.join(",")
            }
        )
    }
}

/// The name a value has in the API's JSON (a unit variant's name, or a tagged enum's `state`),
/// for plain-text output.
fn json_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o
            .get("state")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string(),
        _ => "?".into(),
    }
}

/// A profile as the console shows it: its settings, its alerts (its credential's expiry), and for
/// an organisation-wide profile the administrator's consent and where to grant it.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    #[serde(flatten)]
    pub profile: ServerProfile,
    pub alerts: Vec<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<AppConsent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_consent_url: Option<String>,
}

impl ProfileView {
    /// The profile's alerts on one line, for the status text; none when it has none.
    pub fn one_line(&self) -> Option<String> {
        (!self.alerts.is_empty()).then(|| {
            let kinds: Vec<String> = self.alerts.iter().map(|a| json_name(&a.kind)).collect();
            format!("profile {} alerts={}", self.profile.id, kinds.join(","))
        })
    }
}

/// A folder of the mailbox's tree, for choosing what to import.
#[derive(Debug, Clone, Serialize)]
pub struct FolderNode {
    pub id: String,
    pub display_name: String,
    pub path: String,
    pub depth: u32,
}

/// Deepest folder level listed (Exchange allows 300; people choose among the first few).
const MAX_FOLDER_DEPTH: u32 = 10;
/// Most folders chosen for one mailbox: each costs a subscription (Graph allows 1,000 per
/// mailbox) and a delta round per sweep.
pub const MAX_FOLDERS: usize = 100;
/// Longest mailbox address (RFC 5321's path limit).
const MAX_ADDRESS: usize = 254;

impl Admin {
    /// Stores a profile after [`Settings::check_profile`]: its secret reference in the profile
    /// namespace, its URLs on Microsoft's clouds (or hosts the deployment allows), its values in range.
    pub async fn put_profile(&self, profile: ServerProfile) -> Result<ServerProfile> {
        self.settings
            .check_new_profile(&profile, self.tokens.secrets(), self.clock.now())
            .await?;
        if profile.is_default {
            for (id, mut other) in self.repos.profiles.list().await? {
                if id != profile.id && other.value.is_default {
                    other.value.is_default = false;
                    self.repos
                        .profiles
                        .put(&id, &other.value, Cond::Version(other.version))
                        .await?;
                }
            }
        }
        self.repos
            .profiles
            .put(&profile.id, &profile, Cond::Any)
            .await?;
        Ok(profile)
    }

    pub async fn profiles(&self) -> Result<Vec<ServerProfile>> {
        self.repos.profiles.values().await
    }

    /// Every profile with its alerts and consent.
    pub async fn profile_views(&self) -> Result<Vec<ProfileView>> {
        let health = self.repos.profile_health.by_id().await?;
        let consents = self.repos.consents.by_id().await?;
        Ok(self
            .profiles()
            .await?
            .into_iter()
            .map(|profile| ProfileView {
                alerts: health
                    .get(&profile.id)
                    .map(|h| h.alerts.clone())
                    .unwrap_or_default(),
                consent: consents.get(&profile.id).cloned(),
                admin_consent_url: (profile.auth == AuthType::Application)
                    .then(|| self.settings.admin_consent_url(&profile.id)),
                profile,
            })
            .collect())
    }

    pub async fn mailboxes(&self) -> Result<Vec<MailboxView>> {
        let mut out = Vec::new();
        for (_, m) in self.repos.mailboxes.list().await? {
            out.push(self.view(m.value).await?);
        }
        Ok(out)
    }

    pub async fn mailbox(&self, id: &str) -> Result<MailboxView> {
        self.view(self.repos.mailbox(id).await?).await
    }

    async fn view(&self, mailbox: Mailbox) -> Result<MailboxView> {
        let health = self
            .repos
            .health
            .get(&mailbox.id)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        Ok(MailboxView { mailbox, health })
    }

    async fn edit(&self, id: &str, f: impl Fn(&mut Mailbox) + Send + Sync) -> Result<Mailbox> {
        let now = self.clock.now();
        let m = self
            .repos
            .mailboxes
            .update(id, |m| {
                let mut m = m?;
                f(&mut m);
                m.updated_at = now;
                Some(m)
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("mailbox {id}")))?;
        if m.is_active() {
            self.subscriptions.activate(&m).await?;
        }
        Ok(m)
    }

    /// Approves (or withdraws approval of) a mailbox; approval starts its import.
    pub async fn set_approved(&self, id: &str, approved: bool) -> Result<Mailbox> {
        self.edit(id, |m| m.approved = approved).await
    }

    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<Mailbox> {
        self.edit(id, |m| m.enabled = enabled).await
    }

    /// Chooses the folders to import, by folder id; names are read from the mailbox.
    pub async fn set_folders(&self, id: &str, folder_ids: &[String]) -> Result<Mailbox> {
        if folder_ids.len() > MAX_FOLDERS {
            return Err(Error::Invalid(Say::TooManyFolders {
                count: folder_ids.len(),
                max: MAX_FOLDERS,
            }));
        }
        let mailbox = self.repos.mailbox(id).await?;
        let session = self.tokens.session(&mailbox).await?;
        let ctx = session.ctx();
        let mut folders = Vec::new();
        for fid in folder_ids {
            let f = self.graph.folder(ctx, &mailbox.user_id, fid).await?;
            if !folders.iter().any(|c: &FolderChoice| c.id == f.id) {
                folders.push(FolderChoice {
                    id: f.id,
                    display_name: f.display_name,
                });
            }
        }
        let m = self.edit(id, |m| m.folders = folders.clone()).await?;
        // Subscriptions of folders no longer chosen go.
        for sub in self.repos.mailbox_subscriptions(id).await? {
            if !m.folders.iter().any(|f| f.id == sub.folder_id) {
                if let Err(e) = self.graph.delete_subscription(ctx, &sub.id).await {
                    tracing::warn!(subscription = %sub.id, error = %e, "could not delete a subscription");
                }
                self.repos.forget_subscription(&sub).await?;
            }
        }
        Ok(m)
    }

    /// Adds a shared mailbox that a connected user is a delegate of. Graph refuses change
    /// notifications on mailboxes reached through `.Shared` permissions, so it is followed by
    /// delta sweeps alone: from now on ("only new mail"), at every maintenance round.
    pub async fn add_shared(&self, delegate_id: &str, address: &str) -> Result<Mailbox> {
        let address = address.trim().to_lowercase();
        if !address.contains('@') || address.len() > MAX_ADDRESS {
            return Err(Error::Invalid(Say::NotAnAddress {
                address: address.clone(),
            }));
        }
        let delegate = self.repos.mailbox(delegate_id).await?;
        if delegate.kind != MailboxKind::User {
            return Err(Error::Invalid(Say::SharedOnlyFromUser));
        }
        // Reading its Inbox proves the delegate's access (403 otherwise) and gives the folder.
        let inbox = self.inbox(&delegate, &address).await?;
        let profile = self.tokens.profile(&delegate.profile_id).await?;
        let now = self.clock.now();
        let mailbox = Mailbox {
            id: mailbox_id(&profile.id, &format!("shared:{address}")),
            profile_id: profile.id.clone(),
            kind: MailboxKind::Shared,
            display_name: address.clone(),
            // Graph takes the address where it takes a user id.
            user_id: address.clone(),
            address,
            tenant_id: delegate.tenant_id.clone(),
            via: Some(delegate.id.clone()),
            approved: !profile.approval_required,
            enabled: true,
            connection: ConnectionState::Connected,
            folders: vec![FolderChoice {
                id: inbox.id,
                display_name: inbox.display_name,
            }],
            created_at: now,
            updated_at: now,
        };
        match self
            .repos
            .mailboxes
            .put(&mailbox.id, &mailbox, Cond::Absent)
            .await
        {
            // Added before: keep its settings and cursors.
            Err(Error::Conflict(_)) => return self.repos.mailbox(&mailbox.id).await,
            other => other?,
        };
        if mailbox.is_active() {
            self.subscriptions.activate(&mailbox).await?;
        }
        tracing::info!(mailbox = %mailbox.id, via = %delegate.id, "shared mailbox added");
        Ok(mailbox)
    }

    /// The Inbox of `user` (an id or address), read with the token of `through`.
    async fn inbox(&self, through: &Mailbox, user: &str) -> Result<GraphFolder> {
        let session = self.tokens.session(through).await?;
        self.graph.folder(session.ctx(), user, "inbox").await
    }

    /// The mailbox's folder tree, depth first.
    pub async fn folders(&self, id: &str) -> Result<Vec<FolderNode>> {
        let mailbox = self.repos.mailbox(id).await?;
        let session = self.tokens.session(&mailbox).await?;
        let ctx = session.ctx();
        let mut out = Vec::new();
        let mut stack: Vec<(GraphFolder, String, u32)> = self
            .graph
            .child_folders(ctx, &mailbox.user_id, "msgfolderroot")
            .await?
            .into_iter()
            .rev()
            .map(|f| (f, String::new(), 0))
            .collect();
        while let Some((f, parent, depth)) = stack.pop() {
            let path = if parent.is_empty() {
                f.display_name.clone()
            } else {
                format!("{parent}/{}", f.display_name)
            };
            if f.child_folder_count > 0 && depth + 1 < MAX_FOLDER_DEPTH {
                for c in self
                    .graph
                    .child_folders(ctx, &mailbox.user_id, &f.id)
                    .await?
                    .into_iter()
                    .rev()
                {
                    stack.push((c, path.clone(), depth + 1));
                }
            }
            out.push(FolderNode {
                id: f.id,
                display_name: f.display_name,
                path,
                depth,
            });
        }
        Ok(out)
    }

    /// Tests a mailbox's configuration, check by check; with `enable`, enables it when all pass.
    pub async fn test(&self, id: &str, enable: bool) -> Result<TestReport> {
        self.checks.test(id, enable, None).await
    }

    /// Adds mailboxes of an organisation-wide profile by address.
    pub async fn add_mailboxes(
        &self,
        profile_id: &str,
        addresses: &[String],
    ) -> Result<Vec<Mailbox>> {
        self.organisation.add(profile_id, addresses).await
    }

    /// Adds every licensed user of an organisation-wide profile's tenant.
    pub async fn discover(&self, profile_id: &str) -> Result<Vec<Mailbox>> {
        self.organisation.discover(profile_id).await
    }

    /// Tests every mailbox of a profile in the background.
    pub async fn test_profile(&self, profile_id: &str, enable: bool) -> Result<TestRun> {
        self.checks.start_run(profile_id, enable).await
    }

    /// How the profile's latest test run is going.
    pub async fn test_progress(&self, profile_id: &str) -> Result<RunProgress> {
        self.checks.progress(profile_id).await
    }
}
