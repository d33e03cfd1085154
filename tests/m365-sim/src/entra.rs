//! Entra ID v2.0: OpenID discovery, JWKS, authorize (with a consent step), admin consent and the
//! token endpoint, with Entra's error shapes and RS256 tokens.

use crate::world::*;
use crate::Shared;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

pub const ACCESS_TOKEN_SECONDS: i64 = 3599;
/// Refresh tokens expire after 90 days without use.
pub const REFRESH_INACTIVE_DAYS: i64 = 90;
/// The tenant-independent aliases of the v2.0 endpoints.
pub const ALIASES: &[&str] = &["common", "organizations", "consumers"];

/// Claims of the access tokens the simulator issues for Graph (v1.0 access token shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub app_displayname: String,
    pub appid: String,
    /// `user` or `app`.
    pub idtyp: String,
    pub oid: String,
    pub sub: String,
    pub tid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uti: String,
    pub ver: String,
}

impl AccessClaims {
    pub fn is_app(&self) -> bool {
        self.idtyp == "app"
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scp.as_deref().unwrap_or_default().split(' ')
    }
}

fn now_ts() -> String {
    Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string()
}

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
    let ts = now_ts();
    let mut body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("{login_base}/error?code={code}"),
    });
    if code == 65001 {
        body["suberror"] = "consent_required".into();
    }
    if matches!(code, 50076 | 53003) {
        body["suberror"] = "basic_action".into();
        body["claims"] = r#"{"access_token":{"capolids":{"essential":true}}}"#.into();
    }
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
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

/// The app registration a browser request names and its redirect URI, checked exactly; else the
/// error page Entra shows (it cannot redirect to a URI it does not trust).
fn registered(
    w: &World,
    q: &HashMap<String, String>,
    tenant: &str,
) -> Result<(App, String), Response> {
    let client_id = q.get("client_id").map_or("", String::as_str);
    let Some(app) = w.apps.get(client_id).cloned() else {
        return Err(error_page(
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        ));
    };
    let redirect = q.get("redirect_uri").map_or("", String::as_str);
    if !app.redirect_uris.iter().any(|r| r == redirect) {
        return Err(error_page(50011, &format!("The redirect URI '{redirect}' specified in the request does not match the redirect URIs configured for the application '{client_id}'.")));
    }
    Ok((app, redirect.to_string()))
}

/// The tenant a path names: an id, a domain, or one of the aliases (None for an alias).
fn path_tenant(w: &World, tenant: &str) -> Result<Option<Tenant>, ()> {
    if ALIASES.contains(&tenant) {
        return Ok(None);
    }
    w.tenant_by(tenant).cloned().map(Some).ok_or(())
}

fn issuer(sim: &Shared, tenant: &str) -> String {
    format!("{}/{tenant}/v2.0", sim.base_url)
}

pub async fn discovery(State(sim): State<Shared>, Path(tenant): Path<String>) -> Response {
    let w = sim.world.lock().unwrap();
    let tid = match path_tenant(&w, &tenant) {
        Ok(Some(t)) => t.id,
        Ok(None) => "{tenantid}".to_string(),
        Err(()) => return tenant_not_found(&sim.base_url, &tenant),
    };
    let b = &sim.base_url;
    Json(json!({
        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer(&sim, &tid),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{b}/oidc/userinfo"),
        "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{b}/{tenant}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": sim.cloud_instance,
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": sim.resource.trim_start_matches("https://"),
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

fn tenant_not_found(login: &str, tenant: &str) -> Response {
    aad_error(login, StatusCode::BAD_REQUEST, "invalid_tenant", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."))
}

pub async fn jwks(State(sim): State<Shared>, Path(tenant): Path<String>) -> Response {
    let tid = {
        let w = sim.world.lock().unwrap();
        match path_tenant(&w, &tenant) {
            Ok(Some(t)) => t.id,
            Ok(None) => "{tenantid}".into(),
            Err(()) => return tenant_not_found(&sim.base_url, &tenant),
        }
    };
    Json(sim.key.jwks(&issuer(&sim, &tid))).into_response()
}

/// Resource scopes requested, in short form, or the first scope naming another resource.
fn parse_scopes(sim: &Shared, scope: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for s in scope.split_whitespace() {
        if (s.starts_with("https://") || s.starts_with("api://"))
            && !s
                .to_ascii_lowercase()
                .starts_with(&format!("{}/", sim.resource.to_ascii_lowercase()))
        {
            return Err(s.to_string());
        }
        out.insert(short_scope(s).to_string());
    }
    Ok(out)
}

fn resource_scopes(scopes: &BTreeSet<String>) -> BTreeSet<String> {
    scopes
        .iter()
        .filter(|s| !OIDC_SCOPES.contains(&s.as_str()) && s.as_str() != ".default")
        .cloned()
        .collect()
}

/// Whether a user (or their admin, for the tenant) has granted these delegated scopes to an app.
fn consented(w: &World, user: &User, client_id: &str, scopes: &BTreeSet<String>) -> bool {
    let admin = w
        .tenants
        .get(&user.tenant_id)
        .is_some_and(|t| t.admin_consents.contains_key(client_id));
    admin
        || user
            .grants
            .get(client_id)
            .is_some_and(|g| resource_scopes(scopes).is_subset(g))
}

pub async fn authorize(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    w.count("authorize", None);
    let (app, redirect_uri) = match registered(&w, &q, &tenant) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let client_id = app.client_id.clone();
    let state = q.get("state").cloned().unwrap_or_default();
    let fail = |error: &str, code: u32, msg: &str| {
        let desc = format!(
            "AADSTS{code}: {msg}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            guid(),
            guid(),
            now_ts()
        );
        redirect_with(
            &redirect_uri,
            &[
                ("error", error),
                ("error_description", &desc),
                ("state", &state),
            ],
        )
    };
    let Ok(path_tenant) = path_tenant(&w, &tenant) else {
        return fail(
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail(
            "unsupported_response_type",
            700054,
            "response_type is not enabled for the application.",
        );
    }
    let challenge = q.get("code_challenge").cloned();
    let method = q
        .get("code_challenge_method")
        .map_or("plain", String::as_str);
    if challenge.is_some() && !matches!(method, "S256" | "plain") {
        return fail(
            "invalid_request",
            9002313,
            "Invalid request. Request is malformed or invalid. code_challenge_method must be S256 or plain.",
        );
    }
    let challenge = challenge.map(|c| {
        if method == "plain" {
            format!("plain:{c}")
        } else {
            c
        }
    });
    let scopes = match parse_scopes(&sim, q.get("scope").map_or("", String::as_str)) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => {
            return fail(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        }
        Err(s) => {
            return fail(
                "invalid_resource",
                500011,
                &format!("The resource principal named {s} was not found in the tenant."),
            )
        }
    };
    let prompt = q.get("prompt").map_or("", String::as_str);
    // The "browser" signs in as the login_hint's user, or as the sim's signed-in user.
    let session = sim.browser_user.lock().unwrap().clone();
    let who = q.get("login_hint").cloned().or(session.clone());
    if prompt == "none" && session.is_none() {
        return fail(
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in.",
        );
    }
    let Some(user) = who.and_then(|h| w.user_by(&h).cloned()) else {
        return fail(
            "invalid_request",
            50034,
            "The user account does not exist in this directory.",
        );
    };
    if tenant == "consumers" {
        return fail("invalid_request", 50020, "User account from identity provider does not exist in tenant 'Microsoft Services' and cannot access the application in that tenant.");
    }
    if path_tenant.as_ref().is_some_and(|t| t.id != user.tenant_id) {
        return fail("invalid_request", 50020, "User account from identity provider does not exist in tenant and cannot access the application in that tenant.");
    }
    if !app.multi_tenant && user.tenant_id != app.tenant_id {
        if path_tenant.is_none() {
            return fail("invalid_request", 50194, &format!("Application '{client_id}' is not configured as a multi-tenant application. Usage of the /common endpoint is not supported for such applications."));
        }
        return fail(
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    if user.kind == MailboxKind::Shared || user.sign_in == SignIn::Disabled {
        return fail("access_denied", 50057, "The user account is disabled.");
    }
    if user.sign_in == SignIn::Blocked {
        return fail("access_denied", 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.");
    }
    if user.sign_in == SignIn::MfaRequired && prompt == "none" {
        return fail("interaction_required", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.");
    }
    if prompt == "consent" || !consented(&w, &user, &client_id, &scopes) {
        if prompt == "none" {
            return fail("consent_required", 65001, &format!("The user or administrator has not consented to use the application with ID '{client_id}' named '{}'. Send an interactive authorization request for this user and resource.", app.display_name));
        }
        if user.consent == ConsentAnswer::Decline {
            return fail(
                "access_denied",
                65004,
                "User declined to consent to access the app.",
            );
        }
        if let Some(u) = w.users.get_mut(&user.id) {
            u.grants
                .entry(client_id.clone())
                .or_default()
                .extend(resource_scopes(&scopes));
        }
    }
    let code = new_id("0.AAAA");
    w.codes.insert(
        code.clone(),
        AuthCode {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            scopes,
            user_id: user.id.clone(),
            nonce: q.get("nonce").cloned(),
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

/// `/{tenant}/adminconsent` (and `/{tenant}/v2.0/adminconsent`): a tenant's admin grants the
/// app's permissions for the whole tenant.
pub async fn admin_consent(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    w.count("adminconsent", None);
    let (app, redirect_uri) = match registered(&w, &q, &tenant) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let client_id = app.client_id.clone();
    let state = q.get("state").cloned().unwrap_or_default();
    // The admin who signs in: the login_hint's user or the browser's; their tenant is the target.
    let who = q
        .get("login_hint")
        .cloned()
        .or(sim.browser_user.lock().unwrap().clone());
    let admin_tenant = who.and_then(|h| w.user_by(&h)).map(|u| u.tenant_id.clone());
    let target = match path_tenant(&w, &tenant) {
        Ok(Some(t)) => Some(t.id),
        Ok(None) => admin_tenant.clone(),
        Err(()) => None,
    };
    let Some(target) = target.filter(|t| admin_tenant.as_deref() == Some(t.as_str())) else {
        let desc = format!("AADSTS90094: The grant requires admin permission.\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}", guid(), guid(), now_ts());
        return redirect_with(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", &desc),
                ("state", &state),
            ],
        );
    };
    if sim
        .admin_declines
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let desc = format!("AADSTS65004: User declined to consent to access the app.\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}", guid(), guid(), now_ts());
        return redirect_with(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", &desc),
                ("state", &state),
                ("admin_consent", "False"),
            ],
        );
    }
    if let Some(t) = w.tenants.get_mut(&target) {
        t.admin_consents.insert(client_id, Utc::now());
    }
    redirect_with(
        &redirect_uri,
        &[
            ("admin_consent", "True"),
            ("tenant", &target),
            ("state", &state),
            ("scope", &format!("{}/.default", sim.resource)),
        ],
    )
}

/// RFC 7523's client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate from PEM, as the portal takes it: its DER and `notAfter`.
pub fn parse_certificate(pem: &str) -> Option<AppCertificate> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let not_after = chrono::DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)?;
    Some(AppCertificate {
        der: pem.contents.clone(),
        not_after,
    })
}

/// Checks a client assertion as Entra ID does: the certificate named by `x5t#S256` (or `x5t`)
/// must be registered on the app and not expired, the RS256 signature made by its key, `iss` and
/// `sub` the client id, `aud` the token endpoint, and the time window current. The error's code
/// and message, Entra's.
fn check_assertion(app: &App, jwt: &str, audience: &str) -> Result<(), (u32, String)> {
    let malformed = || (50027, "JWT token is invalid or is malformed.".to_string());
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let json = |s: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(signature)) =
        (json(h), json(c), URL_SAFE_NO_PAD.decode(sig))
    else {
        return Err(malformed());
    };
    let s256 = header["x5t#S256"].as_str().unwrap_or_default();
    let s1 = header["x5t"].as_str().unwrap_or_default();
    let shown = if s256.is_empty() { s1 } else { s256 };
    let cert = app.certificates.iter().find(|cert| {
        (!s256.is_empty() && URL_SAFE_NO_PAD.encode(Sha256::digest(&cert.der)) == s256)
            || (!s1.is_empty()
                && URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    &cert.der,
                )) == s1)
    });
    let Some(cert) = cert else {
        return Err((700027, format!("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]", app.client_id)));
    };
    if cert.not_after <= Utc::now() {
        return Err((700027, format!("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{shown}', Found key 'Start=…, End={}']", cert.not_after.format("%m/%d/%Y %H:%M:%S"))));
    }
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert.der) else {
        return Err(malformed());
    };
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        parsed.public_key().subject_public_key.data.to_vec(),
    );
    if header["alg"] != "RS256"
        || key
            .verify(format!("{h}.{c}").as_bytes(), &signature)
            .is_err()
    {
        return Err((700027, format!("Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{shown}']")));
    }
    if claims["iss"] != app.client_id.as_str() || claims["sub"] != app.client_id.as_str() {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    if claims["aud"] != audience {
        return Err((700027, format!("Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials. (Expected '{audience}')")));
    }
    let now = Utc::now().timestamp();
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"].as_i64().unwrap_or(0);
    if exp <= now || nbf > now + 300 {
        return Err((
            700024,
            "Client assertion is not within its valid time range.".into(),
        ));
    }
    Ok(())
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

fn pkce_ok(challenge: &str, verifier: &str) -> bool {
    match challenge.strip_prefix("plain:") {
        Some(plain) => plain == verifier,
        None => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge,
    }
}

/// The sign-in state of a user, as the token endpoint reports it.
fn sign_in_error(user: &User) -> Option<(&'static str, u32, &'static str)> {
    match (user.kind, user.sign_in) {
        (MailboxKind::Shared, _) | (_, SignIn::Disabled) => Some(("invalid_grant", 50057, "The user account is disabled.")),
        (_, SignIn::MfaRequired) => Some(("invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the resource.")),
        (_, SignIn::Blocked) => Some(("invalid_grant", 53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.")),
        _ => None,
    }
}

pub async fn token(
    State(sim): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let login = sim.base_url.clone();
    let err = |status, e: &str, code, m: &str| aad_error(&login, status, e, code, m);
    let bad = StatusCode::BAD_REQUEST;
    let mut w = sim.world.lock().unwrap();
    w.count("token", None);
    let Ok(path_tenant) = path_tenant(&w, &tenant) else {
        return tenant_not_found(&login, &tenant);
    };
    let Some(grant) = form.get("grant_type").cloned() else {
        return err(
            bad,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    };
    let assertion = match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (Some(t), Some(a)) if t == JWT_BEARER => Some(a.clone()),
        (Some(_), _) => {
            return err(
                bad,
                "invalid_request",
                50027,
                "Invalid client_assertion_type or client_assertion.",
            )
        }
        _ => None,
    };
    let (client_id, secret) = match (&assertion, client_of(&headers, &form)) {
        (Some(_), _) => (
            form.get("client_id").cloned().unwrap_or_default(),
            String::new(),
        ),
        (None, Some(c)) => c,
        (None, None) => {
            return err(
                bad,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        }
    };
    let Some(app) = w.apps.get(&client_id).cloned() else {
        return err(bad, "unauthorized_client", 700016, &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."));
    };
    let now = Utc::now();
    if let Some(a) = &assertion {
        let audience = format!("{login}/{tenant}/oauth2/v2.0/token");
        if let Err((code, message)) = check_assertion(&app, a, &audience) {
            return err(StatusCode::UNAUTHORIZED, "invalid_client", code, &message);
        }
    } else {
        match app.secrets.iter().find(|s| s.value == secret) {
            None => return err(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app."),
            Some(s) if s.expires_at <= now => return err(StatusCode::UNAUTHORIZED, "invalid_client", 7000222, &format!("The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app.")),
            Some(_) => {}
        }
    }
    let requested = match parse_scopes(&sim, form.get("scope").map_or("", String::as_str)) {
        Ok(s) => s,
        Err(s) => {
            return err(
                bad,
                "invalid_resource",
                500011,
                &format!("The resource principal named {s} was not found in the tenant."),
            )
        }
    };
    let (user_id, scopes, nonce) = match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(c) = w.codes.get_mut(&code) else {
                return err(
                    bad,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if c.redeemed {
                return err(bad, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.");
            }
            if c.expires_at <= now {
                return err(bad, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.");
            }
            if c.client_id != client_id || form.get("redirect_uri") != Some(&c.redirect_uri) {
                return err(
                    bad,
                    "invalid_grant",
                    50148,
                    "The redirect_uri does not match the one used in the authorization request.",
                );
            }
            if let Some(challenge) = &c.challenge {
                let verifier = form.get("code_verifier").map_or("", String::as_str);
                if !pkce_ok(challenge, verifier) {
                    return err(bad, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.");
                }
            }
            c.redeemed = true;
            (Some(c.user_id.clone()), c.scopes.clone(), c.nonce.clone())
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            let Some(g) = w.refresh_tokens.get(&rt).cloned() else {
                return err(
                    bad,
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid.",
                );
            };
            if g.client_id != client_id {
                return err(
                    bad,
                    "invalid_grant",
                    70000,
                    "Provided grant is invalid or malformed.",
                );
            }
            let Some(user) = w.users.get(&g.user_id).cloned() else {
                return err(
                    bad,
                    "invalid_grant",
                    50034,
                    "The user account does not exist in this directory.",
                );
            };
            if user.revoked_before.is_some_and(|t| g.issued_at < t) {
                return err(bad, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued and the TokensValidFrom date for this user has since moved on.");
            }
            if g.issued_at + Duration::days(REFRESH_INACTIVE_DAYS) < now {
                return err(bad, "invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for 90.00:00:00.");
            }
            if let Some((e, code, m)) = sign_in_error(&user) {
                return err(bad, e, code, m);
            }
            let scopes = if requested.is_empty() {
                g.scopes.clone()
            } else {
                requested
            };
            if !consented(&w, &user, &client_id, &scopes) {
                return err(bad, "invalid_grant", 65001, &format!("The user or administrator has not consented to use the application with ID '{client_id}' named '{}'. Send an interactive authorization request for this user and resource.", app.display_name));
            }
            (Some(g.user_id.clone()), scopes, None)
        }
        "client_credentials" => {
            if requested.len() != 1 || !requested.contains(".default") {
                return err(bad, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).");
            }
            let Some(t) = path_tenant else {
                return err(bad, "invalid_request", 50059, "No tenant-identifying information found in either the request or implied by any provided credentials.");
            };
            if t.id != app.tenant_id && !t.admin_consents.contains_key(&client_id) {
                return err(bad, "unauthorized_client", 700016, &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", t.domain));
            }
            (None, requested, None)
        }
        "" => {
            return err(
                bad,
                "invalid_request",
                9002313,
                "Invalid request. Request is malformed or invalid.",
            )
        }
        _ => {
            return err(
                bad,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        }
    };
    let user = user_id.as_ref().and_then(|u| w.users.get(u)).cloned();
    let tenant_id = user.as_ref().map_or_else(
        || path_tenant_id(&w, &tenant, &app),
        |u| u.tenant_id.clone(),
    );
    let roles = match &user {
        Some(_) => Vec::new(),
        None => w
            .tenants
            .get(&tenant_id)
            .filter(|t| t.admin_consents.contains_key(&client_id))
            .map(|_| app.app_roles.clone())
            .unwrap_or_default(),
    };
    let resource_scp = resource_scopes(&scopes);
    let iat = now.timestamp();
    let lifetime = w.limits.access_token_seconds;
    let exp = iat + lifetime;
    let claims = AccessClaims {
        aud: sim.resource.clone(),
        iss: format!("https://sts.windows.net/{tenant_id}/"),
        iat,
        nbf: iat,
        exp,
        app_displayname: app.display_name.clone(),
        appid: client_id.clone(),
        idtyp: if user.is_some() { "user" } else { "app" }.into(),
        oid: user
            .as_ref()
            .map_or_else(|| app.client_id.clone(), |u| u.id.clone()),
        sub: new_id(""),
        tid: tenant_id.clone(),
        scp: user
            .as_ref()
            .map(|_| resource_scp.iter().cloned().collect::<Vec<_>>().join(" ")),
        roles,
        upn: user.as_ref().map(|u| u.upn.clone()),
        preferred_username: user.as_ref().map(|u| u.upn.clone()),
        name: user.as_ref().map(|u| u.display_name.clone()),
        uti: new_id(""),
        ver: "1.0".into(),
    };
    let granted: Vec<String> = if user.is_some() {
        resource_scp
            .iter()
            .map(|s| format!("{}/{s}", sim.resource))
            .chain(
                scopes
                    .iter()
                    .filter(|s| OIDC_SCOPES.contains(&s.as_str()))
                    .cloned(),
            )
            .collect()
    } else {
        vec![format!("{}/.default", sim.resource)]
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": granted.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": sim.key.sign(&claims),
    });
    if let Some(t) = body["access_token"].as_str() {
        w.keep_issued(t);
    }
    if let Some(u) = &user {
        if scopes.contains("openid") {
            let mut id = json!({
                "aud": client_id, "iss": issuer(&sim, &u.tenant_id), "iat": iat, "nbf": iat,
                "exp": exp, "name": u.display_name, "oid": u.id,
                "preferred_username": u.upn, "sub": new_id(""), "tid": u.tenant_id, "ver": "2.0",
            });
            if scopes.contains("email") {
                id["email"] = u.upn.clone().into();
            }
            if let Some(roles) = u.app_roles.get(&client_id).filter(|r| !r.is_empty()) {
                id["roles"] = roles.iter().cloned().collect::<Vec<_>>().into();
            }
            if let Some(n) = nonce {
                id["nonce"] = n.into();
            }
            body["id_token"] = sim.key.sign(&id).into();
            w.keep_issued(body["id_token"].as_str().unwrap_or_default());
        }
        if scopes.contains("offline_access") {
            let rt = new_id("1.AAAA");
            w.refresh_tokens.insert(
                rt.clone(),
                RefreshGrant {
                    client_id,
                    user_id: u.id.clone(),
                    scopes,
                    issued_at: now,
                },
            );
            body["refresh_token"] = rt.into();
        }
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn path_tenant_id(w: &World, tenant: &str, app: &App) -> String {
    w.tenant_by(tenant)
        .map_or_else(|| app.tenant_id.clone(), |t| t.id.clone())
}
