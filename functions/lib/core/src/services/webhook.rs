//! Intake of Graph change notifications and lifecycle events: check, persist, answer. Never calls
//! Graph, so that it answers well within Graph's 3 seconds.

use crate::crypto::sha256_hex;
use crate::model::*;
use crate::ports::JobQueue;
use crate::repo::Repo;
use crate::secret::ct_eq;
use crate::{Error, Result};
use serde::Deserialize;
use std::sync::Arc;

/// Longest validation token echoed back (Graph's are far shorter).
pub const MAX_VALIDATION_TOKEN: usize = 1024;
/// Largest notification body read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most notifications accepted in one POST.
pub const MAX_ITEMS: usize = 1000;

/// The answer to Graph's validation handshake: the URL-decoded token, within limits.
pub fn validation_answer(token: &str) -> Result<&str> {
    if token.is_empty() || token.len() > MAX_VALIDATION_TOKEN {
        return Err(Error::Invalid("validation token empty or too long".into()));
    }
    Ok(token)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<ResourceData>,
    #[serde(default)]
    lifecycle_event: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResourceData {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    value: Vec<serde_json::Value>,
}

/// What one POST came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Jobs persisted.
    pub queued: usize,
    /// Notifications dropped: unknown subscription, wrong clientState, malformed item.
    pub dropped: usize,
    /// Lifecycle events among them.
    pub lifecycle: usize,
    /// Why they were dropped, and the first subscription id each reason named (kept for the
    /// one log line a POST makes, however many items it carries).
    pub why: Dropped,
}

/// The notifications of one POST that were dropped, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub malformed: usize,
    pub unknown_subscription: usize,
    pub client_state: usize,
    pub no_message: usize,
    pub unknown_lifecycle: usize,
    /// The first subscription id named by a dropped item.
    pub first: Option<String>,
}

impl Dropped {
    fn note(&mut self, subscription: &str) {
        if self.first.is_none() {
            self.first = Some(subscription.to_string());
        }
    }
}

pub struct Webhook {
    pub subscriptions: Repo<SubscriptionRecord>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn crate::ports::Clock>,
}

impl Webhook {
    /// The webhook reads subscriptions (and nothing else) and sends jobs.
    pub fn new(
        store: Arc<dyn crate::ports::StateStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn crate::ports::Clock>,
    ) -> Self {
        Self {
            subscriptions: Repo::new(store),
            queue,
            clock,
        }
    }

    /// Checks every notification of a POST and persists the work they call for in one send.
    /// `Err(Invalid)` for a body that is not a notification collection (answer 4xx, nothing queued);
    /// any other error means nothing could be persisted (answer 5xx so that Graph retries).
    pub async fn intake(&self, body: &[u8]) -> Result<Intake> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::invalid(format!("body over {MAX_BODY_BYTES} bytes")));
        }
        let envelope: Envelope = serde_json::from_slice(body)
            .map_err(|e| Error::invalid(format!("not a notification collection: {e}")))?;
        if envelope.value.len() > MAX_ITEMS {
            return Err(Error::invalid(format!(
                "more than {MAX_ITEMS} notifications in one request"
            )));
        }
        let mut out = Intake::default();
        let mut jobs = Vec::new();
        for raw in envelope.value {
            let Ok(n) = serde_json::from_value::<Notification>(raw) else {
                out.dropped += 1;
                out.why.malformed += 1;
                continue;
            };
            let Some(sub) = self
                .subscriptions
                .get(&n.subscription_id)
                .await?
                .map(|v| v.value)
            else {
                out.dropped += 1;
                out.why.unknown_subscription += 1;
                out.why.note(&n.subscription_id);
                continue;
            };
            let presented = n
                .client_state
                .as_deref()
                .map(|c| sha256_hex(c.as_bytes()))
                .unwrap_or_default();
            if !ct_eq(presented.as_bytes(), sub.client_state_sha256.as_bytes()) {
                out.dropped += 1;
                out.why.client_state += 1;
                out.why.note(&sub.id);
                continue;
            }
            if let Some(event) = n.lifecycle_event.as_deref() {
                out.lifecycle += 1;
                match lifecycle_job(&sub, event) {
                    Some(job) => jobs.push(job),
                    None => {
                        out.why.unknown_lifecycle += 1;
                        out.why.note(&sub.id);
                    }
                }
                continue;
            }
            let id = n
                .resource_data
                .and_then(|d| d.id)
                .or_else(|| n.resource.as_deref().and_then(message_id_of));
            match (n.change_type.as_deref(), id) {
                (Some("created" | "updated"), Some(message_id)) => jobs.push(Job::Import {
                    mailbox_id: sub.mailbox_id.clone(),
                    message_id,
                    origin: Origin::Notification,
                    queued_at: Some(self.clock.now()),
                }),
                (Some("deleted"), _) => {}
                _ => {
                    out.dropped += 1;
                    out.why.no_message += 1;
                    out.why.note(&sub.id);
                }
            }
        }
        if !jobs.is_empty() {
            self.queue.send(&jobs).await?;
        }
        out.queued = jobs.len();
        let w = &out.why;
        if out.dropped + w.unknown_lifecycle > 0 {
            // One line per POST, however many items it carried.
            tracing::warn!(
                malformed = w.malformed,
                unknown_subscription = w.unknown_subscription,
                client_state_mismatch = w.client_state,
                no_message = w.no_message,
                unknown_lifecycle_event = w.unknown_lifecycle,
                first_subscription = w.first.as_deref().unwrap_or(""),
                queued = out.queued,
                "dropped notifications"
            );
        }
        Ok(out)
    }
}

/// How the webhook answers one request to `/notifications` or `/lifecycle`, whatever carries it
/// (API Gateway to Lambda, a `wasi:http` host to the component): the one place that decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Graph's validation handshake: 200, `text/plain`, the URL-decoded token.
    Validation(String),
    /// A validation token empty or too long: 400.
    BadValidation,
    /// A body that is not JSON: 415.
    NotJson,
    /// Checked, and the work persisted: 202.
    Accepted(Intake),
    /// A body that is not a notification collection: 400, nothing queued.
    Rejected,
    /// Nothing could be persisted: 503, so that Graph sends the notifications again.
    Unavailable,
}

impl Reply {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Validation(_) => 200,
            Reply::Accepted(_) => 202,
            Reply::BadValidation | Reply::Rejected => 400,
            Reply::NotJson => 415,
            Reply::Unavailable => 503,
        }
    }

    /// The answer's body and its content type: only the handshake has one.
    pub fn body(&self) -> Option<(&'static str, &str)> {
        match self {
            Reply::Validation(token) => Some(("text/plain; charset=utf-8", token)),
            _ => None,
        }
    }
}

impl Webhook {
    /// One request: `validation_token` is the query's `validationToken`, URL-decoded;
    /// `content_type` the request's header. Logs what it came to, one line.
    pub async fn reply(
        &self,
        validation_token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Reply {
        if let Some(token) = validation_token {
            return match validation_answer(token) {
                Ok(t) => Reply::Validation(t.to_string()),
                Err(_) => Reply::BadValidation,
            };
        }
        let json = content_type.is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if !json {
            return Reply::NotJson;
        }
        match self.intake(body).await {
            Ok(out) => {
                tracing::info!(
                    queued = out.queued,
                    dropped = out.dropped,
                    lifecycle = out.lifecycle,
                    "notifications accepted"
                );
                Reply::Accepted(out)
            }
            Err(Error::Invalid(why)) => {
                tracing::warn!(why = %why, "rejected a notification body");
                Reply::Rejected
            }
            Err(e) => {
                tracing::error!(error = %e, "could not persist notifications");
                Reply::Unavailable
            }
        }
    }
}

/// What a lifecycle event calls for: a sweep after `missed`; after `subscriptionRemoved` or
/// `reauthorizationRequired`, a new or renewed subscription and then a sweep.
fn lifecycle_job(sub: &SubscriptionRecord, event: &str) -> Option<Job> {
    Some(match Reason::of_lifecycle(event)? {
        reason @ Reason::Missed => Job::Sweep {
            mailbox_id: sub.mailbox_id.clone(),
            folder_id: Some(sub.folder_id.clone()),
            reason,
        },
        reason => Job::Resubscribe {
            mailbox_id: sub.mailbox_id.clone(),
            folder_id: sub.folder_id.clone(),
            reason,
        },
    })
}

/// The message id at the end of a notification's `resource` (`Users/{u}/Messages/{id}`).
fn message_id_of(resource: &str) -> Option<String> {
    let lower = resource.to_ascii_lowercase();
    let at = lower.rfind("messages/")?;
    let id = &resource[at + "messages/".len()..];
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryQueue, InMemoryStateStore};
    use crate::ports::Cond;
    use chrono::Utc;

    async fn webhook() -> (Webhook, Arc<InMemoryQueue>) {
        let store = Arc::new(InMemoryStateStore::default());
        let subscriptions: Repo<SubscriptionRecord> = Repo::new(store);
        let sub = SubscriptionRecord {
            id: "sub-1".into(),
            mailbox_id: "mbx_1".into(),
            folder_id: "inbox-id".into(),
            resource: "users/u/mailFolders('inbox-id')/messages".into(),
            client_state_sha256: sha256_hex(b"secretClientValue"),
            expires_at: Utc::now(),
        };
        subscriptions
            .put("sub-1", &sub, Cond::Absent)
            .await
            .unwrap();
        let queue = Arc::new(InMemoryQueue::default());
        (
            Webhook {
                subscriptions,
                queue: queue.clone(),
                clock: Arc::new(crate::ports::SystemClock),
            },
            queue,
        )
    }

    fn note(sub: &str, state: &str, id: &str) -> serde_json::Value {
        serde_json::json!({
            "subscriptionId": sub, "clientState": state, "changeType": "created",
            "resource": format!("Users/u/Messages/{id}"), "tenantId": "t",
            "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": id}
        })
    }

    #[tokio::test]
    async fn queues_good_notifications_and_drops_the_rest() {
        let (w, q) = webhook().await;
        let body = serde_json::json!({"value": [
            note("sub-1", "secretClientValue", "m1"),
            note("sub-1", "wrong", "m2"),
            note("sub-404", "secretClientValue", "m3"),
            {"nonsense": true},
        ]});
        let out = w.intake(body.to_string().as_bytes()).await.unwrap();
        assert_eq!(
            out,
            Intake {
                queued: 1,
                dropped: 3,
                lifecycle: 0,
                why: Dropped {
                    malformed: 1,
                    unknown_subscription: 1,
                    client_state: 1,
                    first: Some("sub-1".into()),
                    ..Dropped::default()
                }
            }
        );
        let jobs = q.jobs();
        assert_eq!(jobs.len(), 1);
        assert!(matches!(
            &jobs[0],
            Job::Import { mailbox_id, message_id, origin: Origin::Notification, queued_at: Some(_) }
                if mailbox_id == "mbx_1" && message_id == "m1"
        ));
    }

    #[tokio::test]
    async fn documented_sample_parses() {
        let (w, q) = webhook().await;
        let mut sample: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../../tests/fixtures/graph/notification-created.json"
        ))
        .unwrap();
        sample["value"][0]["subscriptionId"] = "sub-1".into();
        let out = w.intake(sample.to_string().as_bytes()).await.unwrap();
        assert_eq!(out.queued, 1);
        assert!(
            matches!(&q.jobs()[0], Job::Import { message_id, .. } if message_id == "{long_id_string}")
        );
    }

    #[tokio::test]
    async fn lifecycle_events_become_jobs() {
        let (w, q) = webhook().await;
        let body = serde_json::json!({"value": [
            {"subscriptionId": "sub-1", "clientState": "secretClientValue", "lifecycleEvent": "missed", "tenantId": "t"},
            {"subscriptionId": "sub-1", "clientState": "secretClientValue", "lifecycleEvent": "subscriptionRemoved"},
            {"subscriptionId": "sub-1", "clientState": "secretClientValue", "lifecycleEvent": "somethingNew"},
        ]});
        let out = w.intake(body.to_string().as_bytes()).await.unwrap();
        assert_eq!(out.lifecycle, 3);
        let jobs = q.jobs();
        assert_eq!(jobs.len(), 2);
        assert!(matches!(
            &jobs[0],
            Job::Sweep {
                reason: Reason::Missed,
                ..
            }
        ));
        assert!(matches!(
            &jobs[1],
            Job::Resubscribe {
                reason: Reason::SubscriptionRemoved,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn garbage_is_invalid_and_queues_nothing() {
        let (w, q) = webhook().await;
        for body in [&b"not json"[..], b"{}", b"{\"value\": 3}", &[0xff, 0xfe]] {
            assert!(matches!(w.intake(body).await, Err(Error::Invalid(_))));
        }
        assert!(q.jobs().is_empty());
    }

    #[tokio::test]
    async fn every_answer_is_decided_by_reply() {
        let (w, q) = webhook().await;
        let json = Some("Application/JSON; charset=utf-8");
        let good = serde_json::json!({"value": [note("sub-1", "secretClientValue", "m1")]});
        let good = good.to_string();

        // The handshake answers whatever the body, without reading it.
        let token = "Validation: Testing client application reachability <&>";
        let reply = w.reply(Some(token), None, b"ignored").await;
        assert_eq!(reply, Reply::Validation(token.into()));
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.body(), Some(("text/plain; charset=utf-8", token)));
        let long = "x".repeat(MAX_VALIDATION_TOKEN + 1);
        for bad in ["", long.as_str()] {
            let reply = w.reply(Some(bad), json, good.as_bytes()).await;
            assert_eq!((reply.status(), reply.body()), (400, None));
        }

        assert_eq!(w.reply(None, None, good.as_bytes()).await.status(), 415);
        assert_eq!(
            w.reply(None, Some("text/plain"), good.as_bytes())
                .await
                .status(),
            415
        );
        assert_eq!(
            w.reply(None, json, b"{\"value\": 3}").await,
            Reply::Rejected
        );
        assert!(q.jobs().is_empty(), "nothing queued from a refused request");

        let reply = w.reply(None, json, good.as_bytes()).await;
        assert!(
            matches!(&reply, Reply::Accepted(Intake { queued: 1, .. })),
            "{reply:?}"
        );
        assert_eq!((reply.status(), reply.body()), (202, None));

        // Nothing persisted: 503, so that Graph sends it again.
        q.refuse(true);
        assert_eq!(
            w.reply(None, json, good.as_bytes()).await,
            Reply::Unavailable
        );
        assert_eq!(Reply::Unavailable.status(), 503);
        assert_eq!(q.jobs().len(), 1);
    }

    #[test]
    fn message_id_from_resource() {
        assert_eq!(
            message_id_of("Users/u/Messages/AAMk=").as_deref(),
            Some("AAMk=")
        );
        assert_eq!(message_id_of("users/u/messages/x").as_deref(), Some("x"));
        assert_eq!(message_id_of("users/u/mailFolders('i')/messages"), None);
        assert!(validation_answer("").is_err());
        assert!(validation_answer(&"x".repeat(2000)).is_err());
        assert_eq!(validation_answer("<script>").unwrap(), "<script>");
    }
}
