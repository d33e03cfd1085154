//! Graph's per-mailbox limits hold when the import scales out: eight independent workers, each
//! with its own in-memory state as separate Lambda containers have, drain a backlog of 2,000
//! messages in one mailbox and 200 more over 50 other mailboxes. The simulator enforces Graph's
//! limits (4 requests at once, a request budget per window, 429 beyond) with the window shortened
//! to make the run short: 10,000 requests per 100 s, six times Graph's rate, and mailbridge holds
//! the same limits scaled alike. Nothing may be throttled, dead-lettered, lost or imported twice.

use mailbridge_core::model::ImportState;
use mailbridge_core::services::pace::GraphLimits;
use mailbridge_local::sample_messages;
use mailbridge_tests::{connect_users, runner};
use std::time::Duration;

const BACKLOG: usize = 2_000;
const OTHERS: usize = 50;
const EACH: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_hold_graphs_limits_on_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |o| {
        o.containers = 8;
        // 10,000 per 100 s with room, a burst of 50: at most 51 + 100 × 99 = 9,951 per window.
        o.graph_limits = GraphLimits {
            concurrency: 4,
            interval: Duration::from_micros(10_101),
            burst: 50,
        };
    })
    .await;
    r.sim.set_limits(|l| {
        l.concurrent = 4;
        l.per_window = 10_000;
        l.window_seconds = 100;
    });
    let upns = connect_users(&r, OTHERS).await;
    let mailboxes = r.services.admin.mailboxes().await.unwrap();
    assert_eq!(mailboxes.len(), OTHERS + 1);

    // The backlog builds while no notification reaches mailbridge; then the sweep finds it all.
    // Every Graph request takes 20 ms, so that four at once is a real limit.
    r.sim.set_faults(|f| {
        f.drop_notifications = true;
        f.graph_latency_ms = 20;
    });
    let samples = sample_messages();
    let mut expected = Vec::new();
    for (i, upn) in upns.iter().enumerate() {
        let n = if i == 0 { BACKLOG } else { EACH };
        for k in 0..n {
            let mime = samples[k % samples.len()].1.clone();
            expected.push((upn.clone(), r.sim.deliver(upn, "inbox", mime).unwrap()));
        }
    }
    r.sim.set_faults(|f| f.drop_notifications = false);
    let mime_before = r.sim.counter("mime");
    let report = r.services.maintenance.run().await.unwrap();
    assert_eq!(report.sweeps_due as usize, OTHERS + 1);

    let by_upn: std::collections::HashMap<String, String> = mailboxes
        .iter()
        .map(|v| (v.mailbox.user_id.clone(), v.mailbox.id.clone()))
        .collect();
    let ids: std::collections::HashMap<String, String> = upns
        .iter()
        .map(|upn| {
            let user = r.sim.world().user_by(upn).unwrap().id.clone();
            (upn.clone(), by_upn[&user].clone())
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let mut imported = 0;
        for (upn, message) in &expected {
            let state = r
                .services
                .repos
                .imports
                .of(&ids[upn])
                .get(message)
                .await
                .unwrap();
            if matches!(state.map(|v| v.value), Some(ImportState::Imported { .. })) {
                imported += 1;
            }
        }
        if imported == expected.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{imported} of {} imported",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(r.sim.counter("throttled"), 0, "Graph had to throttle");
    assert_eq!(
        r.sim.counter("mime") - mime_before,
        expected.len() as u64,
        "a message was fetched more than once"
    );
    assert_eq!(
        r.db.dead_letter_depth().unwrap(),
        0,
        "nothing dead-lettered"
    );
    assert_eq!(r.events.read().unwrap().len(), expected.len());
}
