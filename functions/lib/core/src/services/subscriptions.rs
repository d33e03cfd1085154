//! Subscriptions and cursors of a mailbox's chosen folders: set up, renewed, recreated.

use crate::crypto::{random_token, sha256_hex};
use crate::model::*;
use crate::ports::{Clock, MailGraph};
use crate::repo::Repos;
use crate::services::sweep::Sweeper;
use crate::services::tokens::Tokens;
use crate::services::Settings;
use crate::{Error, Result, Secret};
use std::sync::Arc;

pub struct Subscriptions {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub sweeper: Arc<Sweeper>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

impl Subscriptions {
    /// Makes every chosen folder of an active mailbox ready: a delta cursor (set without importing
    /// what is already there: only new mail) and, where Graph allows it, a live subscription.
    pub async fn activate(&self, mailbox: &Mailbox) -> Result<()> {
        for folder in &mailbox.folders {
            self.sweeper.start_folder(mailbox, &folder.id).await?;
            if mailbox.can_subscribe() {
                self.ensure(mailbox, &folder.id).await?;
            }
        }
        Ok(())
    }

    /// The subscriptions mailbridge holds for a mailbox's folder.
    pub async fn of_folder(
        &self,
        mailbox_id: &str,
        folder_id: &str,
    ) -> Result<Vec<SubscriptionRecord>> {
        Ok(self
            .repos
            .mailbox_subscriptions(mailbox_id)
            .await?
            .into_iter()
            .filter(|s| s.folder_id == folder_id)
            .collect())
    }

    /// A live subscription on the folder: kept if it has time left, renewed if not, created if none.
    pub async fn ensure(&self, mailbox: &Mailbox, folder_id: &str) -> Result<SubscriptionRecord> {
        let now = self.clock.now();
        for sub in self.of_folder(&mailbox.id, folder_id).await? {
            if self.settings.schedule.keeps(&sub, now) {
                return Ok(sub);
            }
            match self.renew(mailbox, &sub).await {
                Ok(renewed) => return Ok(renewed),
                Err(Error::NotFound(_)) => {
                    // Graph no longer has it: forget it; a new one is created below.
                    self.repos.forget_subscription(&sub).await?;
                }
                Err(e) => return Err(e),
            }
        }
        self.create(mailbox, folder_id).await
    }

    async fn create(&self, mailbox: &Mailbox, folder_id: &str) -> Result<SubscriptionRecord> {
        let session = self.tokens.session(mailbox).await?;
        let client_state = Secret::new(random_token(32));
        let resource = format!(
            "users/{}/mailFolders('{}')/messages",
            mailbox.user_id, folder_id
        );
        let created = self
            .graph
            .create_subscription(
                session.ctx(),
                &NewSubscription {
                    resource: resource.clone(),
                    notification_url: self.settings.notification_url(),
                    lifecycle_notification_url: self.settings.lifecycle_url(),
                    client_state: client_state.clone(),
                    expiration: self.clock.now() + self.settings.subscription_lifetime,
                },
            )
            .await?;
        let record = SubscriptionRecord {
            id: created.id.clone(),
            mailbox_id: mailbox.id.clone(),
            folder_id: folder_id.into(),
            resource,
            client_state_sha256: sha256_hex(client_state.expose().as_bytes()),
            expires_at: created.expires_at,
        };
        self.repos.save_subscription(&record).await?;
        tracing::info!(mailbox = %mailbox.id, subscription = %record.id, expires = %record.expires_at, "subscription created");
        Ok(record)
    }

    /// Extends a subscription; `Error::NotFound` if Graph no longer knows it.
    pub async fn renew(
        &self,
        mailbox: &Mailbox,
        sub: &SubscriptionRecord,
    ) -> Result<SubscriptionRecord> {
        let session = self.tokens.session(mailbox).await?;
        let wanted = self.clock.now() + self.settings.subscription_lifetime;
        let granted = self
            .graph
            .renew_subscription(session.ctx(), &sub.id, wanted)
            .await?;
        let renewed = self
            .repos
            .subscriptions
            .update(&sub.id, |s| {
                let mut s = s?;
                s.expires_at = granted;
                Some(s)
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("subscription {}", sub.id)))?;
        tracing::info!(mailbox = %mailbox.id, subscription = %sub.id, expires = %granted, "subscription renewed");
        Ok(renewed)
    }
}
