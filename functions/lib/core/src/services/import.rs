//! The import of one message: claimed in the ledger, fetched once (`$value`), stored byte-exact
//! with its metadata, recorded once.

use crate::crypto::sha256_hex;
use crate::mime::{MessageMetadata, MimeScanner};
use crate::model::*;
use crate::ports::{BlobStore, Clock, Cond, EventSink, GraphCtx, MailGraph, MimeDownload};
use crate::repo::{Repo, Repos};
use crate::services::tokens::Tokens;
use crate::services::worker::Done;
use crate::services::Settings;
use crate::{Error, Result, Say};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub struct Importer {
    pub repos: Repos,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub blobs: Arc<dyn BlobStore>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// The metadata document stored beside each `.eml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredMetadata {
    pub mailbox_id: String,
    pub mailbox_address: String,
    pub message_id: String,
    pub imported_at: DateTime<Utc>,
    pub eml_key: String,
    #[serde(flatten)]
    pub message: MessageMetadata,
}

/// Deterministic object keys: a replay writes the same objects.
pub fn object_keys(mailbox_id: &str, message_id: &str) -> (String, String) {
    let stem = format!(
        "messages/{mailbox_id}/{}",
        &sha256_hex(message_id.as_bytes())[..40]
    );
    (format!("{stem}.eml"), format!("{stem}.json"))
}

impl Importer {
    /// Imports one message once: claimed in the ledger, fetched, stored, announced, recorded.
    pub async fn import(&self, mailbox_id: &str, message_id: &str) -> Result<Done> {
        let ledger = self.repos.imports.of(mailbox_id);
        let Some((version, attempts)) = self.claim(&ledger, message_id).await? else {
            return Ok(Done::Duplicate);
        };
        let result = self
            .import_claimed(&ledger, mailbox_id, message_id, version)
            .await;
        if result.is_err() {
            self.release(&ledger, message_id, version, attempts).await;
        }
        result
    }

    /// Gives the claim back after a failure, so that the retry (after Graph's Retry-After, say)
    /// need not wait for the lease to run out. A crash cannot do this: its lease runs out instead.
    async fn release(
        &self,
        ledger: &Repo<ImportState>,
        message_id: &str,
        version: u64,
        attempts: u32,
    ) {
        let released = ImportState::InProgress {
            lease_until: self.clock.now(),
            attempts,
        };
        // A conflict means someone else holds or finished it since: nothing to give back.
        let _ = ledger
            .put(message_id, &released, Cond::Version(version))
            .await;
    }

    async fn import_claimed(
        &self,
        ledger: &Repo<ImportState>,
        mailbox_id: &str,
        message_id: &str,
        version: u64,
    ) -> Result<Done> {
        let mailbox = self.repos.mailbox(mailbox_id).await?;
        if !mailbox.is_active() {
            return Err(Error::Inactive(format!(
                "mailbox {mailbox_id} is not approved, enabled and connected"
            )));
        }
        let session = self.tokens.session(&mailbox).await?;
        let fetched = self
            .graph
            .message_mime(session.ctx(), &mailbox.user_id, message_id)
            .await;
        let now = self.clock.now();
        let download = match fetched {
            Ok(d) => d,
            Err(Error::NotFound(_)) => {
                self.finish(ledger, message_id, version, ImportState::Gone { at: now })
                    .await?;
                return Ok(Done::Gone);
            }
            Err(e) => return Err(e),
        };
        let (eml_key, metadata_key) = object_keys(mailbox_id, message_id);
        // The .eml first, then its metadata, the event, and the record: a crash in between leaves
        // the record in progress, and the retry writes the same objects again.
        let message = match self.store_mime(&eml_key, download).await? {
            Ok(message) => message,
            Err(reason) => {
                let refused = ImportState::Refused {
                    reason: reason.to_string(),
                    at: now,
                };
                self.finish(ledger, message_id, version, refused).await?;
                return Ok(Done::Refused(reason));
            }
        };
        let event = MessageImported {
            event_id: sha256_hex(format!("{mailbox_id}\n{message_id}").as_bytes()),
            mailbox_id: mailbox_id.into(),
            mailbox_address: mailbox.address.clone(),
            message_id: message_id.into(),
            internet_message_id: message.internet_message_id.clone(),
            eml_location: self.blobs.locate(&eml_key),
            metadata_location: self.blobs.locate(&metadata_key),
            eml_key: eml_key.clone(),
            metadata_key: metadata_key.clone(),
            size: message.size,
            sha256: message.sha256.clone(),
            imported_at: now,
        };
        let doc = StoredMetadata {
            mailbox_id: mailbox_id.into(),
            mailbox_address: mailbox.address.clone(),
            message_id: message_id.into(),
            imported_at: now,
            eml_key: eml_key.clone(),
            message,
        };
        let json = serde_json::to_vec_pretty(&doc).map_err(Error::storage)?;
        self.blobs
            .put(&metadata_key, json.into(), "application/json")
            .await?;
        // Before the record: if publishing fails, the retry stores and publishes again (at least
        // once, same event id); after the record, a failure would lose the event for good.
        self.events.publish(&event).await?;
        let state = ImportState::Imported {
            eml_key: eml_key.clone(),
            metadata_key: metadata_key.clone(),
            sha256: event.sha256.clone(),
            size: event.size,
            at: now,
        };
        self.finish(ledger, message_id, version, state).await?;
        let category_failure = match &session.profile.outlook_category {
            Some(category) => {
                self.mark(session.ctx(), &mailbox, message_id, category)
                    .await
            }
            None => None,
        };
        tracing::info!(mailbox = %mailbox_id, key = %eml_key, "message imported");
        Ok(Done::Imported {
            eml_key,
            metadata_key,
            bytes: event.size,
            category_failure,
        })
    }

    /// Marks the message with the profile's Outlook category. A courtesy to people reading the
    /// mailbox, done after the record: its failure is an alert (the reason returned), never a
    /// reason to import again.
    async fn mark(
        &self,
        ctx: GraphCtx<'_>,
        mailbox: &Mailbox,
        message_id: &str,
        category: &str,
    ) -> Option<Say> {
        let e = self
            .graph
            .add_category(ctx, &mailbox.user_id, message_id, category)
            .await
            .err()?;
        tracing::warn!(mailbox = %mailbox.id, error = %e, "Outlook category not set");
        Some(Say::CategoryNotSet {
            category: category.into(),
            detail: e.to_string(),
        })
    }

    /// Streams the MIME to `key` as it arrives, parsing its metadata on the way: memory stays flat
    /// whatever the message's size. `Ok(Err(reason))`: over the size limit, nothing stored.
    async fn store_mime(
        &self,
        key: &str,
        mut download: MimeDownload,
    ) -> Result<std::result::Result<MessageMetadata, Say>> {
        let limit = self.settings.max_message_bytes;
        let too_large = |size: u64| Say::MessageTooLarge { size, limit };
        if let Some(length) = download.length.filter(|&l| l > limit) {
            return Ok(Err(too_large(length)));
        }
        let mut writer = self.blobs.create(key, "message/rfc822").await?;
        let mut scanner = MimeScanner::default();
        let mut size = 0u64;
        loop {
            let piece = match download.body.next_piece().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(e) => {
                    writer.abort().await;
                    return Err(e);
                }
            };
            size += piece.len() as u64;
            if size > limit {
                writer.abort().await;
                return Ok(Err(too_large(size)));
            }
            scanner.feed(&piece);
            if let Err(e) = writer.write(piece).await {
                writer.abort().await;
                return Err(e);
            }
        }
        writer.commit().await?;
        Ok(Ok(scanner.finish()))
    }

    /// Takes the message in the ledger: its record's version and this attempt's number. `None`:
    /// already done. Err(Retry): another worker holds it.
    async fn claim(
        &self,
        ledger: &Repo<ImportState>,
        message_id: &str,
    ) -> Result<Option<(u64, u32)>> {
        let now = self.clock.now();
        let current = ledger.get(message_id).await?;
        let (cond, attempts) = match &current {
            None => (Cond::Absent, 0),
            Some(v) => match &v.value {
                ImportState::InProgress {
                    lease_until,
                    attempts,
                } if *lease_until <= now || self.held_by_an_ended_process(*lease_until) => {
                    (Cond::Version(v.version), *attempts)
                }
                ImportState::InProgress { lease_until, .. } => {
                    // A holder usually finishes within seconds: look again soon. One that has held
                    // it longer most likely crashed: wait for its lease to run out, rather than
                    // spend the job's receives.
                    let remaining = (*lease_until - now).to_std().unwrap_or_default();
                    let held_for = now - (*lease_until - self.settings.import_lease);
                    let wait = if held_for < chrono::Duration::seconds(10) {
                        remaining.min(std::time::Duration::from_secs(3))
                    } else {
                        remaining
                    };
                    return Err(Error::Retry {
                        after: Some(wait),
                        reason: "another worker is importing this message".into(),
                    });
                }
                _ => return Ok(None),
            },
        };
        let attempts = attempts + 1;
        let claim = ImportState::InProgress {
            lease_until: now + self.settings.import_lease,
            attempts,
        };
        match ledger.put(message_id, &claim, cond).await {
            Ok(v) => Ok(Some((v, attempts))),
            Err(Error::Conflict(_)) => match ledger.get(message_id).await? {
                Some(v) if v.value.is_final() => Ok(None),
                _ => Err(Error::retry("another worker claimed this message")),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether a claim (known by its lease's end) was taken before this deployment started, by
    /// a process that has ended.
    fn held_by_an_ended_process(&self, lease_until: DateTime<Utc>) -> bool {
        super::taken_by_an_ended_process(
            self.settings.claims_void_before,
            lease_until,
            self.settings.import_lease,
        )
    }

    async fn finish(
        &self,
        ledger: &Repo<ImportState>,
        message_id: &str,
        version: u64,
        state: ImportState,
    ) -> Result<()> {
        match ledger.put(message_id, &state, Cond::Version(version)).await {
            // Our lease ran out and another worker finished it: same objects, nothing lost.
            Err(Error::Conflict(_)) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeWorld;
    use crate::ports::BlobReader;
    use std::time::Duration;

    const MIME: &[u8] =
        b"From: a@example.com\r\nSubject: Hello\r\nMessage-ID: <m1@example.com>\r\n\r\nHi\r\n";

    async fn world() -> (FakeWorld, Arc<Importer>, Mailbox) {
        let w = FakeWorld::default();
        let mailbox = w.mailbox().await;
        w.graph
            .deliver("user-1", "inbox", "m1", MIME, w.clock.now());
        let importer = w.services.worker(w.blobs.clone()).importer;
        (w, importer, mailbox)
    }

    #[tokio::test]
    async fn imports_once_byte_exact_and_announces_it() {
        let (w, importer, m) = world().await;
        let done = importer.import(&m.id, "m1").await.unwrap();
        let Done::Imported { eml_key, .. } = &done else {
            panic!("{done:?}")
        };
        assert_eq!(&w.blobs.get(eml_key).await.unwrap().unwrap()[..], MIME);
        assert_eq!(w.events.events().len(), 1);
        assert_eq!(importer.import(&m.id, "m1").await.unwrap(), Done::Duplicate);
        assert_eq!(w.graph.calls("mime"), 1);
        assert_eq!(w.events.events().len(), 1);
    }

    #[tokio::test]
    async fn a_message_held_by_another_worker_is_waited_for_then_taken_over() {
        let (w, importer, m) = world().await;
        let ledger = w.services.repos.imports.of(&m.id);
        // Another worker claimed it just now (and may still finish): look again within seconds.
        let now = w.clock.now();
        let held = ImportState::InProgress {
            lease_until: now + importer.settings.import_lease,
            attempts: 1,
        };
        ledger.put("m1", &held, Cond::Absent).await.unwrap();
        match importer.import(&m.id, "m1").await {
            Err(Error::Retry { after: Some(d), .. }) => assert!(d <= Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
        // Held for long, most likely by a crashed worker: wait for the rest of its lease.
        w.clock.advance(chrono::Duration::minutes(1));
        match importer.import(&m.id, "m1").await {
            Err(Error::Retry { after: Some(d), .. }) => assert!(d > Duration::from_secs(200)),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.graph.calls("mime"), 0);
        // The lease ran out: this worker takes the message over, as attempt 2.
        w.clock.advance(chrono::Duration::minutes(5));
        assert!(matches!(
            importer.import(&m.id, "m1").await.unwrap(),
            Done::Imported { .. }
        ));
        assert_eq!(w.graph.calls("mime"), 1);
    }

    #[tokio::test]
    async fn a_claim_of_an_ended_process_is_taken_over_at_once_where_that_is_known() {
        let mut settings = crate::services::Settings::new("https://x");
        settings.token_key_name = "mailbridge/token-key".into();
        let w = FakeWorld::new(settings.clone());
        let m = w.mailbox().await;
        w.graph
            .deliver("user-1", "inbox", "m1", MIME, w.clock.now());
        // Claimed a minute ago by a process that was then killed.
        let claimed = w.clock.now() - chrono::Duration::minutes(1);
        let held = ImportState::InProgress {
            lease_until: claimed + settings.import_lease,
            attempts: 1,
        };
        let ledger = w.services.repos.imports.of(&m.id);
        ledger.put("m1", &held, Cond::Absent).await.unwrap();
        // Not known (AWS): its lease is waited out.
        let importer = w.services.worker(w.blobs.clone()).importer;
        assert!(matches!(
            importer.import(&m.id, "m1").await,
            Err(Error::Retry { .. })
        ));
        // Known (the local runner started after the claim): taken over now, as attempt 2.
        let mut restarted = settings.clone();
        restarted.claims_void_before = Some(w.clock.now() - chrono::Duration::seconds(1));
        let importer = Importer {
            repos: importer.repos.clone(),
            graph: importer.graph.clone(),
            tokens: importer.tokens.clone(),
            blobs: importer.blobs.clone(),
            events: importer.events.clone(),
            clock: importer.clock.clone(),
            settings: restarted,
        };
        assert!(matches!(
            importer.import(&m.id, "m1").await.unwrap(),
            Done::Imported { .. }
        ));
        assert_eq!(w.graph.calls("mime"), 1);
    }

    #[tokio::test]
    async fn a_failure_gives_the_claim_back_at_once() {
        let (w, importer, m) = world().await;
        w.graph.fail_next(
            "mime",
            Error::Throttled {
                after: Duration::from_secs(30),
            },
        );
        assert!(matches!(
            importer.import(&m.id, "m1").await,
            Err(Error::Throttled { .. })
        ));
        let state = w
            .services
            .repos
            .imports
            .of(&m.id)
            .get("m1")
            .await
            .unwrap()
            .unwrap()
            .value;
        assert!(
            matches!(state, ImportState::InProgress { lease_until, attempts: 1 } if lease_until <= w.clock.now())
        );
        assert!(matches!(
            importer.import(&m.id, "m1").await.unwrap(),
            Done::Imported { .. }
        ));
    }

    #[tokio::test]
    async fn too_large_is_refused_once_before_or_during_the_download() {
        let mut settings = crate::services::Settings::new("https://x")
            .with_max_message_mb(1)
            .unwrap();
        settings.token_key_name = "mailbridge/token-key".into();
        let w = FakeWorld::new(settings);
        let m = w.mailbox().await;
        let big = vec![b'x'; 1024 * 1024 + 1];
        w.graph
            .deliver("user-1", "inbox", "big", &big, w.clock.now());
        w.graph
            .deliver("user-1", "inbox", "sly", &big, w.clock.now());
        let worker = w.services.worker(w.blobs.clone());
        // Announced too large: refused before a byte is stored.
        let done = worker.importer.import(&m.id, "big").await.unwrap();
        assert!(matches!(done, Done::Refused(Say::MessageTooLarge { .. })));
        // Announced small (or not at all), found too large on the way: refused too.
        w.graph.announce_length(None);
        let done = worker.importer.import(&m.id, "sly").await.unwrap();
        assert!(matches!(done, Done::Refused(_)), "{done:?}");
        let (eml, _) = object_keys(&m.id, "sly");
        assert!(w.blobs.get(&eml).await.unwrap().is_none());
        assert_eq!(
            worker.importer.import(&m.id, "big").await.unwrap(),
            Done::Duplicate
        );
        assert!(w.events.events().is_empty());
    }

    #[tokio::test]
    async fn an_inactive_mailbox_parks_the_job() {
        let (w, importer, m) = world().await;
        w.services
            .repos
            .mailboxes
            .update(&m.id, |m| {
                let mut m = m?;
                m.enabled = false;
                Some(m)
            })
            .await
            .unwrap();
        let e = importer.import(&m.id, "m1").await.unwrap_err();
        assert_eq!(e.disposition(), crate::Disposition::Park);
        assert_eq!(w.graph.calls("mime"), 0);
    }
}
