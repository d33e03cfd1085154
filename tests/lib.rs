//! Shared helpers for the end-to-end tests.

pub mod lambda;
pub mod load;
pub mod template_yaml;
pub mod wasi_host;

use mailbridge_core::model::{ImportState, Mailbox};
use mailbridge_local::{Options, Runner};
use std::time::Duration;

/// The one way the tests start mailbridge: the local runner on free ports, with its own data
/// directory and the maintenance round left to the test; `configure` changes any option.
pub async fn runner(dir: &std::path::Path, configure: impl FnOnce(&mut Options)) -> Runner {
    let mut opts = Options {
        data_dir: dir.join("data"),
        listen: "127.0.0.1:0".into(),
        sim_listen: "127.0.0.1:0".into(),
        maintenance_every: Duration::from_secs(3600),
        ..Options::default()
    };
    configure(&mut opts);
    Runner::start(opts).await.expect("the local runner starts")
}

/// A runner with the demo user's mailbox connected through the real sign-in flow.
pub async fn connected(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut Options),
) -> (Runner, Mailbox) {
    let r = runner(dir, configure).await;
    let mailbox = connect_demo(&r).await;
    (r, mailbox)
}

/// Connects the demo user's mailbox through the real sign-in flow; the mailbox.
pub async fn connect_demo(r: &Runner) -> Mailbox {
    let (status, page) = r
        .connect_demo_mailbox()
        .await
        .expect("the sign-in flow runs");
    assert_eq!(status, 200, "{page}");
    r.services
        .admin
        .mailboxes()
        .await
        .unwrap()
        .remove(0)
        .mailbox
}

/// Connects the demo user and `others` more users of the demo tenant through the real sign-in
/// flow; their addresses, the demo user's first.
pub async fn connect_users(r: &Runner, others: usize) -> Vec<String> {
    let mut upns = vec![r.demo.user_upn.clone()];
    for i in 0..others {
        let upn = format!("user{i}@{}", r.demo.tenant_domain);
        r.sim.add_mailbox(
            &r.demo.tenant_id,
            &upn,
            &format!("User {i}"),
            m365_sim::world::MailboxKind::User,
        );
        upns.push(upn);
    }
    for upn in &upns {
        r.sim.sign_in_as(Some(upn));
        let (status, page) = r
            .connect_demo_mailbox()
            .await
            .expect("the sign-in flow runs");
        assert_eq!(status, 200, "{page}");
    }
    upns
}

/// Waits until every message id is imported (or the deadline passes) and returns their states.
pub async fn wait_imported(r: &Runner, mailbox: &str, ids: &[String]) -> Vec<Option<ImportState>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut states = Vec::new();
        for id in ids {
            states.push(
                r.services
                    .repos
                    .imports
                    .of(mailbox)
                    .get(id)
                    .await
                    .unwrap()
                    .map(|v| v.value),
            );
        }
        let all = states
            .iter()
            .all(|s| matches!(s, Some(ImportState::Imported { .. })));
        if all || tokio::time::Instant::now() > deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the job queue has nothing to work: empty, or only jobs parked for a person (back
/// in an hour, not within five minutes).
pub async fn settle(r: &Runner) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while r.db.active_depth(Duration::from_secs(300)).unwrap() > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A change notification for a new message in the demo user's Inbox, as Graph sends it: a batch
/// of one, for the mailbox's (first) subscription with its clientState.
pub fn created_notification(r: &Runner, message_id: &str) -> serde_json::Value {
    let (sub_id, client_state) = {
        let w = r.sim.world();
        let s = w.subscriptions.values().next().expect("a subscription");
        (s.id.clone(), s.client_state.clone().unwrap_or_default())
    };
    serde_json::json!({"value": [{
        "subscriptionId": sub_id,
        "changeType": "created",
        "clientState": client_state,
        "resource": format!("Users/{}/Messages/{message_id}", r.demo.user_id),
        "resourceData": {"@odata.type": "#Microsoft.Graph.Message", "id": message_id},
        "tenantId": r.demo.tenant_id,
    }]})
}

/// Events as the operators' hook receives them: the `X-Mailbridge-Event` header and the body.
pub type HookEvents = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

/// An HTTP hook on a free port that keeps every event posted to it (answering 204); its URL.
pub async fn event_hook() -> (String, HookEvents) {
    let got = HookEvents::default();
    let g = got.clone();
    let app =
        axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap,
                      axum::Json(v): axum::Json<serde_json::Value>| async move {
                    let kind = headers
                        .get("x-mailbridge-event")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    g.lock().unwrap().push((kind, v));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

/// The workspace's root folder.
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where cargo puts what this build's profile makes (debug for the tests, release for the
/// benches): for this machine, or for the target `triple`.
pub fn build_dir(triple: Option<&str>) -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    match triple {
        Some(triple) => target.join(triple).join(profile),
        None => target.join(profile),
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve`'s configuration file for an operator's setup on a simulator: a delegated `custom`
/// profile on `sim_url`, its client secret in `etc/client-secret`.
pub struct ServeConfig<'a> {
    pub port: u16,
    pub data: &'a std::path::Path,
    pub etc: &'a std::path::Path,
    pub sim_url: &'a str,
    pub tenant: &'a str,
    pub client_id: &'a str,
    /// The profile's id and name.
    pub profile: (&'a str, &'a str),
    /// More top-level keys, one per line.
    pub extra: &'a str,
}

impl ServeConfig<'_> {
    pub fn toml(&self) -> String {
        let sim_url = self.sim_url;
        format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
custom_cloud_hosts = ["{sim_host}"]
{extra}
[[profiles]]
id = "{id}"
name = "{name}"
cloud = {{ name = "custom", login = "{sim_url}", graph = "{sim_url}", resource = "https://graph.microsoft.com" }}
auth = "delegated"
tenant = "{tenant}"
client_id = "{client}"
client_secret = {{ file = "{etc}/client-secret" }}
is_default = true
"#,
            port = self.port,
            data = self.data.display(),
            sim_host = sim_url.trim_start_matches("http://"),
            extra = self.extra,
            id = self.profile.0,
            name = self.profile.1,
            etc = self.etc.display(),
            tenant = self.tenant,
            client = self.client_id,
        )
    }
}
