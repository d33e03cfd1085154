//! The delta sweep: the truth about a folder, behind the notifications that are only hints.

use crate::model::*;
use crate::ports::{Clock, Cond, JobQueue, MailGraph};
use crate::repo::Repos;
use crate::services::tokens::Tokens;
use crate::{Disposition, Error, Result};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// How many times a delta page is asked for before its round gives up ([`Sweeper::page`]).
pub const PAGE_TRIES: u32 = 6;
/// The longest wait for a delta page that the round sits through; a longer one hands the job back.
pub const PAGE_WAIT_MOST: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Sweeper {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
}

/// What one sweep of a folder did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub pages: u32,
    pub seen: u32,
    pub queued: u32,
    pub restarted: bool,
}

/// Which messages of a round are to be imported.
#[derive(Clone, Copy)]
enum Take {
    /// None: the first round of a folder only sets the cursor.
    Nothing,
    /// Those not yet imported.
    New,
    /// Those received since an instant and not yet imported (backfill, restart after a lost cursor).
    Since(DateTime<Utc>),
}

impl Sweeper {
    /// Sets a folder's first cursor if it has none. Mail already there is not imported, unless the
    /// profile asks for a backfill window.
    pub async fn start_folder(&self, mailbox: &Mailbox, folder_id: &str) -> Result<()> {
        if self
            .repos
            .cursors
            .of(&mailbox.id)
            .get(folder_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let profile = self.tokens.profile(&mailbox.profile_id).await?;
        let take = match profile.backfill_days {
            0 => Take::Nothing,
            d => Take::Since(
                Duration::try_days(i64::from(d))
                    .and_then(|window| self.clock.now().checked_sub_signed(window))
                    .ok_or_else(|| Error::invalid(format!("a backfill of {d} days")))?,
            ),
        };
        let mut report = SweepReport::default();
        let link = self
            .round(mailbox, folder_id, None, take, &mut report)
            .await?;
        self.save_cursor(mailbox, folder_id, link, Cond::Absent)
            .await
    }

    /// Sweeps the given folders of a mailbox one after the other; how many imports were queued.
    pub async fn sweep_folders(
        &self,
        mailbox: &Mailbox,
        folders: &[&str],
        reason: Reason,
    ) -> Result<u32> {
        let mut queued = 0;
        for &folder in folders {
            let report = self.sweep_folder(mailbox, folder).await?;
            queued += report.queued;
            tracing::info!(mailbox = %mailbox.id, folder, %reason, queued = report.queued, pages = report.pages, "folder swept");
        }
        Ok(queued)
    }

    /// Follows the folder's delta from its cursor, queues what is not imported yet, and moves the
    /// cursor only after those jobs are persisted.
    pub async fn sweep_folder(&self, mailbox: &Mailbox, folder_id: &str) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let Some(cursor) = self.repos.cursors.of(&mailbox.id).get(folder_id).await? else {
            self.start_folder(mailbox, folder_id).await?;
            return Ok(report);
        };
        let link = match self
            .round(
                mailbox,
                folder_id,
                Some(&cursor.value.delta_link),
                Take::New,
                &mut report,
            )
            .await
        {
            Err(Error::SyncReset(why)) => {
                // Start the folder over: what arrived since the last good sweep (with an hour's
                // margin) and is not imported yet is queued; the ledger absorbs the rest.
                tracing::warn!(mailbox = %mailbox.id, folder = folder_id, why, "delta state lost, restarting the folder");
                report.restarted = true;
                let since = cursor.value.updated_at - Duration::hours(1);
                self.round(mailbox, folder_id, None, Take::Since(since), &mut report)
                    .await?
            }
            other => other?,
        };
        match self
            .save_cursor(mailbox, folder_id, link, Cond::Version(cursor.version))
            .await
        {
            // A concurrent sweep moved it: both queued what they saw, so nothing is lost.
            Err(Error::Conflict(_)) => Ok(report),
            other => other.map(|_| report),
        }
    }

    async fn save_cursor(
        &self,
        mailbox: &Mailbox,
        folder_id: &str,
        delta_link: String,
        cond: Cond,
    ) -> Result<()> {
        let cursor = DeltaCursor {
            mailbox_id: mailbox.id.clone(),
            folder_id: folder_id.into(),
            delta_link,
            updated_at: self.clock.now(),
        };
        match self
            .repos
            .cursors
            .of(&mailbox.id)
            .put(folder_id, &cursor, cond)
            .await
        {
            Err(Error::Conflict(_)) if cond == Cond::Absent => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// One page of a round. Graph's passing failures (throttling for a short while, a 5xx, a
    /// timeout) are waited out here, up to [`PAGE_TRIES`] in a row: a round of many pages (a
    /// folder started over holds thousands of messages) that started over for any of them would
    /// seldom finish while Graph is unsteady. Anything else, or a longer wait, ends the round.
    async fn page(
        &self,
        mailbox: &Mailbox,
        folder_id: &str,
        link: Option<&str>,
    ) -> Result<DeltaPage> {
        let mut tries = 1;
        loop {
            // A session per page: a long round outlives an access token.
            let session = self.tokens.session(mailbox).await?;
            let e = match self
                .graph
                .delta(session.ctx(), &mailbox.user_id, folder_id, link)
                .await
            {
                Ok(page) => return Ok(page),
                Err(e @ (Error::Throttled { .. } | Error::Retry { .. })) => e,
                Err(e) => return Err(e),
            };
            let wait = match e.disposition() {
                Disposition::RetryAfter(after) => after,
                _ => std::time::Duration::from_secs(1 << tries.min(4)),
            };
            if tries >= PAGE_TRIES || wait > PAGE_WAIT_MOST {
                return Err(e);
            }
            tracing::debug!(mailbox = %mailbox.id, folder = folder_id, error = %e, "delta page tried again");
            crate::rt::sleep(wait).await;
            tries += 1;
        }
    }

    /// One delta round to its deltaLink; returns that link.
    async fn round(
        &self,
        mailbox: &Mailbox,
        folder_id: &str,
        start: Option<&str>,
        take: Take,
        report: &mut SweepReport,
    ) -> Result<String> {
        let imports = self.repos.imports.of(&mailbox.id);
        let mut link = start.map(str::to_string);
        loop {
            let page = self.page(mailbox, folder_id, link.as_deref()).await?;
            report.pages += 1;
            let mut jobs = Vec::new();
            for item in &page.items {
                let DeltaItem::Message { id, received_at } = item else {
                    continue;
                };
                report.seen += 1;
                let wanted = match take {
                    Take::Nothing => false,
                    Take::New => true,
                    Take::Since(t) => received_at.is_none_or(|r| r >= t),
                };
                if wanted && imports.get(id).await?.is_none_or(|s| !s.value.is_final()) {
                    jobs.push(Job::Import {
                        mailbox_id: mailbox.id.clone(),
                        message_id: id.clone(),
                        origin: Origin::Sweep,
                        queued_at: Some(self.clock.now()),
                    });
                }
            }
            if !jobs.is_empty() {
                self.queue.send(&jobs).await?;
                report.queued += jobs.len() as u32;
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => link = Some(next),
                (None, Some(delta)) => return Ok(delta),
                (None, None) => {
                    return Err(Error::Permanent(
                        "a delta page had neither nextLink nor deltaLink".into(),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::fakes::FakeWorld;
    use crate::model::*;
    use crate::ports::{Clock, Cond};
    use crate::Error;

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter()
            .filter_map(|j| match j {
                Job::Import { message_id, .. } => Some(message_id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn the_first_round_sets_the_cursor_without_importing_what_is_there() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        w.graph
            .deliver("user-1", "inbox", "old", b"x", w.clock.now());
        let sweeper = &w.services.sweeper;
        sweeper.start_folder(&m, "inbox").await.unwrap();
        assert!(w.queue.jobs().is_empty());
        w.graph
            .deliver("user-1", "inbox", "new", b"y", w.clock.now());
        let report = sweeper.sweep_folder(&m, "inbox").await.unwrap();
        assert_eq!(report.queued, 1);
        assert_eq!(ids(&w.queue.jobs()), ["new"]);
    }

    #[tokio::test]
    async fn the_cursor_moves_only_after_the_jobs_are_sent() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let sweeper = &w.services.sweeper;
        sweeper.start_folder(&m, "inbox").await.unwrap();
        let cursors = w.services.repos.cursors.of(&m.id);
        let before = cursors.get("inbox").await.unwrap().unwrap().value;
        w.graph
            .deliver("user-1", "inbox", "m1", b"x", w.clock.now());

        w.queue.refuse(true);
        assert!(matches!(
            sweeper.sweep_folder(&m, "inbox").await,
            Err(Error::Storage(_))
        ));
        assert_eq!(
            cursors.get("inbox").await.unwrap().unwrap().value,
            before,
            "the cursor moved past jobs that were never queued"
        );
        w.queue.refuse(false);
        sweeper.sweep_folder(&m, "inbox").await.unwrap();
        assert_eq!(ids(&w.queue.jobs()), ["m1"]);
        assert_ne!(cursors.get("inbox").await.unwrap().unwrap().value, before);
        // Seen and queued: a further sweep finds nothing new.
        assert_eq!(sweeper.sweep_folder(&m, "inbox").await.unwrap().queued, 0);
    }

    #[tokio::test]
    async fn a_page_waits_out_graph_passing_failures_instead_of_starting_the_round_over() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let sweeper = &w.services.sweeper;
        sweeper.start_folder(&m, "inbox").await.unwrap();
        w.graph
            .deliver("user-1", "inbox", "m1", b"x", w.clock.now());
        let throttled = || Error::Throttled {
            after: std::time::Duration::ZERO,
        };
        let unavailable = || Error::Retry {
            after: Some(std::time::Duration::ZERO),
            reason: "503".into(),
        };
        for e in [throttled(), unavailable(), throttled()] {
            w.graph.fail_next("delta", e);
        }
        let report = sweeper.sweep_folder(&m, "inbox").await.unwrap();
        assert_eq!((report.queued, report.pages), (1, 1));
        assert_eq!(ids(&w.queue.jobs()), ["m1"]);
        // Past PAGE_TRIES in a row, or a long Retry-After, the job is handed back.
        for _ in 0..super::PAGE_TRIES {
            w.graph.fail_next("delta", unavailable());
        }
        assert!(matches!(
            sweeper.sweep_folder(&m, "inbox").await,
            Err(Error::Retry { .. })
        ));
        w.graph.fail_next(
            "delta",
            Error::Throttled {
                after: super::PAGE_WAIT_MOST * 2,
            },
        );
        assert!(matches!(
            sweeper.sweep_folder(&m, "inbox").await,
            Err(Error::Throttled { .. })
        ));
        // Not a passing failure: at once.
        w.graph
            .fail_next("delta", Error::AccessDenied("403".into()));
        assert!(matches!(
            sweeper.sweep_folder(&m, "inbox").await,
            Err(Error::AccessDenied(_))
        ));
    }

    #[tokio::test]
    async fn a_lost_delta_token_restarts_the_folder_without_reimporting() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let sweeper = &w.services.sweeper;
        w.graph.deliver(
            "user-1",
            "inbox",
            "long-ago",
            b"x",
            w.clock.now() - chrono::Duration::days(30),
        );
        sweeper.start_folder(&m, "inbox").await.unwrap();
        w.graph
            .deliver("user-1", "inbox", "imported", b"y", w.clock.now());
        w.graph
            .deliver("user-1", "inbox", "missed", b"z", w.clock.now());
        let done = ImportState::Imported {
            eml_key: "k".into(),
            metadata_key: "k".into(),
            sha256: "h".into(),
            size: 1,
            at: w.clock.now(),
        };
        w.services
            .repos
            .imports
            .of(&m.id)
            .put("imported", &done, Cond::Absent)
            .await
            .unwrap();

        w.graph.expire_deltas();
        let report = sweeper.sweep_folder(&m, "inbox").await.unwrap();
        assert!(report.restarted);
        assert_eq!(ids(&w.queue.jobs()), ["missed"]);
        // The new cursor works.
        assert_eq!(sweeper.sweep_folder(&m, "inbox").await.unwrap().queued, 0);
    }
}
