//! Graph v1.0: users, mail folders (and their delta), messages (list, get, `$value`, PATCH, move,
//! delete, delta) and subscriptions, in Graph's JSON shapes. The gate (`gate.rs`) has already
//! authenticated the caller and checked its right to the mailbox.

use crate::gate::{mailbox_access, Ctx};
use crate::world::*;
use crate::Shared;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Page size of lists and delta when the client sets none.
const DEFAULT_PAGE: usize = 10;

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

pub fn not_found(message: &str) -> Response {
    graph_error(StatusCode::NOT_FOUND, "ErrorItemNotFound", message)
}

fn item_not_found() -> Response {
    not_found("The specified object was not found in the store.")
}

fn bad_request(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The user the gate resolved (every route that calls this has a user segment).
fn user_of(ctx: &Ctx) -> &User {
    ctx.user.as_ref().expect("routes with a user segment")
}

/// One entity as Graph answers it, with its `@odata.context`.
fn entity(sim: &Shared, mut v: Value, set: &str) -> Response {
    v["@odata.context"] = format!("{}/v1.0/$metadata#{set}/$entity", sim.base_url).into();
    Json(v).into_response()
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
    let unread = w
        .messages
        .values()
        .filter(|m| m.folder_id == f.id && !m.is_read)
        .count();
    json!({
        "id": f.id, "displayName": f.display_name, "parentFolderId": f.parent_id,
        "childFolderCount": w.child_count(&f.id), "unreadItemCount": unread, "totalItemCount": items,
        "sizeInBytes": 0, "isHidden": false,
    })
}

/// The header block of a MIME message, unfolded (at most its first 64 KB are read).
fn head_of(mime: &[u8]) -> String {
    let text = String::from_utf8_lossy(&mime[..mime.len().min(64 * 1024)]);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ")
}

/// One header of an unfolded header block.
fn header_of(head: &str, name: &str) -> Option<String> {
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

pub fn message_json(m: &Message, immutable: bool) -> Value {
    let head = head_of(&m.mime);
    let h = |n| header_of(&head, n);
    let from = h("From").map(|f| recipient(&f));
    let list = |n| -> Vec<Value> {
        h(n).map(|t| t.split(',').map(recipient).collect())
            .unwrap_or_default()
    };
    let sent = h("Date")
        .and_then(|d| DateTime::parse_from_rfc2822(&d).ok())
        .map_or(m.received_at, |d| d.with_timezone(&Utc));
    json!({
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": format!("W/\"{}\"", m.change_key),
        "id": m.id_for(immutable),
        "createdDateTime": time(m.received_at),
        "lastModifiedDateTime": time(m.received_at),
        "changeKey": m.change_key,
        "categories": m.categories,
        "receivedDateTime": time(m.received_at),
        "sentDateTime": time(sent),
        "hasAttachments": m.has_attachments,
        "internetMessageId": h("Message-ID"),
        "subject": h("Subject"),
        "importance": "normal",
        "parentFolderId": m.folder_id,
        "conversationId": new_id("AAQkAG"),
        "isRead": m.is_read,
        "isDraft": false,
        "sender": from,
        "from": from,
        "toRecipients": list("To"),
        "ccRecipients": list("Cc"),
        "bccRecipients": [],
        "replyTo": [],
    })
}

pub async fn user(State(sim): State<Shared>, Extension(ctx): Extension<Ctx>) -> Response {
    let u = user_of(&ctx);
    sim.world.lock().unwrap().count("user", Some(&u.id));
    Json(user_json(&sim.base_url, u)).into_response()
}

/// `GET /users`: the tenant's users, for an app with `User.Read.All` (application) or a user
/// with `User.Read.All` / `User.ReadBasic.All`. Licensed users carry an `assignedLicenses` entry;
/// shared mailboxes and unlicensed users none. Pages of `$top` (default 100) with a nextLink.
pub async fn list_users(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let c = &ctx.claims;
    let allowed = if c.is_app() {
        c.roles.iter().any(|r| r == "User.Read.All")
    } else {
        c.scopes()
            .any(|s| s == "User.Read.All" || s == "User.ReadBasic.All")
    };
    if !allowed {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let w = sim.world.lock().unwrap();
    let top: usize = q
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let all: Vec<&User> = w.users.values().filter(|u| u.tenant_id == c.tid).collect();
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(top)
        .map(|u| {
            let licences = if u.kind == MailboxKind::User {
                json!([{"disabledPlans": [], "skuId": "6fd2c87f-b296-42f0-b197-1e91e994b900"}])
            } else {
                json!([])
            };
            json!({"id": u.id, "displayName": u.display_name, "mail": u.upn,
                   "userPrincipalName": u.upn, "assignedLicenses": licences})
        })
        .collect();
    let mut page =
        json!({"@odata.context": format!("{}/v1.0/$metadata#users", sim.base_url), "value": value});
    if skip + top < all.len() {
        page["@odata.nextLink"] = format!(
            "{}/v1.0/users?$top={top}&$skiptoken={}",
            sim.base_url,
            skip + top
        )
        .into();
    }
    Json(page).into_response()
}

#[derive(Deserialize)]
pub struct FolderPath {
    folder: String,
}

pub async fn folder(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<FolderPath>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("folder", Some(&u.id));
    match w.folder_of(&u.id, &p.folder) {
        Some(f) => entity(
            &sim,
            folder_json(&w, f),
            &format!("users('{}')/mailFolders", u.id),
        ),
        None => item_not_found(),
    }
}

fn folder_children(sim: &Shared, w: &World, user: &User, parent: &str) -> Response {
    let value: Vec<Value> = w
        .folders
        .values()
        .filter(|f| f.parent_id.as_deref() == Some(parent))
        .map(|f| folder_json(w, f))
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#users('{}')/mailFolders('{parent}')/childFolders", sim.base_url, user.id), "value": value})).into_response()
}

pub async fn child_folders(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<FolderPath>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("childFolders", Some(&u.id));
    match w.folder_of(&u.id, &p.folder).map(|f| f.id.clone()) {
        Some(parent) => folder_children(&sim, &w, u, &parent),
        None => item_not_found(),
    }
}

/// `mailFolders`: the folders under the root.
pub async fn folders(State(sim): State<Shared>, Extension(ctx): Extension<Ctx>) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("folders", Some(&u.id));
    let root = w.folder_of(&u.id, "msgfolderroot").map(|f| f.id.clone());
    folder_children(&sim, &w, u, &root.unwrap_or_default())
}

#[derive(Deserialize)]
pub struct MessagePath {
    id: String,
}

pub async fn message_value(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<MessagePath>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("mime", Some(&u.id));
    match w.message_of(&u.id, &p.id) {
        Some(m) => ([(header::CONTENT_TYPE, "text/plain")], m.mime.clone()).into_response(),
        None => item_not_found(),
    }
}

pub async fn message(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<MessagePath>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("message", Some(&u.id));
    match w.message_of(&u.id, &p.id) {
        Some(m) => entity(
            &sim,
            message_json(m, ctx.immutable),
            &format!("users('{}')/messages", u.id),
        ),
        None => item_not_found(),
    }
}

/// PATCH a message: `categories` and `isRead`.
pub async fn patch_message(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<MessagePath>,
    body: Bytes,
) -> Response {
    let u = user_of(&ctx);
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let mut w = sim.world.lock().unwrap();
    w.count("patch", Some(&u.id));
    let Some(id) = w.message_of(&u.id, &p.id).map(|m| m.id.clone()) else {
        return item_not_found();
    };
    let m = w.messages.get_mut(&id).expect("found above");
    if let Some(c) = patch.get("categories").and_then(Value::as_array) {
        m.categories = c
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
    }
    if let Some(r) = patch.get("isRead").and_then(Value::as_bool) {
        m.is_read = r;
    }
    w.touch_message(&id);
    Json(message_json(&w.messages[&id], ctx.immutable)).into_response()
}

pub async fn move_message(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<MessagePath>,
    body: Bytes,
) -> Response {
    let u = user_of(&ctx);
    let Some(dest) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("destinationId")?.as_str().map(str::to_string))
    else {
        return bad_request("destinationId must be set.");
    };
    let moved = {
        let mut w = sim.world.lock().unwrap();
        w.count("move", Some(&u.id));
        let Some(id) = w.message_of(&u.id, &p.id).map(|m| m.id.clone()) else {
            return item_not_found();
        };
        let Some(to) = w.folder_of(&u.id, &dest).map(|f| f.id.clone()) else {
            return not_found("The specified folder could not be found in the store.");
        };
        w.move_message(&id, &to);
        (id, to)
    };
    crate::notify::message_created(&sim, &u.id, &moved.1, &moved.0);
    let w = sim.world.lock().unwrap();
    (
        StatusCode::CREATED,
        Json(message_json(&w.messages[&moved.0], ctx.immutable)),
    )
        .into_response()
}

pub async fn delete_message(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<MessagePath>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("delete", Some(&u.id));
    let Some(id) = w.message_of(&u.id, &p.id).map(|m| m.id.clone()) else {
        return item_not_found();
    };
    w.delete_message(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// `receivedDateTime {ge|gt|le|lt} {instant}` clauses joined by `and`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReceivedFilter(Vec<(String, DateTime<Utc>)>);

impl ReceivedFilter {
    fn parse(f: &str) -> Option<Self> {
        let mut out = Vec::new();
        for clause in f.split(" and ") {
            let mut parts = clause.split_whitespace();
            let (Some(prop), Some(op), Some(value), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            if !prop.eq_ignore_ascii_case("receivedDateTime")
                || !matches!(op, "ge" | "gt" | "le" | "lt")
            {
                return None;
            }
            out.push((op.to_string(), value.trim_matches('\'').parse().ok()?));
        }
        Some(Self(out))
    }

    fn admits(&self, t: DateTime<Utc>) -> bool {
        self.0.iter().all(|(op, v)| match op.as_str() {
            "ge" => t >= *v,
            "gt" => t > *v,
            "le" => t <= *v,
            _ => t < *v,
        })
    }
}

fn filter_of(q: &HashMap<String, String>) -> Result<ReceivedFilter, Response> {
    match q.get("$filter") {
        None => Ok(ReceivedFilter::default()),
        Some(f) => ReceivedFilter::parse(f).ok_or_else(|| {
            bad_request("Invalid filter clause: only receivedDateTime comparisons are supported.")
        }),
    }
}

fn list_messages(
    sim: &Shared,
    ctx: &Ctx,
    folder: Option<&str>,
    q: &HashMap<String, String>,
) -> Response {
    let u = user_of(ctx);
    let filter = match filter_of(q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    w.count("messages", Some(&u.id));
    let folder_id = match folder {
        Some(f) => match w.folder_of(&u.id, f) {
            Some(f) => Some(f.id.clone()),
            None => return item_not_found(),
        },
        None => None,
    };
    let top = q
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, 1000);
    let skip: usize = q.get("$skip").and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut all: Vec<&Message> = w
        .messages
        .values()
        .filter(|m| m.user_id == u.id)
        .filter(|m| folder_id.as_ref().is_none_or(|f| *f == m.folder_id))
        .filter(|m| filter.admits(m.received_at))
        .collect();
    all.sort_by(|a, b| b.received_at.cmp(&a.received_at).then(a.id.cmp(&b.id)));
    let value: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| message_json(m, ctx.immutable))
        .collect();
    let base = match &folder_id {
        Some(f) => format!(
            "{}/v1.0/users/{}/mailFolders/{f}/messages",
            sim.base_url, u.id
        ),
        None => format!("{}/v1.0/users/{}/messages", sim.base_url, u.id),
    };
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#users('{}')/messages", sim.base_url, u.id), "value": value});
    if skip + top < all.len() {
        let mut next = vec![
            ("$top", top.to_string()),
            ("$skip", (skip + top).to_string()),
        ];
        if let Some(f) = q.get("$filter") {
            next.push(("$filter", f.clone()));
        }
        body["@odata.nextLink"] = format!(
            "{base}?{}",
            serde_urlencoded::to_string(next).unwrap_or_default()
        )
        .into();
    }
    Json(body).into_response()
}

pub async fn folder_messages(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<FolderPath>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_messages(&sim, &ctx, Some(&p.folder), &q)
}

pub async fn messages(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    list_messages(&sim, &ctx, None, &q)
}

/// What a delta link carries: the change log, the changes already seen, (within a round) where
/// the round ends and how far it got, the sync epoch and issue time (for expiry), and the filter.
#[derive(Serialize, Deserialize)]
struct DeltaState {
    log: String,
    from: u64,
    to: u64,
    off: usize,
    epoch: u64,
    iat: i64,
    #[serde(default)]
    filter: ReceivedFilter,
}

fn encode_state(s: &DeltaState) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default())
}

fn decode_state(t: &str) -> Option<DeltaState> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t).ok()?).ok()
}

fn sync_state_not_found(s: &DeltaState) -> Response {
    graph_error(
        StatusCode::GONE,
        "SyncStateNotFound",
        &format!(
            "The sync state generation is not found; generation={};[highest={}].",
            s.epoch,
            s.epoch + 1
        ),
    )
}

/// One delta round (or page) over a change log.
struct DeltaRound<'a> {
    log: String,
    link: String,
    q: &'a HashMap<String, String>,
    filter: ReceivedFilter,
}

impl DeltaRound<'_> {
    fn run(
        self,
        w: &World,
        ctx: &Ctx,
        here: impl Fn(&str) -> bool,
        item: impl Fn(&str, &ReceivedFilter) -> Option<Value>,
    ) -> Result<Value, Response> {
        let u = user_of(ctx);
        let now = Utc::now().timestamp();
        let state = if let Some(t) = self.q.get("$skiptoken") {
            decode_state(t)
        } else if let Some(t) = self.q.get("$deltatoken") {
            decode_state(t).map(|s| DeltaState {
                to: w.seq,
                off: 0,
                ..s
            })
        } else {
            Some(DeltaState {
                log: self.log.clone(),
                from: 0,
                to: w.seq,
                off: 0,
                epoch: u.sync_epoch,
                iat: now,
                filter: self.filter,
            })
        };
        let Some(state) = state.filter(|s| s.log == self.log) else {
            return Err(bad_request(
                "The delta token is malformed or names another collection.",
            ));
        };
        let max_age = w.limits.delta_token_seconds;
        let too_old = max_age > 0 && now - state.iat > i64::try_from(max_age).unwrap_or(i64::MAX);
        if state.epoch != u.sync_epoch || too_old {
            return Err(sync_state_not_found(&state));
        }
        let page_size = ctx.page_size.unwrap_or(DEFAULT_PAGE).clamp(1, 1000);
        let items = w.delta_items(&state.log, state.from, state.to, here);
        let page: Vec<Value> = items
            .iter()
            .skip(state.off)
            .take(page_size)
            .filter_map(|(id, present)| match present {
                true => item(id, &state.filter),
                // Gone since: a first round leaves it out, a later one says it went.
                false if state.from == 0 => None,
                false => Some(json!({"id": removed_id(w, &state.log, id, ctx.immutable), "@removed": {"reason": "deleted"}})),
            })
            .collect();
        let mut body = json!({"value": page});
        if state.off + page_size < items.len() {
            let next = DeltaState {
                off: state.off + page_size,
                iat: now,
                ..state
            };
            body["@odata.nextLink"] =
                format!("{}?$skiptoken={}", self.link, encode_state(&next)).into();
        } else {
            let done = DeltaState {
                from: state.to,
                off: 0,
                iat: now,
                ..state
            };
            body["@odata.deltaLink"] =
                format!("{}?$deltatoken={}", self.link, encode_state(&done)).into();
        }
        Ok(body)
    }
}

/// The id a removed item had for the client: its immutable id, or the REST id it had in the
/// collection before it left.
fn removed_id(w: &World, log: &str, id: &str, immutable: bool) -> String {
    if immutable {
        return id.to_string();
    }
    w.changes
        .get(log)
        .and_then(|c| c.iter().rev().find(|c| c.item_id == id && !c.present))
        .map_or_else(|| id.to_string(), |c| c.rest_id.clone())
}

pub async fn delta(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<FolderPath>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = user_of(&ctx);
    let filter = match filter_of(&q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut w = sim.world.lock().unwrap();
    w.count("delta", Some(&u.id));
    let Some(folder) = w.folder_of(&u.id, &p.folder).map(|f| f.id.clone()) else {
        return item_not_found();
    };
    let round = DeltaRound {
        log: folder.clone(),
        link: format!(
            "{}/v1.0/users/{}/mailFolders/{folder}/messages/delta",
            sim.base_url, u.id
        ),
        q: &q,
        filter,
    };
    let result = round.run(
        &w,
        &ctx,
        |id| w.messages.get(id).is_some_and(|m| m.folder_id == folder),
        |id, filter| {
            let m = w
                .messages
                .get(id)
                .filter(|m| filter.admits(m.received_at))?;
            Some(message_json(m, ctx.immutable))
        },
    );
    match result {
        Ok(mut body) => {
            body["@odata.context"] =
                format!("{}/v1.0/$metadata#Collection(message)", sim.base_url).into();
            Json(body).into_response()
        }
        Err(r) => r,
    }
}

/// `mailFolders/delta`: every folder of the mailbox, flat, then changes.
pub async fn folders_delta(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let u = user_of(&ctx);
    let mut w = sim.world.lock().unwrap();
    w.count("foldersDelta", Some(&u.id));
    let round = DeltaRound {
        log: format!("folders:{}", u.id),
        link: format!("{}/v1.0/users/{}/mailFolders/delta", sim.base_url, u.id),
        q: &q,
        filter: ReceivedFilter::default(),
    };
    let result = round.run(
        &w,
        &ctx,
        |id| w.folders.contains_key(id),
        |id, _| w.folders.get(id).map(|f| folder_json(&w, f)),
    );
    match result {
        Ok(mut body) => {
            body["@odata.context"] =
                format!("{}/v1.0/$metadata#Collection(mailFolder)", sim.base_url).into();
            Json(body).into_response()
        }
        Err(r) => r,
    }
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

fn check_expiration(sim: &Shared, exp: DateTime<Utc>) -> Result<(), Response> {
    let now = Utc::now();
    let max = sim.world.lock().unwrap().limits.subscription_minutes;
    if exp > now + Duration::minutes(max) + Duration::seconds(60) {
        return Err(graph_error(StatusCode::BAD_REQUEST, "ExtensionError", &format!("Operation: Create; Exception: [Status Code: BadRequest; Reason: Subscription expiration can only be {max} minutes in the future.]")));
    }
    if exp <= now {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Subscription expiration must be in the future.",
        ));
    }
    Ok(())
}

fn subscription_json(sim: &Shared, s: &Subscription) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["@odata.context"] = format!("{}/v1.0/$metadata#subscriptions/$entity", sim.base_url).into();
    v
}

pub async fn create_subscription(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Response {
    let c = &ctx.claims;
    let Ok(req) = serde_json::from_slice::<NewSubscription>(&body) else {
        return bad_request("Unable to read JSON request payload.");
    };
    let (Some(change_type), Some(notification_url), Some(resource), Some(expiration)) = (
        req.change_type,
        req.notification_url,
        req.resource,
        req.expiration_date_time,
    ) else {
        return graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", "Required fields changeType, notificationUrl, resource and expirationDateTime must be set.");
    };
    if let Err(r) = check_expiration(&sim, expiration) {
        return r;
    }
    if !notification_url.starts_with("https://") && !sim.allow_http_notifications {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The notification URL must use https.",
        );
    }
    if req.client_state.as_ref().is_some_and(|s| s.len() > 128) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "clientState must not be longer than 128 characters.",
        );
    }
    let (user, folder) = {
        let mut w = sim.world.lock().unwrap();
        w.expire_subscriptions();
        let Some((who, folder)) = parse_resource(&resource) else {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "The resource is not supported for subscriptions.",
            );
        };
        let user = if who == "me" {
            w.users.get(&c.oid).filter(|_| !c.is_app()).cloned()
        } else {
            w.user_by(&who).cloned()
        };
        let Some(u) = user else {
            return graph_error(
                StatusCode::NOT_FOUND,
                "ErrorInvalidUser",
                &format!("The requested user '{who}' is invalid."),
            );
        };
        // Delegated permissions reach only the signed-in user's own mailbox for subscriptions:
        // the `.Shared` permissions do not support them (Graph's documented limitation).
        if !c.is_app() && u.id != c.oid {
            return graph_error(StatusCode::FORBIDDEN, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]");
        }
        if let Err(r) = mailbox_access(&w, c, &u, false) {
            return r;
        }
        let folder = match folder {
            Some(f) => match w.folder_of(&u.id, &f) {
                Some(f) => Some(f.id.clone()),
                None => return not_found("The specified folder could not be found in the store."),
            },
            None => None,
        };
        w.count("subscriptions", Some(&u.id));
        // One subscription per app, change type and resource (the same mailbox and folder,
        // however the resource is written): Graph answers 409 and names the one it has.
        if let Some(same) = w.subscriptions.values().find(|s| {
            s.application_id == c.appid
                && s.change_type == change_type
                && s.user_id == u.id
                && s.folder_id == folder
        }) {
            return graph_error(
                StatusCode::CONFLICT,
                "ExtensionError",
                &format!(
                    "Subscription Id {} already exists for the requested combination",
                    same.id
                ),
            );
        }
        let existing = w
            .subscriptions
            .values()
            .filter(|s| s.user_id == u.id)
            .count();
        let limit = w.limits.subscriptions_per_mailbox;
        if existing >= limit {
            return graph_error(
                StatusCode::FORBIDDEN,
                "ExtensionError",
                &format!("Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions for this mailbox has reached its limit of {limit}.]"),
            );
        }
        (u, folder)
    };
    let mut endpoints = vec![notification_url.clone()];
    endpoints.extend(req.lifecycle_notification_url.clone());
    let unreachable = sim.faults.lock().unwrap().endpoint_unreachable;
    for url in &endpoints {
        if unreachable || !validate_endpoint(&sim.http, url).await {
            return graph_error(StatusCode::BAD_REQUEST, "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.");
        }
    }
    let sub = Subscription {
        id: guid(),
        resource,
        application_id: c.appid.clone(),
        change_type,
        client_state: req.client_state,
        notification_url,
        lifecycle_notification_url: req.lifecycle_notification_url,
        expiration_date_time: expiration,
        creator_id: c.oid.clone(),
        latest_supported_tls_version: req
            .latest_supported_tls_version
            .unwrap_or_else(|| "v1_2".into()),
        notification_content_type: "application/json".into(),
        user_id: user.id.clone(),
        tenant_id: user.tenant_id.clone(),
        folder_id: folder,
        immutable_ids: ctx.immutable,
        needs_reauth: false,
    };
    sim.world
        .lock()
        .unwrap()
        .subscriptions
        .insert(sub.id.clone(), sub.clone());
    (StatusCode::CREATED, Json(subscription_json(&sim, &sub))).into_response()
}

#[derive(Deserialize)]
pub struct SubPath {
    id: String,
}

/// A live subscription of the calling app.
fn own_subscription<'w>(
    c: &Ctx,
    w: &'w mut World,
    id: &str,
) -> Result<&'w mut Subscription, Response> {
    w.expire_subscriptions();
    w.subscriptions
        .get_mut(id)
        .filter(|s| s.application_id == c.claims.appid)
        .ok_or_else(|| {
            graph_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!("The object was not found. Subscription '{id}' not found."),
            )
        })
}

pub async fn list_subscriptions(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    w.expire_subscriptions();
    let value: Vec<Value> = w
        .subscriptions
        .values()
        .filter(|s| s.application_id == ctx.claims.appid)
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#subscriptions", sim.base_url), "value": value})).into_response()
}

pub async fn get_subscription(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<SubPath>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    match own_subscription(&ctx, &mut w, &p.id) {
        Ok(s) => Json(subscription_json(&sim, s)).into_response(),
        Err(r) => r,
    }
}

pub async fn patch_subscription(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<SubPath>,
    body: Bytes,
) -> Response {
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
    if let Err(r) = check_expiration(&sim, exp) {
        return r;
    }
    let mut w = sim.world.lock().unwrap();
    let s = match own_subscription(&ctx, &mut w, &p.id) {
        Ok(s) => s,
        Err(r) => return r,
    };
    s.expiration_date_time = exp;
    // Renewing reauthorizes too.
    s.needs_reauth = false;
    let user = s.user_id.clone();
    let v = subscription_json(&sim, s);
    w.count("subscriptions", Some(&user));
    Json(v).into_response()
}

/// `POST /subscriptions/{id}/reauthorize`.
pub async fn reauthorize_subscription(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<SubPath>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    match own_subscription(&ctx, &mut w, &p.id) {
        Ok(s) => {
            s.needs_reauth = false;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

pub async fn delete_subscription(
    State(sim): State<Shared>,
    Extension(ctx): Extension<Ctx>,
    Path(p): Path<SubPath>,
) -> Response {
    let mut w = sim.world.lock().unwrap();
    if let Err(r) = own_subscription(&ctx, &mut w, &p.id) {
        return r;
    }
    w.subscriptions.remove(&p.id);
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn filters() {
        let f = ReceivedFilter::parse("receivedDateTime ge 2024-01-01T00:00:00Z").unwrap();
        assert!(f.admits("2024-01-02T00:00:00Z".parse().unwrap()));
        assert!(!f.admits("2023-12-31T00:00:00Z".parse().unwrap()));
        assert!(ReceivedFilter::parse("subject eq 'x'").is_none());
    }
}
