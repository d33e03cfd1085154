//! HTTP routers: `/connect` and `/oauth/callback` (oauth function), `/notifications` and
//! `/lifecycle` (webhook function), `/admin/...` (admin function).

use crate::App;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mailbridge_core::model::ServerProfile;
use mailbridge_core::services::connect::Callback;
use mailbridge_core::services::webhook::{validation_answer, MAX_BODY_BYTES};
use mailbridge_core::Error;
use serde::Deserialize;
use serde_json::json;

/// The oauth function's routes.
pub fn oauth_router(app: App) -> Router {
    Router::new()
        .route("/connect", get(connect))
        .route("/oauth/callback", get(callback))
        .with_state(app)
}

/// The webhook function's routes.
pub fn webhook_router(app: App) -> Router {
    Router::new()
        .route("/notifications", post(notifications))
        .route("/lifecycle", post(notifications))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}

/// The admin function's routes.
pub fn admin_router(app: App) -> Router {
    Router::new()
        .route("/admin/profiles", get(list_profiles))
        .route("/admin/profiles/{id}", axum::routing::put(put_profile))
        .route("/admin/mailboxes", get(list_mailboxes))
        .route("/admin/mailboxes/{id}", get(get_mailbox))
        .route("/admin/mailboxes/{id}/approval", post(set_approval))
        .route("/admin/mailboxes/{id}/enabled", post(set_enabled))
        .route(
            "/admin/mailboxes/{id}/folders",
            get(folders).put(set_folders),
        )
        .route("/admin/mailboxes/{id}/test", post(test_mailbox))
        .route("/admin/mailboxes/{id}/shared", post(add_shared))
        .with_state(app)
}

/// Every route, as the local runner serves them.
pub fn all_routes(app: App) -> Router {
    oauth_router(app.clone())
        .merge(webhook_router(app.clone()))
        .merge(admin_router(app))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1><p>{b}</p></body></html>",
        t = escape(title),
        b = escape(body)
    );
    (
        status,
        [(header::X_CONTENT_TYPE_OPTIONS, "nosniff")],
        Html(html),
    )
        .into_response()
}

/// The status and the message a caller may see: internals (storage failures) are not echoed.
fn public_error(e: &Error) -> (StatusCode, String) {
    match e {
        Error::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        Error::NotFound(m) => (StatusCode::NOT_FOUND, format!("not found: {m}")),
        Error::Conflict(_) => (StatusCode::CONFLICT, "changed meanwhile; try again".into()),
        Error::ReauthRequired { .. }
        | Error::MailboxNotEnabled(_)
        | Error::AccessDenied(_)
        | Error::Config { .. } => (StatusCode::CONFLICT, e.to_string()),
        Error::Throttled { .. } | Error::Retry { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Error::SyncReset(_) | Error::Permanent(_) => (StatusCode::BAD_GATEWAY, e.to_string()),
        Error::Storage(_) => {
            tracing::error!(error = %e, "storage failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the logs".into(),
            )
        }
    }
}

#[derive(Deserialize)]
struct ConnectQuery {
    profile: Option<String>,
    login_hint: Option<String>,
}

async fn connect(State(app): State<App>, Query(q): Query<ConnectQuery>) -> Response {
    match app.connect.begin(q.profile.as_deref(), q.login_hint).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            let (status, msg) = public_error(&e);
            page(status, "Cannot start the sign-in", &msg)
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(app): State<App>, Query(q): Query<CallbackQuery>) -> Response {
    let cb = Callback {
        code: q.code,
        state: q.state,
        error: q.error,
        error_description: q.error_description,
    };
    match app.connect.complete(cb).await {
        Ok(m) => {
            let what = if m.approved {
                "Mail arriving in the chosen folders is imported from now on."
            } else {
                "An administrator must approve it before mail is imported."
            };
            page(
                StatusCode::OK,
                "Mailbox connected",
                &format!("{} is connected. {what}", m.address),
            )
        }
        Err(e) => {
            let (status, msg) = public_error(&e);
            page(status, "The mailbox could not be connected", &msg)
        }
    }
}

#[derive(Deserialize)]
struct ValidationQuery {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

async fn notifications(
    State(app): State<App>,
    Query(q): Query<ValidationQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(token) = q.validation_token {
        // Graph's handshake: 200, text/plain, the URL-decoded token (the Query extractor decoded it).
        return match validation_answer(&token) {
            Ok(t) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                t.to_string(),
            )
                .into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    match app.webhook.intake(&body).await {
        Ok(out) => {
            tracing::info!(
                queued = out.queued,
                dropped = out.dropped,
                lifecycle = out.lifecycle,
                "notifications accepted"
            );
            StatusCode::ACCEPTED.into_response()
        }
        Err(Error::Invalid(why)) => {
            tracing::warn!(why, "rejected a notification body");
            StatusCode::BAD_REQUEST.into_response()
        }
        Err(e) => {
            // Nothing was persisted: a 5xx makes Graph send it again.
            tracing::error!(error = %e, "could not persist notifications");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    app.admin_token
        .as_ref()
        .is_some_and(|t| !t.is_empty() && t.ct_eq(presented))
}

fn json_result<T: serde::Serialize>(r: mailbridge_core::Result<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => {
            let (status, msg) = public_error(&e);
            (status, Json(json!({"error": msg}))).into_response()
        }
    }
}

macro_rules! guard {
    ($app:expr, $headers:expr) => {
        if !authorized(&$app, &$headers) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"error": "a valid admin bearer token is required"}))).into_response();
        }
    };
}

async fn list_profiles(State(app): State<App>, headers: HeaderMap) -> Response {
    guard!(app, headers);
    json_result(app.admin.profiles().await)
}

async fn put_profile(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    guard!(app, headers);
    let profile: ServerProfile = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("not a server profile: {e}")})),
            )
                .into_response()
        }
    };
    if profile.id != id {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the profile id must match the path"})),
        )
            .into_response();
    }
    json_result(app.admin.put_profile(profile).await)
}

async fn list_mailboxes(State(app): State<App>, headers: HeaderMap) -> Response {
    guard!(app, headers);
    json_result(app.admin.mailboxes().await)
}

async fn get_mailbox(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guard!(app, headers);
    json_result(app.admin.mailbox(&id).await)
}

#[derive(Deserialize)]
struct Approval {
    approved: bool,
}

async fn set_approval(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(a): Json<Approval>,
) -> Response {
    guard!(app, headers);
    json_result(app.admin.set_approved(&id, a.approved).await)
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn set_enabled(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(e): Json<Enabled>,
) -> Response {
    guard!(app, headers);
    json_result(app.admin.set_enabled(&id, e.enabled).await)
}

#[derive(Deserialize)]
struct SharedMailbox {
    address: String,
}

/// Adds a shared mailbox that the mailbox `{id}`'s user is a delegate of.
async fn add_shared(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(s): Json<SharedMailbox>,
) -> Response {
    guard!(app, headers);
    json_result(app.admin.add_shared(&id, &s.address).await)
}

async fn folders(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    guard!(app, headers);
    json_result(app.admin.folders(&id).await)
}

#[derive(Deserialize)]
struct FolderIds {
    folder_ids: Vec<String>,
}

async fn set_folders(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(f): Json<FolderIds>,
) -> Response {
    guard!(app, headers);
    json_result(app.admin.set_folders(&id, &f.folder_ids).await)
}

async fn test_mailbox(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    guard!(app, headers);
    json_result(
        app.admin
            .test(&id)
            .await
            .map(|m| json!({"ok": true, "message": m})),
    )
}
