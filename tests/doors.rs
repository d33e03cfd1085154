//! Every door fuzzed (issue 14): property tests for each input from outside, through the real
//! routers and clients. What must hold for any input:
//! - no panic, and no 5xx for a client's mistake;
//! - nothing queued or stored from rejected input;
//! - Graph's and Entra's answers, however malformed (the simulator's real answers truncated,
//!   bit-flipped, retyped, made huge or made invalid UTF-8), give the client an error, never a
//!   crash or a hang.
//!
//! `MAILBRIDGE_FUZZ_CASES` sets the inputs tried per door (256 unless set; the README's longer run
//! sets it to thousands). Each door prints how many it tried.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use mailbridge_core::model::{ClientCredential, Cloud, Mailbox, ServerProfile};
use mailbridge_core::ports::{GraphCtx, Identity, MailGraph};
use mailbridge_core::Secret;
use mailbridge_local::Runner;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn cases() -> u32 {
    std::env::var("MAILBRIDGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Runs `check` on `cases()` inputs of `strategy`; the first failure (shrunk) fails the test.
fn fuzz<S: Strategy>(
    door: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{door}: {e}");
    }
    println!("{door}: {} inputs, no failure", cases());
}

/// Text as the outside sends it: any character, with the ones that break parsers well
/// represented.
fn text(max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\n".to_string()),
        Just("\u{1b}[2J".to_string()),
        Just("%00".to_string()),
        Just("%ff".to_string()),
        Just("../".to_string()),
        Just("\"".to_string()),
        Just("{}".to_string()),
        "[a-zA-Z0-9=&?/_-]{1,16}",
    ];
    prop::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        text(12).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,14}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How an answer or a document is broken.
#[derive(Debug, Clone)]
enum Mutation {
    Keep,
    Truncate(usize),
    Flip(usize, u8),
    InvalidUtf8(usize),
    /// A JSON member replaced (by position among all members) with another value.
    Retype(usize, Value),
    /// A JSON member removed.
    Remove(usize),
    /// A JSON string made huge.
    Huge(usize),
    Replace(Vec<u8>),
    Status(u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::Keep),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        2 => any::<usize>().prop_map(Mutation::InvalidUtf8),
        3 => (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Retype(i, v)),
        2 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Huge),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Mutation::Replace),
        1 => prop::sample::select(vec![200u16, 201, 202, 204, 302, 400, 401, 403, 404, 410, 429, 500, 503])
            .prop_map(Mutation::Status),
    ]
}

/// Applies a mutation to a body (and maybe the status).
fn mutate(m: &Mutation, status: u16, body: &[u8]) -> (u16, Vec<u8>) {
    let at = |i: usize| if body.is_empty() { 0 } else { i % body.len() };
    match m {
        Mutation::Keep => (status, body.to_vec()),
        Mutation::Truncate(i) => (status, body[..at(*i)].to_vec()),
        Mutation::Flip(i, b) => {
            let mut v = body.to_vec();
            if !v.is_empty() {
                let i = at(*i);
                v[i] ^= b | 1;
            }
            (status, v)
        }
        Mutation::InvalidUtf8(i) => {
            let mut v = body.to_vec();
            v.splice(at(*i)..at(*i), [0xff, 0xfe, 0xc3]);
            (status, v)
        }
        Mutation::Retype(i, _) | Mutation::Remove(i) | Mutation::Huge(i) => {
            let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
                return (status, body.to_vec());
            };
            let mut n = 0;
            let count = members(&mut doc, &mut n, &mut |_| {});
            if count > 0 {
                let target = i % count;
                let mut n = 0;
                members(&mut doc, &mut n, &mut |(k, obj, index)| {
                    if index != target {
                        return;
                    }
                    match m {
                        Mutation::Retype(_, v) => {
                            obj.insert(k, v.clone());
                        }
                        Mutation::Remove(_) => {
                            obj.remove(&k);
                        }
                        _ => {
                            obj.insert(k, Value::from("\u{e9}".repeat(300_000)));
                        }
                    }
                });
            }
            (status, serde_json::to_vec(&doc).unwrap())
        }
        Mutation::Replace(b) => (status, b.clone()),
        Mutation::Status(s) => (*s, body.to_vec()),
    }
}

type Member<'a> = (String, &'a mut serde_json::Map<String, Value>, usize);

/// Visits every object member of a document, depth first, numbering them; their count.
fn members(doc: &mut Value, n: &mut usize, f: &mut dyn FnMut(Member<'_>)) -> usize {
    match doc {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let index = *n;
                *n += 1;
                if let Some(child) = map.get_mut(&k) {
                    members(child, n, f);
                }
                f((k, map, index));
            }
        }
        Value::Array(items) => {
            for item in items {
                members(item, n, f);
            }
        }
        _ => {}
    }
    *n
}

struct World {
    rt: tokio::runtime::Runtime,
    r: Runner,
    mailbox: Mailbox,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A runner with the demo mailbox connected and no queue worker, so that the queue's depth shows
/// exactly what was queued.
fn world() -> World {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (r, mailbox) = rt.block_on(mailbridge_tests::connected(dir.path(), |o| {
        o.containers = 0
    }));
    World {
        rt,
        r,
        mailbox,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl World {
    fn depth(&self) -> u64 {
        self.r.db.queue_depth().unwrap()
    }

    fn stored(&self) -> usize {
        walk(&self.r.data_dir().join("store"))
    }

    fn mailboxes(&self) -> usize {
        self.rt
            .block_on(self.r.services.admin.mailboxes())
            .unwrap()
            .len()
    }

    /// A request; its status and body.
    fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        self.rt.block_on(async {
            let mut req = self.http.request(method, url).body(body);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        })
    }
}

/// Files under a directory.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    1
                }
            })
            .sum()
    })
}

fn not_5xx(status: u16, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: {status}");
    Ok(())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/graph")
            .join(name),
    )
    .unwrap()
}

#[test]
fn notification_bodies_and_validation_tokens() {
    let w = world();
    let real_sub = w.r.sim.subscription_ids()[0].clone();
    let url = format!("{}/notifications", w.r.base_url);
    let before = w.depth();
    // Items: anything; one for an unknown subscription; one for the real subscription with a
    // clientState that is not its own.
    let item = prop_oneof![
        any_json(),
        (text(40), any_json()).prop_map(|(id, rest)| json!({
            "subscriptionId": id, "clientState": "x", "changeType": "created",
            "resourceData": {"id": rest}, "resource": "Users/u/Messages/m"})),
        (text(40), any_json()).prop_map(move |(state, ct)| json!({
            "subscriptionId": real_sub, "clientState": state, "changeType": ct,
            "resourceData": {"id": "AAMk"}, "lifecycleEvent": null})),
    ];
    let fixtures: Vec<Vec<u8>> = [
        "notification-created.json",
        "notification-created-outlook.json",
        "notification-batch-derived.json",
        "lifecycle-missed.json",
        "lifecycle-subscription-removed.json",
        "lifecycle-reauthorization-required.json",
    ]
    .into_iter()
    .map(fixture)
    .collect();
    let body = prop_oneof![
        prop::collection::vec(item, 0..30)
            .prop_map(|items| json!({ "value": items }).to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..2000),
        (prop::sample::select(fixtures), mutation()).prop_map(|(f, m)| mutate(&m, 200, &f).1),
        any_json().prop_map(|v| v.to_string().into_bytes()),
    ];
    let content_type = prop::sample::select(vec![
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
    ]);
    let accepted = std::sync::atomic::AtomicU32::new(0);
    fuzz("notification bodies", (body, content_type), |(body, ct)| {
        let (status, _) = w.send(Method::POST, &url, &[("content-type", ct)], body);
        prop_assert!([202, 400, 413, 415].contains(&status), "status {status}");
        if status == 202 {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        prop_assert_eq!(w.depth(), before, "something was queued");
        Ok(())
    });

    // Some bodies were well-formed collections, whose items were all dropped.
    assert!(accepted.into_inner() > 0);

    fuzz(
        "validation tokens",
        (text(300), any::<bool>()),
        |(token, post)| {
            let query = serde_urlencoded::to_string([("validationToken", &token)]).unwrap();
            let method = if post { Method::POST } else { Method::GET };
            let (status, echoed) = w.send(method, &format!("{url}?{query}"), &[], vec![]);
            not_5xx(status, "validation")?;
            if !post {
                // Graph's handshake is a POST; the route takes nothing else.
                prop_assert_eq!(status, 405);
            } else if !token.is_empty() && token.len() <= 1024 {
                prop_assert_eq!(status, 200);
                prop_assert_eq!(echoed, token);
            } else {
                prop_assert_eq!(status, 400);
            }
            prop_assert_eq!(w.depth(), before);
            Ok(())
        },
    );
}

#[test]
fn the_oauth_doors() {
    let w = world();
    let before = (w.mailboxes(), w.depth());
    let key = prop::sample::select(vec![
        "code",
        "state",
        "error",
        "error_description",
        "session_state",
        "admin_consent",
        "tenant",
        "profile",
        "login_hint",
        "x",
    ]);
    let query = prop_oneof![
        prop::collection::vec((key, text(60)), 0..6)
            .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap()),
        text(200),
    ];
    let path = prop::sample::select(vec![
        "/oauth/callback",
        "/connect",
        "/admin-consent",
        "/console/login",
    ]);
    fuzz(
        "oauth callback and sign-in queries",
        (path, query),
        |(path, query)| {
            // A raw query goes as it is, even where a browser would escape it.
            let q: String = query
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '#')
                .collect();
            let (status, page) = w.send(
                Method::GET,
                &format!("{}{path}?{q}", w.r.base_url),
                &[],
                vec![],
            );
            not_5xx(status, path)?;
            prop_assert!(
                !page.contains("mailbridge/profiles/"),
                "a secret's name on {}",
                path
            );
            prop_assert_eq!((w.mailboxes(), w.depth()), before);
            Ok(())
        },
    );
}

#[test]
fn the_admin_api_and_the_console() {
    let w = world();
    let token = w.r.admin_token.expose().to_string();
    let before = (w.mailboxes(), w.depth());
    let profiles_before = w.rt.block_on(w.r.services.admin.profiles()).unwrap().len();
    let segment = prop_oneof![
        prop::sample::select(vec![
            "admin",
            "profiles",
            "mailboxes",
            "demo",
            "status",
            "folders",
            "test",
            "approval",
            "enabled",
            "shared",
            "discover",
            "test-and-enable",
            "console",
            "..",
            "%2e%2e",
            "%00",
        ])
        .prop_map(String::from),
        Just(w.mailbox.id.clone()),
        text(30).prop_map(|t| {
            percent_encoding::utf8_percent_encode(&t, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }),
    ];
    let path = prop::collection::vec(segment, 1..6).prop_map(|s| format!("/admin/{}", s.join("/")));
    let console = prop::collection::vec("[a-z0-9-]{1,12}", 1..4)
        .prop_map(|s| format!("/console/{}", s.join("/")));
    let method = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ]);
    let body = prop_oneof![
        any_json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..500),
        (any_json(), any_json()).prop_map(|(a, b)| {
            json!({"addresses": a, "folders": b, "approved": a,
            "enabled": b, "address": a, "id": "demo", "client_id": b})
            .to_string()
            .into_bytes()
        }),
    ];
    let authorised = prop_oneof![Just(true), Just(true), Just(false)];
    fuzz(
        "admin API paths, methods and bodies",
        (prop_oneof![path, console], method, body, authorised),
        |(path, method, body, authorised)| {
            let auth = format!("Bearer {token}");
            let mut headers = vec![("content-type", "application/json")];
            if authorised {
                headers.push(("authorization", auth.as_str()));
            }
            let (status, answer) = w.send(
                method.clone(),
                &format!("{}{path}", w.r.base_url),
                &headers,
                body,
            );
            not_5xx(status, &format!("{method} {path}: {answer}"))?;
            // The URL as sent: `..` segments are resolved by the client, as by any browser.
            let sent = reqwest::Url::parse(&format!("{}{path}", w.r.base_url)).unwrap();
            if !authorised && sent.path().starts_with("/admin") {
                prop_assert!(
                    [401, 404, 405].contains(&status),
                    "{method} {path}: {status}"
                );
            }
            prop_assert_eq!((w.mailboxes(), w.depth()), before);
            Ok(())
        },
    );
    assert_eq!(
        w.rt.block_on(w.r.services.admin.profiles()).unwrap().len(),
        profiles_before
    );
}

#[test]
fn import_job_bodies_from_the_queue() {
    let w = world();
    let before = (w.stored(), w.mailboxes());
    let mailbox = prop_oneof![Just(w.mailbox.id.clone()), text(40)];
    let reason = prop::sample::select(vec!["missed", "backfill", "nonsense", "reconnected"]);
    let job = prop_oneof![
        (mailbox.clone(), text(80), any_json()).prop_map(|(m, id, q)| json!({
            "type": "import", "mailbox_id": m, "message_id": id, "source": "notification", "queued_at": q})),
        (mailbox.clone(), prop::option::of(text(40)), reason.clone()).prop_map(|(m, f, r)| json!({
            "type": "sweep", "mailbox_id": m, "folder_id": f, "reason": r})),
        (mailbox.clone(), text(40), reason).prop_map(|(m, f, r)| json!({
            "type": "resubscribe", "mailbox_id": m, "folder_id": f, "reason": r})),
        (mailbox, any::<bool>(), text(20)).prop_map(|(m, e, run)| json!({
            "type": "test", "mailbox_id": m, "enable": e, "run": run})),
        text(40).prop_map(|p| json!({"type": "profile_upkeep", "profile_id": p})),
        any_json(),
    ];
    let body = prop_oneof![job.prop_map(|j| j.to_string()), text(300),];
    let worker = w.r.services.worker.clone();
    fuzz("import job bodies", body, |body| {
        let worker = worker.clone();
        let run = w.rt.block_on(w.rt.spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), worker.run_body(&body)).await
        }));
        prop_assert!(run.is_ok(), "the job panicked: {run:?}");
        prop_assert!(run.unwrap().is_ok(), "the job hung");
        prop_assert_eq!(
            (w.stored(), w.mailboxes()),
            before,
            "a rejected job stored something"
        );
        Ok(())
    });
}

/// A proxy in front of the simulator that breaks each answer as the case says.
struct Breaker {
    base: String,
    mutation: Arc<Mutex<Mutation>>,
}

async fn breaker(sim: String) -> Breaker {
    let mutation = Arc::new(Mutex::new(Mutation::Keep));
    let m = mutation.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (m, http, sim) = (m.clone(), http.clone(), sim.clone());
            async move {
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                let mut req = http.request(method, format!("{sim}{path}")).body(body);
                for (k, v) in &headers {
                    if k != "host" && k != "content-length" {
                        req = req.header(k, v);
                    }
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let content_type = resp.headers().get("content-type").cloned();
                let body = resp.bytes().await.unwrap();
                let mutation = m.lock().unwrap().clone();
                let (status, body) = mutate(&mutation, status, &body);
                let mut out = axum::response::Response::new(axum::body::Body::from(body));
                *out.status_mut() = StatusCode::from_u16(status).unwrap();
                if let Some(ct) = content_type {
                    out.headers_mut().insert("content-type", ct);
                }
                if status == 429 || status == 503 {
                    out.headers_mut()
                        .insert("retry-after", "1".parse().unwrap());
                }
                out
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Breaker { base, mutation }
}

#[test]
fn graph_and_entra_answers_broken_do_not_crash_the_client() {
    let w = world();
    let b = w.rt.block_on(breaker(w.r.sim.base_url().to_string()));
    // A message to read, a session for the demo mailbox, the demo profile through the breaker.
    let _inside = w.rt.enter();
    w.r.sim.deliver(
        &w.r.demo.user_upn,
        "inbox",
        m365_sim::control::generate_mime("a@example.com", &w.r.demo.user_upn, "Fuzz", 20_000),
    );
    let session =
        w.rt.block_on(w.r.services.admin.tokens.session(&w.mailbox))
            .unwrap();
    let token = session.token.clone();
    let user = w.r.demo.user_id.clone();
    let message = w.r.sim.world().messages.keys().next().unwrap().clone();
    let mut profile: ServerProfile = session.profile.clone();
    let Cloud::Custom { resource, .. } = profile.cloud.clone() else {
        panic!("the demo profile is the simulator's")
    };
    profile.cloud = Cloud::Custom {
        login: b.base.clone(),
        graph: b.base.clone(),
        resource,
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let graph = Arc::new(mailbridge_graph::GraphClient::new(http.clone()));
    let identity = Arc::new(mailbridge_graph::EntraIdentity::new(http));
    let secret = ClientCredential::Secret(Secret::new(w.r.demo.client_secret.clone()));
    let graph_base = profile.cloud.endpoints().graph;
    let call = prop::sample::select((0..9).collect::<Vec<u8>>());
    let (ok, refused) = (
        std::sync::atomic::AtomicU32::new(0),
        std::sync::atomic::AtomicU32::new(0),
    );
    fuzz(
        "Graph and Entra answers",
        (call, mutation()),
        |(call, m)| {
            *b.mutation.lock().unwrap() = m;
            let (graph, identity, token, profile, secret, user, message, graph_base) = (
                graph.clone(),
                identity.clone(),
                token.clone(),
                profile.clone(),
                secret.clone(),
                user.clone(),
                message.clone(),
                graph_base.clone(),
            );
            let run = w.rt.block_on(w.rt.spawn(async move {
                let ctx = GraphCtx {
                    graph_base: &graph_base,
                    token: &token,
                    mailbox: "mbx_fuzz",
                };
                let work = async {
                    match call {
                        0 => graph.me(ctx).await.map(drop),
                        1 => graph.user(ctx, &user).await.map(drop),
                        2 => graph.folder(ctx, &user, "inbox").await.map(drop),
                        3 => graph.child_folders(ctx, &user, "inbox").await.map(drop),
                        4 => graph.delta(ctx, &user, "inbox", None).await.map(drop),
                        5 => {
                            let mut d = graph.message_mime(ctx, &user, &message).await?;
                            while d.body.next_piece().await?.is_some() {}
                            Ok(())
                        }
                        6 => graph.add_category(ctx, &user, &message, "Fuzz").await,
                        7 => graph
                            .renew_subscription(ctx, "nothing", chrono::Utc::now())
                            .await
                            .map(drop),
                        _ => identity
                            .client_credentials(&profile, &secret)
                            .await
                            .map(drop),
                    }
                };
                tokio::time::timeout(Duration::from_secs(60), work).await
            }));
            prop_assert!(run.is_ok(), "the client panicked: {run:?}");
            let answered = run.unwrap();
            prop_assert!(answered.is_ok(), "the client hung");
            let n = if answered.unwrap().is_ok() {
                &ok
            } else {
                &refused
            };
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        },
    );
    // Both happened: the broken answers reached the client, and the whole ones worked.
    let (ok, refused) = (ok.into_inner(), refused.into_inner());
    println!("Graph and Entra answers: {ok} calls succeeded, {refused} returned an error");
    assert!(ok > 0 && refused > 0, "{ok} {refused}");
}

/// MIME as a mailbox may hold it: truncated, deeply nested, with enormous headers, or bytes. The
/// metadata is read without a panic, and the same whatever the pieces it arrives in.
#[test]
fn mime_of_any_shape() {
    use mailbridge_core::mime::{parse_metadata, MimeScanner};
    let base =
        m365_sim::control::generate_mime("a@example.com", "b@example.com", "Dossier é", 3000);
    let nested = (1usize..300).prop_map(|depth| {
        let mut m = String::from("Subject: nested\r\nMIME-Version: 1.0\r\n");
        for i in 0..depth {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        m.push_str("Content-Type: text/plain\r\n\r\nbody\r\n");
        m.into_bytes()
    });
    let huge_header = (1usize..400_000, any::<bool>()).prop_map(|(n, folded)| {
        let value = if folded {
            "x ".repeat(n / 2).replace("x x", "x\r\n x")
        } else {
            "é".repeat(n / 2)
        };
        format!("Subject: {value}\r\nFrom: a@b.c\r\n\r\nbody").into_bytes()
    });
    let many_headers = (1usize..20_000).prop_map(|n| {
        let mut m = String::new();
        for i in 0..n {
            m.push_str(&format!("X-H{i}: v\r\n"));
        }
        m.push_str("\r\nbody");
        m.into_bytes()
    });
    let raw = prop_oneof![
        mutation().prop_map(move |m| mutate(&m, 200, &base).1),
        nested,
        huge_header,
        many_headers,
        prop::collection::vec(any::<u8>(), 0..4000),
    ];
    fuzz("MIME", (raw, 1usize..5000), |(raw, piece)| {
        let whole = parse_metadata(&raw);
        let mut scanner = MimeScanner::default();
        for chunk in raw.chunks(piece) {
            scanner.feed(chunk);
        }
        let streamed = scanner.finish();
        prop_assert_eq!(format!("{whole:?}"), format!("{streamed:?}"));
        Ok(())
    });
}
