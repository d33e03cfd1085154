//! A Lambda host for the tests: the Runtime API (`/2018-06-01/runtime/...`) as Lambda serves it to
//! a custom runtime (`provided.al2023`), and the process started as Lambda starts it (its
//! environment, `AWS_LAMBDA_RUNTIME_API`). A function's real binary runs under it; `invoke` hands
//! it one event and returns what the function answered, as a synchronous invocation does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

/// What a function answered to one invocation.
#[derive(Debug)]
pub enum Outcome {
    Response(serde_json::Value),
    /// The runtime's error report (`errorType`, `errorMessage`).
    Error(serde_json::Value),
}

struct Invocation {
    id: String,
    event: Bytes,
    deadline: Duration,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Shared {
    queued: Mutex<VecDeque<Invocation>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// When the runtime first asked for an invocation: the end of its init phase.
    first_next: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
}

/// One function's Runtime API, and the process that serves it.
pub struct LambdaHost {
    pub name: String,
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    child: Mutex<Option<tokio::process::Child>>,
    spawned_at: Mutex<Option<Instant>>,
    /// The invocation timeout (the template's `Timeout`).
    pub timeout: Duration,
}

impl LambdaHost {
    /// Serves the Runtime API on a free port; nothing runs until [`LambdaHost::spawn`].
    pub async fn start(name: &str, timeout: Duration) -> LambdaHost {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        LambdaHost {
            name: name.into(),
            addr,
            shared,
            child: Mutex::new(None),
            spawned_at: Mutex::new(None),
            timeout,
        }
    }

    /// Starts the function's bootstrap as Lambda does: Lambda's variables, the function's own
    /// (`env`), nothing inherited but `PATH`. Its output goes to this process's (the test log).
    pub fn spawn(&self, binary: &std::path::Path, env: &[(String, String)]) {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("_HANDLER", "bootstrap")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        *self.spawned_at.lock().unwrap() = Some(Instant::now());
        *self.shared.first_next.lock().unwrap() = None;
        *self.child.lock().unwrap() = Some(cmd.spawn().expect("the function's binary starts"));
    }

    /// Waits until the runtime asks for its first invocation; the time since it was spawned (its
    /// init phase, as Lambda reports `Init Duration`). Fails with its init error or exit status.
    pub async fn initialised(&self) -> Result<Duration, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = *self.shared.first_next.lock().unwrap() {
                let spawned = self.spawned_at.lock().unwrap().expect("spawned");
                return Ok(at - spawned);
            }
            if let Some(e) = self.shared.init_error.lock().unwrap().clone() {
                return Err(format!("{}: init error {e}", self.name));
            }
            if let Some(child) = self.child.lock().unwrap().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("{} exited during init: {status}", self.name));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not ask for an invocation in 30 s",
                    self.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// One synchronous invocation: the event is handed to the runtime's `next`, and the answer
    /// comes back from its `response` or `error`. Times out as the function's timeout does.
    pub async fn invoke(&self, event: &serde_json::Value) -> Outcome {
        let (reply, answered) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        self.shared.queued.lock().unwrap().push_back(Invocation {
            id,
            event: Bytes::from(serde_json::to_vec(event).unwrap()),
            deadline: self.timeout,
            reply,
        });
        self.shared.arrived.notify_one();
        match tokio::time::timeout(self.timeout, answered).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Error(serde_json::json!({"errorType": "Runtime.Dropped"})),
            Err(_) => Outcome::Error(
                serde_json::json!({"errorType": "Sandbox.Timedout", "errorMessage": format!("{} timed out", self.name)}),
            ),
        }
    }

    /// Stops the process (as Lambda freezes and reclaims a container).
    pub async fn stop(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.kill().await;
        }
    }
}

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_next
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let notified = s.arrived.notified();
        let taken = s.queued.lock().unwrap().pop_front();
        if let Some(inv) = taken {
            let deadline_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                + inv.deadline;
            let mut headers = HeaderMap::new();
            let h = |v: String| HeaderValue::from_str(&v).unwrap();
            headers.insert("lambda-runtime-aws-request-id", h(inv.id.clone()));
            headers.insert(
                "lambda-runtime-deadline-ms",
                h(deadline_ms.as_millis().to_string()),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                h("arn:aws:lambda:us-east-1:123456789012:function:test".into()),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                h(format!("Root=1-{}", inv.id.replace('-', ""))),
            );
            s.waiting.lock().unwrap().insert(inv.id, inv.reply);
            return (StatusCode::OK, headers, inv.event).into_response();
        }
        notified.await;
    }
}

fn answer(s: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match s.waiting.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    answer(&s, &id, Outcome::Response(value))
}

async fn error(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or_default();
    answer(&s, &id, Outcome::Error(value))
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *s.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into());
    StatusCode::ACCEPTED
}

/// Where cargo put a workspace binary built for this machine (`cargo build --bins`).
pub fn binary(name: &str) -> std::path::PathBuf {
    crate::build_dir(None).join(name)
}

/// An API Gateway HTTP API request as Lambda receives it (payload format 2.0).
pub fn http_api_event(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> serde_json::Value {
    let now = chrono::Utc::now();
    let query_parameters: serde_json::Map<String, serde_json::Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), serde_json::Value::String(v.to_string()))
        })
        .collect();
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                serde_json::Value::String(v.to_string()),
            )
        })
        .collect();
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": if query_parameters.is_empty() { serde_json::Value::Null } else { query_parameters.into() },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "52.159.0.1",
                "userAgent": "test"
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis()
        },
        "body": body,
        "isBase64Encoded": false
    })
}
