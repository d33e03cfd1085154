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

    /// Creates the folder's subscription. Graph may refuse two ways, each handled once:
    /// - 409, it holds one already (a creation whose record was lost, say): one mailbridge still
    ///   has a record of is indexed again, renewed and kept; one it does not know is deleted and
    ///   made again, because without the clientState it was made with, its notifications could
    ///   not be checked.
    /// - 400 on the lifetime (older tenants allow 4,230 minutes): asked again with that.
    ///
    /// The expiry kept is always the one Graph returns.
    async fn create(&self, mailbox: &Mailbox, folder_id: &str) -> Result<SubscriptionRecord> {
        let session = self.tokens.session(mailbox).await?;
        let resource = format!(
            "users/{}/mailFolders('{}')/messages",
            mailbox.user_id, folder_id
        );
        let mut lifetime = self.settings.subscription_lifetime;
        let mut deleted = None;
        loop {
            let client_state = Secret::new(random_token(32));
            let answer = self
                .graph
                .create_subscription(
                    session.ctx(),
                    &NewSubscription {
                        resource: resource.clone(),
                        notification_url: self.settings.notification_url(),
                        lifecycle_notification_url: self.settings.lifecycle_url(),
                        client_state: client_state.clone(),
                        expiration: self.clock.now() + lifetime,
                    },
                )
                .await?;
            let created = match answer {
                SubscriptionAnswer::Created(created) => created,
                SubscriptionAnswer::LifetimeRefused(why)
                    if lifetime > chrono::Duration::minutes(FALLBACK_SUBSCRIPTION_MINUTES) =>
                {
                    tracing::info!(mailbox = %mailbox.id, %why, "subscription lifetime refused; asking for 4,230 minutes");
                    lifetime = chrono::Duration::minutes(FALLBACK_SUBSCRIPTION_MINUTES);
                    continue;
                }
                SubscriptionAnswer::LifetimeRefused(why) => {
                    return Err(Error::Permanent(format!(
                        "Graph refused the subscription's lifetime: {why}"
                    )))
                }
                SubscriptionAnswer::Exists { id } => {
                    let known = self.repos.subscriptions.get(&id).await?.map(|v| v.value);
                    if let Some(known) =
                        known.filter(|k| k.mailbox_id == mailbox.id && k.folder_id == folder_id)
                    {
                        // Its record survived but not its place in the mailbox's index (a
                        // restored backup, say): put back, and renewed.
                        tracing::info!(mailbox = %mailbox.id, subscription = %id, "Graph holds this folder's subscription already: kept");
                        self.repos.save_subscription(&known).await?;
                        return self.renew(mailbox, &known).await;
                    }
                    if deleted.as_ref() == Some(&id) {
                        return Err(Error::retry(format!(
                            "Graph still holds subscription {id} after it was deleted"
                        )));
                    }
                    tracing::info!(mailbox = %mailbox.id, subscription = %id, "Graph holds a subscription mailbridge has no record of: deleted, to be made again");
                    self.graph.delete_subscription(session.ctx(), &id).await?;
                    deleted = Some(id);
                    continue;
                }
            };
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
            return Ok(record);
        }
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

#[cfg(test)]
mod tests {
    use crate::fakes::FakeWorld;
    use crate::model::*;
    use crate::Error;

    #[tokio::test]
    async fn graphs_refusals_are_each_handled_once() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let subs = w.services.worker(w.blobs.clone()).subscriptions;
        let repos = &w.services.repos;
        let folder = m.folders[0].id.clone();
        let known = subs.ensure(&m, &folder).await.unwrap();
        let made = w.graph.calls("create_subscription");

        // Its record kept, its index entry lost: Graph's 409 names it, and it is kept (indexed
        // again, renewed), not made again.
        repos
            .subscription_refs
            .of(&m.id)
            .take(&known.id)
            .await
            .unwrap();
        assert!(repos.mailbox_subscriptions(&m.id).await.unwrap().is_empty());
        w.graph.answer_subscriptions([SubscriptionAnswer::Exists {
            id: known.id.clone(),
        }]);
        let kept = subs.ensure(&m, &folder).await.unwrap();
        assert_eq!(kept.id, known.id);
        assert_eq!(
            repos.mailbox_subscriptions(&m.id).await.unwrap(),
            std::slice::from_ref(&kept)
        );
        assert_eq!(w.graph.calls("renew_subscription"), 1);

        // The lifetime refused twice: once shortened to 4,230 minutes, then a clear failure.
        repos.forget_subscription(&kept).await.unwrap();
        w.graph.answer_subscriptions([
            SubscriptionAnswer::LifetimeRefused("400: expiration".into()),
            SubscriptionAnswer::LifetimeRefused("400: expiration".into()),
        ]);
        assert!(matches!(
            subs.ensure(&m, &folder).await,
            Err(Error::Permanent(_))
        ));
        // A 409 that survives its deletion: tried again later, not looped on.
        w.graph.answer_subscriptions([
            SubscriptionAnswer::Exists { id: "ghost".into() },
            SubscriptionAnswer::Exists { id: "ghost".into() },
        ]);
        assert!(matches!(
            subs.ensure(&m, &folder).await,
            Err(Error::Retry { .. })
        ));
        assert_eq!(w.graph.calls("delete_subscription"), 1);
        assert!(w.graph.calls("create_subscription") >= made + 5);
    }
}
