//! The whole path, through the real handlers, against the Microsoft 365 simulator: connect with
//! the OAuth redirect flow, receive notifications, import each message once, byte-exact.

use mailbridge_core::fakes::ShiftedClock;
use mailbridge_core::model::{ConnectionState, ImportState, Job, Origin};
use mailbridge_core::ports::{BlobReader, BlobStore};
use mailbridge_core::services::import::StoredMetadata;
use mailbridge_local::sample_messages;
use mailbridge_tests::{
    connect_demo, connected, created_notification, runner, settle, wait_imported,
};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_notify_import_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;

    // Connect through /connect → authorize (PKCE) → /oauth/callback.
    let (status, page) = r.connect_demo_mailbox().await.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("adele@contoso.example is connected"),
        "{page}"
    );
    let views = r.services.admin.mailboxes().await.unwrap();
    assert_eq!(views.len(), 1);
    let mailbox = views[0].mailbox.clone();
    assert_eq!(mailbox.connection, ConnectionState::Connected);
    assert_eq!(mailbox.folders.len(), 1);
    assert_eq!(mailbox.folders[0].display_name, "Inbox");
    assert_eq!(
        mailbox.tenant_id, r.demo.tenant_id,
        "from the ID token's tid"
    );

    // The refresh token is sealed at rest: no token text in the database file.
    let db_bytes = std::fs::read(r.data_dir().join("state.db")).unwrap();
    let db_text = String::from_utf8_lossy(&db_bytes);
    assert!(
        !db_text.contains("1.AAAA") && !db_text.contains("eyJhbGci"),
        "a token is stored in plaintext"
    );

    // One subscription, validated by the handshake, on the Inbox.
    assert_eq!(r.sim.subscription_ids().len(), 1);

    // A message already in the Inbox before connecting would not be imported ("only new mail"):
    // deliver three now, one of them twice-notified.
    r.sim.set_faults(|f| f.duplicate_notifications = true);
    let samples = sample_messages();
    let mut ids = Vec::new();
    for (_, mime) in &samples {
        ids.push(
            r.sim
                .deliver(&r.demo.user_upn, "inbox", mime.clone())
                .unwrap(),
        );
    }
    let states = wait_imported(&r, &mailbox.id, &ids).await;
    settle(&r).await;

    for ((name, mime), state) in samples.iter().zip(&states) {
        let Some(ImportState::Imported {
            eml_key,
            metadata_key,
            sha256,
            size,
            ..
        }) = state
        else {
            panic!("{name} was not imported: {state:?}");
        };
        let stored = r.services.blobs.get(eml_key).await.unwrap().unwrap();
        assert_eq!(
            &stored[..],
            &mime[..],
            "{name}: the .eml is not byte-identical"
        );
        assert_eq!(*size, mime.len() as u64);
        let meta: StoredMetadata =
            serde_json::from_slice(&r.services.blobs.get(metadata_key).await.unwrap().unwrap())
                .unwrap();
        assert_eq!(&meta.message.sha256, sha256);
        assert_eq!(meta.mailbox_address, "adele@contoso.example");
        match name.as_str() {
            "non-ascii" => {
                assert_eq!(
                    meta.message.subject.as_deref(),
                    Some("Réunion d'été – café ☕")
                );
                assert_eq!(
                    meta.message.from[0].name.as_deref(),
                    Some("François Müller")
                );
            }
            "attachment" => {
                assert_eq!(meta.message.attachments.len(), 1);
                assert_eq!(
                    meta.message.attachments[0].name.as_deref(),
                    Some("invoice-2026-117.pdf")
                );
                assert_eq!(meta.message.attachments[0].content_type, "application/pdf");
                assert_eq!(
                    meta.message.cc[0].address.as_deref(),
                    Some("megan@contoso.example")
                );
            }
            _ => assert_eq!(meta.message.subject.as_deref(), Some("Quarterly figures")),
        }
    }

    // Every notification came twice; each message was fetched once.
    assert_eq!(r.sim.counter("notifications_delivered"), 6);
    assert_eq!(
        r.sim.counter("mime"),
        3,
        "one $value per message, however often it was notified"
    );

    // A replayed job and a sweep that finds the same messages change nothing.
    r.services
        .worker
        .run(&Job::Import {
            mailbox_id: mailbox.id.clone(),
            message_id: ids[0].clone(),
            origin: Origin::Sweep,
            queued_at: None,
        })
        .await
        .unwrap();
    r.services
        .worker
        .run(&Job::Sweep {
            mailbox_id: mailbox.id.clone(),
            folder_id: None,
            reason: mailbridge_core::model::Reason::Missed,
        })
        .await
        .unwrap();
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 3);
    let files = walk(&r.data_dir().join("store"));
    assert_eq!(files.iter().filter(|f| f.ends_with(".eml")).count(), 3);
    assert_eq!(files.iter().filter(|f| f.ends_with(".json")).count(), 3);

    let health = r.services.admin.mailbox(&mailbox.id).await.unwrap().health;
    assert_eq!(health.imported, 3);
    assert!(health.alerts.is_empty());

    // One import event per message, naming the stored objects.
    let events = r.events.read().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    for (id, state) in ids.iter().zip(&states) {
        let Some(ImportState::Imported { eml_key, .. }) = state else {
            unreachable!()
        };
        let e = events.iter().find(|e| &e.message_id == id).unwrap();
        assert_eq!(&e.eml_key, eml_key);
        assert_eq!(e.eml_location, r.services.blobs.locate(eml_key));
        assert!(std::path::Path::new(&e.metadata_location).exists());
    }
}

/// The consuming application's hook gets each event; when it fails, the import is retried and the
/// event comes again with the same id, so nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_hook_gets_each_import_at_least_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let calls = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let (c, g) = (calls.clone(), got.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |axum::Json(v): axum::Json<serde_json::Value>| async move {
                // The first call fails, as a consumer that is down would.
                if c.fetch_add(1, Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                g.lock().unwrap().push(v);
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |o| o.event_hook = Some(hook)).await;
    let mailbox = mailbox.id;
    let (_, mime) = sample_messages().remove(0);
    let id = r.sim.deliver(&r.demo.user_upn, "inbox", mime).unwrap();
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
    let got = got.lock().unwrap().clone();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["messageId"], id.as_str());
    assert_eq!(got[0]["mailboxAddress"], "adele@contoso.example");
    assert_eq!(r.events.read().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_notifications_are_found_by_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;

    r.sim.set_faults(|f| f.drop_notifications = true);
    let ids: Vec<String> = sample_messages()
        .into_iter()
        .map(|(_, m)| r.sim.deliver(&r.demo.user_upn, "inbox", m).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(r
        .services
        .repos
        .imports
        .of(&mailbox.id)
        .get(&ids[0])
        .await
        .unwrap()
        .is_none());

    // The scheduled maintenance round queues a sweep; the sweep queues what the delta shows.
    let report = r.services.maintenance.run().await.unwrap();
    assert_eq!(report.sweeps_due, 1);
    let states = wait_imported(&r, &mailbox.id, &ids).await;
    assert!(
        states
            .iter()
            .all(|s| matches!(s, Some(ImportState::Imported { .. }))),
        "{states:?}"
    );
    assert_eq!(r.sim.counter("mime"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_declined_and_replayed_state_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    r.sim.set_user(&r.demo.user_upn, |u| {
        u.consent = m365_sim::world::ConsentAnswer::Decline
    });
    let (status, page) = r.connect_demo_mailbox().await.unwrap();
    assert_eq!(status, 400);
    assert!(page.contains("consent declined"), "{page}");
    assert!(r.services.admin.mailboxes().await.unwrap().is_empty());

    let http = reqwest::Client::new();
    let resp = http
        .get(format!(
            "{}/oauth/callback?code=x&state=never-issued",
            r.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("unknown or was already used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_grant_marks_the_mailbox_for_reauthentication_and_reconnecting_keeps_it() {
    // Operators' hook: every alert raised or cleared comes to it, marked as such.
    let (hook, got) = mailbridge_tests::event_hook().await;
    let alerts = || -> Vec<serde_json::Value> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == "MailboxAlert")
            .map(|(_, v)| v.clone())
            .collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ShiftedClock::default());
    let (r, mailbox) = connected(dir.path(), |o| {
        o.clock = clock.clone();
        o.event_hook = Some(hook);
    })
    .await;

    // An hour later the access token is due for a refresh; meanwhile an admin revoked the grants.
    clock.advance(chrono::Duration::minutes(61));
    r.sim.revoke(&r.demo.user_upn);
    // The round finds the grant due for a check and queues it; the upkeep job finds it revoked.
    let report = r.services.maintenance.run().await.unwrap();
    assert_eq!(report.tokens_due, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let view = loop {
        let view = r.services.admin.mailbox(&mailbox.id).await.unwrap();
        if view.mailbox.connection != ConnectionState::Connected
            || tokio::time::Instant::now() > deadline
        {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.services.maintenance.run().await.unwrap().needs_reauth, 1);
    assert!(
        matches!(&view.mailbox.connection, ConnectionState::ReauthRequired { code, .. } if code == "AADSTS50173")
    );
    assert!(view
        .health
        .alerts
        .iter()
        .any(|a| a.message().contains("Sign in again")));

    // The alert went out once, with what to do and where: the sign-in link for this mailbox.
    let raised = alerts();
    assert_eq!(raised.len(), 1, "{raised:#?}");
    let e = &raised[0];
    assert_eq!(
        (e["state"].as_str(), e["kind"].as_str()),
        (Some("raised"), Some("reauth_required"))
    );
    assert_eq!(e["mailboxId"], mailbox.id.as_str());
    assert_eq!(e["mailboxAddress"], "adele@contoso.example");
    assert!(e["message"].as_str().unwrap().contains("Sign in again"));
    let link = e["actionUrl"].as_str().unwrap();
    assert_eq!(
        link,
        format!(
            "{}/connect?profile=demo&login_hint=adele%40contoso.example",
            r.base_url
        )
    );
    // The link starts a sign-in for that person.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = no_redirect.get(link).send().await.unwrap();
    assert_eq!(start.status(), 303, "{:?}", start.text().await);
    let to = start.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains("login_hint=adele%40contoso.example"), "{to}");
    assert_eq!(
        r.events.read_alerts().unwrap(),
        serde_json::from_value::<Vec<_>>(serde_json::json!(raised)).unwrap()
    );

    // Signing in again reconnects the same mailbox with its settings.
    assert_eq!(r.connect_demo_mailbox().await.unwrap().0, 200);
    let again = r.services.admin.mailbox(&mailbox.id).await.unwrap();
    assert_eq!(again.mailbox.connection, ConnectionState::Connected);
    assert_eq!(again.mailbox.folders, mailbox.folders);
    assert!(again.health.alerts.is_empty());
    assert_eq!(r.services.admin.mailboxes().await.unwrap().len(), 1);
    // ...and the alert's clearing went out too.
    let all = alerts();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1]["state"], "cleared");
    assert_eq!(all[1]["kind"], "reauth_required");
    assert_ne!(all[0]["eventId"], all[1]["eventId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_graph_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let http = reqwest::Client::new();
    // Validation handshake: 200, text/plain, the URL-decoded token.
    let token = "Validation: Testing client application reachability for subscription Request-Id: 7b6d&x=<b>";
    let url = format!(
        "{}/notifications?validationToken={}",
        r.base_url,
        urlencode(token)
    );
    let resp = http
        .post(&url)
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(resp.text().await.unwrap(), token);
    // Garbage: 4xx, nothing queued.
    let resp = http
        .post(format!("{}/notifications", r.base_url))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .post(format!("{}/notifications", r.base_url))
        .header("content-type", "text/html")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = http
        .post(format!("{}/lifecycle", r.base_url))
        .header("content-type", "application/json")
        // The server answers 413 before reading the body and closes the connection: the client
        // must not pool it for the next request.
        .header("connection", "close")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A well-formed notification for an unknown subscription: accepted and dropped.
    let sample = include_str!("fixtures/graph/notification-created.json");
    let resp = http
        .post(format!("{}/notifications", r.base_url))
        .header("content-type", "application/json")
        .body(sample)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(r.db.queue_depth().unwrap(), 0);
    // The admin API wants its token.
    let resp = http
        .get(format!("{}/admin/mailboxes", r.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(format!("{}/admin/mailboxes", r.base_url))
        .bearer_auth(r.admin_token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_against_the_simulator_over_https_trusting_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |o| o.sim_tls = true).await;
    assert!(r.sim.base_url().starts_with("https://"));
    let (_, mime) = &sample_messages()[0];
    let id = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", mime.clone())
        .unwrap();
    let states = wait_imported(&r, &mailbox.id, &[id]).await;
    assert!(
        matches!(states[0], Some(ImportState::Imported { .. })),
        "{states:?}"
    );
}

/// With a category in the profile, each imported message is marked in Outlook, people's own
/// categories kept; the connection asks for Mail.ReadWrite for that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_messages_are_marked_with_the_profiles_category() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let mut profile = r.services.admin.profiles().await.unwrap().remove(0);
    profile.outlook_category = Some("Filed by mailbridge".into());
    r.services.admin.put_profile(profile).await.unwrap();
    assert_eq!(r.connect_demo_mailbox().await.unwrap().0, 200);
    let mailbox = r.services.admin.mailboxes().await.unwrap()[0]
        .mailbox
        .id
        .clone();
    let (_, mime) = sample_messages().remove(0);
    let id = r.sim.deliver(&r.demo.user_upn, "inbox", mime).unwrap();
    let internal = r
        .sim
        .world()
        .message_of(&r.demo.user_id, &id)
        .unwrap()
        .id
        .clone();
    r.sim
        .world()
        .messages
        .get_mut(&internal)
        .unwrap()
        .categories = vec!["Red category".into()];
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let categories = r.sim.world().messages[&internal].categories.clone();
        if categories.len() == 2 {
            assert_eq!(categories, ["Red category", "Filed by mailbridge"]);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{categories:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = r.services.admin.mailbox(&mailbox).await.unwrap().health;
    assert!(health.alerts.is_empty(), "{:?}", health.alerts);
}

/// Routing keys in the notification URL's query string are accepted and ignored: the
/// subscription id decides whose mailbox a notification is for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_string_routing_keys_are_never_trusted_over_the_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mailbox = mailbox.id;
    r.sim.set_faults(|f| f.drop_notifications = true);
    let (_, mime) = sample_messages().remove(0);
    let id = r.sim.deliver(&r.demo.user_upn, "inbox", mime).unwrap();
    let body = created_notification(&r, &id);
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/notifications?mailbox=someone-else&tenant=contoso",
            r.base_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let states = wait_imported(&r, &mailbox, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
    let mailboxes = r.services.admin.mailboxes().await.unwrap();
    assert_eq!(mailboxes.len(), 1, "no mailbox named by the query string");
}

/// A shared mailbox reached through a delegate's sign-in has no subscription (Graph refuses them
/// with `.Shared` permissions): the scheduled sweep alone imports its mail, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_mailbox_is_followed_by_polling_alone() {
    use m365_sim::world::MailboxKind as SimKind;
    use mailbridge_core::model::MailboxKind;
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let sales = format!("sales@{}", r.demo.tenant_domain);
    r.sim
        .add_mailbox(&r.demo.tenant_id, &sales, "Sales", SimKind::Shared);
    assert_eq!(r.connect_demo_mailbox().await.unwrap().0, 200);
    let adele = r.services.admin.mailboxes().await.unwrap()[0]
        .mailbox
        .id
        .clone();

    // Without delegate access, adding it is refused with a clear error.
    let refused = r
        .services
        .admin
        .add_shared(&adele, &sales)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, mailbridge_core::Error::AccessDenied(_)),
        "{refused}"
    );
    assert!(r.sim.add_delegate(&sales, &r.demo.user_upn));
    let before = r
        .sim
        .deliver(&sales, "inbox", sample_messages().remove(0).1)
        .unwrap();
    let shared = r.services.admin.add_shared(&adele, &sales).await.unwrap();
    assert_eq!(shared.kind, MailboxKind::Shared);
    assert_eq!(shared.via.as_deref(), Some(adele.as_str()));
    // Adding it again changes nothing.
    assert_eq!(
        r.services
            .admin
            .add_shared(&adele, &sales)
            .await
            .unwrap()
            .id,
        shared.id
    );
    assert_eq!(r.sim.subscription_ids().len(), 1, "only Adele's own Inbox");

    let ids: Vec<String> = sample_messages()
        .into_iter()
        .map(|(_, mime)| r.sim.deliver(&sales, "inbox", mime).unwrap())
        .collect();
    r.services.maintenance.run().await.unwrap();
    let states = wait_imported(&r, &shared.id, &ids).await;
    assert!(
        states
            .iter()
            .all(|s| matches!(s, Some(ImportState::Imported { .. }))),
        "{states:?}"
    );
    // Mail already there when it was added is not imported ("only new mail").
    let old = r
        .services
        .repos
        .imports
        .of(&shared.id)
        .get(&before)
        .await
        .unwrap();
    assert!(old.is_none(), "{old:?}");
    // Another round finds nothing new.
    r.services.maintenance.run().await.unwrap();
    settle(&r).await;
    assert_eq!(r.sim.counter("mime"), 3);
    assert_eq!(r.sim.subscription_ids().len(), 1);
    let events = r.events.read().unwrap();
    assert!(events
        .iter()
        .all(|e| e.mailbox_address == sales && e.mailbox_id == shared.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_data_directory_stops_before_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let state_before = std::fs::metadata(r.data_dir().join("state.db"))
        .unwrap()
        .len();

    // Started again on the same directory (as a second `serve` would be, on the same port or
    // another): refused, with a clear reason, before it opens, writes or deletes anything.
    let second = mailbridge_local::Runner::start(mailbridge_local::Options {
        data_dir: r.data_dir().to_path_buf(),
        listen: r.addr.to_string(),
        sim_listen: "127.0.0.1:0".into(),
        ..mailbridge_local::Options::default()
    })
    .await;
    let Err(e) = second else {
        panic!("a second instance started on a directory in use")
    };
    assert!(
        e.to_string().contains("another mailbridge is running"),
        "{e}"
    );
    assert!(
        std::fs::metadata(r.data_dir().join("state.db"))
            .unwrap()
            .len()
            >= state_before
    );

    // The first goes on importing.
    let (_, mime) = sample_messages().remove(0);
    let id = r.sim.deliver(&r.demo.user_upn, "inbox", mime).unwrap();
    let states = wait_imported(&r, &mailbox.id, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_allows_4230_minutes_gets_them_and_graphs_expiry_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    // This tenant refuses mailbridge's 10,070 minutes with 400, as older tenants do.
    r.sim.set_limits(|l| l.subscription_minutes = 4230);
    let mailbox = connect_demo(&r).await;
    let records = r
        .services
        .repos
        .mailbox_subscriptions(&mailbox.id)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let graphs = r.sim.world().subscriptions[&records[0].id].expiration_date_time;
    assert_eq!(records[0].expires_at, graphs, "the expiry Graph returned");
    let lifetime = graphs - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::minutes(4220) && lifetime <= chrono::Duration::minutes(4230),
        "{lifetime}"
    );
    // And it delivers.
    let id = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", sample_messages().remove(0).1)
        .unwrap();
    let states = wait_imported(&r, &mailbox.id, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_graph_has_but_mailbridge_lost_is_replaced_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let repos = &r.services.repos;
    let lost = repos
        .mailbox_subscriptions(&mailbox.id)
        .await
        .unwrap()
        .remove(0);
    // Created at Graph, but its record was lost (a crash between the two writes, say).
    repos.forget_subscription(&lost).await.unwrap();
    // Graph answers the new creation with 409 and names the one it has: mailbridge cannot check
    // that one's notifications (it no longer knows its clientState), so it deletes it and makes
    // the folder's subscription again.
    let made = r
        .services
        .worker
        .subscriptions
        .ensure(&mailbox, &lost.folder_id)
        .await
        .unwrap();
    assert_ne!(made.id, lost.id);
    assert_eq!(r.sim.subscription_ids(), std::slice::from_ref(&made.id));
    assert_eq!(
        repos.mailbox_subscriptions(&mailbox.id).await.unwrap(),
        std::slice::from_ref(&made)
    );
    // Its notifications pass the clientState check: a message is imported.
    let id = r
        .sim
        .deliver(&r.demo.user_upn, "inbox", sample_messages().remove(1).1)
        .unwrap();
    let states = wait_imported(&r, &mailbox.id, std::slice::from_ref(&id)).await;
    assert!(matches!(states[0], Some(ImportState::Imported { .. })));
    // Asked again, the one it knows is kept.
    let again = r
        .services
        .worker
        .subscriptions
        .ensure(&mailbox, &lost.folder_id)
        .await
        .unwrap();
    assert_eq!(again.id, made.id);
}
