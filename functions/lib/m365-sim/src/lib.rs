//! A Microsoft 365 simulator: Entra ID v2.0 (authorize, token) and Graph v1.0 (users, mail folders,
//! messages, `$value`, delta, subscriptions, change notifications) in Microsoft's wire format, for
//! tests, benchmarks and the local demo. It runs in-process ([`Sim::start`]) or standalone
//! (`cargo run -p m365-sim`). See `docs/simulator.md` for the control API.

pub mod entra;
pub mod graph;
pub mod notify;
pub mod world;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use world::World;

/// Faults to inject.
#[derive(Debug, Clone)]
pub struct Faults {
    pub drop_notifications: bool,
    pub duplicate_notifications: bool,
    /// How often a failed notification POST is sent again.
    pub notification_retries: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            drop_notifications: false,
            duplicate_notifications: false,
            notification_retries: 3,
        }
    }
}

pub struct SimState {
    pub world: Mutex<World>,
    /// Where the simulator is reached, e.g. `http://127.0.0.1:8400`; it stands for both the login
    /// and the Graph host.
    pub base_url: String,
    pub http: reqwest::Client,
    /// The user the simulated browser is signed in as, when the authorize request has no login_hint.
    pub browser_user: Mutex<Option<String>>,
    pub faults: Mutex<Faults>,
}

pub type Shared = Arc<SimState>;

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
}

pub fn router(state: Shared) -> Router {
    use graph::*;
    let v1 = Router::new()
        .route("/me", get(me))
        .route("/users/{user}", get(user))
        .route("/users/{user}/mailFolders/{folder}", get(folder))
        .route(
            "/users/{user}/mailFolders/{folder}/childFolders",
            get(child_folders),
        )
        .route(
            "/users/{user}/mailFolders/{folder}/messages/delta",
            get(delta),
        )
        .route("/users/{user}/messages/{id}", get(message))
        .route("/users/{user}/messages/{id}/$value", get(message_value))
        .route("/subscriptions", post(create_subscription))
        .route(
            "/subscriptions/{id}",
            get(get_subscription)
                .patch(patch_subscription)
                .delete(delete_subscription),
        );
    Router::new()
        .route("/{tenant}/oauth2/v2.0/authorize", get(entra::authorize))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
        .nest("/v1.0", v1)
        .route("/_sim/demo", get(control_demo))
        .route("/_sim/counters", get(control_counters))
        .route("/_sim/users/{user}/messages", post(control_deliver))
        .route("/_sim/users/{user}/revoke", post(control_revoke))
        .route(
            "/_sim/subscriptions/{id}/lifecycle/{event}",
            post(control_lifecycle),
        )
        .with_state(state)
}

impl Sim {
    /// Starts the simulator on `addr` (`127.0.0.1:0` for any free port).
    pub async fn start(addr: &str) -> std::io::Result<Sim> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(SimState {
            world: Mutex::new(World::default()),
            base_url: format!("http://{addr}"),
            http,
            browser_user: Mutex::new(None),
            faults: Mutex::new(Faults::default()),
        });
        let app = router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "simulator stopped");
            }
        });
        Ok(Sim { state, addr })
    }

    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// Seeds the demo tenant: Contoso, one app registration (with `redirect_uri` registered), and
    /// Adele, a licensed user whose browser session the simulator uses.
    pub fn seed_demo(&self, redirect_uri: &str) -> Demo {
        let mut w = self.state.world.lock().unwrap();
        let domain = "contoso.example";
        let tenant_id = w.add_tenant(domain);
        let upn = format!("adele@{domain}");
        let user_id = w.add_user(&tenant_id, &upn, "Adele Vance");
        let client_id = world::guid();
        let client_secret = format!("sim~{}", world::new_id(""));
        w.add_app(
            &tenant_id,
            "mailbridge (demo)",
            &client_id,
            &client_secret,
            vec![redirect_uri.to_string()],
        );
        *self.state.browser_user.lock().unwrap() = Some(upn.clone());
        Demo {
            tenant_id,
            tenant_domain: domain.into(),
            client_id,
            client_secret,
            user_id,
            user_upn: upn,
        }
    }

    /// Delivers a raw MIME message into a user's folder (id or well-known name) and notifies
    /// subscribers. Returns the message id.
    pub fn deliver(&self, user: &str, folder: &str, mime: impl Into<Bytes>) -> Option<String> {
        deliver(&self.state, user, folder, mime.into())
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.state
            .world
            .lock()
            .unwrap()
            .counters
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn set_faults(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut self.state.faults.lock().unwrap());
    }

    /// Revokes every refresh token of a user issued so far (admin "revoke sessions").
    pub fn revoke(&self, user: &str) -> bool {
        let mut w = self.state.world.lock().unwrap();
        let Some(id) = w.user_by(user).map(|u| u.id.clone()) else {
            return false;
        };
        if let Some(u) = w.users.get_mut(&id) {
            u.revoked_before = Some(chrono::Utc::now() + chrono::Duration::milliseconds(1));
        }
        true
    }

    pub fn subscription_ids(&self) -> Vec<String> {
        self.state
            .world
            .lock()
            .unwrap()
            .subscriptions
            .keys()
            .cloned()
            .collect()
    }

    pub fn lifecycle(&self, subscription_id: &str, event: &str) -> bool {
        notify::lifecycle(&self.state, subscription_id, event)
    }
}

fn deliver(sim: &Shared, user: &str, folder: &str, mime: Bytes) -> Option<String> {
    let (user_id, folder_id, id) = {
        let mut w = sim.world.lock().unwrap();
        let user_id = w.user_by(user)?.id.clone();
        let folder_id = w.folder_of(&user_id, folder)?.id.clone();
        let id = w.deliver(&user_id, &folder_id, mime);
        (user_id, folder_id, id)
    };
    notify::message_created(sim, &user_id, &folder_id, &id);
    Some(id)
}

async fn control_demo(State(sim): State<Shared>) -> Response {
    let w = sim.world.lock().unwrap();
    let apps: Vec<_> = w.apps.values().map(|a| serde_json::json!({"client_id": a.client_id, "tenant_id": a.tenant_id, "name": a.display_name})).collect();
    let users: Vec<_> = w
        .users
        .values()
        .map(|u| serde_json::json!({"id": u.id, "upn": u.upn, "tenant_id": u.tenant_id}))
        .collect();
    Json(serde_json::json!({"base_url": sim.base_url, "apps": apps, "users": users}))
        .into_response()
}

async fn control_counters(State(sim): State<Shared>) -> Response {
    Json(sim.world.lock().unwrap().counters.clone()).into_response()
}

#[derive(Deserialize)]
struct DeliverQuery {
    folder: Option<String>,
}

async fn control_deliver(
    State(sim): State<Shared>,
    Path(user): Path<String>,
    Query(q): Query<DeliverQuery>,
    body: Bytes,
) -> Response {
    match deliver(&sim, &user, q.folder.as_deref().unwrap_or("inbox"), body) {
        Some(id) => (StatusCode::CREATED, Json(serde_json::json!({"id": id}))).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such user or folder"})),
        )
            .into_response(),
    }
}

async fn control_revoke(State(sim): State<Shared>, Path(user): Path<String>) -> Response {
    let s = Sim {
        state: sim,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    if s.revoke(&user) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}

async fn control_lifecycle(
    State(sim): State<Shared>,
    Path((id, event)): Path<(String, String)>,
    Query(_q): Query<HashMap<String, String>>,
) -> Response {
    if notify::lifecycle(&sim, &id, &event) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
    .into_response()
}
