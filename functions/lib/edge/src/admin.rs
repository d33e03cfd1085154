//! The admin function's routes (`/admin/...`). Every route takes [`Administrator`], an extractor
//! that checks the bearer token before anything else runs (axum runs it before the body is read),
//! so a handler cannot forget it and a caller without the token learns nothing of the API's
//! schema. Every error, the extractors' own included, has one JSON shape:
//! `{"error": "what is wrong", "code": "invalid"}`.

use crate::http::public_error;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mailbridge_core::model::{Mailbox, ServerProfile, TestReport, TestRun};
use mailbridge_core::ports::SecretStore;
use mailbridge_core::services::admin::{Admin, FolderNode, MailboxView, ProfileView};
use mailbridge_core::services::checks::RunProgress;
use mailbridge_core::{Error, Secret};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The bearer token of the admin API: given, or read once from the secret store when the first
/// call comes (so that a cold start does not wait for it).
#[derive(Clone)]
pub struct AdminToken {
    source: Option<(Arc<dyn SecretStore>, String)>,
    cell: Arc<OnceCell<Secret>>,
}

impl AdminToken {
    pub fn fixed(token: Secret) -> Self {
        Self {
            source: None,
            cell: Arc::new(OnceCell::new_with(Some(token))),
        }
    }

    pub fn from_secret(store: Arc<dyn SecretStore>, name: impl Into<String>) -> Self {
        Self {
            source: Some((store, name.into())),
            cell: Arc::new(OnceCell::new()),
        }
    }

    async fn get(&self) -> Result<&Secret, Error> {
        self.cell
            .get_or_try_init(|| async {
                match &self.source {
                    Some((store, name)) => store.get(name).await,
                    None => Err(Error::Config {
                        code: "no-admin-token".into(),
                        reason: "no admin token is configured".into(),
                    }),
                }
            })
            .await
    }
}

/// What the admin routes serve.
#[derive(Clone)]
pub struct AdminApi {
    pub admin: Arc<Admin>,
    pub token: AdminToken,
}

/// An admin API error in the API's one JSON shape.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, message) = public_error(&e);
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::BAD_GATEWAY => "upstream",
            _ => "internal",
        };
        Self::new(status, code, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match r.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (r.status(), "unsupported_media_type"),
            StatusCode::PAYLOAD_TOO_LARGE => (r.status(), "too_large"),
            _ => (StatusCode::BAD_REQUEST, "invalid"),
        };
        Self::new(status, code, r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.message, "code": self.code})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        }
        response
    }
}

/// A caller that presented the admin bearer token. Taking it as a handler's first argument is
/// what makes a route an admin route.
pub struct Administrator;

impl FromRequestParts<AdminApi> for Administrator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &AdminApi) -> Result<Self, ApiError> {
        let refused = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin bearer token is required",
            )
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(refused)?;
        let token = api.token.get().await.map_err(|e| {
            tracing::error!(error = %e, "the admin token cannot be read");
            refused()
        })?;
        if token.is_empty() || !token.ct_eq(presented) {
            return Err(refused());
        }
        Ok(Administrator)
    }
}

/// A JSON object body whose rejections have the API's error shape. Every admin body is an
/// object: an array is refused, although serde would read one as a struct's fields in order.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let invalid = |why: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", why);
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(invalid("the body must be a JSON object".into()));
        }
        T::deserialize(value)
            .map(Body)
            .map_err(|e| invalid(format!("the body is not what this route takes: {e}")))
    }
}

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The admin function's routes.
pub fn admin_router(api: AdminApi) -> Router {
    Router::new()
        .route("/admin/profiles", get(list_profiles))
        .route("/admin/profiles/{id}", put(put_profile))
        .route("/admin/mailboxes", get(list_mailboxes))
        .route("/admin/status", get(status))
        .route("/admin/mailboxes/{id}", get(get_mailbox))
        .route("/admin/mailboxes/{id}/approval", post(set_approval))
        .route("/admin/mailboxes/{id}/enabled", post(set_enabled))
        .route(
            "/admin/mailboxes/{id}/folders",
            get(folders).put(set_folders),
        )
        .route("/admin/mailboxes/{id}/test", post(test_mailbox))
        .route(
            "/admin/mailboxes/{id}/test-and-enable",
            post(test_and_enable),
        )
        .route("/admin/profiles/{id}/mailboxes", post(add_mailboxes))
        .route("/admin/profiles/{id}/discover", post(discover))
        .route(
            "/admin/profiles/{id}/test",
            post(test_profile).get(test_progress),
        )
        .route("/admin/mailboxes/{id}/shared", post(add_shared))
        .fallback(|_: Administrator| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such admin route")
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .with_state(api)
}

type Answer<T> = Result<Json<T>, ApiError>;

fn answer<T>(r: mailbridge_core::Result<T>) -> Answer<T> {
    r.map(Json).map_err(ApiError::from)
}

async fn list_profiles(_: Administrator, State(api): State<AdminApi>) -> Answer<Vec<ProfileView>> {
    answer(api.admin.profile_views().await)
}

async fn put_profile(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(profile): Body<ServerProfile>,
) -> Answer<ServerProfile> {
    if profile.id != id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the profile id must match the path",
        ));
    }
    answer(api.admin.put_profile(profile).await)
}

async fn list_mailboxes(_: Administrator, State(api): State<AdminApi>) -> Answer<Vec<MailboxView>> {
    answer(api.admin.mailboxes().await)
}

/// Every mailbox on one line (text), for an operator's terminal or a monitoring check.
async fn status(_: Administrator, State(api): State<AdminApi>) -> Response {
    let views = match api.admin.mailboxes().await {
        Ok(v) => v,
        Err(e) => return answer::<()>(Err(e)).into_response(),
    };
    let profiles = match api.admin.profile_views().await {
        Ok(p) => p,
        Err(e) => return answer::<()>(Err(e)).into_response(),
    };
    let mut text: String = profiles
        .iter()
        .filter_map(|p| p.one_line())
        .map(|l| l + "\n")
        .collect();
    text.extend(views.iter().map(|v| v.one_line() + "\n"));
    if views.is_empty() {
        text.push_str("no mailbox connected\n");
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn get_mailbox(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<MailboxView> {
    answer(api.admin.mailbox(&id).await)
}

#[derive(Deserialize)]
struct Approval {
    approved: bool,
}

async fn set_approval(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(a): Body<Approval>,
) -> Answer<Mailbox> {
    answer(api.admin.set_approved(&id, a.approved).await)
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

async fn set_enabled(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(e): Body<Enabled>,
) -> Answer<Mailbox> {
    answer(api.admin.set_enabled(&id, e.enabled).await)
}

#[derive(Deserialize)]
struct SharedMailbox {
    address: String,
}

/// Adds a shared mailbox that the mailbox `{id}`'s user is a delegate of.
async fn add_shared(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(s): Body<SharedMailbox>,
) -> Answer<Mailbox> {
    answer(api.admin.add_shared(&id, &s.address).await)
}

async fn folders(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<Vec<FolderNode>> {
    answer(api.admin.folders(&id).await)
}

#[derive(Deserialize)]
struct FolderIds {
    folder_ids: Vec<String>,
}

async fn set_folders(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(f): Body<FolderIds>,
) -> Answer<Mailbox> {
    answer(api.admin.set_folders(&id, &f.folder_ids).await)
}

#[derive(Deserialize)]
struct Addresses {
    addresses: Vec<String>,
}

/// Adds mailboxes (user or shared) of an organisation-wide profile by address.
async fn add_mailboxes(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(a): Body<Addresses>,
) -> Answer<Vec<Mailbox>> {
    answer(api.admin.add_mailboxes(&id, &a.addresses).await)
}

/// Adds every licensed user of an organisation-wide profile's tenant (User.Read.All).
async fn discover(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<Vec<Mailbox>> {
    answer(api.admin.discover(&id).await)
}

/// Tests a mailbox check by check (`/test`), and enables it when all pass (`/test-and-enable`).
async fn test_mailbox(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<TestReport> {
    answer(api.admin.test(&id, false).await)
}

async fn test_and_enable(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<TestReport> {
    answer(api.admin.test(&id, true).await)
}

#[derive(Deserialize)]
struct RunRequest {
    #[serde(default)]
    enable: bool,
}

/// Starts a test of every mailbox of a profile in the background: 202 with the run.
async fn test_profile(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Body(r): Body<RunRequest>,
) -> Result<(StatusCode, Json<TestRun>), ApiError> {
    let run = api.admin.test_profile(&id, r.enable).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

async fn test_progress(
    _: Administrator,
    State(api): State<AdminApi>,
    Path(id): Path<String>,
) -> Answer<RunProgress> {
    answer(api.admin.test_progress(&id).await)
}
