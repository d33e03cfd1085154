//! The admin API tried as an attacker with its token would: neither the token-sealing key nor a
//! user's access token can be sent to a host of theirs, out-of-range values get a 400, and a
//! caller without the token learns nothing of the API (401 before any body is read).

use mailbridge_core::model::{Cloud, ServerProfile};
use mailbridge_core::ports::Cond;
use mailbridge_tests::{connected, runner};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A host of the attacker's: counts every request it receives.
async fn attacker() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Writes a profile straight into the store, as an old record or a hand edit would be.
async fn store_around_the_api(r: &mailbridge_local::Runner, profile: &ServerProfile) {
    r.services
        .repos
        .profiles
        .put(&profile.id, profile, Cond::Any)
        .await
        .unwrap();
}

async fn put_profile(
    base: &str,
    token: &str,
    profile: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .put(format!(
            "{base}/admin/profiles/{}",
            profile["id"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .json(profile)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sealing_key_cannot_be_sent_to_an_attackers_login_host() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let (evil, hits) = attacker().await;
    let mut profile = serde_json::to_value(&r.services.admin.profiles().await.unwrap()[0]).unwrap();
    profile["id"] = "evil".into();
    profile["is_default"] = false.into();
    profile["client_secret_ref"] = "mailbridge/token-key".into();
    profile["cloud"] = serde_json::json!({"name": "custom", "login": evil, "graph": evil,
        "resource": "https://graph.microsoft.com"});
    let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("client_secret_ref"),
        "{body}"
    );

    // The secret reference alone, on a Microsoft cloud: still refused.
    profile["cloud"] = serde_json::json!({"name": "global"});
    let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
    assert_eq!(status, 400, "{body}");
    // The URL alone, with a good secret reference: refused too.
    profile["client_secret_ref"] = "mailbridge/profiles/evil/client-secret".into();
    profile["cloud"] = serde_json::json!({"name": "custom", "login": evil, "graph": evil,
        "resource": "https://graph.microsoft.com"});
    let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("host"), "{body}");

    // Written around the API (an old record, a hand edit): refused when used, nothing sent.
    let mut stored: ServerProfile = serde_json::from_value(profile).unwrap();
    stored.client_secret_ref = "mailbridge/token-key".into();
    store_around_the_api(&r, &stored).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = browser
        .get(format!("{}/connect?profile=evil", r.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    // The page says who must act, without the secret's name.
    let page = resp.text().await.unwrap();
    assert!(page.contains("not set up correctly"), "{page}");
    assert!(!page.contains("token-key"), "{page}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the attacker's host was called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_access_token_cannot_be_sent_to_an_attackers_graph_host() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let (evil, hits) = attacker().await;
    let mut profile = r.services.admin.profiles().await.unwrap().remove(0);
    let Cloud::Custom {
        login, resource, ..
    } = profile.cloud.clone()
    else {
        panic!("the demo profile is a custom cloud");
    };
    profile.cloud = Cloud::Custom {
        login,
        graph: evil.clone(),
        resource,
    };
    let body = serde_json::to_value(&profile).unwrap();
    let (status, answer) = put_profile(&r.base_url, r.admin_token.expose(), &body).await;
    assert_eq!(status, 400, "{answer}");

    // Stored around the API, then the mailbox test: refused before any token leaves.
    store_around_the_api(&r, &profile).await;
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/admin/mailboxes/{}/test",
            r.base_url, mailbox.id
        ))
        .bearer_auth(r.admin_token.expose())
        .send()
        .await
        .unwrap();
    // The test's first check (a token) fails, saying why and what to do; nothing else runs.
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["passed"], false, "{answer}");
    let token = &answer["checks"][0];
    assert_eq!(
        (token["check"].as_str(), token["result"].as_str()),
        (Some("token"), Some("failed")),
        "{answer}"
    );
    assert!(
        token["detail"].as_str().unwrap().contains("cannot be used"),
        "{answer}"
    );
    assert!(token["action"]
        .as_str()
        .unwrap()
        .starts_with("Fix the server profile"));
    assert_eq!(answer["checks"][1]["result"], "skipped");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a token went to the attacker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_get_a_400_and_the_sweep_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = connected(dir.path(), |_| {}).await;
    let mut profile = serde_json::to_value(&r.services.admin.profiles().await.unwrap()[0]).unwrap();
    profile["backfill_days"] = 4294967295u64.into();
    let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("backfill_days"));
    profile["backfill_days"] = 4294967296u64.into();
    let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid");

    let folders: Vec<String> = (0..101).map(|i| format!("folder-{i}")).collect();
    let resp = reqwest::Client::new()
        .put(format!(
            "{}/admin/mailboxes/{}/folders",
            r.base_url, mailbox.id
        ))
        .bearer_auth(r.admin_token.expose())
        .json(&serde_json::json!({ "folder_ids": folders }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A profile stored around the API with the value that used to panic the sweep: the new
    // folder's first round is refused with a clear error, and nothing panics.
    let mut stored = r.services.admin.profiles().await.unwrap().remove(0);
    stored.backfill_days = u32::MAX;
    store_around_the_api(&r, &stored).await;
    let fresh = mailbridge_core::model::Mailbox {
        id: "mbx_other".into(),
        ..mailbox
    };
    let err = r
        .services
        .worker
        .sweeper
        .start_folder(&fresh, "inbox-id")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be used"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_the_admin_api_says_401_before_reading_any_body() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let http = reqwest::Client::new();
    for (method, path, body, content_type) in [
        ("PUT", "/admin/profiles/x", "{not json", "application/json"),
        ("PUT", "/admin/profiles/x", "<xml/>", "text/xml"),
        (
            "POST",
            "/admin/mailboxes/m/approval",
            "{\"approved\": 3}",
            "application/json",
        ),
        ("POST", "/admin/mailboxes/m/shared", "", "application/json"),
        ("GET", "/admin/nothing-here", "", "text/plain"),
    ] {
        let resp = http
            .request(method.parse().unwrap(), format!("{}{path}", r.base_url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["code"], "unauthorized", "{answer}");
    }
    // With the token, a bad body is the API's JSON error, not a bare text.
    let resp = http
        .put(format!("{}/admin/profiles/x", r.base_url))
        .bearer_auth(r.admin_token.expose())
        .header("content-type", "text/xml")
        .body("<xml/>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["code"], "unsupported_media_type");
    // A body must be an object: serde alone would take an array as a struct's fields in order
    // (schemathesis found `[]` starting a profile's run). Nothing is done with it.
    for (path, body) in [
        ("/admin/profiles/demo/test", "[]"),
        ("/admin/mailboxes/m/approval", "[true]"),
        ("/admin/mailboxes/m/approval", "{\"approved\": \"yes\"}"),
    ] {
        let resp = http
            .post(format!("{}{path}", r.base_url))
            .bearer_auth(r.admin_token.expose())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path} {body}");
        let answer: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(answer["code"], "invalid", "{answer}");
    }
    let runs = r.services.admin.test_progress("demo").await;
    assert!(
        matches!(runs, Err(mailbridge_core::Error::NotFound(_))),
        "a run was started"
    );
}

/// The deploy guide's profile (README, step 6) is one the admin API accepts, once the placeholders
/// are filled in as a reader would.
#[test]
fn the_readme_profile_example_is_accepted() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("/admin/profiles/contoso")
        .and_then(|at| readme[at..].find("-d '{").map(|d| at + d + 4))
        .expect("the deploy guide creates a profile");
    let end = start + readme[start..].find("}'").expect("the JSON ends") + 1;
    let json = readme[start..end]
        .replace(
            "<Directory (tenant) ID>",
            "8f3e1c52-7a4d-4b6e-9d21-3c5f0a7b9e14",
        )
        .replace(
            "<Application (client) ID>",
            "0b7c2d41-5e6f-4a38-b9c0-1d2e3f4a5b6c",
        );
    let profile: mailbridge_core::model::ServerProfile =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    mailbridge_core::services::Settings::new("https://api.example")
        .check_profile(&profile)
        .unwrap();
    assert_eq!(
        profile.client_secret_ref,
        "mailbridge/profiles/contoso/client-secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_never_finished_are_deleted_once_expired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(mailbridge_core::fakes::ShiftedClock::default());
    let r = runner(dir.path(), |o| {
        o.clock = clock.clone();
        o.purge_every = std::time::Duration::from_millis(100);
    })
    .await;
    // Anyone may start a sign-in and walk away: each leaves a state record.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..300 {
        let started = http
            .get(format!("{}/connect", r.base_url))
            .send()
            .await
            .unwrap();
        assert!(started.status().is_redirection());
    }
    let pending = || async { r.services.repos.auth_states.list().await.unwrap().len() };
    assert_eq!(pending().await, 300);
    // Once expired (10 minutes), the purge deletes them, as DynamoDB's TTL does on AWS.
    clock.advance(chrono::Duration::minutes(11));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while pending().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} left",
            pending().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_cut_not_kept_open() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let limits = mailbridge_local::http_server::Limits {
        headers_within: std::time::Duration::from_secs(1),
        handled_within: std::time::Duration::from_secs(2),
    };
    let r = runner(dir.path(), |o| o.http_limits = limits).await;
    // Sends `head` and nothing more; what the server answered before closing, and when.
    let addr = r.addr;
    let cut = move |head: &'static [u8]| async move {
        let started = tokio::time::Instant::now();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(head).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            slow.read_to_end(&mut answer),
        )
        .await
        .expect("the half-sent request was cut")
        .ok();
        (
            String::from_utf8_lossy(&answer).to_string(),
            started.elapsed(),
        )
    };

    // Headers that never end: the connection is closed once the limit has passed.
    let (_, after) = cut(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert!(after >= limits.headers_within);

    // A body that stops half-way: 408, and the connection closed.
    let (answer, after) = cut(b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"value\":").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after >= limits.handled_within);

    // And a whole request is answered as ever.
    let ok = reqwest::get(format!("{}/healthz", r.base_url))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_is_checked_on_put_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let good = serde_json::to_value(&r.services.admin.profiles().await.unwrap()[0]).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "a secret the store does not have",
            serde_json::json!({"id": "other", "is_default": false,
                "client_secret_ref": "mailbridge/profiles/other/client-secret"}),
            "no secret named mailbridge/profiles/other/client-secret",
        ),
        (
            "an expired secret",
            serde_json::json!({"client_secret_expires_at": "2020-01-01T00:00:00Z"}),
            "has expired",
        ),
        (
            "a tenant that is no tenant",
            serde_json::json!({"tenant": "not a tenant"}),
            "must be common, organizations, consumers",
        ),
        (
            "an organisation-wide profile on common",
            serde_json::json!({"auth": "application", "tenant": "common"}),
            "needs its tenant's id or domain",
        ),
    ];
    for (what, change, expected) in cases {
        let mut profile = good.clone();
        for (k, v) in change.as_object().unwrap() {
            profile[k] = v.clone();
        }
        let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{what}: {body}"
        );
    }
    // Right: accepted, with its forms of tenant.
    for tenant in [
        "organizations",
        "contoso.onmicrosoft.com",
        "8f3e1c52-7a4d-4b6e-9d21-3c5f0a7b9e14",
    ] {
        let mut profile = good.clone();
        profile["tenant"] = tenant.into();
        profile["client_secret_expires_at"] = "2099-01-01T00:00:00Z".into();
        let (status, body) = put_profile(&r.base_url, r.admin_token.expose(), &profile).await;
        assert_eq!(status, 200, "{tenant}: {body}");
    }
}
