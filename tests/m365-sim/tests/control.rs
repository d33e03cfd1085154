//! The control API over HTTP, as a scenario script uses it.

mod common;

use common::*;
use serde_json::{json, Value};

async fn call(t: &T, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = t.http.request(method, t.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_scenario_through_the_control_api() {
    use reqwest::Method;
    let t = T::new().await;
    let (s, v) = call(
        &t,
        Method::POST,
        "/_sim/tenants",
        Some(json!({"domain": "fabrikam.example"})),
    )
    .await;
    assert_eq!(s, 201);
    let tenant = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/_sim/tenants/{tenant}/users"),
        Some(json!({"upn": "info@fabrikam.example", "kind": "shared"})),
    )
    .await;
    assert_eq!(s, 201);
    let shared = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/_sim/tenants/{tenant}/apps"),
        Some(json!({"name": "other", "redirectUris": [REDIRECT], "appRoles": ["Mail.Read"]})),
    )
    .await;
    assert_eq!(s, 201);
    let client = v["clientId"].as_str().unwrap().to_string();
    assert!(v["clientSecret"].as_str().unwrap().starts_with("sim~"));
    assert_eq!(
        call(
            &t,
            Method::POST,
            &format!("/_sim/tenants/fabrikam.example/adminconsent/{client}"),
            None
        )
        .await
        .0,
        204
    );
    let (_, summary) = call(&t, Method::GET, "/_sim/demo", None).await;
    assert_eq!(summary["tenants"].as_array().unwrap().len(), 2);
    assert!(summary["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == shared.as_str() && u["kind"] == "shared"));
    // Users: delegates, consent, sign-in state.
    let (s, _) = call(
        &t,
        Method::PATCH,
        "/_sim/users/info@fabrikam.example",
        Some(json!({"delegates": [t.demo.user_upn]})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(
        call(
            &t,
            Method::PATCH,
            &format!("/_sim/users/{}", t.demo.user_upn),
            Some(json!({"signIn": "blocked"}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        t.sim.world().user_by(&t.demo.user_upn).unwrap().sign_in,
        m365_sim::world::SignIn::Blocked
    );
    assert_eq!(
        call(&t, Method::PATCH, "/_sim/users/nobody", Some(json!({})))
            .await
            .0,
        404
    );
    // Folders and generated messages, moved and deleted.
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/_sim/users/{}/folders", t.demo.user_upn),
        Some(json!({"parent": "inbox", "name": "Clients"})),
    )
    .await;
    assert_eq!(s, 201);
    let folder = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/_sim/users/{}/messages?folder=inbox", t.demo.user_upn),
        Some(json!({"size": 20000, "count": 3})),
    )
    .await;
    assert_eq!(s, 201);
    let ids: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let size = t.sim.world().messages[&ids[0]].mime.len();
    assert!((19_000..=21_000).contains(&size), "{size}");
    assert_eq!(
        call(
            &t,
            Method::POST,
            &format!("/_sim/users/{}/messages/{}/move", t.demo.user_upn, ids[0]),
            Some(json!({"folder": folder}))
        )
        .await
        .0,
        204
    );
    assert_eq!(t.sim.world().messages[&ids[0]].folder_id, folder);
    assert_eq!(
        call(
            &t,
            Method::DELETE,
            &format!("/_sim/users/{}/messages/{}", t.demo.user_upn, ids[1]),
            None
        )
        .await
        .0,
        204
    );
    assert!(!t.sim.world().messages.contains_key(&ids[1]));
    // Faults, limits, secrets, tokens, counters.
    assert_eq!(
        call(
            &t,
            Method::PUT,
            "/_sim/faults",
            Some(json!({"graph_latency_ms": 5, "hold_notifications": true}))
        )
        .await
        .0,
        204
    );
    let (_, f) = call(&t, Method::GET, "/_sim/faults", None).await;
    assert_eq!(f["graph_latency_ms"], 5);
    assert_eq!(f["notification_retries"], 3);
    assert_eq!(
        call(
            &t,
            Method::PUT,
            "/_sim/limits",
            Some(json!({"per_window": 50}))
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&t, Method::GET, "/_sim/limits", None).await.1["concurrent"],
        4
    );
    assert_eq!(
        call(
            &t,
            Method::POST,
            &format!("/_sim/apps/{client}/secrets/expire"),
            None
        )
        .await
        .0,
        204
    );
    let (s, v) = call(
        &t,
        Method::POST,
        &format!("/_sim/apps/{client}/secrets"),
        Some(json!({"days": 10})),
    )
    .await;
    assert_eq!(s, 201);
    assert!(v["clientSecret"].is_string());
    assert_eq!(
        call(
            &t,
            Method::POST,
            &format!("/_sim/users/{}/revoke", t.demo.user_upn),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &t,
            Method::POST,
            &format!("/_sim/users/{}/expire-delta-tokens", t.demo.user_upn),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(&t, Method::POST, "/_sim/notifications/flush", None)
            .await
            .1["sent"],
        0
    );
    assert_eq!(
        call(
            &t,
            Method::POST,
            "/_sim/browser",
            Some(json!({"user": null}))
        )
        .await
        .0,
        204
    );
    let (_, counters) = call(&t, Method::GET, "/_sim/counters", None).await;
    assert!(counters.is_object());
    assert_eq!(
        call(&t, Method::DELETE, "/_sim/counters", None).await.0,
        204
    );
    assert_eq!(
        call(
            &t,
            Method::POST,
            "/_sim/subscriptions/none/lifecycle/missed",
            None
        )
        .await
        .0,
        404
    );
}
