//! A mailbox's scheduled upkeep: what is due (one decision, [`due`], shared by the scheduled round
//! that finds it and the job that does it), and the job that does it under the mailbox's lease.

use crate::model::*;
use crate::ports::{Clock, Cond};
use crate::repo::{Repos, Versioned};
use crate::services::alerts::Alerts;
use crate::services::organisation::{next_reach, Organisation};
use crate::services::pace::SharedPace;
use crate::services::subscriptions::Subscriptions;
use crate::services::sweep::Sweeper;
use crate::services::tokens::Tokens;
use crate::services::worker::Done;
use crate::{Error, Result, Say};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// When each part of a mailbox's upkeep falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Renew a subscription when it has less than this left.
    pub renew_margin: Duration,
    /// Use a mailbox's grant at least this often: a refresh token kept alive (Entra ID lets an
    /// unused one lapse after 90 days) and a revoked grant found within this long.
    pub check_token_every: Duration,
    /// Sweep a mailbox whose folders have subscriptions this often: the safety net under
    /// notifications that never came.
    pub sweep_every: Duration,
    /// Sweep a mailbox that cannot subscribe (a delegated shared mailbox) this often: its only way
    /// in. A little under the schedule's 5 minutes, so that every round finds it due.
    pub poll_every: Duration,
    /// How long one run holds a mailbox's upkeep before another may take it over.
    pub lease: Duration,
}

impl Schedule {
    /// Whether a subscription has time left, or is due for renewal.
    pub fn keeps(&self, sub: &SubscriptionRecord, now: DateTime<Utc>) -> bool {
        sub.expires_at - self.renew_margin > now
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            renew_margin: Duration::hours(36),
            check_token_every: Duration::days(1),
            sweep_every: Duration::hours(1),
            poll_every: Duration::minutes(4),
            lease: Duration::minutes(5),
        }
    }
}

/// When a mailbox's upkeep last ran, and who holds it now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpkeepRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_checked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<DateTime<Utc>>,
    /// A run holds the mailbox until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
    /// When an organisation-wide mailbox Graph could not reach was last tried, and how often in a
    /// row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reach_tries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a mailbox's upkeep must do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Alert events wait in the mailbox's outbox.
    pub announce: bool,
    /// Try again to reach an organisation-wide mailbox Graph refused (permission propagating,
    /// outside the app's scope).
    pub reach: bool,
    /// Use the grant (refreshing the access token when it has lapsed).
    pub token: bool,
    /// Folders whose subscription is missing or near its end.
    pub subscriptions: Vec<String>,
    /// Sweep every chosen folder.
    pub sweep: bool,
}

impl Due {
    pub fn is_empty(&self) -> bool {
        self == &Due::default()
    }
}

/// What is known of a mailbox when its upkeep is decided.
pub struct Known<'a> {
    pub mailbox: &'a Mailbox,
    /// The mailbox's subscriptions.
    pub subscriptions: &'a [&'a SubscriptionRecord],
    pub health: Option<&'a MailboxHealth>,
    pub upkeep: Option<&'a UpkeepRecord>,
}

/// The one decision of what a mailbox's upkeep must do. Only an active mailbox is worked on; the
/// alert events of any mailbox are sent.
pub fn due(k: &Known, now: DateTime<Utc>, s: &Schedule) -> Due {
    let mut due = Due {
        announce: k.health.is_some_and(|h| !h.unannounced.is_empty()),
        ..Due::default()
    };
    let m = k.mailbox;
    if m.kind == MailboxKind::Application && m.approved && m.enabled {
        let record = k.upkeep.cloned().unwrap_or_default();
        let last = record.reached_at.unwrap_or(m.updated_at);
        due.reach = next_reach(&m.connection, record.reach_tries, last).is_some_and(|t| t <= now);
    }
    if !k.mailbox.is_active() {
        return due;
    }
    let upkeep = k.upkeep.cloned().unwrap_or_default();
    let older = |at: Option<DateTime<Utc>>, every: Duration| at.is_none_or(|t| t + every <= now);
    due.token = older(upkeep.token_checked_at, s.check_token_every);
    let every = if k.mailbox.can_subscribe() {
        for folder in &k.mailbox.folders {
            let live = k
                .subscriptions
                .iter()
                .any(|sub| sub.folder_id == folder.id && s.keeps(sub, now));
            if !live {
                due.subscriptions.push(folder.id.clone());
            }
        }
        s.sweep_every
    } else {
        s.poll_every
    };
    due.sweep = older(upkeep.swept_at, every);
    due
}

/// Does a mailbox's due upkeep, one run at a time per mailbox.
pub struct Upkeep {
    pub repos: Repos,
    pub alerts: Arc<Alerts>,
    pub organisation: Arc<Organisation>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub sweeper: Arc<Sweeper>,
    pub clock: Arc<dyn Clock>,
    pub schedule: Schedule,
}

impl Upkeep {
    /// Decides again what is due (the round's view may be old), takes the mailbox's lease, does
    /// it, and records what was done as it gives the lease back. Nothing due, or another run
    /// holding the lease: nothing is written.
    pub async fn run(&self, mailbox_id: &str, pace: &SharedPace) -> Result<Done> {
        let now = self.clock.now();
        let Some(mailbox) = self.repos.mailboxes.get(mailbox_id).await?.map(|v| v.value) else {
            return Ok(Done::Skipped(format!("mailbox {mailbox_id} is gone")));
        };
        let subscriptions = self.repos.mailbox_subscriptions(mailbox_id).await?;
        let health = self.repos.health.get(mailbox_id).await?;
        let record = self.repos.upkeep.get(mailbox_id).await?;
        let due = due(
            &Known {
                mailbox: &mailbox,
                subscriptions: &subscriptions.iter().collect::<Vec<_>>(),
                health: health.as_ref().map(|h| &h.value),
                upkeep: record.as_ref().map(|r| &r.value),
            },
            now,
            &self.schedule,
        );
        if due.is_empty() {
            return Ok(Done::Skipped("nothing is due".into()));
        }
        let Some(held) = self.take_lease(mailbox_id, record, now).await? else {
            return Ok(Done::Skipped(
                "another run holds the mailbox's upkeep".into(),
            ));
        };
        let mut done = UpkeepRecord {
            lease_until: None,
            ..held.value.clone()
        };
        let result = match pace.enter(mailbox_id).await {
            Ok(slot) => {
                let result = self.work(&mailbox, &due, &mut done).await;
                pace.leave(slot).await;
                result
            }
            Err(e) => Err(e),
        };
        // Give the lease back with what was done; if this fails the lease lapses on its own.
        if let Err(e) = self
            .repos
            .upkeep
            .put(mailbox_id, &done, Cond::Version(held.version))
            .await
        {
            tracing::warn!(mailbox = %mailbox_id, error = %e, "could not record the upkeep; its lease lapses");
        }
        result
    }

    async fn take_lease(
        &self,
        mailbox_id: &str,
        record: Option<Versioned<UpkeepRecord>>,
        now: DateTime<Utc>,
    ) -> Result<Option<Versioned<UpkeepRecord>>> {
        let (mut value, cond) = match record {
            Some(r) if r.value.lease_until.is_some_and(|t| t > now) => return Ok(None),
            Some(r) => (r.value, Cond::Version(r.version)),
            None => (UpkeepRecord::default(), Cond::Absent),
        };
        value.lease_until = Some(now + self.schedule.lease);
        match self.repos.upkeep.put(mailbox_id, &value, cond).await {
            Ok(version) => Ok(Some(Versioned { value, version })),
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn work(&self, mailbox: &Mailbox, due: &Due, done: &mut UpkeepRecord) -> Result<Done> {
        let now = self.clock.now();
        if due.announce {
            self.alerts.announce(&mailbox.id).await?;
        }
        if due.reach {
            let reached = self.organisation.reach(mailbox).await?;
            done.reached_at = Some(now);
            done.reach_tries = if reached.connection == ConnectionState::Connected {
                0
            } else {
                done.reach_tries.saturating_add(1)
            };
        }
        if due.token {
            // Using the grant refreshes it when due; a revoked one marks the mailbox for a person.
            self.tokens.access_token(mailbox).await?;
            done.token_checked_at = Some(now);
        }
        for folder in &due.subscriptions {
            self.subscriptions.ensure(mailbox, folder).await?;
        }
        let mut queued = 0;
        if due.sweep {
            let all: Vec<&str> = mailbox.folders.iter().map(|f| f.id.as_str()).collect();
            queued = self
                .sweeper
                .sweep_folders(mailbox, &all, Reason::Schedule)
                .await?;
            done.swept_at = Some(now);
        }
        Ok(Done::Maintained {
            renewed: due.subscriptions.len() as u32,
            queued,
        })
    }
}

/// The stage a profile's credential is at now, with the expiry it is for.
pub fn credential_stage(
    profile: &ServerProfile,
    now: DateTime<Utc>,
) -> Option<(ExpiryStage, DateTime<Utc>)> {
    let at = profile.credential_expires_at()?;
    ExpiryStage::at(at, now).map(|stage| (stage, at))
}

/// The one decision of whether a profile's upkeep has work: its credential's expiry has reached a
/// stage not yet raised (or has been moved away from it), or alert events wait in its outbox.
pub fn profile_due(
    profile: &ServerProfile,
    health: Option<&ProfileHealth>,
    now: DateTime<Utc>,
) -> bool {
    stage_moved(profile, health, now) || health.is_some_and(|h| !h.unannounced.is_empty())
}

/// Whether the credential's stage differs from the one raised.
fn stage_moved(
    profile: &ServerProfile,
    health: Option<&ProfileHealth>,
    now: DateTime<Utc>,
) -> bool {
    match (
        credential_stage(profile, now),
        health.and_then(|h| h.expiry_warned),
    ) {
        // The same expiry: only a later stage is news (a clock set back raises nothing twice).
        (Some((s, at)), Some((w, wat))) if at == wat => s > w,
        (a, b) => a != b,
    }
}

/// What a profile's credential warning says at each stage.
fn expiry_sentence(
    profile: &ServerProfile,
    stage: ExpiryStage,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Say {
    let credential = profile.credential();
    let (profile, on) = (profile.name.clone(), at.date_naive());
    match stage {
        ExpiryStage::Expired => Say::CredentialExpired {
            credential,
            profile,
            on,
        },
        _ => Say::CredentialExpires {
            credential,
            profile,
            on,
            days: ((at - now).num_hours() + 23).div_euclid(24).max(1),
        },
    }
}

impl Upkeep {
    /// A profile's upkeep: raises its credential's warning once per stage (30, 7 and 1 days
    /// ahead, then expired), clears it when the credential is renewed, and sends the profile's
    /// alert events.
    pub async fn run_profile(&self, profile_id: &str) -> Result<Done> {
        let now = self.clock.now();
        let Some(profile) = self.repos.profiles.get(profile_id).await?.map(|v| v.value) else {
            return Ok(Done::Skipped(format!("profile {profile_id} is gone")));
        };
        let health = self.repos.profile_health.get(profile_id).await?;
        if !profile_due(&profile, health.as_ref().map(|h| &h.value), now) {
            return Ok(Done::Skipped("nothing is due".into()));
        }
        let stage = credential_stage(&profile, now);
        self.alerts
            .touch_profile(profile_id, |h| {
                if !stage_moved(&profile, Some(h), now) {
                    return;
                }
                h.expiry_warned = stage;
                let Some((stage, at)) = stage else {
                    h.clear(AlertKind::SecretExpiring);
                    h.clear(AlertKind::SecretExpired);
                    return;
                };
                let (kind, other) = if stage == ExpiryStage::Expired {
                    (AlertKind::SecretExpired, AlertKind::SecretExpiring)
                } else {
                    (AlertKind::SecretExpiring, AlertKind::SecretExpired)
                };
                let message = expiry_sentence(&profile, stage, at, now);
                h.clear(other);
                if h.has(kind) {
                    // Raised at an earlier stage: this stage is announced too.
                    h.unannounced.push(AlertChange {
                        kind,
                        raised: true,
                        message: message.to_string(),
                        at: now,
                    });
                }
                h.raise(kind, message, now);
            })
            .await?;
        self.alerts.announce_profile(profile_id).await?;
        Ok(Done::Maintained {
            renewed: 0,
            queued: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(kind: MailboxKind) -> Mailbox {
        Mailbox {
            kind,
            ..crate::fakes::FakeWorld::mailbox_record(Utc::now())
        }
    }

    fn sub(expires_at: DateTime<Utc>) -> SubscriptionRecord {
        SubscriptionRecord {
            id: "s".into(),
            mailbox_id: "mbx_1".into(),
            folder_id: "inbox".into(),
            resource: "r".into(),
            client_state_sha256: "x".into(),
            expires_at,
        }
    }

    #[test]
    fn only_what_has_fallen_due_is_done() {
        let s = Schedule::default();
        let now = Utc::now();
        let m = mailbox(MailboxKind::User);
        let fresh = sub(now + Duration::days(6));
        let recent = UpkeepRecord {
            token_checked_at: Some(now - Duration::hours(2)),
            swept_at: Some(now - Duration::minutes(10)),
            lease_until: None,
            ..Default::default()
        };
        let known = |subs: &[&SubscriptionRecord], upkeep: Option<&UpkeepRecord>| {
            due(
                &Known {
                    mailbox: &m,
                    subscriptions: subs,
                    health: None,
                    upkeep,
                },
                now,
                &s,
            )
        };
        // Never worked on: everything is due.
        let first = known(&[], None);
        assert!(first.token && first.sweep);
        assert_eq!(first.subscriptions, ["inbox"]);
        // Worked on recently, subscription with days left: nothing.
        assert!(known(&[&fresh], Some(&recent)).is_empty());
        // A subscription within the renewal margin.
        let ending = sub(now + Duration::hours(20));
        assert_eq!(known(&[&ending], Some(&recent)).subscriptions, ["inbox"]);
        // The grant unused for a day, the last sweep an hour ago.
        let old = UpkeepRecord {
            token_checked_at: Some(now - Duration::days(1)),
            swept_at: Some(now - Duration::hours(1)),
            lease_until: None,
            ..Default::default()
        };
        let d = known(&[&fresh], Some(&old));
        assert!(d.token && d.sweep && d.subscriptions.is_empty());
    }

    #[test]
    fn a_shared_mailbox_is_polled_and_an_inactive_one_only_announced() {
        let s = Schedule::default();
        let now = Utc::now();
        let mut m = mailbox(MailboxKind::Shared);
        let upkeep = UpkeepRecord {
            token_checked_at: Some(now),
            swept_at: Some(now - Duration::minutes(5)),
            lease_until: None,
            ..Default::default()
        };
        let d = due(
            &Known {
                mailbox: &m,
                subscriptions: &[],
                health: None,
                upkeep: Some(&upkeep),
            },
            now,
            &s,
        );
        // No subscription for a shared mailbox; swept every round.
        assert!(d.sweep && d.subscriptions.is_empty() && !d.token && !d.announce);
        m.enabled = false;
        let mut health = MailboxHealth::default();
        health.raise(AlertKind::ReauthRequired, "x", now);
        health.note_changes(&[], now);
        let d = due(
            &Known {
                mailbox: &m,
                subscriptions: &[],
                health: Some(&health),
                upkeep: None,
            },
            now,
            &s,
        );
        assert!(
            d.announce && !d.sweep && !d.token,
            "the mailbox is off; its event still goes out"
        );
    }

    #[test]
    fn a_profile_is_due_when_its_credential_reaches_a_new_stage() {
        let now = Utc::now();
        let mut p = crate::fakes::FakeWorld::profile();
        assert!(!profile_due(&p, None, now), "no expiry known");
        let at = now + Duration::days(20);
        p.client_secret_expires_at = Some(at);
        assert!(profile_due(&p, None, now));
        let mut h = ProfileHealth {
            expiry_warned: Some((ExpiryStage::Days30, at)),
            ..Default::default()
        };
        assert!(!profile_due(&p, Some(&h), now), "raised already");
        assert!(
            profile_due(&p, Some(&h), now + Duration::days(14)),
            "7 days left"
        );
        h.expiry_warned = Some((ExpiryStage::Days7, at));
        assert!(
            !profile_due(&p, Some(&h), now),
            "a clock set back raises nothing"
        );
        p.client_secret_expires_at = Some(now + Duration::days(400));
        assert!(profile_due(&p, Some(&h), now), "renewed: the warning goes");
    }
}
