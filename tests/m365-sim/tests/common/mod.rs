//! Helpers for the simulator's tests: a seeded simulator, the OAuth dance without a browser, Graph
//! calls, error-shape checks and a webhook receiver.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use m365_sim::{Demo, Options, Sim};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const REDIRECT: &str = "http://localhost:9/cb";
pub const SCOPES: &str = "openid profile email offline_access https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.ReadWrite";

pub struct T {
    pub sim: Sim,
    pub demo: Demo,
    pub http: reqwest::Client,
}

impl T {
    pub async fn new() -> T {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> T {
        let sim = Sim::start_with(opts).await.unwrap();
        let demo = sim.seed_demo(REDIRECT);
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = sim.ca_pem() {
            b = b.tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()]);
        }
        T {
            sim,
            demo,
            http: b.build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// GET the authorize endpoint; returns the redirect's query, or the error page's status.
    pub async fn authorize(
        &self,
        tenant: &str,
        params: &[(&str, &str)],
    ) -> Result<HashMap<String, String>, (u16, String)> {
        let resp = self
            .http
            .get(self.url(&format!("/{tenant}/oauth2/v2.0/authorize")))
            .query(params)
            .send()
            .await
            .unwrap();
        let Some(loc) = resp.headers().get("location").cloned() else {
            let status = resp.status().as_u16();
            return Err((status, resp.text().await.unwrap()));
        };
        let loc = url::Url::parse(loc.to_str().unwrap()).unwrap();
        Ok(loc.query_pairs().into_owned().collect())
    }

    /// A code for `user` with `scope`, and its PKCE verifier.
    pub async fn code(&self, user: &str, scope: &str) -> (String, String) {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let q = self
            .authorize(
                &self.demo.tenant_id,
                &[
                    ("client_id", &self.demo.client_id),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT),
                    ("scope", scope),
                    ("state", "s1"),
                    ("nonce", "n1"),
                    ("login_hint", user),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(q["state"], "s1");
        let code = q
            .get("code")
            .unwrap_or_else(|| panic!("no code: {q:?}"))
            .clone();
        (code, verifier)
    }

    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .form(form)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// The token response of a full code flow for `user`.
    pub async fn user_tokens(&self, user: &str, scope: &str) -> Value {
        let (code, verifier) = self.code(user, scope).await;
        let (status, v) = self
            .token(
                &self.demo.tenant_id,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &self.demo.client_id),
                    ("client_secret", &self.demo.client_secret),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn user_token(&self, user: &str) -> String {
        self.user_tokens(user, SCOPES).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn refresh(&self, rt: &str) -> (u16, Value) {
        self.token(
            &self.demo.tenant_id,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.demo.client_id),
                ("client_secret", &self.demo.client_secret),
                ("refresh_token", rt),
            ],
        )
        .await
    }

    /// An app-only token for the demo app in `tenant` (after admin consent).
    pub async fn app_token(&self, tenant: &str) -> (u16, Value) {
        self.token(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &self.demo.client_id),
                ("client_secret", &self.demo.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await
    }

    pub async fn call(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
        prefer: &[&str],
    ) -> (u16, HeaderMap, Bytes) {
        let mut req = self
            .http
            .request(method, self.url(&format!("/v1.0{path}")))
            .bearer_auth(token);
        for p in prefer {
            req = req.header("Prefer", *p);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap())
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let (s, _, b) = self.call(Method::GET, token, path, None, &[]).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub async fn get_with(&self, token: &str, path: &str, prefer: &[&str]) -> (u16, Value) {
        let (s, _, b) = self.call(Method::GET, token, path, None, prefer).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// GET an absolute link (nextLink, deltaLink).
    pub async fn follow(&self, token: &str, link: &str, prefer: &[&str]) -> (u16, Value) {
        let path = link.strip_prefix(&self.url("/v1.0")).unwrap();
        self.get_with(token, path, prefer).await
    }

    pub fn mail(&self, subject: &str) -> Vec<u8> {
        m365_sim::control::generate_mime("a@fabrikam.example", &self.demo.user_upn, subject, 2000)
    }
}

/// Entra's error shape: error, an error_description starting with the AADSTS code, error_codes,
/// timestamp, trace_id, correlation_id, error_uri.
pub fn assert_aad(v: &Value, error: &str, code: u32) {
    assert_eq!(v["error"], error, "{v}");
    let desc = v["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}:")), "{desc}");
    assert!(desc.contains("\r\nTrace ID: "), "{desc}");
    assert_eq!(v["error_codes"], serde_json::json!([code]));
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(v[k].as_str().is_some_and(|s| !s.is_empty()), "{k} in {v}");
    }
    assert!(v["error_uri"]
        .as_str()
        .unwrap()
        .ends_with(&format!("error?code={code}")));
    let ts = v["timestamp"].as_str().unwrap();
    assert!(ts.ends_with('Z') && ts.len() == 20, "{ts}");
}

/// Graph's error shape.
pub fn assert_graph_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(v["error"]["innerError"]["request-id"].is_string());
    assert!(v["error"]["innerError"]["date"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
}

/// How the webhook receiver answers.
#[derive(Clone, Copy, PartialEq)]
pub enum HookMode {
    Ok,
    /// Answers 500 to the next this many notification POSTs.
    Fail(u32),
    /// Answers after this many milliseconds.
    Slow(u64),
    /// Answers validation requests wrongly.
    BadValidation,
}

#[derive(Clone)]
pub struct Hook {
    pub url: String,
    pub received: Arc<Mutex<Vec<Value>>>,
    pub mode: Arc<Mutex<HookMode>>,
}

impl Hook {
    pub async fn start() -> Hook {
        let hook = Hook {
            url: String::new(),
            received: Arc::default(),
            mode: Arc::new(Mutex::new(HookMode::Ok)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url, ..hook }
    }

    pub fn items(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["value"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    pub fn posts(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits until `n` notifications arrived (or 10 s passed).
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            if self.items().len() >= n {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        self.items()
    }
}

async fn receive(
    State(h): State<Hook>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let mode = *h.mode.lock().unwrap();
    if let Some(token) = q.get("validationToken") {
        if mode == HookMode::BadValidation {
            return (StatusCode::OK, "nope").into_response();
        }
        return ([("content-type", "text/plain")], token.clone()).into_response();
    }
    match mode {
        HookMode::Fail(n) if n > 0 => {
            *h.mode.lock().unwrap() = HookMode::Fail(n - 1);
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        HookMode::Slow(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
        _ => {}
    }
    h.received
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    StatusCode::ACCEPTED.into_response()
}
