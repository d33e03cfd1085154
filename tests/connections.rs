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

/// The demo profile as the admin API takes it.
async fn demo_profile(r: &Runner) -> Value {
    let profiles = r.services.admin.profiles().await.unwrap();
    serde_json::to_value(profiles.into_iter().find(|p| p.id == "demo").unwrap()).unwrap()
}

/// An organisation-wide profile over the demo tenant's app registration (application
/// permissions, the demo profile's secret).
async fn org_profile(r: &Runner) -> Value {
    let mut p = demo_profile(r).await;
    p["id"] = "org".into();
    p["name"] = "Contoso (organisation)".into();
    p["auth"] = "application".into();
    p["tenant"] = r.demo.tenant_id.clone().into();
    p["is_default"] = false.into();
    let (status, answer) = admin(r, "PUT", "/admin/profiles/org", Some(p.clone())).await;
    assert_eq!(status, 200, "{answer}");
    p
}

/// The administrator's browser through `/admin-consent`: the final page's status and text.
async fn consent(r: &Runner) -> (u16, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    mailbridge_local::follow_sign_in(
        &browser,
        format!("{}/admin-consent?profile=org", r.base_url),
    )
    .await
    .unwrap()
}

/// The demo tenant's administrator consents to the `org` profile, which then adds the demo
/// user's mailbox by address: connected at once. Its id.
async fn consent_and_add_the_demo_user(r: &Runner) -> String {
    r.sim.sign_in_as(Some(&r.demo.user_upn));
    assert_eq!(consent(r).await.0, 200);
    let (status, added) = admin(
        r,
        "POST",
        "/admin/profiles/org/mailboxes",
        Some(json!({"addresses": [r.demo.user_upn]})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(state_of(&added[0]), "connected", "{added}");
    added[0]["id"].as_str().unwrap().to_string()
}

fn state_of(m: &Value) -> String {
    m["connection"]["state"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_consent_then_user_and_shared_mailboxes_with_push_propagation_and_scope() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let r = mailbridge_tests::runner(dir.path(), |o| o.clock = clock.clone()).await;
    let tenant = r.demo.tenant_id.clone();
    let domain = r.demo.tenant_domain.clone();
    let user = r.demo.user_upn.clone();
    let shared = format!("support@{domain}");
    let outsider = format!("direction@{domain}");
    r.sim
        .add_mailbox(&tenant, &shared, "Support", SimKind::Shared);
    r.sim
        .add_mailbox(&tenant, &outsider, "Direction", SimKind::User);
    // Graph applies the consent after a while; the app's Exchange scope leaves Direction out.
    r.sim.set_limits(|l| l.propagation_seconds = 2);
    r.sim
        .set_app_scope(&r.demo.client_id, Some(&[user.as_str(), shared.as_str()]));
    org_profile(&r).await;

    // A delegated profile has no admin consent; an unknown one neither.
    let (status, page) = mailbridge_local::follow_sign_in(
        &reqwest::Client::new(),
        format!("{}/admin-consent?profile=demo", r.base_url),
    )
    .await
    .unwrap();
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("signs in at /connect"), "{page}");

    // Someone outside the tenant tries: Entra refuses; the page says who must do it.
    r.sim.sign_in_as(Some("stranger@elsewhere.example"));
    let (status, page) = consent(&r).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("Only an administrator of the profile&#39;s tenant"),
        "{page}"
    );
    // The administrator declines: nothing granted.
    r.sim.sign_in_as(Some(&user));
    r.sim
        .state
        .admin_declines
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, page) = consent(&r).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("declined"), "{page}");
    r.sim
        .state
        .admin_declines
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // The administrator consents: the tenant is recorded.
    let (status, page) = consent(&r).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Consent granted"), "{page}");
    let recorded = r.services.repos.consents.get("org").await.unwrap().unwrap();
    assert_eq!(recorded.value.tenant_id, tenant);
    let (_, profiles) = admin(&r, "GET", "/admin/profiles", None).await;
    let org = profiles
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "org")
        .unwrap();
    assert_eq!(org["consent"]["tenant_id"], tenant.as_str(), "{org}");
    assert_eq!(
        org["admin_consent_url"],
        format!("{}/admin-consent?profile=org", r.base_url)
    );

    // Mailboxes by address, right after the consent: Graph still says 403. They wait as
    // "permission propagating", with no alert.
    let (status, added) = admin(
        &r,
        "POST",
        "/admin/profiles/org/mailboxes",
        Some(json!({"addresses": [user, shared, outsider]})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let added = added.as_array().unwrap().clone();
    assert_eq!(added.len(), 3);
    for m in &added {
        assert_eq!(state_of(m), "permission_propagating", "{m}");
    }
    let ids: Vec<String> = added
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let no_alerts = |ids: Vec<String>| {
        let r = &r;
        async move {
            for id in ids {
                let v = r.services.admin.mailbox(&id).await.unwrap();
                assert!(v.health.alerts.is_empty(), "{:?}", v.health.alerts);
            }
        }
    };
    no_alerts(ids.clone()).await;
    // Bad input: a clear 400, nothing added.
    let (status, answer) = admin(
        &r,
        "POST",
        "/admin/profiles/org/mailboxes",
        Some(json!({"addresses": ["not an address"]})),
    )
    .await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("invalid")));

    // The permission arrives; the schedule tries again (with backoff) and reaches the two in
    // scope: connected, subscribed (the shared mailbox too: application permissions allow it).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let wait_state = |id: String, want: &'static str| {
        let r = &r;
        let clock = clock.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                clock.advance(chrono::Duration::minutes(2));
                r.services.maintenance.run().await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
                let v = r.services.admin.mailbox(&id).await.unwrap();
                let state = serde_json::to_value(&v.mailbox).unwrap();
                if state_of(&state) == want {
                    return v;
                }
                assert!(tokio::time::Instant::now() < deadline, "{state:#}");
            }
        }
    };
    wait_state(ids[0].clone(), "connected").await;
    wait_state(ids[1].clone(), "connected").await;
    no_alerts(ids.clone()).await;
    let v = r.services.admin.mailbox(&ids[2]).await.unwrap();
    assert!(
        matches!(
            v.mailbox.connection,
            mailbridge_core::model::ConnectionState::PermissionPropagating { .. }
        ),
        "still within the two hours: {:?}",
        v.mailbox.connection
    );
    let subscribed: Vec<String> = {
        let w = r.sim.world();
        w.subscriptions
            .values()
            .map(|s| s.user_id.clone())
            .collect()
    };
    let shared_id = r.sim.world().user_by(&shared).unwrap().id.clone();
    assert!(
        subscribed.contains(&shared_id),
        "the shared mailbox has push"
    );

    // Mail to both arrives by notification and is imported.
    let (_, mime) = mailbridge_local::sample_messages().remove(0);
    let to_user = r.sim.deliver(&user, "inbox", mime.clone()).unwrap();
    let to_shared = r.sim.deliver(&shared, "inbox", mime).unwrap();
    let sweeps_before = r.sim.counter("delta");
    for (id, msg) in [(&ids[0], to_user), (&ids[1], to_shared)] {
        let states = mailbridge_tests::wait_imported(&r, id, &[msg]).await;
        assert!(
            matches!(
                states[0],
                Some(mailbridge_core::model::ImportState::Imported { .. })
            ),
            "{states:?}"
        );
    }
    assert_eq!(
        r.sim.counter("delta"),
        sweeps_before,
        "imported from notifications, not found by a sweep"
    );

    // Two hours on, Graph still refuses Direction: outside the app's scope, an alert that says
    // so, on that mailbox only.
    clock.advance(chrono::Duration::hours(2));
    let v = wait_state(ids[2].clone(), "not_reachable").await;
    let kinds: Vec<_> = v.health.alerts.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [mailbridge_core::model::AlertKind::OutsideScope],
        "{:?}",
        v.health.alerts
    );
    assert!(v.health.alerts[0]
        .message()
        .contains("RBAC for Applications"));
    no_alerts(ids[..2].to_vec()).await;

    // Discovery needs User.Read.All: without it, what to do; with it, every licensed user (the
    // shared mailbox has no licence), the ones already added kept as they are.
    let (status, answer) = admin(&r, "POST", "/admin/profiles/org/discover", None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("User.Read.All"));
    r.sim
        .world()
        .apps
        .get_mut(&r.demo.client_id)
        .unwrap()
        .app_roles
        .push("User.Read.All".into());
    clock.advance(chrono::Duration::hours(2)); // a new app token, with the new role
    let (status, found) = admin(&r, "POST", "/admin/profiles/org/discover", None).await;
    assert_eq!(status, 200, "{found}");
    let found: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["address"].as_str().unwrap().to_string())
        .collect();
    assert!(found.contains(&user.to_lowercase()), "{found:?}");
    assert!(found.contains(&outsider.to_lowercase()), "{found:?}");
    assert!(!found.contains(&shared.to_lowercase()), "{found:?}");
    let all = r.services.admin.mailboxes().await.unwrap();
    assert_eq!(all.len(), 3, "discovery added no duplicate");
}

/// A certificate and its RSA key (PEM), as an administrator makes them for an app registration.
fn certificate(days: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mailbridge".to_string()]).unwrap();
    use chrono::Datelike;
    let end = chrono::Utc::now() + chrono::Duration::days(days);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_connects_without_a_secret_and_a_wrong_one_gets_entras_error() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let r = mailbridge_tests::runner(dir.path(), |o| o.clock = clock.clone()).await;
    let (cert, key) = certificate(365);
    assert!(r.sim.add_certificate(&r.demo.client_id, &cert));
    // The key goes into the runner's sealed secret store, under the profile prefix.
    let key_name = "mailbridge/profiles/org/certificate-key";
    mailbridge_embedded::FileSecrets::open(r.data_dir().join("secrets"))
        .unwrap()
        .set(key_name, &mailbridge_core::Secret::new(key))
        .unwrap();
    let mut p = org_profile(&r).await;
    p["client_secret_ref"] = "".into();
    p["certificate"] = json!({
        "certificate_pem": cert,
        "key": {"in": "secret_store", "name": key_name},
    });
    let (status, answer) = admin(&r, "PUT", "/admin/profiles/org", Some(p.clone())).await;
    assert_eq!(status, 200, "{answer}");
    // Its expiry is the certificate's, for the warnings.
    let (_, profiles) = admin(&r, "GET", "/admin/profiles", None).await;
    assert!(profiles.to_string().contains("certificate_pem"));

    let id = consent_and_add_the_demo_user(&r).await;

    // Another certificate in the profile, not the one on the app: Entra's AADSTS700027, and
    // what to do, once the token must be renewed.
    let (other_cert, other_key) = certificate(365);
    mailbridge_embedded::FileSecrets::open(r.data_dir().join("secrets"))
        .unwrap()
        .set(key_name, &mailbridge_core::Secret::new(other_key))
        .unwrap();
    p["certificate"]["certificate_pem"] = other_cert.into();
    let (status, answer) = admin(&r, "PUT", "/admin/profiles/org", Some(p.clone())).await;
    assert_eq!(status, 200, "{answer}");
    clock.advance(chrono::Duration::hours(2));
    let (_, report) = admin(&r, "POST", &format!("/admin/mailboxes/{id}/test"), None).await;
    assert_eq!(
        results(&report)[0],
        ("token".into(), "failed".into()),
        "{report:#}"
    );
    let detail = report["checks"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("AADSTS700027"), "{detail}");
    assert!(detail.contains("not registered on application"), "{detail}");
    assert!(action_of(&report, "token").contains("Entra ID refused the certificate"));

    // A certificate past its end is refused on PUT, with what to do.
    let (expired, _) = certificate(-1);
    p["certificate"]["certificate_pem"] = expired.into();
    let (status, answer) = admin(&r, "PUT", "/admin/profiles/org", Some(p)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("certificate expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_announced_30_7_and_1_days_ahead_once_each_then_expired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let (r, _) = connected(dir.path(), |o| o.clock = clock.clone()).await;
    let mut demo = demo_profile(&r).await;
    let expires = chrono::Utc::now() + chrono::Duration::days(31) + chrono::Duration::hours(12);
    demo["client_secret_expires_at"] = expires.to_rfc3339().into();
    let (status, answer) = admin(&r, "PUT", "/admin/profiles/demo", Some(demo)).await;
    assert_eq!(status, 200, "{answer}");
    // A round every half day for 33 days, each round's jobs worked (the pollers), one round twice.
    for half_days in 0..66 {
        clock.advance(chrono::Duration::hours(12));
        r.services.maintenance.run().await.unwrap();
        if half_days == 40 {
            r.services.maintenance.run().await.unwrap();
        }
        mailbridge_tests::settle(&r).await;
    }
    let events: Vec<(String, String, i64)> = profile_events(&r)
        .into_iter()
        .map(|e| (kind_name(e.kind), e.state, (expires - e.at).num_days()))
        .collect();
    let want: Vec<(String, String, i64)> = [
        ("secret_expiring", "raised", 29),
        ("secret_expiring", "raised", 6),
        ("secret_expiring", "raised", 0),
        // Within the half day after the end (a whole day rounds toward zero).
        ("secret_expired", "raised", 0),
        ("secret_expiring", "cleared", 0),
    ]
    .iter()
    .map(|(k, s, d)| (k.to_string(), s.to_string(), *d))
    .collect();
    assert_eq!(events, want);
    // The profile's alert shows in the status, once for the profile; its mailbox has none.
    let status = reqwest::Client::new()
        .get(format!("{}/admin/status", r.base_url))
        .bearer_auth(r.admin_token.expose())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        status.starts_with("profile demo alerts=secret_expired\n"),
        "{status}"
    );
    assert!(status.contains("alerts=none"), "{status}");
}

/// The profile alert events written so far.
fn profile_events(r: &Runner) -> Vec<mailbridge_core::model::AlertEvent> {
    r.events
        .read_alerts()
        .unwrap()
        .into_iter()
        .filter(|e| e.mailbox_id.is_none())
        .collect()
}

/// An alert kind's name in the API and in events.
fn kind_name(kind: mailbridge_core::model::AlertKind) -> String {
    serde_json::to_value(kind)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// The profile alert events written so far: (kind, state, action link).
fn profile_alerts(r: &Runner) -> Vec<(String, String, Option<String>)> {
    profile_events(r)
        .into_iter()
        .map(|e| (kind_name(e.kind), e.state, e.action_url))
        .collect()
}

/// Rounds of the schedule, an hour apart, each round's jobs worked.
async fn hours(r: &Runner, clock: &ShiftedClock, n: u32) {
    for _ in 0..n {
        clock.advance(chrono::Duration::minutes(61));
        r.services.maintenance.run().await.unwrap();
        mailbridge_tests::settle(r).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_one_profile_alert_and_a_withdrawn_consent_links_to_consent() {
    // A delegated profile whose client secret Entra no longer takes: one alert on the profile
    // (not one per mailbox), which goes once a new secret works.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let (r, _) = connected(dir.path(), |o| o.clock = clock.clone()).await;
    mailbridge_tests::connect_users(&r, 1).await;
    assert!(r.sim.expire_secrets(&r.demo.client_id));
    hours(&r, &clock, 2).await;
    let alerts = profile_alerts(&r);
    assert_eq!(
        alerts,
        [("credential_refused".to_string(), "raised".to_string(), None)]
    );
    let v = r.services.admin.profile_views().await.unwrap();
    let message = &v[0].alerts[0].message();
    assert!(message.contains("client secret has expired"), "{message}");
    for m in r.services.admin.mailboxes().await.unwrap() {
        assert!(
            !m.health
                .alerts
                .iter()
                .any(|a| a.kind == mailbridge_core::model::AlertKind::CredentialRefused),
            "no alert per mailbox"
        );
    }
    let fresh = r.sim.add_secret(&r.demo.client_id, 365).unwrap();
    mailbridge_embedded::FileSecrets::open(r.data_dir().join("secrets"))
        .unwrap()
        .set(
            mailbridge_local::DEMO_SECRET,
            &mailbridge_core::Secret::new(fresh),
        )
        .unwrap();
    hours(&r, &clock, 2).await;
    assert_eq!(
        profile_alerts(&r)[1..],
        [(
            "credential_refused".to_string(),
            "cleared".to_string(),
            None
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_admin_consent_is_alerted_with_the_link_to_grant_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let r = mailbridge_tests::runner(dir.path(), |o| o.clock = clock.clone()).await;
    org_profile(&r).await;
    consent_and_add_the_demo_user(&r).await;
    // The tenant's administrator removes the app's consent.
    r.sim
        .world()
        .tenants
        .get_mut(&r.demo.tenant_id)
        .unwrap()
        .admin_consents
        .clear();
    hours(&r, &clock, 2).await;
    let link = format!("{}/admin-consent?profile=org", r.base_url);
    assert_eq!(
        profile_alerts(&r),
        [(
            "consent_revoked".to_string(),
            "raised".to_string(),
            Some(link)
        )]
    );
    // Granted again from the link: the next token works, the alert goes.
    assert_eq!(consent(&r).await.0, 200);
    hours(&r, &clock, 2).await;
    assert_eq!(profile_alerts(&r)[1].1, "cleared");
}
