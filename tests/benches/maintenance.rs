//! The maintenance benchmark: a scheduled round over 10,000 connected mailboxes against the
//! Microsoft 365 simulator with 150 ms added to every Graph call, then the upkeep jobs it queued
//! worked as Lambda works the import queue (concurrent invocations of up to 10 jobs each). Prints
//! the round's time, the jobs' wall time, the longest invocation and the calls made; then a second
//! round, which must find nothing due. See BENCHMARKS.md.
//!
//! `cargo bench -p mailbridge-tests --bench maintenance` (`MAILBRIDGE_MAILBOXES=n` for another
//! count, `MAILBRIDGE_INVOCATIONS=n` for another concurrency).

use mailbridge_core::model::{ConnectionState, FolderChoice, Mailbox, TokenSet};
use mailbridge_core::ports::{Clock, Cond, JobSource, SystemClock};
use mailbridge_core::services::worker::{run_batch, Settlement};
use mailbridge_core::Secret;
use mailbridge_tests::connected;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const GRAPH_LATENCY_MS: u64 = 150;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// The simulator's request counters by endpoint (not per user), between two readings.
fn calls(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        // `graph` sums the mailbox-scoped requests already counted by endpoint.
        .filter(|(k, _)| !k.contains(':') && k.as_str() != "graph")
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Requests to Graph (not to the identity platform's token endpoint).
fn graph_calls(made: &BTreeMap<String, u64>) -> u64 {
    made.iter()
        .filter(|(k, _)| !["token", "authorize", "adminconsent"].contains(&k.as_str()))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::main]
async fn main() {
    let mailboxes = env_or("MAILBRIDGE_MAILBOXES", 10_000);
    // The template's default ImportConcurrency.
    let invocations = env_or("MAILBRIDGE_INVOCATIONS", 50);
    let dir = tempfile::tempdir().unwrap();
    // No import worker in the runner: the benchmark works the queue itself, timing each batch.
    let (r, demo) = connected(dir.path(), |o| {
        o.containers = 0;
        o.maintenance_every = Duration::from_secs(86_400);
    })
    .await;

    // Seed the other mailboxes as if each user had signed in once: the simulator holds their
    // consent and a refresh token, mailbridge their mailbox and sealed token set (the access token
    // long expired). Nothing else: no subscription, no cursor, no upkeep yet, the heaviest round.
    let seeding = Instant::now();
    let tokens = r.services.worker.upkeep.tokens.clone();
    let now = SystemClock.now();
    let scopes: std::collections::BTreeSet<String> = r
        .services
        .repos
        .profile("demo")
        .await
        .unwrap()
        .delegated_scopes()
        .into_iter()
        .collect();
    let grants = {
        let w = r.sim.world();
        w.users[&r.demo.user_id].grants.clone()
    };
    for i in 1..mailboxes {
        let upn = format!("user{i}@{}", r.demo.tenant_domain);
        let user_id = r.sim.add_mailbox(
            &r.demo.tenant_id,
            &upn,
            &format!("User {i}"),
            m365_sim::world::MailboxKind::User,
        );
        let (refresh, inbox) = {
            let mut w = r.sim.world();
            w.users.get_mut(&user_id).unwrap().grants = grants.clone();
            let refresh = m365_sim::world::new_id("1.AAAA");
            w.refresh_tokens.insert(
                refresh.clone(),
                m365_sim::world::RefreshGrant {
                    client_id: r.demo.client_id.clone(),
                    user_id: user_id.clone(),
                    scopes: scopes.clone(),
                    issued_at: now,
                },
            );
            (refresh, w.folder_of(&user_id, "inbox").unwrap().clone())
        };
        let mailbox = Mailbox {
            id: format!("mbx_bench_{i:05}"),
            address: upn.clone(),
            display_name: format!("User {i}"),
            user_id,
            folders: vec![FolderChoice {
                id: inbox.id,
                display_name: inbox.display_name,
            }],
            connection: ConnectionState::Connected,
            created_at: now,
            updated_at: now,
            ..demo.clone()
        };
        r.services
            .repos
            .mailboxes
            .put(&mailbox.id, &mailbox, Cond::Absent)
            .await
            .unwrap();
        let set = TokenSet {
            access_token: Secret::new("expired"),
            expires_at: now - chrono::Duration::hours(2),
            refresh_token: Some(Secret::new(refresh)),
            tenant_id: Some(r.demo.tenant_id.clone()),
            roles: Vec::new(),
        };
        tokens.store(&mailbox.id, &set, Cond::Absent).await.unwrap();
    }
    // The demo mailbox was connected a moment ago: its first round is as heavy as the others'.
    let seeded = seeding.elapsed();
    r.sim.set_faults(|f| f.graph_latency_ms = GRAPH_LATENCY_MS);
    println!(
        "maintenance benchmark: {mailboxes} mailboxes (seeded in {}), Graph latency {GRAPH_LATENCY_MS} ms, \
         {invocations} concurrent invocations of up to 10 jobs",
        secs(seeded)
    );

    let counters = r.sim.counters();
    let started = Instant::now();
    let report = r.services.maintenance.run().await.unwrap();
    let round = started.elapsed();
    println!(
        "round 1: {} (reads and queue sends): {report:?}",
        secs(round)
    );

    // Lambda's SQS trigger: `invocations` pollers, each running one batch of up to 10 at a time.
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let batches = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let working = Instant::now();
    let mut pollers = tokio::task::JoinSet::new();
    for _ in 0..invocations {
        let (db, worker) = (r.db.clone(), r.services.worker.clone());
        let (longest, batches, retried) = (longest.clone(), batches.clone(), retried.clone());
        pollers.spawn(async move {
            loop {
                let batch = db.receive(10, Duration::from_secs(300)).await.unwrap();
                if batch.is_empty() {
                    return;
                }
                let t = Instant::now();
                let settled = run_batch(worker.clone(), batch).await.unwrap();
                let took = t.elapsed();
                batches.fetch_add(1, Ordering::Relaxed);
                {
                    let mut l = longest.lock().unwrap();
                    *l = (*l).max(took);
                }
                for (receipt, s) in settled {
                    if s != Settlement::Ack {
                        retried.fetch_add(1, Ordering::Relaxed);
                    }
                    db.ack(&receipt).await.unwrap();
                }
            }
        });
    }
    while pollers.join_next().await.is_some() {}
    let worked = working.elapsed();
    let made = calls(&counters, &r.sim.counters());
    let graph = graph_calls(&made);
    println!(
        "upkeep jobs: {} in {} batches, wall {}, longest invocation {}, failed {}",
        report.queued,
        batches.load(Ordering::Relaxed),
        secs(worked),
        secs(*longest.lock().unwrap()),
        retried.load(Ordering::Relaxed)
    );
    println!("Graph requests: {graph}; by endpoint, with the token endpoint: {made:?}");

    let upkept = r.services.repos.upkeep.list().await.unwrap().len();
    let subscribed = r.sim.subscription_ids().len();
    println!("mailboxes with upkeep recorded: {upkept}; live subscriptions: {subscribed}");

    let counters = r.sim.counters();
    let started = Instant::now();
    let again = r.services.maintenance.run().await.unwrap();
    println!(
        "round 2: {}: {again:?}; requests {}",
        secs(started.elapsed()),
        calls(&counters, &r.sim.counters()).values().sum::<u64>()
    );
    assert_eq!(again.queued, 0, "the second round found work");
    assert_eq!(upkept, mailboxes, "some mailbox's upkeep was not done");
}
