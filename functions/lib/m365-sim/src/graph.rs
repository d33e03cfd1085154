//! Graph v1.0: users, mail folders, messages, `$value`, delta, subscriptions, in Graph's JSON shapes.

// Handlers return their error response as is; it is built once per failed request.
#![allow(clippy::result_large_err)]

use crate::world::*;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Longest subscription lifetime for Outlook messages (basic notifications), in minutes.
pub const MAX_SUBSCRIPTION_MINUTES: i64 = 10_080;

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn ser_time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// A Graph error response.
pub fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message, "innerError": {
        "date": time(Utc::now()), "request-id": guid(), "client-request-id": guid()}}});
    (status, Json(body)).into_response()
}

/// The caller of a Graph request, from its bearer token.
pub struct Caller {
    pub grant: AccessGrant,
}

pub fn caller(sim: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| {
            graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            )
        })?;
    let w = sim.world.lock().unwrap();
    let grant = w.access_tokens.get(token).cloned().ok_or_else(|| {
        graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "IDX14100: JWT is not well formed.",
        )
    })?;
    if grant.expires_at <= Utc::now() {
        return Err(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(Caller { grant })
}

impl Caller {
    /// The mailbox user a path names (`me` or an id / UPN), if this caller may read it.
    fn user(&self, w: &World, who: &str) -> Result<User, Response> {
        let user = if who.eq_ignore_ascii_case("me") {
            self.grant.user_id.as_deref().and_then(|u| w.users.get(u))
        } else {
            w.user_by(who)
        };
        let Some(user) = user.cloned() else {
            return Err(graph_error(
                StatusCode::NOT_FOUND,
                "ErrorInvalidUser",
                &format!("The requested user '{who}' is invalid."),
            ));
        };
        let allowed = match &self.grant.user_id {
            Some(me) => *me == user.id,
            None => self.grant.tenant_id == user.tenant_id,
        };
        if !allowed {
            return Err(graph_error(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ));
        }
        Ok(user)
    }
}

fn user_json(base: &str, u: &User) -> Value {
    json!({
        "@odata.context": format!("{base}/v1.0/$metadata#users/$entity"),
        "businessPhones": [], "displayName": u.display_name, "givenName": null, "jobTitle": null,
        "mail": u.upn, "mobilePhone": null, "officeLocation": null, "preferredLanguage": "en-US",
        "surname": null, "userPrincipalName": u.upn, "id": u.id,
    })
}

fn folder_json(w: &World, f: &Folder) -> Value {
    let items = w.messages.values().filter(|m| m.folder_id == f.id).count();
    json!({
        "id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id,
        "childFolderCount": w.child_count(&f.id), "unreadItemCount": 0, "totalItemCount": items,
        "sizeInBytes": 0, "isHidden": false,
    })
}

/// Headers of a MIME message, unfolded, for the message's JSON.
fn header_of(mime: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(mime);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn recipient(v: &str) -> Value {
    let (name, addr) = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => (
            v[..a].trim().trim_matches('"').to_string(),
            v[a + 1..b].to_string(),
        ),
        _ => (v.trim().to_string(), v.trim().to_string()),
    };
    json!({"emailAddress": {"name": name, "address": addr}})
}

pub fn message_json(m: &Message) -> Value {
    let h = |n| header_of(&m.mime, n);
    let from = h("From").map(|f| recipient(&f));
    let to: Vec<Value> = h("To")
        .map(|t| t.split(',').map(recipient).collect())
        .unwrap_or_default();
    json!({
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": format!("W/\"{}\"", m.change_key),
        "id": m.id,
        "createdDateTime": time(m.received_at),
        "lastModifiedDateTime": time(m.received_at),
        "changeKey": m.change_key,
        "receivedDateTime": time(m.received_at),
        "sentDateTime": time(m.received_at),
        "hasAttachments": String::from_utf8_lossy(&m.mime).contains("Content-Disposition: attachment"),
        "internetMessageId": h("Message-ID"),
        "subject": h("Subject"),
        "importance": "normal",
        "parentFolderId": m.folder_id,
        "isRead": false,
        "isDraft": false,
        "sender": from,
        "from": from,
        "toRecipients": to,
    })
}

#[derive(Deserialize)]
pub struct UserPath {
    user: String,
}

pub async fn user(
    State(sim): State<Shared>,
    Path(p): Path<UserPath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    match c.user(&w, &p.user) {
        Ok(u) => {
            w.count("user", Some(&u.id));
            Json(user_json(&sim.base_url, &u)).into_response()
        }
        Err(r) => r,
    }
}

pub async fn me(s: State<Shared>, headers: HeaderMap) -> Response {
    user(s, Path(UserPath { user: "me".into() }), headers).await
}

#[derive(Deserialize)]
pub struct FolderPath {
    user: String,
    folder: String,
}

pub async fn folder(
    State(sim): State<Shared>,
    Path(p): Path<FolderPath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let u = match c.user(&w, &p.user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    w.count("folder", Some(&u.id));
    match w.folder_of(&u.id, &p.folder) {
        Some(f) => {
            let mut v = folder_json(&w, f);
            v["@odata.context"] = format!(
                "{}/v1.0/$metadata#users('{}')/mailFolders/$entity",
                sim.base_url, u.id
            )
            .into();
            Json(v).into_response()
        }
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    }
}

pub async fn child_folders(
    State(sim): State<Shared>,
    Path(p): Path<FolderPath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let u = match c.user(&w, &p.user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    w.count("childFolders", Some(&u.id));
    let Some(parent) = w.folder_of(&u.id, &p.folder).map(|f| f.id.clone()) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let value: Vec<Value> = w
        .folders
        .values()
        .filter(|f| f.parent_id.as_deref() == Some(&parent))
        .map(|f| folder_json(&w, f))
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#users('{}')/mailFolders('{}')/childFolders", sim.base_url, u.id, parent), "value": value})).into_response()
}

#[derive(Deserialize)]
pub struct MessagePath {
    user: String,
    id: String,
}

pub async fn message_value(
    State(sim): State<Shared>,
    Path(p): Path<MessagePath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let u = match c.user(&w, &p.user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    w.count("mime", Some(&u.id));
    match w.messages.get(&p.id).filter(|m| m.user_id == u.id) {
        Some(m) => ([(header::CONTENT_TYPE, "text/plain")], m.mime.clone()).into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    }
}

pub async fn message(
    State(sim): State<Shared>,
    Path(p): Path<MessagePath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let u = match c.user(&w, &p.user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    w.count("message", Some(&u.id));
    match w.messages.get(&p.id).filter(|m| m.user_id == u.id) {
        Some(m) => Json(message_json(m)).into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        ),
    }
}

/// What a delta link carries: the folder, the changes already seen, and (within a round) where
/// the round ends and how far it got.
#[derive(Serialize, Deserialize)]
struct DeltaState {
    f: String,
    from: u64,
    to: u64,
    off: usize,
}

fn encode_state(s: &DeltaState) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default())
}

fn decode_state(t: &str) -> Option<DeltaState> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t).ok()?).ok()
}

pub async fn delta(
    State(sim): State<Shared>,
    Path(p): Path<FolderPath>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let u = match c.user(&w, &p.user) {
        Ok(u) => u,
        Err(r) => return r,
    };
    w.count("delta", Some(&u.id));
    let Some(folder) = w.folder_of(&u.id, &p.folder).map(|f| f.id.clone()) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let state = if let Some(t) = q.get("$skiptoken") {
        decode_state(t)
    } else if let Some(t) = q.get("$deltatoken") {
        decode_state(t).map(|s| DeltaState {
            f: s.f,
            from: s.from,
            to: w.seq,
            off: 0,
        })
    } else {
        Some(DeltaState {
            f: folder.clone(),
            from: 0,
            to: w.seq,
            off: 0,
        })
    };
    let Some(state) = state.filter(|s| s.f == folder) else {
        return graph_error(
            StatusCode::GONE,
            "SyncStateNotFound",
            "The sync state generation is not found.",
        );
    };
    let page_size = headers
        .get_all("prefer")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(10)
        .clamp(1, 1000);
    let items = w.delta_items(&folder, state.from, state.to);
    let page: Vec<Value> = items
        .iter()
        .skip(state.off)
        .take(page_size)
        .map(|(id, present)| match (present, w.messages.get(id)) {
            (true, Some(m)) => message_json(m),
            _ => json!({"@odata.type": "#microsoft.graph.message", "id": id, "@removed": {"reason": "deleted"}}),
        })
        .collect();
    let link = format!(
        "{}/v1.0/users/{}/mailFolders/{}/messages/delta",
        sim.base_url, u.id, folder
    );
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#Collection(message)", sim.base_url), "value": page});
    if state.off + page_size < items.len() {
        let next = DeltaState {
            f: folder,
            from: state.from,
            to: state.to,
            off: state.off + page_size,
        };
        body["@odata.nextLink"] = format!("{link}?$skiptoken={}", encode_state(&next)).into();
    } else {
        let done = DeltaState {
            f: folder,
            from: state.to,
            to: state.to,
            off: 0,
        };
        body["@odata.deltaLink"] = format!("{link}?$deltatoken={}", encode_state(&done)).into();
    }
    Json(body).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription {
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<DateTime<Utc>>,
    client_state: Option<String>,
    latest_supported_tls_version: Option<String>,
}

/// `users/{u}/mailFolders('{f}')/messages`, `me/mailFolders/{f}/messages`, `users/{u}/messages`.
fn parse_resource(resource: &str) -> Option<(String, Option<String>)> {
    let r = resource.trim_start_matches('/');
    let (user, rest) = if let Some(rest) = r.strip_prefix("me/") {
        ("me".to_string(), rest)
    } else {
        let rest = r
            .strip_prefix("users/")
            .or_else(|| r.strip_prefix("Users/"))?;
        let (u, rest) = rest.split_once('/')?;
        (
            u.trim_start_matches("('")
                .trim_end_matches("')")
                .to_string(),
            rest,
        )
    };
    if rest.eq_ignore_ascii_case("messages") {
        return Some((user, None));
    }
    let rest = rest
        .strip_prefix("mailFolders")
        .or_else(|| rest.strip_prefix("mailfolders"))?;
    let (folder, tail) = if let Some(r) = rest.strip_prefix("('") {
        r.split_once("')")?
    } else {
        rest.strip_prefix('/')?.split_once('/')?
    };
    let tail = tail.trim_start_matches('/');
    tail.eq_ignore_ascii_case("messages")
        .then(|| (user, Some(folder.to_string())))
}

/// Sends Graph's validation request and checks the answer.
async fn validate_endpoint(client: &reqwest::Client, url: &str) -> bool {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        guid()
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!(
        "{url}{sep}validationToken={}",
        percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
    );
    let sent = client
        .post(target)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    let Ok(resp) = sent else { return false };
    let ok_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    resp.status() == StatusCode::OK && ok_type && resp.text().await.is_ok_and(|b| b == token)
}

pub async fn create_subscription(
    State(sim): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_slice::<NewSubscription>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload.",
        );
    };
    let (Some(change_type), Some(notification_url), Some(resource), Some(expiration)) = (
        req.change_type,
        req.notification_url,
        req.resource,
        req.expiration_date_time,
    ) else {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "Required fields changeType, notificationUrl, resource and expirationDateTime must be set.");
    };
    let now = Utc::now();
    if expiration > now + Duration::minutes(MAX_SUBSCRIPTION_MINUTES) {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", &format!("Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."));
    }
    if expiration <= now {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Subscription expiration must be in the future.",
        );
    }
    if req.client_state.as_ref().is_some_and(|s| s.len() > 255) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "clientState must not be longer than 255 characters.",
        );
    }
    let (user, folder) = {
        let mut w = sim.world.lock().unwrap();
        let Some((who, folder)) = parse_resource(&resource) else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The resource is not supported for subscriptions.",
            );
        };
        let u = match c.user(&w, &who) {
            Ok(u) => u,
            Err(r) => return r,
        };
        if c.grant.user_id.is_some()
            && c.grant.scope.split(' ').any(|s| s.ends_with(".Shared"))
            && c.grant.user_id.as_deref() != Some(&u.id)
        {
            return graph_error(StatusCode::FORBIDDEN, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]");
        }
        let folder = match folder {
            Some(f) => match w.folder_of(&u.id, &f) {
                Some(f) => Some(f.id.clone()),
                None => {
                    return graph_error(
                        StatusCode::NOT_FOUND,
                        "ErrorItemNotFound",
                        "The specified folder was not found in the store.",
                    )
                }
            },
            None => None,
        };
        w.count("subscriptions", Some(&u.id));
        if w.subscriptions
            .values()
            .filter(|s| s.user_id == u.id)
            .count()
            >= 1000
        {
            return graph_error(
                StatusCode::FORBIDDEN,
                "ExtensionError",
                "The number of subscriptions for this mailbox has reached its limit of 1000.",
            );
        }
        (u, folder)
    };
    let mut endpoints = vec![notification_url.clone()];
    endpoints.extend(req.lifecycle_notification_url.clone());
    for url in &endpoints {
        if !validate_endpoint(&sim.http, url).await {
            return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.");
        }
    }
    let sub = Subscription {
        id: guid(),
        resource,
        application_id: c.grant.client_id.clone(),
        change_type,
        client_state: req.client_state,
        notification_url,
        lifecycle_notification_url: req.lifecycle_notification_url,
        expiration_date_time: expiration,
        creator_id: c
            .grant
            .user_id
            .clone()
            .unwrap_or_else(|| c.grant.client_id.clone()),
        latest_supported_tls_version: req
            .latest_supported_tls_version
            .unwrap_or_else(|| "v1_2".into()),
        notification_content_type: "application/json".into(),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        folder_id: folder,
    };
    sim.world
        .lock()
        .unwrap()
        .subscriptions
        .insert(sub.id.clone(), sub.clone());
    let mut v = serde_json::to_value(&sub).unwrap_or_default();
    v["@odata.context"] = format!("{}/v1.0/$metadata#subscriptions/$entity", sim.base_url).into();
    (StatusCode::CREATED, Json(v)).into_response()
}

#[derive(Deserialize)]
pub struct SubPath {
    id: String,
}

fn own_subscription(c: &Caller, w: &World, id: &str) -> Result<Subscription, Response> {
    w.subscriptions
        .get(id)
        .filter(|s| s.application_id == c.grant.client_id)
        .cloned()
        .ok_or_else(|| {
            graph_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("The object was not found. Subscription '{id}' not found."),
            )
        })
}

pub async fn get_subscription(
    State(sim): State<Shared>,
    Path(p): Path<SubPath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let w = sim.world.lock().unwrap();
    match own_subscription(&c, &w, &p.id) {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

pub async fn patch_subscription(
    State(sim): State<Shared>,
    Path(p): Path<SubPath>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    let sub = match own_subscription(&c, &w, &p.id) {
        Ok(s) => s,
        Err(r) => return r,
    };
    w.count("subscriptions", Some(&sub.user_id));
    let Some(exp) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("expirationDateTime")
            .and_then(|e| e.as_str())
            .and_then(|e| e.parse::<DateTime<Utc>>().ok())
    }) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "expirationDateTime must be set.",
        );
    };
    if exp > Utc::now() + Duration::minutes(MAX_SUBSCRIPTION_MINUTES) {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", &format!("Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."));
    }
    let s = w.subscriptions.get_mut(&p.id).expect("checked above");
    s.expiration_date_time = exp;
    Json(s.clone()).into_response()
}

pub async fn delete_subscription(
    State(sim): State<Shared>,
    Path(p): Path<SubPath>,
    headers: HeaderMap,
) -> Response {
    let c = match caller(&sim, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    if let Err(r) = own_subscription(&c, &w, &p.id) {
        return r;
    }
    w.subscriptions.remove(&p.id);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_resource;

    #[test]
    fn resources() {
        assert_eq!(
            parse_resource("me/mailFolders('Inbox')/messages"),
            Some(("me".into(), Some("Inbox".into())))
        );
        assert_eq!(
            parse_resource("users/u1/mailFolders('AAM=')/messages"),
            Some(("u1".into(), Some("AAM=".into())))
        );
        assert_eq!(
            parse_resource("/users/u1/mailFolders/inbox/messages"),
            Some(("u1".into(), Some("inbox".into())))
        );
        assert_eq!(
            parse_resource("users/u1/messages"),
            Some(("u1".into(), None))
        );
        assert_eq!(parse_resource("users/u1/events"), None);
    }
}
