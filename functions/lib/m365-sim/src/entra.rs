//! Entra ID v2.0: the authorize and token endpoints, with Entra's error shapes.

use crate::world::*;
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const ACCESS_TOKEN_SECONDS: i64 = 3599;

/// An Entra ID error response, shaped as the token endpoint sends it.
pub fn aad_error(
    login_base: &str,
    status: StatusCode,
    error: &str,
    code: u32,
    message: &str,
) -> Response {
    let trace = guid();
    let correlation = guid();
    let ts = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("{login_base}/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

/// The error page Entra shows when it cannot trust the redirect URI.
fn error_page(code: u32, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<html><body><h1>Sign in</h1><p>AADSTS{code}: {message}</p></body></html>"),
    )
        .into_response()
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect_uri}{sep}{q}")).into_response()
}

pub async fn authorize(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    w.count("authorize", None);
    let Some(app) = q.get("client_id").and_then(|c| w.apps.get(c)).cloned() else {
        return error_page(
            700016,
            "Application with identifier was not found in the directory.",
        );
    };
    let Some(redirect_uri) = q
        .get("redirect_uri")
        .filter(|r| app.redirect_uris.contains(r))
        .cloned()
    else {
        return error_page(50011, "The redirect URI specified in the request does not match the redirect URIs configured for the application.");
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let fail = |error: &str, code: u32, msg: &str| {
        let desc = format!("AADSTS{code}: {msg}");
        redirect_with(
            &redirect_uri,
            &[
                ("error", error),
                ("error_description", &desc),
                ("state", &state),
            ],
        )
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail(
            "unsupported_response_type",
            70000,
            "The response type is not supported.",
        );
    }
    let challenge = q.get("code_challenge").cloned();
    if challenge.is_some() && q.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return fail(
            "invalid_request",
            9002313,
            "Invalid request. Only S256 code challenges are accepted.",
        );
    }
    // The "browser" signs in as the login_hint's user, or as the sim's signed-in user.
    let user = match q.get("login_hint") {
        Some(h) => w.user_by(h).cloned(),
        None => sim
            .browser_user
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|u| w.user_by(u))
            .cloned(),
    };
    let Some(user) = user else {
        return fail(
            "invalid_request",
            50034,
            "The user account does not exist in this directory.",
        );
    };
    if !matches!(tenant.as_str(), "common" | "organizations")
        && tenant != user.tenant_id
        && w.tenants
            .get(&user.tenant_id)
            .is_none_or(|t| t.domain != tenant)
    {
        return fail(
            "invalid_request",
            90072,
            "User account from identity provider does not exist in tenant.",
        );
    }
    if !user.consents {
        return fail(
            "access_denied",
            65004,
            "User declined to consent to access the app.",
        );
    }
    let code = new_id("0.AAAA");
    w.codes.insert(
        code.clone(),
        AuthCode {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope: q.get("scope").cloned().unwrap_or_default(),
            user_id: user.id.clone(),
            expires_at: Utc::now() + Duration::minutes(10),
            redeemed: false,
        },
    );
    redirect_with(
        &redirect_uri,
        &[
            ("code", &code),
            ("state", &state),
            ("session_state", &guid()),
        ],
    )
}

/// Client authentication: `client_secret` in the body or HTTP Basic.
fn client_of(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (form.get("client_id"), form.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((unescape(id), unescape(secret)))
}

pub async fn token(
    State(sim): State<Shared>,
    Path(_tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let login = sim.base_url.clone();
    let err = |status, e: &str, code, m: &str| aad_error(&login, status, e, code, m);
    let mut w = sim.world.lock().unwrap();
    w.count("token", None);
    let Some((client_id, secret)) = client_of(&headers, &form) else {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let Some(app) = w.apps.get(&client_id).cloned() else {
        return err(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application with identifier was not found in the directory.",
        );
    };
    let now = Utc::now();
    match app.secrets.iter().find(|s| s.value == secret) {
        None => return err(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."),
        Some(s) if s.expires_at <= now => return err(StatusCode::UNAUTHORIZED, "invalid_client", 7000222, "The provided client secret keys for app are expired."),
        Some(_) => {}
    }
    let grant = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    let (user_id, scope, with_refresh) = match grant {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(c) = w.codes.get_mut(&code) else {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if c.redeemed {
                return err(StatusCode::BAD_REQUEST, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.");
            }
            if c.expires_at <= now {
                return err(StatusCode::BAD_REQUEST, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.");
            }
            if c.client_id != client_id || form.get("redirect_uri") != Some(&c.redirect_uri) {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50148,
                    "The redirect_uri does not match the one used in the authorization request.",
                );
            }
            if let Some(challenge) = &c.challenge {
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
                    return err(StatusCode::BAD_REQUEST, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.");
                }
            }
            c.redeemed = true;
            (Some(c.user_id.clone()), c.scope.clone(), true)
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(g) = w.refresh_tokens.get(&rt).cloned() else {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if g.client_id != client_id {
                return err(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed.",
                );
            }
            let user = w.users.get(&g.user_id).cloned();
            if user
                .as_ref()
                .and_then(|u| u.revoked_before)
                .is_some_and(|t| g.issued_at < t)
            {
                return err(StatusCode::BAD_REQUEST, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.");
            }
            if g.issued_at + Duration::days(90) < now {
                return err(StatusCode::BAD_REQUEST, "invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for 90.00:00:00.");
            }
            (
                Some(g.user_id.clone()),
                form.get("scope").cloned().unwrap_or(g.scope),
                true,
            )
        }
        "client_credentials" => {
            let scope = form.get("scope").cloned().unwrap_or_default();
            if !scope.ends_with("/.default") {
                return err(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
            }
            (None, scope, false)
        }
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        }
    };
    let tenant_id = user_id
        .as_ref()
        .and_then(|u| w.users.get(u))
        .map_or(app.tenant_id.clone(), |u| u.tenant_id.clone());
    let access = new_id("sim-at.");
    w.access_tokens.insert(
        access.clone(),
        AccessGrant {
            client_id: client_id.clone(),
            tenant_id,
            user_id: user_id.clone(),
            scope: scope.clone(),
            expires_at: now + Duration::seconds(ACCESS_TOKEN_SECONDS),
        },
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "ext_expires_in": ACCESS_TOKEN_SECONDS,
        "access_token": access,
    });
    if with_refresh && (grant == "refresh_token" || scope.split(' ').any(|s| s == "offline_access"))
    {
        let rt = new_id("sim-rt.");
        w.refresh_tokens.insert(
            rt.clone(),
            RefreshGrant {
                client_id,
                user_id: user_id.unwrap_or_default(),
                scope,
                issued_at: now,
            },
        );
        body["refresh_token"] = rt.into();
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
