//! HTTP routers of the oauth function (`/connect`, `/oauth/callback`) and the webhook function
//! (`/notifications`, `/lifecycle`); the admin function's are in [`crate::admin`].

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mailbridge_core::services::connect::{Callback, Completed, Connect};
use mailbridge_core::services::webhook::{validation_answer, Webhook, MAX_BODY_BYTES};
use mailbridge_core::Error;
use serde::Deserialize;
use std::sync::Arc;

/// The oauth function's routes.
pub fn oauth_router(connect: Arc<Connect>) -> Router {
    Router::new()
        .route("/connect", get(connect_start))
        .route("/admin-consent", get(admin_consent_start))
        .route("/console/login", get(console_sign_in))
        .route("/oauth/callback", get(callback))
        .with_state(connect)
}

/// The webhook function's routes.
pub fn webhook_router(webhook: Arc<Webhook>) -> Router {
    Router::new()
        .route("/notifications", post(notifications))
        .route("/lifecycle", post(notifications))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(webhook)
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
pub(crate) fn public_error(e: &Error) -> (StatusCode, String) {
    match e {
        Error::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        Error::NotFound(m) => (StatusCode::NOT_FOUND, format!("not found: {m}")),
        Error::Conflict(_) => (StatusCode::CONFLICT, "changed meanwhile; try again".into()),
        Error::ReauthRequired { .. }
        | Error::MailboxNotEnabled(_)
        | Error::AccessDenied(_)
        | Error::Config { .. }
        | Error::Inactive(_) => (StatusCode::CONFLICT, e.to_string()),
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

async fn connect_start(
    State(connect): State<Arc<Connect>>,
    Query(q): Query<ConnectQuery>,
) -> Response {
    match connect.begin(q.profile.as_deref(), q.login_hint).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            let (status, msg) = public_error(&e);
            page(status, "Cannot start the sign-in", &msg)
        }
    }
}

#[derive(Deserialize)]
struct ConsentQuery {
    profile: Option<String>,
}

/// Sends an administrator to Microsoft's admin-consent page for an organisation-wide profile.
async fn admin_consent_start(
    State(connect): State<Arc<Connect>>,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let Some(profile) = q.profile.filter(|p| !p.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Cannot start the consent",
            "Name the organisation-wide profile: /admin-consent?profile=<id>.",
        );
    };
    match connect.begin_admin_consent(&profile).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            let (status, msg) = public_error(&e);
            page(status, "Cannot start the consent", &msg)
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    admin_consent: Option<String>,
    tenant: Option<String>,
}

async fn callback(State(connect): State<Arc<Connect>>, Query(q): Query<CallbackQuery>) -> Response {
    let cb = Callback {
        code: q.code,
        state: q.state,
        error: q.error,
        error_description: q.error_description,
        admin_consent: q.admin_consent,
        tenant: q.tenant,
    };
    let done = connect.complete(cb).await;
    // A person who signed in (or connected their mailbox) is signed in to the console too.
    let session = match done.as_ref().ok().and_then(Completed::person) {
        Some((oid, name, roles)) => {
            match crate::console::session::SessionKey::of(&connect.tokens).await {
                Ok(key) => Some(crate::console::session::set_cookie(
                    &key.sign(oid, name, roles, connect.clock.now()),
                    crate::console::session::secure(&connect.settings),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "the console's session key cannot be derived");
                    None
                }
            }
        }
        None => None,
    };
    let mut response = match done {
        Ok(Completed::Person { .. }) => Redirect::to("/console").into_response(),
        Ok(Completed::Consent { profile, consent }) => page(
            StatusCode::OK,
            "Consent granted",
            &format!(
                "The administrator of tenant {} granted profile '{}' its permissions. Microsoft may take up to two hours to apply them everywhere: mailboxes added meanwhile show \"permission propagating\" and are tried again on their own.",
                consent.tenant_id, profile.name
            ),
        ),
        Ok(Completed::Mailbox { mailbox: m, .. }) => {
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
    };
    if let Some(cookie) = session.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The console's sign-in: Microsoft, asked only who the person is.
async fn console_sign_in(State(connect): State<Arc<Connect>>) -> Response {
    match connect.begin_console_sign_in().await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => {
            let (status, msg) = public_error(&e);
            page(status, "Cannot start the sign-in", &msg)
        }
    }
}

#[derive(Deserialize)]
struct ValidationQuery {
    #[serde(rename = "validationToken")]
    validation_token: Option<String>,
}

async fn notifications(
    State(webhook): State<Arc<Webhook>>,
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
    match webhook.intake(&body).await {
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
