//! Graph v1.0 as the simulator speaks it: users and mailbox kinds, folders, messages, ids, delta,
//! subscriptions and notifications, permissions, throttling and injected faults.

mod common;

use common::*;
use m365_sim::world::MailboxKind;
use reqwest::Method;
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn users_by_me_id_and_upn_in_graph_shapes() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    for path in [
        "/me".to_string(),
        format!("/users/{}", t.demo.user_id),
        format!("/users/{}", t.demo.user_upn),
    ] {
        let (s, v) = t.get(&token, &path).await;
        assert_eq!(s, 200);
        assert_eq!(v["id"], t.demo.user_id);
        assert_eq!(v["userPrincipalName"], t.demo.user_upn);
        assert!(v["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#users/$entity"));
    }
    let (s, v) = t
        .get(&token, "/users/nobody@contoso.example/messages")
        .await;
    assert_eq!(s, 404);
    assert_graph_error(&v, "ErrorInvalidUser");
    let (s, v) = t.get("not-a-jwt", "/me").await;
    assert_eq!(s, 401);
    assert_graph_error(&v, "InvalidAuthenticationToken");
    t.sim.admin_consent(&t.demo.tenant_id, &t.demo.client_id);
    let (_, app) = t.app_token(&t.demo.tenant_id).await;
    let (s, v) = t.get(app["access_token"].as_str().unwrap(), "/me").await;
    assert_eq!(s, 400);
    assert_graph_error(&v, "BadRequest");
}

#[tokio::test]
async fn shared_and_unlicensed_mailboxes() {
    let t = T::new().await;
    let shared = t.sim.add_mailbox(
        &t.demo.tenant_id,
        "info@contoso.example",
        "Info",
        MailboxKind::Shared,
    );
    let bob = t.sim.add_mailbox(
        &t.demo.tenant_id,
        "bob@contoso.example",
        "Bob",
        MailboxKind::User,
    );
    t.sim.deliver(&shared, "inbox", t.mail("to info")).unwrap();
    let path = format!("/users/{shared}/mailFolders/inbox/messages");
    // Without a `.Shared` scope, or not a delegate: 403.
    let own_only = t.user_token(&t.demo.user_upn).await;
    let (s, v) = t.get(&own_only, &path).await;
    assert_eq!(s, 403);
    assert_graph_error(&v, "ErrorAccessDenied");
    let shared_scopes = "openid offline_access https://graph.microsoft.com/Mail.Read.Shared";
    let tok = t.user_tokens(&t.demo.user_upn, shared_scopes).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(t.get(&tok, &path).await.0, 403);
    // A delegate reads it.
    t.sim.add_delegate(&shared, &t.demo.user_upn);
    let (s, v) = t.get(&tok, &path).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(ids(&v).len(), 1);
    // …but cannot subscribe to it with delegated permissions.
    let hook = Hook::start().await;
    let (s, _, b) = t
        .call(
            Method::POST,
            &tok,
            "/subscriptions",
            Some(sub_body(
                &hook,
                &format!("users/{shared}/mailFolders('inbox')/messages"),
            )),
            &[],
        )
        .await;
    assert_eq!(s, 403);
    assert_graph_error(&serde_json::from_slice(&b).unwrap(), "ExtensionError");
    // Another user's mailbox is not shared with Adele.
    assert_eq!(t.get(&tok, &format!("/users/{bob}/messages")).await.0, 403);
    // Unlicensed.
    let ghost = t.sim.add_mailbox(
        &t.demo.tenant_id,
        "ghost@contoso.example",
        "Ghost",
        MailboxKind::Unlicensed,
    );
    t.sim.admin_consent(&t.demo.tenant_id, &t.demo.client_id);
    let (_, app) = t.app_token(&t.demo.tenant_id).await;
    let app = app["access_token"].as_str().unwrap();
    let (s, v) = t
        .get(app, &format!("/users/{ghost}/mailFolders/inbox"))
        .await;
    assert_eq!(s, 404);
    assert_graph_error(&v, "MailboxNotEnabledForRESTAPI");
    // With application permissions, the shared mailbox is reachable.
    assert_eq!(t.get(app, &path).await.0, 200);
}

#[tokio::test]
async fn folders_well_known_names_children_at_any_depth_and_folder_delta() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let (s, v) = t.get(&token, "/me/mailFolders").await;
    assert_eq!(s, 200);
    let names: Vec<&str> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Inbox") && names.contains(&"Sent Items"),
        "{names:?}"
    );
    let (s, inbox) = t.get(&token, "/me/mailFolders/inbox").await;
    assert_eq!(s, 200);
    let a = t
        .sim
        .add_folder(&t.demo.user_upn, "inbox", "Clients")
        .unwrap();
    let b = t.sim.add_folder(&t.demo.user_upn, &a, "Acme").unwrap();
    let c = t.sim.add_folder(&t.demo.user_upn, &b, "2026").unwrap();
    let (_, v) = t
        .get(&token, &format!("/me/mailFolders/{b}/childFolders"))
        .await;
    assert_eq!(ids(&v), vec![c.clone()]);
    let (_, v) = t.get(&token, "/me/mailFolders/inbox/childFolders").await;
    assert_eq!(v["value"][0]["childFolderCount"], 1);
    assert_eq!(inbox["childFolderCount"], 0);
    // Folder delta: all folders, then only what is new.
    let (s, v) = t
        .get_with(&token, "/me/mailFolders/delta", &["odata.maxpagesize=100"])
        .await;
    assert_eq!(s, 200);
    assert_eq!(ids(&v).len(), 10);
    let link = v["@odata.deltaLink"].as_str().unwrap().to_string();
    let d = t
        .sim
        .add_folder(&t.demo.user_upn, "sentitems", "Archive 2025")
        .unwrap();
    let (_, v) = t.follow(&token, &link, &[]).await;
    assert_eq!(ids(&v), vec![d]);
}

#[tokio::test]
async fn messages_value_list_patch_move_and_ids() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let mime = t.mail("Quarterly report");
    let id = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", mime.clone())
        .unwrap();
    for i in 0..4 {
        t.sim
            .deliver(&t.demo.user_upn, "inbox", t.mail(&format!("m{i}")));
    }
    // $value is the MIME byte for byte.
    let (s, h, body) = t
        .call(
            Method::GET,
            &token,
            &format!("/me/messages/{id}/$value"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(body.as_ref(), mime.as_slice());
    // Lists page with nextLink.
    let (_, v) = t.get(&token, "/me/mailFolders/inbox/messages?$top=3").await;
    assert_eq!(ids(&v).len(), 3);
    let (_, v2) = t
        .follow(&token, v["@odata.nextLink"].as_str().unwrap(), &[])
        .await;
    assert_eq!(ids(&v2).len(), 2);
    // Without the Prefer header ids are REST ids; with it, immutable.
    let immutable = ["IdType=\"ImmutableId\""];
    let (_, m) = t.get(&token, &format!("/me/messages/{id}")).await;
    let rest_id = m["id"].as_str().unwrap().to_string();
    assert_ne!(rest_id, id);
    assert_eq!(m["subject"], "Quarterly report");
    assert!(m["receivedDateTime"].as_str().unwrap().ends_with('Z'));
    let (_, m) = t
        .get_with(&token, &format!("/me/messages/{rest_id}"), &immutable)
        .await;
    assert_eq!(m["id"], id);
    // PATCH categories.
    let (s, _, b) = t
        .call(
            Method::PATCH,
            &token,
            &format!("/me/messages/{id}"),
            Some(json!({"categories": ["Filed"]})),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let patched: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(patched["categories"], json!(["Filed"]));
    // Move: the REST id changes and the old one is gone; the immutable id stays.
    let archive = t.get(&token, "/me/mailFolders/archive").await.1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, b) = t
        .call(
            Method::POST,
            &token,
            &format!("/me/messages/{rest_id}/move"),
            Some(json!({"destinationId": "archive"})),
            &[],
        )
        .await;
    assert_eq!(s, 201);
    let moved: Value = serde_json::from_slice(&b).unwrap();
    assert_ne!(moved["id"], rest_id.as_str());
    assert_eq!(moved["parentFolderId"], archive);
    let (s, v) = t.get(&token, &format!("/me/messages/{rest_id}")).await;
    assert_eq!(s, 404);
    assert_graph_error(&v, "ErrorItemNotFound");
    assert_eq!(t.get(&token, &format!("/me/messages/{id}")).await.0, 200);
    // Writing needs Mail.ReadWrite.
    let read_only = t
        .user_tokens(
            &t.demo.user_upn,
            "openid https://graph.microsoft.com/Mail.Read",
        )
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = t
        .call(
            Method::PATCH,
            &read_only,
            &format!("/me/messages/{id}"),
            Some(json!({"categories": []})),
            &[],
        )
        .await;
    assert_eq!(s, 403);
    // Delete.
    let (s, _, _) = t
        .call(
            Method::DELETE,
            &token,
            &format!("/me/messages/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        t.get(&token, &format!("/me/messages/{id}/$value")).await.0,
        404
    );
    assert!(t.sim.counter(&format!("mime:{}", t.demo.user_id)) >= 2);
}

#[tokio::test]
async fn message_delta_pages_removals_filters_and_expiry() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let prefer = ["odata.maxpagesize=2", "IdType=\"ImmutableId\""];
    let mut delivered = Vec::new();
    for i in 0..5 {
        delivered.push(
            t.sim
                .deliver(&t.demo.user_upn, "inbox", t.mail(&format!("d{i}")))
                .unwrap(),
        );
    }
    // Round one: three pages of at most two, then a deltaLink.
    let (s, mut v) = t
        .get_with(&token, "/me/mailFolders/inbox/messages/delta", &prefer)
        .await;
    assert_eq!(s, 200);
    let mut seen = ids(&v);
    let mut pages = 1;
    while let Some(next) = v["@odata.nextLink"].as_str().map(str::to_string) {
        assert!(ids(&v).len() <= 2);
        v = t.follow(&token, &next, &prefer).await.1;
        seen.extend(ids(&v));
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, delivered);
    let link = v["@odata.deltaLink"].as_str().unwrap().to_string();
    // Round two: a new message, one moved out (removed), one deleted (removed).
    let new = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("new"))
        .unwrap();
    t.sim
        .move_message(&t.demo.user_upn, &delivered[0], "archive")
        .unwrap();
    t.sim
        .delete_message(&t.demo.user_upn, &delivered[1])
        .unwrap();
    let (_, v) = t
        .follow(
            &token,
            &link,
            &["odata.maxpagesize=50", "IdType=\"ImmutableId\""],
        )
        .await;
    let items = v["value"].as_array().unwrap();
    let removed: Vec<&str> = items
        .iter()
        .filter(|m| m["@removed"]["reason"] == "deleted")
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&delivered[0].as_str()) && removed.contains(&delivered[1].as_str()));
    assert!(items.iter().any(|m| m["id"] == new.as_str()));
    let link2 = v["@odata.deltaLink"].as_str().unwrap().to_string();
    // The moved message shows up in the destination folder's delta.
    let (_, v) = t
        .get_with(&token, "/me/mailFolders/archive/messages/delta", &prefer)
        .await;
    assert_eq!(ids(&v), vec![delivered[0].clone()]);
    // $filter on receivedDateTime.
    let future = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, v) = t
        .get_with(
            &token,
            &format!("/me/mailFolders/inbox/messages/delta?$filter=receivedDateTime+ge+{future}"),
            &prefer,
        )
        .await;
    assert_eq!(s, 200);
    assert!(ids(&v).is_empty());
    // Expired delta tokens: 410 SyncStateNotFound.
    t.sim.expire_delta_tokens(&t.demo.user_upn);
    let (s, v) = t.follow(&token, &link2, &prefer).await;
    assert_eq!(s, 410);
    assert_graph_error(&v, "SyncStateNotFound");
    // …and by age.
    let (_, v) = t
        .get_with(
            &token,
            "/me/mailFolders/inbox/messages/delta",
            &["odata.maxpagesize=100"],
        )
        .await;
    let link3 = v["@odata.deltaLink"].as_str().unwrap().to_string();
    t.sim.set_limits(|l| l.delta_token_seconds = 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(t.follow(&token, &link3, &[]).await.0, 410);
}

/// Messages that move or go between two pages of a round do not push the rest off its pages:
/// the soak lost a message that way when the list shrank under a page's offset.
#[tokio::test]
async fn message_delta_pages_hold_still_while_messages_move_and_go() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let prefer = ["odata.maxpagesize=2", "IdType=\"ImmutableId\""];
    // The archive's cursor is taken before anything arrives: its round below is a later one.
    let (_, v) = t
        .get_with(&token, "/me/mailFolders/archive/messages/delta", &prefer)
        .await;
    let archive = v["@odata.deltaLink"].as_str().unwrap().to_string();
    for (folder, other, start) in [
        ("inbox", "sentitems", None),
        ("archive", "inbox", Some(archive)),
    ] {
        let delivered: Vec<String> = (0..5)
            .map(|i| {
                t.sim
                    .deliver(&t.demo.user_upn, folder, t.mail(&format!("{folder} {i}")))
                    .unwrap()
            })
            .collect();
        let (s, mut v) = match &start {
            None => {
                t.get_with(&token, "/me/mailFolders/inbox/messages/delta", &prefer)
                    .await
            }
            Some(link) => t.follow(&token, link, &prefer).await,
        };
        assert_eq!(s, 200);
        let mut seen = ids(&v);
        assert_eq!(seen, delivered[..2]);
        // Between two pages, the first two leave the folder.
        t.sim
            .delete_message(&t.demo.user_upn, &delivered[0])
            .unwrap();
        t.sim
            .move_message(&t.demo.user_upn, &delivered[1], other)
            .unwrap();
        while let Some(next) = v["@odata.nextLink"].as_str().map(str::to_string) {
            v = t.follow(&token, &next, &prefer).await.1;
            seen.extend(ids(&v));
        }
        assert_eq!(
            seen, delivered,
            "{folder}: each message listed once, none skipped"
        );
        assert!(v["@odata.deltaLink"].is_string());
    }
}

fn sub_body(hook: &Hook, resource: &str) -> Value {
    json!({
        "changeType": "created",
        "notificationUrl": hook.url,
        "lifecycleNotificationUrl": hook.url,
        "resource": resource,
        "expirationDateTime": (chrono::Utc::now() + chrono::Duration::minutes(4000)).to_rfc3339(),
        "clientState": "secret-state",
    })
}

async fn subscribe(t: &T, token: &str, hook: &Hook, immutable: bool) -> Value {
    let prefer: &[&str] = if immutable {
        &["IdType=\"ImmutableId\""]
    } else {
        &[]
    };
    let (s, _, b) = t
        .call(
            Method::POST,
            token,
            "/subscriptions",
            Some(sub_body(hook, "me/mailFolders('Inbox')/messages")),
            prefer,
        )
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(s, 201, "{v}");
    v
}

#[tokio::test]
async fn subscriptions_validate_renew_reauthorize_delete_and_limits() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let hook = Hook::start().await;
    let sub = subscribe(&t, &token, &hook, true).await;
    let id = sub["id"].as_str().unwrap();
    assert_eq!(sub["clientState"], "secret-state");
    assert!(sub["expirationDateTime"].as_str().unwrap().ends_with('Z'));
    assert!(sub["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("$metadata#subscriptions/$entity"));
    // Too long a lifetime.
    let mut long = sub_body(&hook, "me/mailFolders('Inbox')/messages");
    long["expirationDateTime"] = (chrono::Utc::now() + chrono::Duration::minutes(10_200))
        .to_rfc3339()
        .into();
    let (s, _, _) = t
        .call(Method::POST, &token, "/subscriptions", Some(long), &[])
        .await;
    assert_eq!(s, 400);
    // A notification URL that fails validation.
    *hook.mode.lock().unwrap() = HookMode::BadValidation;
    let (s, _, b) = t
        .call(
            Method::POST,
            &token,
            "/subscriptions",
            Some(sub_body(&hook, "me/messages")),
            &[],
        )
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&serde_json::from_slice(&b).unwrap(), "ValidationError");
    *hook.mode.lock().unwrap() = HookMode::Ok;
    // GET, PATCH (renew), reauthorize, DELETE.
    assert_eq!(t.get(&token, &format!("/subscriptions/{id}")).await.0, 200);
    let exp = (chrono::Utc::now() + chrono::Duration::minutes(10_000)).to_rfc3339();
    let (s, _, b) = t
        .call(
            Method::PATCH,
            &token,
            &format!("/subscriptions/{id}"),
            Some(json!({"expirationDateTime": exp})),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let renewed: Value = serde_json::from_slice(&b).unwrap();
    let kept = renewed["expirationDateTime"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap();
    let asked = exp.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    assert!((kept - asked).num_milliseconds().abs() < 1);
    let (s, _, _) = t
        .call(
            Method::POST,
            &token,
            &format!("/subscriptions/{id}/reauthorize"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    let (s, _, _) = t
        .call(
            Method::DELETE,
            &token,
            &format!("/subscriptions/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = t.get(&token, &format!("/subscriptions/{id}")).await;
    assert_eq!(s, 404);
    assert_graph_error(&v, "ResourceNotFound");
    // One subscription per app, change type and resource: a second is refused with 409, naming
    // the first.
    let first = subscribe(&t, &token, &hook, false).await;
    let (s, _, b) = t
        .call(
            Method::POST,
            &token,
            "/subscriptions",
            Some(sub_body(&hook, "me/mailFolders('Inbox')/messages")),
            &[],
        )
        .await;
    assert_eq!(s, 409);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_graph_error(&v, "ExtensionError");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&format!(
            "Subscription Id {} already exists",
            first["id"].as_str().unwrap()
        )),
        "{v}"
    );
    // A lifetime over the tenant's maximum: 400, saying the maximum (older tenants: 4,230).
    t.sim.set_limits(|l| l.subscription_minutes = 4230);
    let mut long = sub_body(&hook, "me/messages");
    long["expirationDateTime"] = (chrono::Utc::now() + chrono::Duration::minutes(10_000))
        .to_rfc3339()
        .into();
    let (s, _, b) = t
        .call(Method::POST, &token, "/subscriptions", Some(long), &[])
        .await;
    assert_eq!(s, 400);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4230 minutes"),
        "{v}"
    );
    // The per-mailbox limit (lowered here from Graph's 1,000).
    t.sim.set_limits(|l| l.subscriptions_per_mailbox = 2);
    let (s, _, _) = t
        .call(
            Method::POST,
            &token,
            "/subscriptions",
            Some(sub_body(&hook, "me/messages")),
            &[],
        )
        .await;
    assert_eq!(s, 201);
    let (s, _, b) = t
        .call(
            Method::POST,
            &token,
            "/subscriptions",
            Some(sub_body(&hook, "me/mailFolders('SentItems')/messages")),
            &[],
        )
        .await;
    assert_eq!(s, 403);
    assert_graph_error(&serde_json::from_slice(&b).unwrap(), "ExtensionError");
}

#[tokio::test]
async fn notifications_batched_retried_held_and_lifecycle() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let hook = Hook::start().await;
    let sub = subscribe(&t, &token, &hook, true).await;
    let sub_id = sub["id"].as_str().unwrap().to_string();
    // One message, one notification with clientState and the immutable id.
    let id = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("n1"))
        .unwrap();
    let got = hook.wait_for(1).await;
    assert_eq!(got[0]["clientState"], "secret-state");
    assert_eq!(got[0]["subscriptionId"], sub_id);
    assert_eq!(got[0]["resourceData"]["id"], id);
    assert_eq!(got[0]["tenantId"], t.demo.tenant_id);
    // The endpoint fails twice: Graph retries.
    *hook.mode.lock().unwrap() = HookMode::Fail(2);
    t.sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("n2"))
        .unwrap();
    assert_eq!(hook.wait_for(2).await.len(), 2);
    assert!(t.sim.counter("notifications_failed") >= 2);
    // Held notifications arrive in one batch, newest first.
    t.sim.set_faults(|f| f.hold_notifications = true);
    let a = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("a"))
        .unwrap();
    let b = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("b"))
        .unwrap();
    assert_eq!(t.sim.flush_notifications(), 2);
    let got = hook.wait_for(4).await;
    assert_eq!(got[2]["resourceData"]["id"], b);
    assert_eq!(got[3]["resourceData"]["id"], a);
    assert_eq!(
        hook.received.lock().unwrap().last().unwrap()["value"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    t.sim.set_faults(|f| f.hold_notifications = false);
    // reauthorizationRequired: notifications stop until the subscription is reauthorized.
    assert!(t.sim.lifecycle(&sub_id, "reauthorizationRequired"));
    let got = hook.wait_for(5).await;
    assert_eq!(got[4]["lifecycleEvent"], "reauthorizationRequired");
    t.sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("lost"))
        .unwrap();
    assert_eq!(t.sim.counter("notifications_dropped"), 1);
    t.call(
        Method::POST,
        &token,
        &format!("/subscriptions/{sub_id}/reauthorize"),
        None,
        &[],
    )
    .await;
    t.sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("after"))
        .unwrap();
    assert_eq!(hook.wait_for(6).await.len(), 6);
    // missed and subscriptionRemoved.
    assert!(t.sim.lifecycle(&sub_id, "missed"));
    assert!(t.sim.lifecycle(&sub_id, "subscriptionRemoved"));
    let got = hook.wait_for(8).await;
    let events: Vec<&str> = got
        .iter()
        .filter_map(|n| n["lifecycleEvent"].as_str())
        .collect();
    assert!(events.contains(&"missed") && events.contains(&"subscriptionRemoved"));
    assert_eq!(
        t.get(&token, &format!("/subscriptions/{sub_id}")).await.0,
        404
    );
}

#[tokio::test]
async fn slow_endpoints_are_retried_and_ids_follow_the_subscription() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    let hook = Hook::start().await;
    subscribe(&t, &token, &hook, false).await;
    *hook.mode.lock().unwrap() = HookMode::Slow(3500);
    let id = t
        .sim
        .deliver(&t.demo.user_upn, "inbox", t.mail("slow"))
        .unwrap();
    for _ in 0..100 {
        if t.sim.counter("notifications_failed") >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        t.sim.counter("notifications_failed"),
        1,
        "an answer after 3 s is a failure"
    );
    *hook.mode.lock().unwrap() = HookMode::Ok;
    let got = hook.wait_for(1).await;
    // Created without the Prefer header: REST ids, not the immutable one.
    let nid = got[0]["resourceData"]["id"].as_str().unwrap();
    assert_ne!(nid, id);
    assert_eq!(t.get(&token, &format!("/me/messages/{nid}")).await.0, 200);
}

#[tokio::test]
async fn application_permissions_wait_for_propagation() {
    let t = T::new().await;
    t.sim.set_limits(|l| l.propagation_seconds = 2);
    t.sim.admin_consent(&t.demo.tenant_id, &t.demo.client_id);
    let (_, v) = t.app_token(&t.demo.tenant_id).await;
    let app = v["access_token"].as_str().unwrap();
    let path = format!("/users/{}/mailFolders/inbox", t.demo.user_id);
    let (s, v) = t.get(app, &path).await;
    assert_eq!(s, 403);
    assert_graph_error(&v, "ErrorAccessDenied");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(t.get(app, &path).await.0, 200);
    // Another tenant's mailbox stays out of reach.
    let other = t.sim.add_tenant("fabrikam.example");
    let bob = t
        .sim
        .add_mailbox(&other, "bob@fabrikam.example", "Bob", MailboxKind::User);
    assert_eq!(
        t.get(app, &format!("/users/{bob}/mailFolders/inbox"))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn throttling_per_app_and_mailbox() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    // Four concurrent requests at most.
    t.sim.set_faults(|f| f.graph_latency_ms = 400);
    let calls = (0..6).map(|_| t.call(Method::GET, &token, "/me/mailFolders/inbox", None, &[]));
    let results = join_all(calls.collect()).await;
    let throttled: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(
        throttled.len(),
        2,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let (_, h, b) = throttled[0];
    assert!(h["retry-after"].to_str().unwrap().parse::<u32>().unwrap() >= 1);
    let v: Value = serde_json::from_slice(b).unwrap();
    assert_graph_error(&v, "ApplicationThrottled");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("MailboxConcurrency"));
    // N requests per window.
    t.sim.set_faults(|f| f.graph_latency_ms = 0);
    t.sim.set_limits(|l| {
        l.per_window = 3;
        l.window_seconds = 60;
    });
    t.sim.world().usage.clear();
    for _ in 0..3 {
        assert_eq!(t.get(&token, "/me/mailFolders/inbox").await.0, 200);
    }
    let (s, h, _) = t
        .call(Method::GET, &token, "/me/mailFolders/inbox", None, &[])
        .await;
    assert_eq!(s, 429);
    assert!(h["retry-after"].to_str().unwrap().parse::<u32>().unwrap() > 1);
    assert_eq!(t.sim.counter(&format!("throttled:{}", t.demo.user_id)), 3);
}

/// Polls every future together (no extra crate: a JoinSet would need 'static futures).
async fn join_all<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut fs: Vec<_> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in fs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn injected_server_errors_and_hangs() {
    let t = T::new().await;
    let token = t.user_token(&t.demo.user_upn).await;
    t.sim.set_faults(|f| f.graph_errors = 1);
    let (s, h, b) = t
        .call(Method::GET, &token, "/me/mailFolders/inbox", None, &[])
        .await;
    assert_eq!(s, 503);
    assert_eq!(h["retry-after"], "1");
    assert_graph_error(&serde_json::from_slice(&b).unwrap(), "ServiceUnavailable");
    assert_eq!(t.get(&token, "/me/mailFolders/inbox").await.0, 200);
    t.sim.set_faults(|f| {
        f.graph_hangs = 1;
        f.hang_seconds = 1;
    });
    let (s, _) = t.get(&token, "/me/mailFolders/inbox").await;
    assert_eq!(s, 504);
    assert_eq!(t.sim.counter("hangs"), 1);
}
