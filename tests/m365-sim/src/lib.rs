//! A Microsoft 365 simulator: Entra ID v2.0 (discovery, JWKS, authorize, admin consent, token,
//! RS256 tokens) and Graph v1.0 (users, mail folders, messages, `$value`, delta, subscriptions,
//! change notifications, throttling) in Microsoft's wire format, for tests, benchmarks and the
//! local demo. It runs in-process ([`Sim::start`]) or standalone (`cargo run -p m365-sim`), over
//! HTTP or HTTPS. See `docs/simulator.md` for the control API.

// Handlers return their error response as is: it is built once per failed request.
#![allow(clippy::result_large_err)]

pub mod control;
pub mod entra;
pub mod gate;
pub mod graph;
pub mod jwt;
pub mod notify;
pub mod tls;
pub mod world;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use world::{MailboxKind, User, World};

/// Faults to inject. Counts (`graph_errors`, `graph_hangs`) apply to the next that many Graph
/// requests; rates (0 to 1) draw each request or notification at random, for a soak.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    pub drop_notifications: bool,
    pub duplicate_notifications: bool,
    /// Keep notifications until [`Sim::flush_notifications`], which sends them newest first.
    pub hold_notifications: bool,
    /// Wait before each notification POST.
    pub notification_delay_ms: u64,
    /// How often a failed notification POST is sent again.
    pub notification_retries: u32,
    /// Added to every Graph request.
    pub graph_latency_ms: u64,
    /// The next this many Graph requests fail with `graph_error_status` and `Retry-After: 1`.
    pub graph_errors: u32,
    pub graph_error_status: u16,
    /// The next this many Graph requests hang for `hang_seconds`, then answer 504.
    pub graph_hangs: u32,
    pub hang_seconds: u64,
    /// Graph cannot reach the notification endpoints (a public URL that is not public): the
    /// subscription's validation request fails, and its creation answers 400 `ValidationError`.
    pub endpoint_unreachable: bool,
    /// Share of Graph requests answered 429 with a `Retry-After` of 1 to 3 s.
    pub graph_throttle_rate: f64,
    /// Share of Graph requests answered 503 (half of them with `Retry-After: 1`).
    pub graph_unavailable_rate: f64,
    /// Share of Graph requests that hang for `hang_seconds`, then answer 504.
    pub graph_hang_rate: f64,
    /// Share of notifications never sent.
    pub notification_drop_rate: f64,
    /// Share of notifications sent twice.
    pub notification_duplicate_rate: f64,
    /// Share of notifications sent after a random wait of up to `notification_delay_max_ms`, so
    /// that they arrive late and out of order.
    pub notification_delay_rate: f64,
    pub notification_delay_max_ms: u64,
}

impl Faults {
    /// Whether an event of probability `rate` happens this time.
    pub fn draw(rate: f64) -> bool {
        rate > 0.0 && rand::random::<f64>() < rate
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop_notifications: false,
            duplicate_notifications: false,
            hold_notifications: false,
            notification_delay_ms: 0,
            notification_retries: 3,
            graph_latency_ms: 0,
            graph_errors: 0,
            graph_error_status: 503,
            graph_hangs: 0,
            endpoint_unreachable: false,
            hang_seconds: 30,
            graph_throttle_rate: 0.0,
            graph_unavailable_rate: 0.0,
            graph_hang_rate: 0.0,
            notification_drop_rate: 0.0,
            notification_duplicate_rate: 0.0,
            notification_delay_rate: 0.0,
            notification_delay_max_ms: 0,
        }
    }
}

pub struct SimState {
    pub world: Mutex<World>,
    /// Where the simulator is reached, e.g. `http://127.0.0.1:8400`; it stands for both the login
    /// and the Graph host.
    pub base_url: String,
    /// The Graph resource (token audience and scope prefix) of the cloud simulated.
    pub resource: String,
    pub cloud_instance: String,
    pub key: jwt::SigningKey,
    pub http: reqwest::Client,
    /// The user the simulated browser is signed in as, when the authorize request has no login_hint.
    pub browser_user: Mutex<Option<String>>,
    /// The admin declines at the admin consent prompt.
    pub admin_declines: AtomicBool,
    /// Graph requires https notification URLs; the simulator allows http unless told otherwise.
    pub allow_http_notifications: bool,
    pub faults: Mutex<Faults>,
    /// Notifications held back by `hold_notifications`: (notification URL, notification).
    pub held: Mutex<Vec<(String, serde_json::Value)>>,
}

pub type Shared = Arc<SimState>;

/// The national cloud a simulator stands for: the Graph resource its tokens are for.
#[derive(Debug, Clone)]
pub struct Options {
    /// `127.0.0.1:0` for any free port.
    pub addr: String,
    /// Serve HTTPS with a generated CA.
    pub tls: bool,
    /// `https://graph.microsoft.com`, `https://graph.microsoft.us`,
    /// `https://dod-graph.microsoft.us` or `https://microsoftgraph.chinacloudapi.cn`.
    pub resource: String,
    pub cloud_instance: String,
    /// Refuse notification URLs that are not https, as Graph does.
    pub https_notifications_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:0".into(),
            tls: false,
            resource: "https://graph.microsoft.com".into(),
            cloud_instance: "microsoftonline.com".into(),
            https_notifications_only: false,
        }
    }
}

/// The seeded demo tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Demo {
    pub tenant_id: String,
    pub tenant_domain: String,
    pub client_id: String,
    pub client_secret: String,
    pub user_id: String,
    pub user_upn: String,
}

/// A running simulator.
pub struct Sim {
    pub state: Shared,
    pub addr: SocketAddr,
    ca_pem: Option<String>,
}

/// An app registration to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppSpec {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub multi_tenant: bool,
    /// Application permissions on Graph, e.g. `Mail.Read`.
    pub app_roles: Vec<String>,
    /// Days until the first client secret expires (negative: already expired).
    pub secret_days: i64,
}

impl Default for AppSpec {
    fn default() -> Self {
        Self {
            name: "app".into(),
            redirect_uris: Vec::new(),
            multi_tenant: true,
            app_roles: vec!["Mail.Read".into(), "Mail.ReadWrite".into()],
            secret_days: 365,
        }
    }
}

pub fn router(state: Shared) -> Router {
    use graph::*;
    // Every mailbox route, under both `/users/{user}` and `/me`.
    let mailbox = |r: Router<Shared>, prefix: &str| {
        r.route(&format!("{prefix}/mailFolders"), get(folders))
            .route(&format!("{prefix}/mailFolders/delta"), get(folders_delta))
            .route(&format!("{prefix}/mailFolders/{{folder}}"), get(folder))
            .route(
                &format!("{prefix}/mailFolders/{{folder}}/childFolders"),
                get(child_folders),
            )
            .route(
                &format!("{prefix}/mailFolders/{{folder}}/messages"),
                get(folder_messages),
            )
            .route(
                &format!("{prefix}/mailFolders/{{folder}}/messages/delta"),
                get(delta),
            )
            .route(&format!("{prefix}/messages"), get(messages))
            .route(
                &format!("{prefix}/messages/{{id}}"),
                get(message).patch(patch_message).delete(delete_message),
            )
            .route(
                &format!("{prefix}/messages/{{id}}/$value"),
                get(message_value),
            )
            .route(
                &format!("{prefix}/messages/{{id}}/move"),
                post(move_message),
            )
    };
    let v1 = Router::new()
        .route("/me", get(user))
        .route("/users", get(list_users))
        .route("/users/{user}", get(user))
        .route(
            "/subscriptions",
            post(create_subscription).get(list_subscriptions),
        )
        .route(
            "/subscriptions/{id}",
            get(get_subscription)
                .patch(patch_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/subscriptions/{id}/reauthorize",
            post(reauthorize_subscription),
        );
    let v1 = mailbox(mailbox(v1, "/users/{user}"), "/me").route_layer(
        axum::middleware::from_fn_with_state(state.clone(), gate::gate),
    );
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(entra::discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(entra::jwks))
        .route("/{tenant}/discovery/keys", get(entra::jwks))
        .route("/{tenant}/oauth2/v2.0/authorize", get(entra::authorize))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
        .route("/{tenant}/adminconsent", get(entra::admin_consent))
        .route("/{tenant}/v2.0/adminconsent", get(entra::admin_consent))
        .nest("/v1.0", v1)
        .merge(control::routes())
        .with_state(state)
}

impl Sim {
    /// Starts a plain-HTTP simulator of the global cloud on `addr` (`127.0.0.1:0` for any port).
    pub async fn start(addr: &str) -> std::io::Result<Sim> {
        Self::start_with(Options {
            addr: addr.into(),
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(opts: Options) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(&opts.addr).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let tls = opts.tls.then(|| tls::Tls::generate(&[])).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let host = if addr.ip().is_loopback() && addr.is_ipv4() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let state = Arc::new(SimState {
            world: Mutex::new(World::default()),
            base_url: format!("{scheme}://{host}"),
            resource: opts.resource.trim_end_matches('/').to_string(),
            cloud_instance: opts.cloud_instance,
            key: jwt::SigningKey::generate(),
            http,
            browser_user: Mutex::new(None),
            admin_declines: AtomicBool::new(false),
            allow_http_notifications: !opts.https_notifications_only,
            faults: Mutex::new(Faults::default()),
            held: Mutex::new(Vec::new()),
        });
        let app = router(state.clone());
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        match tls {
            Some(t) => {
                tokio::spawn(tls::serve(listener, app, t.config));
            }
            None => {
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(listener, app).await {
                        tracing::error!(error = %e, "simulator stopped");
                    }
                });
            }
        }
        Ok(Sim {
            state,
            addr,
            ca_pem,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The CA certificate (PEM) to trust when the simulator serves HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The simulated world, for what no other method covers.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.state.world.lock().unwrap()
    }

    /// Seeds the demo tenant: Contoso, one app registration (with `redirect_uri` registered), and
    /// Adele, a licensed user whose browser session the simulator uses.
    pub fn seed_demo(&self, redirect_uri: &str) -> Demo {
        let domain = "contoso.example";
        let tenant_id = self.add_tenant(domain);
        let upn = format!("adele@{domain}");
        let user_id = self.add_mailbox(&tenant_id, &upn, "Adele Vance", MailboxKind::User);
        let (client_id, client_secret) = self.add_app(
            &tenant_id,
            AppSpec {
                name: "mailbridge (demo)".into(),
                redirect_uris: vec![redirect_uri.to_string()],
                ..AppSpec::default()
            },
        );
        self.sign_in_as(Some(&upn));
        Demo {
            tenant_id,
            tenant_domain: domain.into(),
            client_id,
            client_secret,
            user_id,
            user_upn: upn,
        }
    }

    pub fn add_tenant(&self, domain: &str) -> String {
        self.world().add_tenant(domain)
    }

    /// Registers an app in a tenant; returns its client id and first client secret.
    pub fn add_app(&self, tenant_id: &str, spec: AppSpec) -> (String, String) {
        let client_id = world::guid();
        let secret = format!("sim~{}", world::new_id(""));
        let mut w = self.world();
        w.add_app(
            tenant_id,
            &spec.name,
            &client_id,
            &secret,
            spec.redirect_uris,
        );
        if let Some(app) = w.apps.get_mut(&client_id) {
            app.multi_tenant = spec.multi_tenant;
            app.app_roles = spec.app_roles;
            app.secrets[0].expires_at =
                chrono::Utc::now() + chrono::Duration::days(spec.secret_days);
        }
        (client_id, secret)
    }

    /// Limits an app's application permissions to these mailboxes (Exchange's RBAC for
    /// Applications); `None`: the whole tenant again.
    pub fn set_app_scope(&self, client_id: &str, users: Option<&[&str]>) -> bool {
        let mut w = self.world();
        let scope = users.map(|us| {
            us.iter()
                .filter_map(|u| w.user_by(u).map(|u| u.id.clone()))
                .collect()
        });
        w.apps
            .get_mut(client_id)
            .map(|a| a.mailbox_scope = scope)
            .is_some()
    }

    /// Registers a certificate (PEM) on an app, as uploading it in the portal does; false for a
    /// PEM that is not a certificate or an unknown app.
    pub fn add_certificate(&self, client_id: &str, pem: &str) -> bool {
        let Some(cert) = entra::parse_certificate(pem) else {
            return false;
        };
        self.world()
            .apps
            .get_mut(client_id)
            .map(|a| a.certificates.push(cert))
            .is_some()
    }

    /// Adds a client secret valid for `days`; returns its value.
    pub fn add_secret(&self, client_id: &str, days: i64) -> Option<String> {
        let secret = format!("sim~{}", world::new_id(""));
        self.world()
            .apps
            .get_mut(client_id)?
            .secrets
            .push(world::ClientSecret {
                value: secret.clone(),
                expires_at: chrono::Utc::now() + chrono::Duration::days(days),
            });
        Some(secret)
    }

    /// Expires every client secret of an app now.
    pub fn expire_secrets(&self, client_id: &str) -> bool {
        let mut w = self.world();
        let Some(app) = w.apps.get_mut(client_id) else {
            return false;
        };
        for s in &mut app.secrets {
            s.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
        }
        true
    }

    pub fn add_mailbox(&self, tenant_id: &str, upn: &str, name: &str, kind: MailboxKind) -> String {
        self.world().add_mailbox(tenant_id, upn, name, kind)
    }

    /// Changes a user (consent answer, sign-in state, delegates…).
    pub fn set_user(&self, user: &str, f: impl FnOnce(&mut User)) -> bool {
        let mut w = self.world();
        let Some(id) = w.user_by(user).map(|u| u.id.clone()) else {
            return false;
        };
        w.users.get_mut(&id).map(f).is_some()
    }

    /// Assigns an app role (its value) of an app registration to a user: the ID tokens the app
    /// gets for them carry it in `roles`.
    pub fn assign_app_role(&self, client_id: &str, user: &str, role: &str) -> bool {
        self.set_user(user, |u| {
            u.app_roles
                .entry(client_id.to_string())
                .or_default()
                .insert(role.to_string());
        })
    }

    /// Gives `delegate` full access to the (shared) mailbox `mailbox`.
    pub fn add_delegate(&self, mailbox: &str, delegate: &str) -> bool {
        let Some(d) = self.world().user_by(delegate).map(|u| u.id.clone()) else {
            return false;
        };
        self.set_user(mailbox, |u| u.delegates.push(d))
    }

    /// The user the simulated browser is signed in as (None: nobody).
    pub fn sign_in_as(&self, user: Option<&str>) {
        *self.state.browser_user.lock().unwrap() = user.map(str::to_string);
    }

    /// Grants admin consent for an app in a tenant, as `/adminconsent` does.
    pub fn admin_consent(&self, tenant: &str, client_id: &str) -> bool {
        let mut w = self.world();
        let Some(id) = w.tenant_by(tenant).map(|t| t.id.clone()) else {
            return false;
        };
        w.tenants
            .get_mut(&id)
            .map(|t| {
                t.admin_consents
                    .insert(client_id.into(), chrono::Utc::now())
            })
            .is_some()
    }

    pub fn add_folder(&self, user: &str, parent: &str, name: &str) -> Option<String> {
        let mut w = self.world();
        let uid = w.user_by(user)?.id.clone();
        let parent = w.folder_of(&uid, parent)?.id.clone();
        Some(w.add_folder(&uid, &parent, name))
    }

    /// Delivers a raw MIME message into a user's folder (id or well-known name) and notifies
    /// subscribers. Returns the message's immutable id.
    pub fn deliver(&self, user: &str, folder: &str, mime: impl Into<Bytes>) -> Option<String> {
        control::deliver(&self.state, user, folder, mime.into())
    }

    /// Moves a message (notifying the destination's subscribers); ids that are not immutable
    /// change.
    pub fn move_message(&self, user: &str, id: &str, folder: &str) -> Option<()> {
        control::move_message(&self.state, user, id, folder)
    }

    pub fn delete_message(&self, user: &str, id: &str) -> Option<()> {
        let mut w = self.world();
        let uid = w.user_by(user)?.id.clone();
        let id = w.message_of(&uid, id)?.id.clone();
        w.delete_message(&id)
    }

    /// Revokes every refresh token of a user issued so far (admin "revoke sessions").
    pub fn revoke(&self, user: &str) -> bool {
        self.set_user(user, |u| {
            u.revoked_before = Some(chrono::Utc::now());
        })
    }

    /// Expires every delta token of a user's folders (the next delta call answers 410).
    pub fn expire_delta_tokens(&self, user: &str) -> bool {
        self.set_user(user, |u| u.sync_epoch += 1)
    }

    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.faults.lock().unwrap());
    }

    pub fn set_limits(&self, f: impl FnOnce(&mut world::Limits)) {
        f(&mut self.world().limits);
    }

    /// Sends the notifications held by `hold_notifications`, newest first; returns how many.
    pub fn flush_notifications(&self) -> usize {
        notify::flush(&self.state)
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.world().counters.get(name).copied().unwrap_or(0)
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.world().counters.clone()
    }

    pub fn reset_counters(&self) {
        self.world().counters.clear();
    }

    pub fn subscription_ids(&self) -> Vec<String> {
        self.world().subscriptions.keys().cloned().collect()
    }

    pub fn lifecycle(&self, subscription_id: &str, event: &str) -> bool {
        notify::lifecycle(&self.state, subscription_id, event)
    }
}
