//! The scheduled round: finds each mailbox's due upkeep and queues it, one job per mailbox. It
//! reads a few partitions whole (profiles, mailboxes, subscriptions, health, upkeep records), calls
//! nobody and writes nothing: the work (token use, renewals, sweeps, warnings) is done by the import
//! function under the mailbox's pace and lease, so the round's length grows with the number of
//! mailboxes only by reads and queue sends.

use crate::model::*;
use crate::ports::{Clock, JobQueue};
use crate::repo::{Record, Repos};
use crate::services::upkeep::{credential_stage, due, profile_due, Known, Schedule, UpkeepRecord};
use crate::Result;
use std::collections::HashMap;
use std::sync::Arc;

/// The partitions the round reads, and all it reads: its function's IAM grants a Query on these.
pub const PARTITIONS: &[&str] = &[
    <ServerProfile as Record>::KIND,
    <Mailbox as Record>::KIND,
    <SubscriptionRecord as Record>::KIND,
    <MailboxHealth as Record>::KIND,
    <ProfileHealth as Record>::KIND,
    <UpkeepRecord as Record>::KIND,
];

pub struct Maintenance {
    pub repos: Repos,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub schedule: Schedule,
}

/// What a round found.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Approved and enabled mailboxes.
    pub mailboxes: u32,
    /// Mailboxes with something due: one upkeep job each.
    pub queued: u32,
    pub tokens_due: u32,
    pub subscriptions_due: u32,
    pub sweeps_due: u32,
    /// Mailboxes whose alert events wait to be sent.
    pub alerts_due: u32,
    /// Approved and enabled mailboxes waiting for a person to sign in again.
    pub needs_reauth: u32,
    /// Profiles whose client secret expires within 30 days, or has expired.
    pub secret_warnings: u32,
    /// Profiles with a warning to raise or clear, or alert events to send: one job each.
    pub profiles_queued: u32,
}

impl Maintenance {
    pub async fn run(&self) -> Result<Report> {
        let mut report = Report::default();
        let now = self.clock.now();
        let profiles = self.repos.profiles.by_id().await?;
        let profile_health = self.repos.profile_health.by_id().await?;
        let health = self.repos.health.by_id().await?;
        let upkeep = self.repos.upkeep.by_id().await?;
        let all_subscriptions = self.repos.subscriptions.values().await?;
        let mut subscriptions: HashMap<&str, Vec<&SubscriptionRecord>> = HashMap::new();
        for s in &all_subscriptions {
            subscriptions.entry(&s.mailbox_id).or_default().push(s);
        }
        let mut jobs = Vec::new();
        for (id, profile) in &profiles {
            report.secret_warnings += u32::from(credential_stage(profile, now).is_some());
            if profile_due(profile, profile_health.get(id), now) {
                jobs.push(Job::ProfileUpkeep {
                    profile_id: id.clone(),
                });
                report.profiles_queued += 1;
            }
        }
        for mailbox in self.repos.mailboxes.values().await? {
            if mailbox.approved && mailbox.enabled {
                report.mailboxes += 1;
                if mailbox.connection != ConnectionState::Connected {
                    report.needs_reauth += 1;
                }
            }
            let due = due(
                &Known {
                    mailbox: &mailbox,
                    subscriptions: subscriptions
                        .get(mailbox.id.as_str())
                        .map_or(&[], |v| v.as_slice()),
                    health: health.get(&mailbox.id),
                    upkeep: upkeep.get(&mailbox.id),
                },
                now,
                &self.schedule,
            );
            if due.is_empty() {
                continue;
            }
            report.tokens_due += u32::from(due.token);
            report.subscriptions_due += due.subscriptions.len() as u32;
            report.sweeps_due += u32::from(due.sweep);
            report.alerts_due += u32::from(due.announce);
            jobs.push(Job::Upkeep {
                mailbox_id: mailbox.id,
            });
        }
        if !jobs.is_empty() {
            self.queue.send(&jobs).await?;
            report.queued = jobs.len() as u32 - report.profiles_queued;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use crate::fakes::FakeWorld;
    use crate::model::*;
    use crate::ports::Clock;
    use crate::services::worker::Done;

    #[tokio::test]
    async fn a_round_queues_only_due_work_and_writes_nothing() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let round = w.services.maintenance();
        let worker = w.services.worker(w.blobs.clone());

        // A new mailbox: everything is due, in one job.
        let writes = w.store.writes();
        let first = round.run().await.unwrap();
        assert_eq!(w.store.writes(), writes, "the round writes nothing");
        assert_eq!(
            (first.queued, first.tokens_due, first.sweeps_due),
            (1, 1, 1)
        );
        assert_eq!(first.subscriptions_due, 1);
        let jobs = w.queue.drain();
        assert_eq!(
            jobs,
            [Job::Upkeep {
                mailbox_id: m.id.clone()
            }]
        );

        // The same job twice (a duplicate delivery, or two overlapping rounds): one does it.
        let done = worker.run(&jobs[0]).await.unwrap();
        assert!(
            matches!(done, Done::Maintained { renewed: 1, .. }),
            "{done:?}"
        );
        assert_eq!(w.graph.calls("create_subscription"), 1);
        let writes = w.store.writes();
        let again = worker.run(&jobs[0]).await.unwrap();
        assert!(matches!(again, Done::Skipped(_)), "{again:?}");
        assert_eq!(w.store.writes(), writes, "nothing due: nothing written");

        // The next round finds nothing due, and writes nothing.
        let next = round.run().await.unwrap();
        assert_eq!(next.queued, 0);
        assert!(w.queue.jobs().is_empty());
        assert_eq!(w.store.writes(), writes);

        // An hour later the sweep is due again; a day later the grant too.
        w.clock.advance(chrono::Duration::minutes(61));
        let later = round.run().await.unwrap();
        assert_eq!(
            (later.queued, later.sweeps_due, later.tokens_due),
            (1, 1, 0)
        );
        w.queue.drain();
        w.clock.advance(chrono::Duration::days(1));
        let day = round.run().await.unwrap();
        assert_eq!((day.sweeps_due, day.tokens_due), (1, 1));
        let issued = w.identity.issued();
        let before = w.clock.now();
        for job in w.queue.drain() {
            worker.run(&job).await.unwrap();
        }
        // (The fake identity's tokens run on the real clock, not the test's: a day on, the
        // sweep refreshes once more; what matters is that the grant was used.)
        assert!(w.identity.issued() > issued, "the idle grant was used");
        let record = w.services.repos.upkeep.get(&m.id).await.unwrap().unwrap();
        assert!(record.value.token_checked_at >= Some(before));
    }

    #[tokio::test]
    async fn a_held_lease_keeps_a_second_run_out_until_it_lapses() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let worker = w.services.worker(w.blobs.clone());
        // A run that died holding the lease.
        let now = w.clock.now();
        w.services
            .repos
            .upkeep
            .put(
                &m.id,
                &crate::services::upkeep::UpkeepRecord {
                    lease_until: Some(now + chrono::Duration::minutes(5)),
                    ..Default::default()
                },
                crate::ports::Cond::Absent,
            )
            .await
            .unwrap();
        let job = Job::Upkeep {
            mailbox_id: m.id.clone(),
        };
        assert!(matches!(worker.run(&job).await.unwrap(), Done::Skipped(_)));
        assert_eq!(w.graph.calls("create_subscription"), 0);
        w.clock.advance(chrono::Duration::minutes(6));
        assert!(matches!(
            worker.run(&job).await.unwrap(),
            Done::Maintained { .. }
        ));
        let record = w.services.repos.upkeep.get(&m.id).await.unwrap().unwrap();
        assert_eq!(record.value.lease_until, None);
        assert!(record.value.swept_at.is_some() && record.value.token_checked_at.is_some());
    }

    #[tokio::test]
    async fn a_secret_is_warned_of_30_7_and_1_days_ahead_each_once_then_its_expiry() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let mut profile = FakeWorld::profile();
        let expires = w.clock.now() + chrono::Duration::days(45);
        profile.client_secret_expires_at = Some(expires);
        w.services
            .repos
            .profiles
            .put(&profile.id, &profile, crate::ports::Cond::Any)
            .await
            .unwrap();
        let round = w.services.maintenance();
        let worker = w.services.worker(w.blobs.clone());
        // Every day for 50 days, a round every few hours, each job done (twice, as a duplicate
        // delivery would).
        for _ in 0..(50 * 4) {
            let report = round.run().await.unwrap();
            for job in w.queue.drain() {
                worker.run(&job).await.unwrap();
                worker.run(&job).await.unwrap();
            }
            assert!(report.profiles_queued <= 1);
            w.clock.advance(chrono::Duration::hours(6));
        }
        let profile_events: Vec<_> = w
            .events
            .alerts()
            .into_iter()
            .filter(|e| e.mailbox_id.is_none())
            .collect();
        let seen: Vec<_> = profile_events
            .iter()
            .map(|e| (e.kind, e.state.as_str(), (expires - e.at).num_days()))
            .collect();
        assert_eq!(
            seen,
            [
                (AlertKind::SecretExpiring, "raised", 29),
                (AlertKind::SecretExpiring, "raised", 6),
                (AlertKind::SecretExpiring, "raised", 0),
                (AlertKind::SecretExpired, "raised", 0),
                (AlertKind::SecretExpiring, "cleared", 0),
            ],
            "{profile_events:#?}"
        );
        assert!(
            profile_events[1].message.contains("(in 7 days)"),
            "{}",
            profile_events[1].message
        );
        assert!(
            profile_events[2].message.contains("(in 1 day)"),
            "{}",
            profile_events[2].message
        );
        assert!(profile_events[3].message.contains("expired on"));
        assert!(profile_events.iter().all(|e| e.profile_id == "contoso"));
        // One alert on the profile, none on its mailbox.
        let ph = w
            .services
            .repos
            .profile_health
            .get("contoso")
            .await
            .unwrap()
            .unwrap();
        let kinds: Vec<_> = ph.value.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::SecretExpired]);
        let mh = w.services.repos.health.get(&m.id).await.unwrap();
        assert!(mh.is_none_or(|h| !h.value.has(AlertKind::SecretExpired)));

        // A new secret, a year ahead: the alert clears, once.
        profile.client_secret_expires_at = Some(w.clock.now() + chrono::Duration::days(365));
        w.services
            .repos
            .profiles
            .put(&profile.id, &profile, crate::ports::Cond::Any)
            .await
            .unwrap();
        for _ in 0..3 {
            round.run().await.unwrap();
            for job in w.queue.drain() {
                worker.run(&job).await.unwrap();
            }
        }
        let last: Vec<_> = w
            .events
            .alerts()
            .into_iter()
            .skip(5)
            .map(|e| (e.kind, e.state))
            .collect();
        assert_eq!(last, [(AlertKind::SecretExpired, "cleared".to_string())]);
        let report = round.run().await.unwrap();
        assert_eq!((report.secret_warnings, report.profiles_queued), (0, 0));
    }
}
