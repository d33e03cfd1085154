//! Every message exactly once, through what Graph really does: reordered notifications, a
//! `missed` event, a removed subscription, an expired delta token, a move into the chosen folder,
//! a message deleted before import, and throttling with Retry-After.

use mailbridge_core::model::{AlertKind, ImportState};
use mailbridge_local::{sample_messages, Runner};
use mailbridge_tests::{connected, settle, wait_imported};
use std::time::Duration;

fn deliver_all(r: &Runner, n: usize) -> Vec<String> {
    let samples = sample_messages();
    (0..n)
        .map(|i| {
            r.sim
                .deliver(
                    &r.demo.user_upn,
                    "inbox",
                    samples[i % samples.len()].1.clone(),
                )
                .unwrap()
        })
        .collect()
}

fn all_imported(states: &[Option<ImportState>]) -> bool {
    states
        .iter()
        .all(|s| matches!(s, Some(ImportState::Imported { .. })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_batched_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    r.sim.set_faults(|f| f.hold_notifications = true);
    let ids = deliver_all(&r, 5);
    assert_eq!(r.sim.flush_notifications(), 5);
    let states = wait_imported(&r, &mailbox, &ids).await;
    assert!(all_imported(&states), "{states:?}");
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_event_sweeps_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    r.sim.set_faults(|f| f.drop_notifications = true);
    let ids = deliver_all(&r, 3);
    let sub = r.sim.subscription_ids()[0].clone();
    assert!(r.sim.lifecycle(&sub, "missed"));
    let states = wait_imported(&r, &mailbox, &ids).await;
    assert!(all_imported(&states), "{states:?}");
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscription_is_recreated_and_the_folder_swept() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    let old = r.sim.subscription_ids()[0].clone();
    // Graph removes the subscription; mail that arrives meanwhile is not notified.
    assert!(r.sim.lifecycle(&old, "subscriptionRemoved"));
    let during = deliver_all(&r, 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while r.sim.subscription_ids().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let subs = r.sim.subscription_ids();
    assert_eq!(subs.len(), 1);
    assert_ne!(subs[0], old);
    // The sweep that follows finds what arrived meanwhile, then notifications work again.
    r.services.maintenance.run().await.unwrap();
    let mut ids = during;
    ids.extend(deliver_all(&r, 1));
    let states = wait_imported(&r, &mailbox, &ids).await;
    assert!(all_imported(&states), "{states:?}");
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_delta_token_restarts_the_folder_without_reimporting() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    let first = deliver_all(&r, 2);
    assert!(all_imported(&wait_imported(&r, &mailbox, &first).await));
    settle(&r).await;
    r.sim.set_faults(|f| f.drop_notifications = true);
    let second = deliver_all(&r, 2);
    r.sim.expire_delta_tokens(&r.demo.user_upn);
    r.services.maintenance.run().await.unwrap();
    let states = wait_imported(&r, &mailbox, &second).await;
    assert!(all_imported(&states), "{states:?}");
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 4, "nothing was fetched twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_moved_into_the_chosen_folder_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    let (_, mime) = sample_messages().remove(0);
    let id = r.sim.deliver(&r.demo.user_upn, "junkemail", mime).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    r.sim.move_message(&r.demo.user_upn, &id, "inbox").unwrap();
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    assert!(all_imported(&states), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_before_import_is_recorded_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    r.sim.set_faults(|f| f.hold_notifications = true);
    let ids = deliver_all(&r, 2);
    r.sim.delete_message(&r.demo.user_upn, &ids[0]).unwrap();
    r.sim.flush_notifications();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = |id: String| {
            let imports = r.services.repos.imports.clone();
            let mailbox = mailbox.clone();
            async move {
                imports
                    .of(&mailbox)
                    .get(&id)
                    .await
                    .unwrap()
                    .map(|v| v.value)
            }
        };
        let gone = state(ids[0].clone()).await;
        let kept = state(ids[1].clone()).await;
        if matches!(gone, Some(ImportState::Gone { .. }))
            && matches!(kept, Some(ImportState::Imported { .. }))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{gone:?} {kept:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_by_retry_after_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    // Three requests per two seconds for this app on this mailbox.
    r.sim.set_limits(|l| {
        l.per_window = 3;
        l.window_seconds = 2;
    });
    // And a run of 429s first: the alert waits for three in a row (THROTTLED_IN_A_ROW), which
    // the window alone gives or not depending on timing; the sweep after it follows the alert.
    r.sim.set_faults(|f| {
        f.graph_errors = 6;
        f.graph_error_status = 429;
    });
    r.sim.world().usage.clear();
    r.sim.reset_counters();
    let ids = deliver_all(&r, 8);
    let states = wait_imported(&r, &mailbox, &ids).await;
    assert!(all_imported(&states), "{states:?}");
    settle(&r).await;
    assert!(r.sim.counter("throttled") > 0, "the limit was reached");
    assert_eq!(r.sim.counter("mime"), 8, "each message fetched once");
    // The backlog over, the throttling alert is gone and the mailbox was swept for anything a
    // notification missed meanwhile.
    assert!(r.sim.counter("delta") > 0, "a sweep after the throttling");
    let health = r.services.admin.mailbox(&mailbox).await.unwrap().health;
    assert!(
        !health.alerts.iter().any(|a| a.kind == AlertKind::Throttled),
        "{:?}",
        health.alerts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_storing_the_mime_and_the_record_is_imported_once_on_retry() {
    use mailbridge_core::model::{Job, Origin};
    use mailbridge_core::ports::Cond;
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    r.sim.set_faults(|f| f.drop_notifications = true);
    let (_, mime) = sample_messages().remove(0);
    let id = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", mime.clone())
        .unwrap();
    // What a worker that died after writing the .eml leaves: the object, and a claim whose lease
    // has run out.
    let (eml_key, _) = mailbridge_core::services::import::object_keys(&mailbox, &id);
    let eml_path = r.data_dir().join("store").join(&eml_key);
    std::fs::create_dir_all(eml_path.parent().unwrap()).unwrap();
    std::fs::write(&eml_path, &mime).unwrap();
    let lapsed = ImportState::InProgress {
        lease_until: chrono::Utc::now() - chrono::Duration::seconds(1),
        attempts: 1,
    };
    r.services
        .repos
        .imports
        .of(&mailbox)
        .put(&id, &lapsed, Cond::Absent)
        .await
        .unwrap();
    // The job comes back (SQS redelivery) and runs twice more, as duplicates may.
    let job = Job::Import {
        mailbox_id: mailbox.clone(),
        message_id: id.clone(),
        origin: Origin::Notification,
        queued_at: None,
    };
    r.services.worker.run(&job).await.unwrap();
    r.services.worker.run(&job).await.unwrap();
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    assert!(all_imported(&states), "{states:?}");
    assert_eq!(std::fs::read(&eml_path).unwrap(), mime.to_vec());
    assert_eq!(r.sim.counter("mime"), 1, "fetched again once, by the retry");
    let health = r.services.admin.mailbox(&mailbox).await.unwrap().health;
    assert_eq!(health.imported, 1);
}
