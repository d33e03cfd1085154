//! HTTP routers of the oauth function (`/connect`, `/oauth/callback`) and the webhook function
//! (`/notifications`, `/lifecycle`); the admin function's are in [`crate::admin`].

use crate::console::texts::{lang_of, Texts};
use crate::console::{notice, security_headers};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mailbridge_core::services::connect::{Callback, Completed, Connect};
use mailbridge_core::services::webhook::{Webhook, MAX_BODY_BYTES};
use mailbridge_core::{Error, Lang, Say};
use serde::Deserialize;
use std::sync::Arc;

/// The oauth function's routes.
pub fn oauth_router(connect: Arc<Connect>) -> Router {
    Router::new()
        .route("/connect", get(connect_start))
        .route("/admin-consent", get(admin_consent_start))
        .route("/console/login", get(console_sign_in))
        .route("/oauth/callback", get(callback))
        .layer(axum::middleware::map_response(security_headers))
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

/// The status an error answers with.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid(_) => StatusCode::BAD_REQUEST,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_)
        | Error::ReauthRequired { .. }
        | Error::MailboxNotEnabled(_)
        | Error::AccessDenied(_)
        | Error::Config { .. }
        | Error::Inactive(_) => StatusCode::CONFLICT,
        Error::Throttled { .. } | Error::Retry { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::SyncReset(_) | Error::Permanent(_) => StatusCode::BAD_GATEWAY,
        Error::Storage(_) => {
            tracing::error!(error = %e, "storage failure");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The status and the message an API caller may see: internals (storage failures) are not echoed.
pub(crate) fn public_error(e: &Error) -> (StatusCode, String) {
    let status = status_of(e);
    let message = match e {
        Error::Invalid(m) => m.to_string(),
        Error::NotFound(m) => format!("not found: {m}"),
        Error::Conflict(_) => "changed meanwhile; try again".into(),
        Error::Storage(_) => "internal error; see the logs".into(),
        _ => e.to_string(),
    };
    (status, message)
}

/// An error of the sign-in or consent flow as a page for a person: what to do, in their
/// language, never an internal name (a secret's name, Graph's URL, Entra's trace ids).
fn failure(lang: Lang, title: fn(&Texts) -> &'static str, e: &Error) -> Response {
    let said = match e {
        // A code Entra would not redeem (used twice, too old): this sign-in is over, not the grant.
        Error::ReauthRequired { code, .. } => Say::SignInNotCompleted { code: code.clone() },
        // What is wrong in the set-up is for an administrator; its details name internals.
        Error::Config { code, .. } => Say::SetUpIncomplete { code: code.clone() },
        Error::NotFound(_) => Say::UnknownLink,
        e => e.advice(),
    };
    notice(lang, status_of(e), title, &said)
}

#[derive(Deserialize)]
struct ConnectQuery {
    profile: Option<String>,
    login_hint: Option<String>,
}

async fn connect_start(
    State(connect): State<Arc<Connect>>,
    headers: HeaderMap,
    Query(q): Query<ConnectQuery>,
) -> Response {
    match connect.begin(q.profile.as_deref(), q.login_hint).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => failure(lang_of(&headers), |t| t.sign_in_not_started, &e),
    }
}

#[derive(Deserialize)]
struct ConsentQuery {
    profile: Option<String>,
}

/// Sends an administrator to Microsoft's admin-consent page for an organisation-wide profile.
async fn admin_consent_start(
    State(connect): State<Arc<Connect>>,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let Some(profile) = q.profile.filter(|p| !p.is_empty()) else {
        return notice(
            lang,
            StatusCode::BAD_REQUEST,
            |t| t.consent_not_started,
            &Say::NameTheProfile,
        );
    };
    match connect.begin_admin_consent(&profile).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => failure(lang, |t| t.consent_not_started, &e),
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

async fn callback(
    State(connect): State<Arc<Connect>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let lang = lang_of(&headers);
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
        Ok(Completed::Consent { profile, consent }) => notice(
            lang,
            StatusCode::OK,
            |t| t.consent_granted,
            &Say::ConsentGranted {
                tenant: consent.tenant_id,
                profile: profile.name,
            },
        ),
        Ok(Completed::Mailbox { mailbox: m, .. }) => notice(
            lang,
            StatusCode::OK,
            |t| t.mailbox_connected,
            &Say::MailboxConnected {
                address: m.address,
                approved: m.approved,
            },
        ),
        Err(e) => failure(lang, |t| t.not_connected, &e),
    };
    if let Some(cookie) = session.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The console's sign-in: Microsoft, asked only who the person is.
async fn console_sign_in(State(connect): State<Arc<Connect>>, headers: HeaderMap) -> Response {
    match connect.begin_console_sign_in().await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => failure(lang_of(&headers), |t| t.sign_in_not_started, &e),
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
    // The Query extractor URL-decoded the token.
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let reply = webhook
        .reply(q.validation_token.as_deref(), content_type, &body)
        .await;
    let status = StatusCode::from_u16(reply.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body() {
        Some((content_type, text)) => (
            status,
            [
                (header::CONTENT_TYPE, content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            text.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    }
}
