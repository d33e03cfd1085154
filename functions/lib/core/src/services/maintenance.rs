//! The scheduled round: keeps tokens alive, renews subscriptions, sweeps every folder, finds the
//! connections that need a person, warns before client secrets expire.

use crate::model::*;
use crate::ports::{Clock, JobQueue};
use crate::repo::Repos;
use crate::services::subscriptions::Subscriptions;
use crate::services::tokens::Tokens;
use crate::services::Settings;
use crate::{Error, Result};
use std::sync::Arc;

pub struct Maintenance {
    pub repos: Repos,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub mailboxes: u32,
    pub sweeps_queued: u32,
    pub subscriptions_checked: u32,
    pub needs_reauth: u32,
    pub failures: u32,
    pub secret_warnings: u32,
}

impl Maintenance {
    pub async fn run(&self) -> Result<Report> {
        let mut report = Report::default();
        let now = self.clock.now();
        let profiles = self.repos.profiles.values().await?;
        let mailboxes = self.repos.mailboxes.values().await?;

        for profile in &profiles {
            let expiring = profile
                .client_secret_expires_at
                .filter(|t| *t - self.settings.secret_warning <= now);
            if expiring.is_some() {
                report.secret_warnings += 1;
            }
            for m in mailboxes.iter().filter(|m| m.profile_id == profile.id) {
                self.repos
                    .touch_health(&m.id, |h| match expiring {
                        Some(t) => h.raise(
                            AlertKind::SecretExpiring,
                            format!("The client secret of profile '{}' expires on {}: create a new one and update the profile.", profile.name, t.format("%Y-%m-%d")),
                            now,
                        ),
                        None => h.clear(AlertKind::SecretExpiring),
                    })
                    .await?;
            }
        }

        let mut jobs = Vec::new();
        for mailbox in mailboxes.iter().filter(|m| m.approved && m.enabled) {
            report.mailboxes += 1;
            if mailbox.connection != ConnectionState::Connected {
                report.needs_reauth += 1;
                continue;
            }
            // Using the token refreshes it when due, which keeps the refresh token from expiring
            // through inactivity and finds a revoked grant before mail is missed.
            match self.tokens.access_token(mailbox).await {
                Ok(_) => {}
                Err(Error::ReauthRequired { .. }) => {
                    report.needs_reauth += 1;
                    continue;
                }
                Err(e) => {
                    report.failures += 1;
                    tracing::warn!(mailbox = %mailbox.id, error = %e, "maintenance could not get a token");
                    continue;
                }
            }
            if mailbox.can_subscribe() {
                for folder in &mailbox.folders {
                    report.subscriptions_checked += 1;
                    if let Err(e) = self.subscriptions.ensure(mailbox, &folder.id).await {
                        report.failures += 1;
                        tracing::warn!(mailbox = %mailbox.id, folder = %folder.id, error = %e, "subscription check failed");
                    }
                }
            }
            jobs.push(Job::Sweep {
                mailbox_id: mailbox.id.clone(),
                folder_id: None,
                reason: Reason::Schedule,
            });
        }
        if !jobs.is_empty() {
            self.queue.send(&jobs).await?;
            report.sweeps_queued = jobs.len() as u32;
        }
        Ok(report)
    }
}
