//! Runs queued jobs: each with the service it calls for, a batch at a time, and settles each job
//! by the one [`Disposition`] of its error. The batch runner serves the Lambda handler and the
//! local runner alike.

use crate::model::*;
use crate::ports::{Clock, Delivery, JobQueue, JobSource, Metric, Metrics};
use crate::repo::Repos;
use crate::services::alerts::Alerts;
use crate::services::checks::Checks;
use crate::services::import::Importer;
use crate::services::pace::{Pace, SharedPace};
use crate::services::subscriptions::Subscriptions;
use crate::services::sweep::Sweeper;
use crate::services::upkeep::Upkeep;
use crate::{Disposition, Error, Result, Say};
use std::sync::Arc;
use std::time::Duration;

pub struct Worker {
    pub repos: Repos,
    pub importer: Arc<Importer>,
    pub sweeper: Arc<Sweeper>,
    pub subscriptions: Arc<Subscriptions>,
    pub upkeep: Arc<Upkeep>,
    pub alerts: Arc<Alerts>,
    pub checks: Arc<Checks>,
    /// For the sweep that follows a throttling backlog.
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    /// This process's admission of its own jobs, per mailbox.
    pub pace: Arc<Pace>,
    /// Graph's per-mailbox limits across every process: a job holds one of the mailbox's slots.
    pub shared: Arc<SharedPace>,
    pub metrics: Arc<dyn Metrics>,
}

/// What a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Stored, recorded and announced. `category_failure`: why the profile's Outlook category
    /// could not be set (the message stays imported).
    Imported {
        eml_key: String,
        metadata_key: String,
        bytes: u64,
        category_failure: Option<Say>,
    },
    /// Already imported (or found gone) before: nothing done.
    Duplicate,
    /// Deleted from the mailbox before it could be fetched: recorded, not retried.
    Gone,
    /// Refused for good (too large): recorded with an alert.
    Refused(Say),
    /// A sweep ran and queued this many imports.
    Swept { queued: u32 },
    /// A mailbox's due upkeep was done: subscriptions renewed or created, imports queued.
    Maintained { renewed: u32, queued: u32 },
    /// A mailbox was tested for a profile's run.
    Tested { passed: bool },
    /// Nothing to do (the mailbox is not active).
    Skipped(String),
}

/// What the queue does with a job after it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Done with: delete it.
    Ack,
    /// Make it visible again after this delay (an SQS visibility change).
    RetryAfter(Duration),
}

/// How many times a job is received before it goes to the dead-letter queue: the template's
/// `maxReceiveCount` (checked by a test) and the local runner's limit.
pub const MAX_RECEIVES: u32 = 8;
/// The longest delay SQS accepts for a visibility change (12 hours).
pub const MAX_DELAY: Duration = Duration::from_secs(43_200);
/// How long a parked job waits between tries: a person must act first, so trying sooner only
/// spends receives; eight tries give a person most of a working day before the dead-letter queue.
pub const PARK_DELAY: Duration = Duration::from_secs(3600);

/// When a failed job comes back: when Graph said (Retry-After), after a backoff on the number of
/// receives (10 s, 20 s, 40 s… up to 15 min) for a passing failure, after [`PARK_DELAY`] when it
/// waits for a person; never for work that is done with.
pub fn settle(result: &Result<Done>, receive_count: u32) -> Settlement {
    let Err(e) = result else {
        return Settlement::Ack;
    };
    let delay = match e.disposition() {
        Disposition::Done => return Settlement::Ack,
        Disposition::RetryAfter(after) => after,
        Disposition::Backoff => {
            let n = receive_count.clamp(1, 8) - 1;
            Duration::from_secs(10 << n).min(Duration::from_secs(900))
        }
        Disposition::Park => PARK_DELAY,
    };
    Settlement::RetryAfter(delay.min(MAX_DELAY))
}

/// Runs a batch of deliveries, each on its own and all at once; the worker's [`Pace`] holds each
/// mailbox to 4 at a time and under Graph's rate. The answer gives each receipt's settlement. A
/// job never sleeps for its Retry-After: it is handed back with it.
pub async fn run_batch(
    worker: Arc<Worker>,
    deliveries: Vec<Delivery>,
) -> std::result::Result<Vec<(String, Settlement)>, String> {
    let runs = deliveries.into_iter().map(|d| {
        let worker = worker.clone();
        async move {
            let result = worker.run_body(&d.job_body).await;
            let settlement = settle(&result, d.receive_count);
            match (&result, settlement) {
                (Ok(done), _) => tracing::debug!(?done, "job done"),
                (Err(e), Settlement::RetryAfter(delay)) => {
                    tracing::warn!(error = %e, delay_s = delay.as_secs(), "job failed, will be retried")
                }
                (Err(e), Settlement::Ack) => {
                    tracing::error!(error = %e, "job failed for good; acknowledged")
                }
            }
            (d.receipt, settlement)
        }
    });
    // A panicked job: its receipt is lost with it, so the whole batch must come back.
    crate::rt::all(runs.collect())
        .await
        .map_err(|e| format!("an import task failed: {e}"))
}

/// One round of a worker that polls the queue itself (the import component; Lambda's trigger
/// does this for the function): up to 10 jobs received, run as [`run_batch`] runs them, those done
/// deleted, the others handed back after their delay; the queue's redrive policy dead-letters a
/// job received too often. How many jobs came. A settlement that fails leaves its job to come back
/// after `visibility`.
pub async fn poll_once(
    worker: Arc<Worker>,
    source: Arc<dyn JobSource>,
    visibility: Duration,
) -> Result<usize> {
    let batch = source.receive(10, visibility).await?;
    let received = batch.len();
    if received == 0 {
        return Ok(0);
    }
    let settlements = run_batch(worker, batch).await.map_err(Error::retry)?;
    for (receipt, settlement) in settlements {
        let settled = match settlement {
            Settlement::Ack => source.ack(&receipt).await,
            Settlement::RetryAfter(delay) => source.retry_later(&receipt, delay).await,
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "a job could not be settled; it comes back after its visibility timeout");
        }
    }
    Ok(received)
}

impl Worker {
    /// Runs a job from its queue body. A body that is not a job is a permanent error.
    pub async fn run_body(&self, body: &str) -> Result<Done> {
        let job: Job =
            serde_json::from_str(body).map_err(|e| Error::Permanent(format!("not a job: {e}")))?;
        self.run(&job).await
    }

    pub async fn run(&self, job: &Job) -> Result<Done> {
        let Some(mailbox_id) = job.mailbox_id() else {
            // A profile's upkeep calls no Graph: no mailbox's pace.
            return self.work(job).await;
        };
        let _local = self.pace.enter(mailbox_id).await;
        let result = match job {
            // Upkeep takes its slot only once it knows something is due: a job that finds nothing
            // to do writes nothing, not even a slot.
            Job::Upkeep { .. } => self.work(job).await,
            _ => match self.shared.enter(mailbox_id).await {
                Ok(lease) => {
                    let result = self.work(job).await;
                    self.shared.leave(lease).await;
                    result
                }
                Err(e) => Err(e),
            },
        };
        self.record(job, mailbox_id, &result).await;
        result
    }

    async fn work(&self, job: &Job) -> Result<Done> {
        match job {
            Job::Import {
                mailbox_id,
                message_id,
                ..
            } => self.importer.import(mailbox_id, message_id).await,
            Job::Sweep {
                mailbox_id,
                folder_id,
                reason,
            } => self.sweep(mailbox_id, folder_id.as_deref(), *reason).await,
            Job::Resubscribe {
                mailbox_id,
                folder_id,
                reason,
            } => self.resubscribe(mailbox_id, folder_id, *reason).await,
            Job::Upkeep { mailbox_id } => self.upkeep.run(mailbox_id, &self.shared).await,
            Job::ProfileUpkeep { profile_id } => self.upkeep.run_profile(profile_id).await,
            Job::Test {
                mailbox_id,
                enable,
                run,
            } => self.checks.run_job(mailbox_id, *enable, run).await,
        }
    }

    /// What a job's result means for its mailbox's health, in one place: the incoming status, the
    /// last error, the alerts a job raises or clears (throttled, too large, category), and the
    /// metrics. After a throttling spell, the first import that gets through queues a sweep for
    /// what was missed.
    async fn record(&self, job: &Job, mailbox_id: &str, result: &Result<Done>) {
        let now = self.clock.now();
        match result {
            Ok(Done::Imported { bytes, .. }) => {
                let latency_ms = match job {
                    Job::Import {
                        queued_at: Some(at),
                        ..
                    } => (now - *at).num_milliseconds().try_into().ok(),
                    _ => None,
                };
                self.metrics.record(Metric::Imported {
                    bytes: *bytes,
                    latency_ms,
                });
            }
            Ok(Done::Refused(_)) => self.metrics.record(Metric::Refused),
            Err(e) if e.disposition() == Disposition::Park => {
                self.metrics.record(Metric::NeedsPerson)
            }
            _ => {}
        }
        let relevant = match result {
            Ok(
                Done::Imported { .. }
                | Done::Duplicate
                | Done::Gone
                | Done::Refused(_)
                | Done::Swept { .. }
                | Done::Maintained { .. },
            ) => true,
            Ok(_) => false,
            // Not active: a state the mailbox already shows, not a failed run.
            Err(Error::Inactive(_)) => false,
            Err(e) => {
                matches!(e.disposition(), Disposition::Done | Disposition::Park)
                    || matches!(e, Error::Throttled { .. })
            }
        };
        if !relevant {
            return;
        }
        let mut after_throttling = false;
        let written = self
            .alerts
            .touch(mailbox_id, |h| {
                match result {
                    Ok(Done::Imported {
                        category_failure, ..
                    }) => {
                        after_throttling = h.has(AlertKind::Throttled);
                        h.got_through();
                        h.clear(AlertKind::LicenceMissing);
                        h.clear(AlertKind::ImportFailing);
                        h.incoming = IncomingStatus::Success;
                        h.last_sync = Some(now);
                        h.last_error = None;
                        h.imported += 1;
                        match category_failure {
                            Some(why) => h.raise(AlertKind::CategoryNotSet, why.clone(), now),
                            None => h.clear(AlertKind::CategoryNotSet),
                        }
                    }
                    // The message a throttled job waited for is in (another job imported it)
                    // or gone (Graph answered 404): nothing waits on the throttling any more.
                    // Without this, the last 429 recorded after the last import left the alert
                    // raised on a quiet mailbox until its next message.
                    Ok(Done::Duplicate | Done::Gone) => {
                        after_throttling = h.has(AlertKind::Throttled);
                        h.got_through();
                    }
                    // A sweep that got through means Graph no longer throttles the mailbox.
                    Ok(Done::Swept { .. } | Done::Maintained { .. }) => h.got_through(),
                    Ok(Done::Refused(reason)) => {
                        h.raise(AlertKind::MessageTooLarge, reason.clone(), now)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        h.incoming = IncomingStatus::Failure;
                        h.last_error = Some(e.to_string());
                        // Graph cannot reach the mailbox: a person must act, and is told how.
                        match e {
                            Error::MailboxNotEnabled(_) => {
                                h.raise(AlertKind::LicenceMissing, e.advice(), now)
                            }
                            Error::AccessDenied(_) => {
                                h.raise(AlertKind::ImportFailing, e.advice(), now)
                            }
                            _ => {}
                        }
                        if let Error::Throttled { after } = e {
                            h.throttled(*after, now);
                        }
                    }
                }
            })
            .await;
        if let Ok(true) = written {
            self.metrics.record(Metric::AlertRaised);
        }
        if let Err(e) = written {
            tracing::warn!(mailbox = %mailbox_id, error = %e, "could not record the mailbox's health");
        }
        if after_throttling {
            // Notifications may have been lost while Graph throttled: the delta finds them.
            let sweep = Job::Sweep {
                mailbox_id: mailbox_id.into(),
                folder_id: None,
                reason: Reason::AfterThrottling,
            };
            if let Err(e) = self.queue.send(&[sweep]).await {
                tracing::warn!(mailbox = %mailbox_id, error = %e, "could not queue the sweep after throttling; the scheduled sweep will run it");
            }
        }
    }

    async fn active(&self, mailbox_id: &str) -> Result<Option<Mailbox>> {
        let mailbox = self.repos.mailbox(mailbox_id).await?;
        Ok(mailbox.is_active().then_some(mailbox))
    }

    async fn sweep(
        &self,
        mailbox_id: &str,
        folder_id: Option<&str>,
        reason: Reason,
    ) -> Result<Done> {
        let Some(mailbox) = self.active(mailbox_id).await? else {
            return Ok(Done::Skipped(format!("mailbox {mailbox_id} is not active")));
        };
        let folders: Vec<&str> = match folder_id {
            Some(f) => vec![f],
            None => mailbox.folders.iter().map(|f| f.id.as_str()).collect(),
        };
        let queued = self
            .sweeper
            .sweep_folders(&mailbox, &folders, reason)
            .await?;
        Ok(Done::Swept { queued })
    }

    async fn resubscribe(&self, mailbox_id: &str, folder_id: &str, reason: Reason) -> Result<Done> {
        let Some(mailbox) = self.active(mailbox_id).await? else {
            return Ok(Done::Skipped(format!("mailbox {mailbox_id} is not active")));
        };
        let removed = reason == Reason::SubscriptionRemoved;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeWorld;

    /// A connected mailbox with one message in its Inbox, a worker, and the message's import job.
    async fn one_message() -> (FakeWorld, Mailbox, Worker, Job) {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        w.graph.deliver(
            "user-1",
            "inbox",
            "m1",
            b"Subject: x\r\n\r\nx",
            w.clock.now(),
        );
        let worker = w.services.worker(w.blobs.clone());
        let job = Job::Import {
            mailbox_id: m.id.clone(),
            message_id: "m1".into(),
            origin: Origin::Notification,
            queued_at: None,
        };
        (w, m, worker, job)
    }

    #[tokio::test]
    async fn a_mailbox_graph_cannot_reach_is_alerted_with_what_to_do_until_an_import_works() {
        let (w, m, worker, job) = one_message().await;
        w.graph.fail_next(
            "mime",
            Error::MailboxNotEnabled("MailboxNotEnabledForRESTAPI".into()),
        );
        let failed = worker.run(&job).await;
        assert_eq!(settle(&failed, 1), Settlement::RetryAfter(PARK_DELAY));
        let health = || async {
            let h = w.services.repos.health.get(&m.id).await.unwrap();
            h.unwrap().value
        };
        let h = health().await;
        let alert = h
            .alerts
            .iter()
            .find(|a| a.kind == AlertKind::LicenceMissing);
        assert!(alert.unwrap().message().contains("Exchange Online licence"));
        let events = w.events.alerts();
        assert_eq!(
            (events.len(), events[0].kind),
            (1, AlertKind::LicenceMissing)
        );

        assert!(matches!(worker.run(&job).await, Ok(Done::Imported { .. })));
        assert!(health().await.alerts.is_empty());
        assert_eq!(w.events.alerts()[1].state, "cleared");
    }

    fn throttled(seconds: u64) -> Error {
        Error::Throttled {
            after: Duration::from_secs(seconds),
        }
    }

    #[tokio::test]
    async fn a_passing_429_is_waited_out_without_an_alert_or_a_sweep() {
        let (w, m, worker, job) = one_message().await;
        w.graph.fail_next("mime", throttled(30));
        let failed = worker.run(&job).await;
        assert_eq!(
            settle(&failed, 1),
            Settlement::RetryAfter(Duration::from_secs(30))
        );
        let health = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert!(health.value.alerts.is_empty());
        assert_eq!(health.value.throttled_in_a_row, 1);
        assert_eq!(w.metrics.recorded(), [Metric::GraphThrottled]);

        assert!(matches!(worker.run(&job).await, Ok(Done::Imported { .. })));
        let health = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert_eq!(health.value.throttled_in_a_row, 0);
        assert!(w.events.alerts().is_empty(), "nothing announced");
        assert!(w.queue.jobs().is_empty(), "no sweep after a passing 429");
    }

    #[tokio::test]
    async fn a_long_retry_after_raises_the_alert_at_once() {
        let (w, m, worker, job) = one_message().await;
        w.graph
            .fail_next("mime", throttled(THROTTLED_LONG.as_secs()));
        worker.run(&job).await.unwrap_err();
        let health = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert!(health.value.has(AlertKind::Throttled));
    }

    #[tokio::test]
    async fn throttling_in_a_row_is_raised_and_cleared_in_one_place_with_a_sweep_after_it() {
        let (w, m, worker, job) = one_message().await;
        for _ in 0..THROTTLED_IN_A_ROW {
            w.graph.fail_next("mime", throttled(30));
        }
        let health = || async {
            let h = w.services.repos.health.get(&m.id).await.unwrap();
            h.unwrap().value
        };
        for n in 1..=THROTTLED_IN_A_ROW {
            let failed = worker.run(&job).await;
            assert_eq!(
                settle(&failed, 1),
                Settlement::RetryAfter(Duration::from_secs(30))
            );
            assert_eq!(
                health().await.has(AlertKind::Throttled),
                n == THROTTLED_IN_A_ROW
            );
        }
        let now = health().await;
        assert_eq!(now.incoming, IncomingStatus::Failure);
        let mut expected = vec![Metric::GraphThrottled; THROTTLED_IN_A_ROW as usize];
        expected.push(Metric::AlertRaised);
        assert_eq!(w.metrics.recorded(), expected);
        assert!(w.queue.jobs().is_empty());

        assert!(matches!(worker.run(&job).await, Ok(Done::Imported { .. })));
        let now = health().await;
        assert!(!now.has(AlertKind::Throttled));
        assert_eq!(now.incoming, IncomingStatus::Success);
        assert_eq!(now.imported, 1);
        assert_eq!(now.throttled_in_a_row, 0);
        assert_eq!(
            w.metrics.recorded()[expected.len()..],
            [Metric::Imported {
                bytes: 15,
                latency_ms: None
            }]
        );
        assert_eq!(
            w.queue.jobs(),
            vec![Job::Sweep {
                mailbox_id: m.id.clone(),
                folder_id: None,
                reason: Reason::AfterThrottling
            }]
        );
    }

    #[tokio::test]
    async fn throttling_ends_when_the_throttled_message_is_found_imported_by_another_job() {
        let (w, m, worker, job) = one_message().await;
        assert!(matches!(worker.run(&job).await, Ok(Done::Imported { .. })));
        // Another worker's job for the same message (a duplicate notification) got its 429s
        // while this import ran, and recorded them after it: the alert is raised, and no other
        // message of the mailbox is coming.
        let now = w.clock.now();
        w.services
            .alerts
            .touch(&m.id, |h| {
                for _ in 0..THROTTLED_IN_A_ROW {
                    h.throttled(Duration::from_secs(1), now);
                }
            })
            .await
            .unwrap();
        let health = || async {
            let h = w.services.repos.health.get(&m.id).await.unwrap();
            h.unwrap().value
        };
        assert!(health().await.has(AlertKind::Throttled));
        // That job comes back after its Retry-After and finds the message in.
        assert!(matches!(worker.run(&job).await, Ok(Done::Duplicate)));
        let after = health().await;
        assert!(!after.has(AlertKind::Throttled));
        assert_eq!(after.throttled_in_a_row, 0);
        assert!(
            w.queue.jobs().contains(&Job::Sweep {
                mailbox_id: m.id.clone(),
                folder_id: None,
                reason: Reason::AfterThrottling
            }),
            "a sweep looks for what the throttling may have hidden"
        );
    }

    #[test]
    fn settlement_follows_the_disposition() {
        let ok: Result<Done> = Ok(Done::Duplicate);
        assert_eq!(settle(&ok, 1), Settlement::Ack);
        let gone: Result<Done> = Err(Error::Permanent("not a job".into()));
        assert_eq!(settle(&gone, 1), Settlement::Ack);
        let throttled: Result<Done> = Err(Error::Throttled {
            after: Duration::from_secs(30),
        });
        assert_eq!(
            settle(&throttled, 5),
            Settlement::RetryAfter(Duration::from_secs(30))
        );
        let passing: Result<Done> = Err(Error::Storage("x".into()));
        assert_eq!(
            settle(&passing, 1),
            Settlement::RetryAfter(Duration::from_secs(10))
        );
        assert_eq!(
            settle(&passing, 3),
            Settlement::RetryAfter(Duration::from_secs(40))
        );
        assert_eq!(
            settle(&passing, 40),
            Settlement::RetryAfter(Duration::from_secs(900))
        );
        let person: Result<Done> = Err(Error::ReauthRequired {
            code: "AADSTS50173".into(),
            reason: "revoked".into(),
        });
        assert_eq!(settle(&person, 1), Settlement::RetryAfter(PARK_DELAY));
        let huge: Result<Done> = Err(Error::Throttled {
            after: Duration::from_secs(999_999),
        });
        assert_eq!(settle(&huge, 1), Settlement::RetryAfter(MAX_DELAY));
    }
}
