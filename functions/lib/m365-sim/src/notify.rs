//! Change notifications and lifecycle events, POSTed to subscribers as Graph does.

use crate::graph::time;
use crate::world::*;
use crate::Shared;
use serde_json::{json, Value};
use std::time::Duration;

fn change_notification(sub: &Subscription, message_id: &str, change_key: &str) -> Value {
    let resource = format!("Users/{}/Messages/{message_id}", sub.user_id);
    json!({
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": time(sub.expiration_date_time),
        "changeType": "created",
        "resource": resource,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": format!("W/\"{change_key}\""),
            "id": message_id,
        },
        "clientState": sub.client_state,
        "tenantId": sub.tenant_id,
    })
}

/// Notifies every subscription that covers a new message in a folder.
pub fn message_created(sim: &Shared, user_id: &str, folder_id: &str, message_id: &str) {
    let (subs, change_key) = {
        let w = sim.world.lock().unwrap();
        let key = w
            .messages
            .get(message_id)
            .map(|m| m.change_key.clone())
            .unwrap_or_default();
        (w.subscriptions_for(user_id, folder_id), key)
    };
    let faults = sim.faults.lock().unwrap().clone();
    for sub in subs {
        if faults.drop_notifications {
            sim.world
                .lock()
                .unwrap()
                .count("notifications_dropped", Some(user_id));
            continue;
        }
        let body = json!({"value": [change_notification(&sub, message_id, &change_key)]});
        let copies = if faults.duplicate_notifications { 2 } else { 1 };
        for _ in 0..copies {
            post(sim.clone(), sub.notification_url.clone(), body.clone());
        }
    }
}

/// Sends a lifecycle event (`missed`, `subscriptionRemoved`, `reauthorizationRequired`).
pub fn lifecycle(sim: &Shared, subscription_id: &str, event: &str) -> bool {
    let sub = {
        let mut w = sim.world.lock().unwrap();
        let Some(sub) = w.subscriptions.get(subscription_id).cloned() else {
            return false;
        };
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

/// POSTs in the background; answers slower than 3 s or not 2xx are retried, as Graph retries
/// (Graph for up to 4 hours; the simulator a few times, quickly).
fn post(sim: Shared, url: String, body: Value) {
    tokio::spawn(async move {
        let retries = sim.faults.lock().unwrap().notification_retries;
        for attempt in 0..=retries {
            let sent = sim
                .http
                .post(&url)
                .json(&body)
                .timeout(Duration::from_secs(3))
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
