//! Organisation-wide connections: a profile with application permissions, consented once by an
//! administrator, reaches mailboxes added by address or discovered in the directory (user
//! mailboxes and shared mailboxes alike, each with change notifications). Whether Graph reaches a
//! mailbox is decided in one place, [`Organisation::reach`]: while the consent propagates Graph's
//! 403 is expected and no failure is raised; after it, a 403 means the app's Exchange scope leaves
//! the mailbox out, which raises an alert on that mailbox.

use crate::model::*;
use crate::ports::{Clock, Cond, GraphCtx, MailGraph};
use crate::repo::Repos;
use crate::services::alerts::Alerts;
use crate::services::connect::mailbox_id;
use crate::services::subscriptions::Subscriptions;
use crate::services::tokens::Tokens;
use crate::services::Settings;
use crate::{Error, Result, Say};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub struct Organisation {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub alerts: Arc<Alerts>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// Most addresses added in one call.
pub const MAX_ADDRESSES: usize = 500;

/// What an organisation-wide mailbox is called in mailbridge: the same whether it was added by
/// address or discovered.
pub fn app_mailbox_id(profile_id: &str, address: &str) -> MailboxId {
    mailbox_id(profile_id, &format!("app:{}", address.to_lowercase()))
}

/// When to try an unreachable organisation-wide mailbox again: every few minutes while the
/// consent propagates (1, 2, 4… up to 15 minutes), hourly once it is out of scope.
pub fn next_reach(
    state: &ConnectionState,
    tries: u32,
    last: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match state {
        ConnectionState::PermissionPropagating { .. } => {
            let minutes = (1i64 << tries.min(4)).min(15);
            Some(last + chrono::Duration::minutes(minutes))
        }
        ConnectionState::NotReachable { .. } => Some(last + chrono::Duration::hours(1)),
        _ => None,
    }
}

impl Organisation {
    async fn app_profile(&self, profile_id: &str) -> Result<ServerProfile> {
        let profile = self.tokens.profile(profile_id).await?;
        if profile.auth != AuthType::Application {
            return Err(Error::invalid(Say::ProfileIsDelegated {
                profile: profile_id.into(),
            }));
        }
        Ok(profile)
    }

    /// Adds mailboxes by address (user or shared mailboxes of the tenant). Each is tried at once;
    /// one Graph cannot reach yet is kept, in the state that says why.
    pub async fn add(&self, profile_id: &str, addresses: &[String]) -> Result<Vec<Mailbox>> {
        if addresses.is_empty() || addresses.len() > MAX_ADDRESSES {
            return Err(Error::invalid(Say::AddressCount {
                count: addresses.len(),
                max: MAX_ADDRESSES,
            }));
        }
        let mut clean = Vec::new();
        for a in addresses {
            let a = a.trim().to_lowercase();
            let (local, domain) = a.split_once('@').unwrap_or_default();
            if local.is_empty()
                || !domain.contains('.')
                || a.len() > 254
                || a.contains(char::is_whitespace)
            {
                return Err(Error::Invalid(Say::NotAnAddress { address: a }));
            }
            if !clean.contains(&a) {
                clean.push(a);
            }
        }
        let profile = self.app_profile(profile_id).await?;
        let mut out = Vec::new();
        for address in clean {
            out.push(self.add_one(&profile, &address, &address).await?);
        }
        Ok(out)
    }

    /// Adds every licensed user of the tenant (needs the `User.Read.All` application permission;
    /// shared mailboxes have no licence: add them by address).
    pub async fn discover(&self, profile_id: &str) -> Result<Vec<Mailbox>> {
        let profile = self.app_profile(profile_id).await?;
        let token = self.tokens.app_token(&profile).await?;
        let graph_base = profile.cloud.endpoints().graph;
        let users = self
            .graph
            .users(GraphCtx {
                graph_base: &graph_base,
                token: &token,
                mailbox: "",
            })
            .await
            .map_err(|e| match e {
                Error::AccessDenied(_) => Error::Invalid(Say::NeedsUserReadAll),
                e => e,
            })?;
        let mut out = Vec::new();
        for u in users.into_iter().filter(|u| u.licensed) {
            out.push(self.add_one(&profile, &u.address, &u.display_name).await?);
        }
        Ok(out)
    }

    async fn add_one(
        &self,
        profile: &ServerProfile,
        address: &str,
        display_name: &str,
    ) -> Result<Mailbox> {
        let now = self.clock.now();
        let id = app_mailbox_id(&profile.id, address);
        let tenant = self
            .repos
            .consents
            .get(&profile.id)
            .await?
            .map_or_else(|| profile.tenant.clone(), |c| c.value.tenant_id);
        let mailbox = Mailbox {
            id: id.clone(),
            profile_id: profile.id.clone(),
            kind: MailboxKind::Application,
            address: address.to_string(),
            display_name: display_name.to_string(),
            // Graph takes the address where it takes a user id; application permissions need no
            // directory permission to reach a mailbox by address.
            user_id: address.to_string(),
            tenant_id: tenant,
            via: None,
            approved: !profile.approval_required,
            enabled: true,
            connection: ConnectionState::NotReachable {
                reason: "not reached yet".into(),
            },
            folders: vec![],
            created_at: now,
            updated_at: now,
        };
        match self.repos.mailboxes.put(&id, &mailbox, Cond::Absent).await {
            // Added before: keep its settings and cursors.
            Err(Error::Conflict(_)) => return self.repos.mailbox(&id).await,
            other => other?,
        };
        tracing::info!(mailbox = %id, profile = %profile.id, "organisation mailbox added");
        self.reach(&mailbox).await
    }

    /// Tries to reach an organisation-wide mailbox and records what Graph said: connected (its
    /// Inbox chosen if nothing is, its subscriptions made when it is active), permission still
    /// propagating (no alert), outside the app's scope (an alert on this mailbox), or without a
    /// licence.
    pub async fn reach(&self, mailbox: &Mailbox) -> Result<Mailbox> {
        let session = self.tokens.session(mailbox).await?;
        let now = self.clock.now();
        let (state, alert) = match self
            .graph
            .folder(session.ctx(), &mailbox.user_id, "inbox")
            .await
        {
            Ok(inbox) => {
                let choice = FolderChoice {
                    id: inbox.id,
                    display_name: inbox.display_name,
                };
                let m = self
                    .set(mailbox, ConnectionState::Connected, Some(choice))
                    .await?;
                for kind in [AlertKind::OutsideScope, AlertKind::LicenceMissing] {
                    self.alerts.touch(&m.id, |h| h.clear(kind)).await?;
                }
                if m.is_active() {
                    self.subscriptions.activate(&m).await?;
                }
                tracing::info!(mailbox = %m.id, "organisation mailbox reached");
                return Ok(m);
            }
            Err(Error::AccessDenied(why)) => {
                let consent = self.repos.consents.get(&mailbox.profile_id).await?;
                let until = consent.map(|c| c.value.granted_at + self.settings.consent_propagation);
                match until {
                    Some(until) if now < until => {
                        (ConnectionState::PermissionPropagating { until }, None)
                    }
                    _ => (
                        ConnectionState::NotReachable {
                            reason: format!("outside the app's scope: {why}"),
                        },
                        Some((
                            AlertKind::OutsideScope,
                            Say::OutsideScope {
                                address: mailbox.address.clone(),
                            },
                        )),
                    ),
                }
            }
            Err(Error::MailboxNotEnabled(why)) => (
                ConnectionState::NotReachable {
                    reason: format!("no Exchange Online mailbox: {why}"),
                },
                Some((
                    AlertKind::LicenceMissing,
                    Say::NoExchangeMailbox {
                        address: Some(mailbox.address.clone()),
                    },
                )),
            ),
            Err(e) => return Err(e),
        };
        let m = self.set(mailbox, state, None).await?;
        if let Some((kind, message)) = alert {
            self.alerts
                .touch(&m.id, |h| h.raise(kind, message.clone(), now))
                .await?;
        }
        Ok(m)
    }

    async fn set(
        &self,
        mailbox: &Mailbox,
        state: ConnectionState,
        inbox: Option<FolderChoice>,
    ) -> Result<Mailbox> {
        let now = self.clock.now();
        // The record as it stands: the one written, or, when nothing changed, the one read.
        let mut current = None;
        let written = self
            .repos
            .mailboxes
            .update(&mailbox.id, |m| {
                current = m.clone();
                let mut m = m?;
                let first_folder = m.folders.is_empty() && inbox.is_some();
                if m.connection == state && !first_folder {
                    return None;
                }
                m.connection = state.clone();
                if first_folder {
                    m.folders.extend(inbox.clone());
                }
                m.updated_at = now;
                Some(m)
            })
            .await?;
        written
            .or(current)
            .ok_or_else(|| Error::NotFound(format!("mailbox {}", mailbox.id)))
    }
}
