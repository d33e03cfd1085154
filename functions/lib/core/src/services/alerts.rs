//! Alerts: raised and cleared on a mailbox's (or a profile's) health record, and announced to
//! operators. A change is put in the record's outbox by the same conditional write that makes it,
//! then sent; what could not be sent stays in the outbox for the next change or the scheduled
//! upkeep to send, so an alert event is delivered at least once and never lost.

use crate::crypto::sha256_hex;
use crate::model::*;
use crate::ports::{Clock, EventSink};
use crate::repo::{Record, Repo, Repos};
use crate::services::Settings;
use crate::Result;
use std::sync::Arc;

pub struct Alerts {
    pub repos: Repos,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// Whose alerts: a mailbox's or a profile's.
#[derive(Debug, Clone, Copy)]
enum Subject<'a> {
    Mailbox(&'a str),
    Profile(&'a str),
}

impl Alerts {
    /// Applies `f` to a mailbox's health (created on first use; nothing is written when `f`
    /// changes nothing), with the alerts it raised or cleared put in the outbox by the same write,
    /// then announces them. Returns whether an alert was raised. A failed announcement is logged
    /// and left in the outbox.
    pub async fn touch<F>(&self, mailbox_id: &str, f: F) -> Result<bool>
    where
        F: FnMut(&mut MailboxHealth) + Send,
    {
        let (raised, added) = touch_board(&self.repos.health, mailbox_id, self.now(), f).await?;
        if !added.is_empty() {
            self.announce_or_log(Subject::Mailbox(mailbox_id), added)
                .await;
        }
        Ok(raised)
    }

    /// [`Alerts::touch`] for a profile's health.
    pub async fn touch_profile<F>(&self, profile_id: &str, f: F) -> Result<bool>
    where
        F: FnMut(&mut ProfileHealth) + Send,
    {
        let (raised, added) =
            touch_board(&self.repos.profile_health, profile_id, self.now(), f).await?;
        if !added.is_empty() {
            self.announce_or_log(Subject::Profile(profile_id), added)
                .await;
        }
        Ok(raised)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Sends the changes a write just made (not what another writer's announcement is sending).
    async fn announce_or_log(&self, subject: Subject<'_>, changes: Vec<AlertChange>) {
        if let Err(e) = self.announce_subject(subject, Some(&changes)).await {
            tracing::warn!(?subject, error = %e, "alert events not sent; the next upkeep sends them");
        }
    }

    /// Sends what a mailbox's outbox holds (the scheduled upkeep's part).
    pub async fn announce(&self, mailbox_id: &str) -> Result<()> {
        self.announce_subject(Subject::Mailbox(mailbox_id), None)
            .await
    }

    /// Sends what a profile's outbox holds.
    pub async fn announce_profile(&self, profile_id: &str) -> Result<()> {
        self.announce_subject(Subject::Profile(profile_id), None)
            .await
    }

    /// Sends what the outbox holds (of `only`, when given: the changes still there), then takes
    /// what was sent out of it.
    async fn announce_subject(
        &self,
        subject: Subject<'_>,
        only: Option<&[AlertChange]>,
    ) -> Result<()> {
        match subject {
            Subject::Mailbox(id) => {
                let changes = pending(&self.repos.health, id, only).await?;
                if changes.is_empty() {
                    return Ok(());
                }
                let mailbox = self.repos.mailboxes.get(id).await?.map(|v| v.value);
                let via = match mailbox.as_ref().and_then(|m| m.via.clone()) {
                    Some(v) => self.repos.mailboxes.get(&v).await?.map(|v| v.value),
                    None => None,
                };
                self.deliver(&self.repos.health, id, &changes, |change| {
                    self.mailbox_event(id, mailbox.as_ref(), via.as_ref(), change)
                })
                .await
            }
            Subject::Profile(id) => {
                let changes = pending(&self.repos.profile_health, id, only).await?;
                if changes.is_empty() {
                    return Ok(());
                }
                let profile = self.repos.profiles.get(id).await?.map(|v| v.value);
                self.deliver(&self.repos.profile_health, id, &changes, |change| {
                    self.profile_event(id, profile.as_ref(), change)
                })
                .await
            }
        }
    }

    /// Sends the changes, then takes what was sent out of the record's outbox.
    async fn deliver<T: Board>(
        &self,
        repo: &Repo<T>,
        id: &str,
        changes: &[AlertChange],
        event: impl Fn(&AlertChange) -> AlertEvent,
    ) -> Result<()> {
        let (sent, result) = self.send(changes, event).await;
        forget_sent(repo, id, &sent).await?;
        result
    }

    /// Sends the changes in order, stopping at the first failure: what was sent, and the failure.
    async fn send(
        &self,
        changes: &[AlertChange],
        event: impl Fn(&AlertChange) -> AlertEvent,
    ) -> (Vec<AlertChange>, Result<()>) {
        let mut sent = Vec::new();
        for change in changes {
            let e = event(change);
            if let Err(err) = self.events.alert(&e).await {
                return (sent, Err(err));
            }
            tracing::info!(
                event = %e.event_id,
                kind = ?e.kind,
                state = %e.state,
                mailbox = e.mailbox_id.as_deref().unwrap_or("-"),
                profile = %e.profile_id,
                "alert event"
            );
            sent.push(change.clone());
        }
        (sent, Ok(()))
    }

    fn mailbox_event(
        &self,
        id: &str,
        mailbox: Option<&Mailbox>,
        via: Option<&Mailbox>,
        change: &AlertChange,
    ) -> AlertEvent {
        let action_url = match (change.kind, change.raised, mailbox) {
            (AlertKind::ReauthRequired, true, Some(m)) => {
                // The person who signs in is the token's owner: a shared mailbox's delegate.
                let who = via.unwrap_or(m);
                Some(self.settings.reconnect_url(&m.profile_id, &who.address))
            }
            _ => None,
        };
        AlertEvent {
            event_id: event_id(&format!("mailbox:{id}"), change),
            state: state(change),
            kind: change.kind,
            message: change.message.clone(),
            at: change.at,
            profile_id: mailbox.map(|m| m.profile_id.clone()).unwrap_or_default(),
            mailbox_id: Some(id.to_string()),
            mailbox_address: mailbox.map(|m| m.address.clone()),
            action_url,
        }
    }

    fn profile_event(
        &self,
        id: &str,
        profile: Option<&ServerProfile>,
        change: &AlertChange,
    ) -> AlertEvent {
        // A withdrawn consent is granted again where it was granted.
        let action_url = match (change.kind, change.raised, profile) {
            (AlertKind::ConsentRevoked, true, Some(p)) if p.auth == AuthType::Application => {
                Some(self.settings.admin_consent_url(id))
            }
            _ => None,
        };
        AlertEvent {
            event_id: event_id(&format!("profile:{id}"), change),
            state: state(change),
            kind: change.kind,
            message: change.message.clone(),
            at: change.at,
            profile_id: id.to_string(),
            mailbox_id: None,
            mailbox_address: None,
            action_url,
        }
    }
}

fn state(change: &AlertChange) -> String {
    if change.raised { "raised" } else { "cleared" }.into()
}

/// The same for every delivery of one change.
fn event_id(subject: &str, change: &AlertChange) -> String {
    sha256_hex(
        format!(
            "{subject}\n{:?}\n{}\n{}\n{}",
            change.kind,
            change.raised,
            change.at.timestamp_micros(),
            change.message
        )
        .as_bytes(),
    )[..32]
        .to_string()
}

/// A record that carries alerts and an outbox.
trait Board: Record + AlertBoard + Default + Clone + PartialEq + 'static {}
impl<T: Record + AlertBoard + Default + Clone + PartialEq + 'static> Board for T {}

/// Applies `f`, notes the changes in the outbox in the same write: (an alert was raised, the
/// changes this write put in the outbox).
async fn touch_board<T: Board, F>(
    repo: &Repo<T>,
    id: &str,
    now: chrono::DateTime<chrono::Utc>,
    mut f: F,
) -> Result<(bool, Vec<AlertChange>)>
where
    F: FnMut(&mut T) + Send,
{
    let mut raised = false;
    let mut added = Vec::new();
    let written = repo
        .update(id, |current| {
            let before = current.unwrap_or_default();
            let mut next = before.clone();
            f(&mut next);
            next.note_changes(before.alerts(), now);
            raised = next.alerts().iter().any(|a| !before.has(a.kind));
            added = next
                .unannounced()
                .iter()
                .filter(|c| !before.unannounced().contains(c))
                .cloned()
                .collect();
            (next != before).then_some(next)
        })
        .await?;
    if written.is_none() {
        added.clear();
    }
    Ok((raised, added))
}

/// What a record's outbox holds (of `only`, when given: the changes still there).
async fn pending<T: Board>(
    repo: &Repo<T>,
    id: &str,
    only: Option<&[AlertChange]>,
) -> Result<Vec<AlertChange>> {
    let Some(h) = repo.get(id).await? else {
        return Ok(Vec::new());
    };
    Ok(h.value
        .unannounced()
        .iter()
        .filter(|c| only.is_none_or(|o| o.contains(c)))
        .cloned()
        .collect())
}

/// Takes the sent changes out of the outbox (changes added meanwhile stay).
async fn forget_sent<T: Board>(repo: &Repo<T>, id: &str, sent: &[AlertChange]) -> Result<()> {
    if sent.is_empty() {
        return Ok(());
    }
    repo.update(id, |current| {
        let mut h = current?;
        let before = h.unannounced_mut().len();
        h.unannounced_mut().retain(|c| !sent.contains(c));
        (h.unannounced_mut().len() != before).then_some(h)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::fakes::FakeWorld;
    use crate::model::*;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn health_is_written_only_when_it_changes() {
        let w = FakeWorld::default();
        let (alerts, repos) = (&w.services.alerts, &w.services.repos);
        let now = chrono::Utc::now();
        // Clearing an alert nobody raised writes nothing, not even an empty record.
        alerts
            .touch("m", |h| h.clear(AlertKind::Throttled))
            .await
            .unwrap();
        assert!(repos.health.get("m").await.unwrap().is_none());
        alerts
            .touch("m", |h| h.raise(AlertKind::Throttled, "slow", now))
            .await
            .unwrap();
        let version = repos.health.get("m").await.unwrap().unwrap().version;
        // The same alert again, with the same text: no write.
        alerts
            .touch("m", |h| h.raise(AlertKind::Throttled, "slow", now))
            .await
            .unwrap();
        assert_eq!(
            repos.health.get("m").await.unwrap().unwrap().version,
            version
        );
        alerts
            .touch("m", |h| h.clear(AlertKind::Throttled))
            .await
            .unwrap();
        let after = repos.health.get("m").await.unwrap().unwrap().value;
        assert!(after.alerts.is_empty());
        assert!(after.unannounced.is_empty(), "both changes were announced");
    }

    #[tokio::test]
    async fn raising_and_clearing_each_send_one_event_and_repeats_send_none() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let alerts = &w.services.alerts;
        let now = chrono::Utc::now();
        let raise = |h: &mut MailboxHealth| h.raise(AlertKind::Throttled, "slow", now);
        assert!(alerts.touch(&m.id, raise).await.unwrap());
        assert!(!alerts.touch(&m.id, raise).await.unwrap(), "already raised");
        alerts
            .touch(&m.id, |h| h.clear(AlertKind::Throttled))
            .await
            .unwrap();
        alerts
            .touch(&m.id, |h| h.clear(AlertKind::Throttled))
            .await
            .unwrap();
        let events = w.events.alerts();
        let states: Vec<_> = events.iter().map(|e| e.state.as_str()).collect();
        assert_eq!(states, ["raised", "cleared"]);
        assert_eq!(events[0].mailbox_id.as_deref(), Some(m.id.as_str()));
        assert_eq!(
            events[0].mailbox_address.as_deref(),
            Some(m.address.as_str())
        );
        assert_eq!(events[0].message, "slow");
        assert_ne!(events[0].event_id, events[1].event_id);
        let h = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert!(h.value.unannounced.is_empty(), "the outbox is empty");
    }

    #[tokio::test]
    async fn an_event_that_cannot_go_out_waits_in_the_outbox_and_goes_out_once() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let alerts = &w.services.alerts;
        w.events.refuse_alerts.store(true, Ordering::SeqCst);
        let now = chrono::Utc::now();
        alerts
            .touch(&m.id, |h| {
                h.raise(AlertKind::LicenceMissing, "licence", now)
            })
            .await
            .expect("the alert is recorded even when its event cannot go out");
        assert!(w.events.alerts().is_empty());
        let h = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert_eq!(h.value.unannounced.len(), 1);
        assert!(h.value.has(AlertKind::LicenceMissing));
        assert!(alerts.announce(&m.id).await.is_err());

        w.events.refuse_alerts.store(false, Ordering::SeqCst);
        alerts.announce(&m.id).await.unwrap();
        alerts.announce(&m.id).await.unwrap();
        let events = w.events.alerts();
        assert_eq!(events.len(), 1, "sent once: {events:?}");
        assert_eq!(events[0].kind, AlertKind::LicenceMissing);
    }

    #[tokio::test]
    async fn a_dead_grant_s_event_carries_the_sign_in_link_of_whoever_signs_in() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        w.clock.advance(chrono::Duration::hours(2));
        w.identity.revoke();
        w.services.tokens.access_token(&m).await.unwrap_err();
        let events = w.events.alerts();
        let e = events
            .iter()
            .find(|e| e.kind == AlertKind::ReauthRequired)
            .expect("the dead grant is announced");
        assert_eq!(e.state, "raised");
        let url = e.action_url.as_deref().unwrap();
        assert!(
            url.starts_with("https://mailbridge.example/connect?profile=contoso&login_hint="),
            "{url}"
        );
        assert!(e.message.contains("Sign in again"), "{}", e.message);
    }
}
