//! Runs one queued job with the service it calls for.

use crate::model::*;
use crate::repo::Repos;
use crate::services::import::{Importer, Outcome};
use crate::services::pace::Pace;
use crate::services::subscriptions::Subscriptions;
use crate::services::sweep::Sweeper;
use crate::{Error, Result};
use std::sync::Arc;

pub struct Worker {
    pub repos: Repos,
    pub importer: Arc<Importer>,
    pub sweeper: Arc<Sweeper>,
    pub subscriptions: Arc<Subscriptions>,
    /// Per-mailbox admission under Graph's limits, shared by every job this process runs.
    pub pace: Arc<Pace>,
}

/// What a job came to, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    Import(Outcome),
    Swept { queued: u32 },
    Skipped(String),
}

impl Worker {
    /// Runs a job from its queue body. A body that is not a job is a permanent error.
    pub async fn run_body(&self, body: &str) -> Result<Done> {
        let job: Job =
            serde_json::from_str(body).map_err(|e| Error::Permanent(format!("not a job: {e}")))?;
        self.run(&job).await
    }

    pub async fn run(&self, job: &Job) -> Result<Done> {
        let _slot = self.pace.enter(job.mailbox_id()).await;
        let result = match job {
            Job::Import {
                mailbox_id,
                message_id,
                ..
            } => self
                .importer
                .import(mailbox_id, message_id)
                .await
                .map(Done::Import),
            Job::Sweep {
                mailbox_id,
                folder_id,
                reason,
            } => self.sweep(mailbox_id, folder_id.as_deref(), reason).await,
            Job::Resubscribe {
                mailbox_id,
                folder_id,
                reason,
            } => self.resubscribe(mailbox_id, folder_id, reason).await,
        };
        if let Err(e) = &result {
            let mailbox_id = job.mailbox_id();
            if !matches!(e, Error::Conflict(_) | Error::Retry { .. }) {
                let message = e.to_string();
                let _ = self
                    .repos
                    .touch_health(mailbox_id, |h| {
                        h.incoming = IncomingStatus::Failure;
                        h.last_error = Some(message.clone());
                        if let Error::Throttled { after } = e {
                            // Cleared by the next import, which also sweeps for the backlog.
                            h.raise(
                                AlertKind::Throttled,
                                format!(
                                    "Microsoft Graph is throttling this mailbox; imports resume \
                                     after {} s.",
                                    after.as_secs()
                                ),
                                chrono::Utc::now(),
                            );
                        }
                    })
                    .await;
            }
        }
        result
    }

    async fn active(&self, mailbox_id: &str) -> Result<Option<Mailbox>> {
        let mailbox = self.repos.mailbox(mailbox_id).await?;
        Ok(mailbox.is_active().then_some(mailbox))
    }

    async fn sweep(&self, mailbox_id: &str, folder_id: Option<&str>, reason: &str) -> Result<Done> {
        let Some(mailbox) = self.active(mailbox_id).await? else {
            return Ok(Done::Skipped(format!("mailbox {mailbox_id} is not active")));
        };
        let folders: Vec<String> = match folder_id {
            Some(f) => vec![f.to_string()],
            None => mailbox.folders.iter().map(|f| f.id.clone()).collect(),
        };
        let mut queued = 0;
        for folder in folders {
            let report = self.sweeper.sweep_folder(&mailbox, &folder).await?;
            queued += report.queued;
            tracing::info!(mailbox = %mailbox.id, folder, reason, queued = report.queued, pages = report.pages, "folder swept");
        }
        // A sweep that got through means Graph no longer throttles the mailbox.
        self.repos
            .touch_health(mailbox_id, |h| h.clear(AlertKind::Throttled))
            .await?;
        Ok(Done::Swept { queued })
    }

    async fn resubscribe(&self, mailbox_id: &str, folder_id: &str, reason: &str) -> Result<Done> {
        let Some(mailbox) = self.active(mailbox_id).await? else {
            return Ok(Done::Skipped(format!("mailbox {mailbox_id} is not active")));
        };
        let removed = reason == "subscriptionRemoved";
        for sub in self.subscriptions.of_folder(&mailbox.id, folder_id).await? {
            let gone = removed
                || matches!(
                    self.subscriptions.renew(&mailbox, &sub).await,
                    Err(Error::NotFound(_))
                );
            if gone {
                self.repos.forget_subscription(&sub).await?;
            }
        }
        self.subscriptions.ensure(&mailbox, folder_id).await?;
        // Whatever arrived while the subscription was not delivering is found by the sweep.
        self.sweep(mailbox_id, Some(folder_id), reason).await
    }
}
