//! Change notifications and lifecycle events, POSTed to subscribers as Graph does: batched in
//! `value`, retried when the endpoint fails or takes longer than 3 s; with injectable drops,
//! duplicates, delays and reordering.

use crate::graph::time;
use crate::world::*;
use crate::{Faults, Shared};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Graph gives up on a notification POST after this long and counts it as failed.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);

fn change_notification(sub: &Subscription, m: &Message) -> Value {
    let id = m.id_for(sub.immutable_ids);
    let resource = format!("Users/{}/Messages/{id}", sub.user_id);
    json!({
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": time(sub.expiration_date_time),
        "changeType": "created",
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": format!("W/\"{}\"", m.change_key),
            "id": id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    })
}

/// Notifies every subscription that covers a new message in a folder.
pub fn message_created(sim: &Shared, user_id: &str, folder_id: &str, message_id: &str) {
    let (subs, message) = {
        let w = sim.world.lock().unwrap();
        (
            w.subscriptions_for(user_id, folder_id),
            w.messages.get(message_id).cloned(),
        )
    };
    let Some(message) = message else { return };
    let faults = sim.faults.lock().unwrap().clone();
    for sub in subs {
        if faults.drop_notifications
            || Faults::draw(faults.notification_drop_rate)
            || sub.needs_reauth
        {
            sim.world
                .lock()
                .unwrap()
                .count("notifications_dropped", Some(user_id));
            continue;
        }
        let item = change_notification(&sub, &message);
        if faults.hold_notifications {
            sim.held
                .lock()
                .unwrap()
                .push((sub.notification_url.clone(), item));
            continue;
        }
        let twice =
            faults.duplicate_notifications || Faults::draw(faults.notification_duplicate_rate);
        for _ in 0..if twice { 2 } else { 1 } {
            let late = Faults::draw(faults.notification_delay_rate).then(|| {
                Duration::from_millis(
                    rand::random::<u64>() % faults.notification_delay_max_ms.max(1),
                )
            });
            post_after(
                sim.clone(),
                sub.notification_url.clone(),
                json!({"value": [item.clone()]}),
                late.unwrap_or_default(),
            );
        }
    }
}

/// Sends the held notifications, one batch per endpoint, newest first (reordered).
pub fn flush(sim: &Shared) -> usize {
    let held = std::mem::take(&mut *sim.held.lock().unwrap());
    let n = held.len();
    let mut batches: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (url, item) in held.into_iter().rev() {
        batches.entry(url).or_default().push(item);
    }
    for (url, items) in batches {
        post(sim.clone(), url, json!({ "value": items }));
    }
    n
}

/// Sends a lifecycle event (`missed`, `subscriptionRemoved`, `reauthorizationRequired`, or any
/// other name). `subscriptionRemoved` deletes the subscription; `reauthorizationRequired` holds
/// back its notifications until it is reauthorized or renewed.
pub fn lifecycle(sim: &Shared, subscription_id: &str, event: &str) -> bool {
    let sub = {
        let mut w = sim.world.lock().unwrap();
        let Some(sub) = w.subscriptions.get_mut(subscription_id) else {
            return false;
        };
        if event == "reauthorizationRequired" {
            sub.needs_reauth = true;
        }
        let sub = sub.clone();
        if event == "subscriptionRemoved" {
            w.subscriptions.remove(subscription_id);
        }
        sub
    };
    let Some(url) = sub.lifecycle_notification_url.clone() else {
        return false;
    };
    let body = json!({"value": [{
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": time(sub.expiration_date_time),
        "tenantId": sub.tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }]});
    post(sim.clone(), url, body);
    true
}

fn post(sim: Shared, url: String, body: Value) {
    post_after(sim, url, body, Duration::ZERO)
}

/// POSTs in the background, `late` after the configured delay; answers slower than 3 s or not 2xx
/// are retried, as Graph retries (Graph for up to 4 hours; the simulator a few times, quickly).
fn post_after(sim: Shared, url: String, body: Value, late: Duration) {
    tokio::spawn(async move {
        let (retries, delay) = {
            let f = sim.faults.lock().unwrap();
            (f.notification_retries, f.notification_delay_ms)
        };
        let wait = Duration::from_millis(delay) + late;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        for attempt in 0..=retries {
            let sent = sim
                .http
                .post(&url)
                .json(&body)
                .timeout(DELIVERY_TIMEOUT)
                .send()
                .await;
            let ok = matches!(&sent, Ok(r) if r.status().is_success());
            sim.world.lock().unwrap().count(
                if ok {
                    "notifications_delivered"
                } else {
                    "notifications_failed"
                },
                None,
            );
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200 * (u64::from(attempt) + 1))).await;
        }
    });
}
