//! Connections as administrators run them (issue 12), against the simulator through the admin
//! API: test and enable, check by check, with what to do when a check fails; a profile's
//! mailboxes tested in the background.

use m365_sim::world::MailboxKind as SimKind;
use mailbridge_core::fakes::ShiftedClock;
use mailbridge_local::Runner;
use mailbridge_tests::connected;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// An admin API call: status and JSON answer.
async fn admin(r: &Runner, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", r.base_url);
    let req = match method {
        "GET" => http.get(url),
        "PUT" => http.put(url),
        _ => http.post(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let resp = req
        .bearer_auth(r.admin_token.expose())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The result of each check, by name, and the failed checks' sentences.
fn results(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn action_of(report: &Value, check: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == check)
        .and_then(|c| c["action"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn expect(report: &Value, want: &[(&str, &str)]) {
    let got = results(report);
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_and_enable_says_what_fails_and_what_to_do_then_enables() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let (r, mailbox) = connected(dir.path(), |o| o.clock = clock.clone()).await;
    let id = mailbox.id.clone();
    let upn = r.demo.user_upn.clone();
    let test = format!("/admin/mailboxes/{id}/test");

    // All well: every check passes, the subscription is live.
    let (status, ok) = admin(&r, "POST", &test, None).await;
    assert_eq!(status, 200, "{ok}");
    expect(
        &ok,
        &[
            ("token", "passed"),
            ("mailbox", "passed"),
            ("folders", "passed"),
            ("approval", "passed"),
            ("notifications", "passed"),
        ],
    );
    assert_eq!(ok["passed"], true);
    assert!(ok["checks"][4]["detail"]
        .as_str()
        .unwrap()
        .starts_with("1 subscription live"));

    // Not approved: the approval check fails and says who acts; notifications wait for it.
    r.services.admin.set_approved(&id, false).await.unwrap();
    let (_, report) = admin(&r, "POST", &test, None).await;
    expect(
        &report,
        &[
            ("token", "passed"),
            ("mailbox", "passed"),
            ("folders", "passed"),
            ("approval", "failed"),
            ("notifications", "skipped"),
        ],
    );
    assert!(action_of(&report, "approval").contains("administrator must approve"));
    r.services.admin.set_approved(&id, true).await.unwrap();

    // A chosen folder deleted in Outlook: choose the folders again.
    let sub = r.sim.add_folder(&upn, "inbox", "Projets").unwrap();
    r.services
        .admin
        .set_folders(&id, &["inbox".to_string(), sub.clone()])
        .await
        .unwrap();
    r.sim.world().folders.remove(&sub);
    let (_, report) = admin(&r, "POST", &test, None).await;
    assert_eq!(results(&report)[2], ("folders".into(), "failed".into()));
    assert_eq!(
        action_of(&report, "folders"),
        "The folder 'Projets' was deleted or moved: choose the folders again."
    );
    assert_eq!(report["passed"], false);
    r.services
        .admin
        .set_folders(&id, &["inbox".to_string()])
        .await
        .unwrap();

    // Graph cannot reach mailbridge's notification URL: a new folder gets no subscription.
    r.sim.set_faults(|f| f.endpoint_unreachable = true);
    let _ = r
        .services
        .admin
        .set_folders(&id, &["inbox".to_string(), "sentitems".to_string()])
        .await;
    let (_, report) = admin(&r, "POST", &test, None).await;
    assert_eq!(
        results(&report)[4],
        ("notifications".into(), "failed".into()),
        "{report:#}"
    );
    assert!(
        action_of(&report, "notifications").contains("public URL is reachable"),
        "{report:#}"
    );
    r.sim.set_faults(|f| f.endpoint_unreachable = false);
    let (_, report) = admin(&r, "POST", &test, None).await;
    assert_eq!(report["passed"], true, "{report:#}");
    assert!(report["checks"][4]["detail"]
        .as_str()
        .unwrap()
        .starts_with("2 subscriptions live"));

    // No Exchange Online licence: Graph's MailboxNotEnabledForRESTAPI, and what to do.
    r.sim.set_user(&upn, |u| u.kind = SimKind::Unlicensed);
    let (_, report) = admin(&r, "POST", &test, None).await;
    expect(
        &report,
        &[
            ("token", "passed"),
            ("mailbox", "failed"),
            ("folders", "skipped"),
            ("approval", "passed"),
            ("notifications", "skipped"),
        ],
    );
    assert!(action_of(&report, "mailbox").contains("Exchange Online licence"));
    r.sim.set_user(&upn, |u| u.kind = SimKind::User);

    // The grant revoked: no token; sign in again.
    clock.advance(chrono::Duration::minutes(61));
    r.sim.revoke(&upn);
    let (_, report) = admin(&r, "POST", &test, None).await;
    assert_eq!(results(&report)[0], ("token".into(), "failed".into()));
    assert!(action_of(&report, "token").starts_with("Sign in again"));
    assert_eq!(results(&report)[1], ("mailbox".into(), "skipped".into()));
    // The report is kept on the mailbox.
    let view = r.services.admin.mailbox(&id).await.unwrap();
    assert!(!view.health.last_test.as_ref().unwrap().passed);

    // Signed in again, disabled: test and enable tests, enables, and the import follows.
    assert_eq!(r.connect_demo_mailbox().await.unwrap().0, 200);
    r.services.admin.set_enabled(&id, false).await.unwrap();
    let (status, report) = admin(
        &r,
        "POST",
        &format!("/admin/mailboxes/{id}/test-and-enable"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["passed"].as_bool(), report["enabled"].as_bool()),
        (Some(true), Some(true)),
        "{report:#}"
    );
    assert!(r.services.admin.mailbox(&id).await.unwrap().mailbox.enabled);
    let (_, mime) = mailbridge_local::sample_messages().remove(0);
    let msg = r.sim.deliver(&upn, "inbox", mime).unwrap();
    let states = mailbridge_tests::wait_imported(&r, &id, &[msg]).await;
    assert!(states[0].is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mailbox_of_a_profile_is_tested_in_the_background_with_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (r, first) = connected(dir.path(), |_| {}).await;
    let others = mailbridge_tests::connect_users(&r, 2).await;
    // One of them lost its licence; one is disabled, to be enabled by the run.
    let unlicensed = others[1].clone();
    r.sim
        .set_user(&unlicensed, |u| u.kind = SimKind::Unlicensed);
    r.services
        .admin
        .set_enabled(&first.id, false)
        .await
        .unwrap();

    let (status, run) = admin(
        &r,
        "POST",
        "/admin/profiles/demo/test",
        Some(json!({"enable": true})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["mailboxes"].as_array().unwrap().len(), 3);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let progress = loop {
        let (status, p) = admin(&r, "GET", "/admin/profiles/demo/test", None).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["id"], run["id"]);
        if p["done"] == 3 {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "{p:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (progress["passed"].as_u64(), progress["failed"].as_u64()),
        (Some(2), Some(1)),
        "{progress:#}"
    );
    let failed = progress["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["passed"] == false)
        .unwrap();
    assert_eq!(
        failed["address"].as_str().unwrap(),
        unlicensed.to_lowercase()
    );
    assert_eq!(failed["failed"][0]["check"], "mailbox");
    assert!(failed["failed"][0]["action"]
        .as_str()
        .unwrap()
        .contains("licence"));
    assert!(
        r.services
            .admin
            .mailbox(&first.id)
            .await
            .unwrap()
            .mailbox
            .enabled
    );
    // A profile with no run yet, or unknown: 404.
    let (status, _) = admin(&r, "GET", "/admin/profiles/nope/test", None).await;
    assert_eq!(status, 404);
}
