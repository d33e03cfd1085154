//! The webhook as a WebAssembly component beside the webhook as a Lambda function, on this
//! machine: size, cold start (host start → Graph's validation request answered) and the
//! acknowledgement of notifications at 1,000 a second. AWS is a stand-in on loopback that answers
//! DynamoDB's `GetItem` (the subscription) and SQS's `SendMessageBatch` at once, so that the
//! figures are the hosts' and the handler's, not an emulator's.
//!
//! ```sh
//! cargo build --release -p mailbridge-webhook --no-default-features --features component \
//!   --target wasm32-wasip2 --bin mailbridge-webhook-component
//! cargo build --release -p mailbridge-webhook --bin mailbridge-webhook
//! cargo bench -p mailbridge-tests --bench component
//! ```
//!
//! The component runs under `jco serve` (scripts/test.sh installs it), and under `wasmtime serve`
//! too when `MAILBRIDGE_WASMTIME` names a `wasmtime` binary. The Lambda function's cold start is
//! its release binary under a Runtime API (`tests/lambda.rs`); its acknowledgement is the same
//! router served natively (Lambda's own invoke path is not on this machine).

use axum::http::HeaderMap;
use mailbridge_core::crypto::sha256_hex;
use mailbridge_core::model::SubscriptionRecord;
use mailbridge_tests::lambda::{binary, http_api_event, LambdaHost, Outcome};
use mailbridge_tests::load::{acknowledgements, machine, ms, percentile, Acks};
use mailbridge_tests::wasi_host::{self, ComponentHost, WasiHost};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COLD_RUNS: usize = 10;
/// Notifications a second: a busy tenant's, and the target of 1,000.
const RATES: [usize; 3] = [100, 300, 1_000];
const SUBSCRIPTION: &str = "sub-bench";
const CLIENT_STATE: &str = "bench-client-state";

/// Counts of the calls the stand-in answered.
#[derive(Default)]
struct Calls {
    get_item: AtomicUsize,
    send_batch: AtomicUsize,
}

/// DynamoDB and SQS as far as the webhook uses them, on loopback: every `GetItem` finds the one
/// subscription, every batch is taken.
async fn aws_stand_in() -> (String, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let record = SubscriptionRecord {
        id: SUBSCRIPTION.into(),
        mailbox_id: "mbx_bench".into(),
        folder_id: "inbox".into(),
        resource: "users/u/mailFolders('inbox')/messages".into(),
        client_state_sha256: sha256_hex(CLIENT_STATE.as_bytes()),
        expires_at: chrono::Utc::now() + chrono::Duration::days(2),
    };
    let item = json!({"Item": {
        "pk": {"S": "subscription"}, "sk": {"S": SUBSCRIPTION},
        "body": {"S": serde_json::to_string(&record).unwrap()}, "v": {"N": "1"}
    }});
    let counted = calls.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: bytes::Bytes| {
        let (calls, item) = (counted.clone(), item.clone());
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let answer = match target {
                "DynamoDB_20120810.GetItem" => {
                    calls.get_item.fetch_add(1, Ordering::Relaxed);
                    item
                }
                "AmazonSQS.SendMessageBatch" => {
                    calls.send_batch.fetch_add(1, Ordering::Relaxed);
                    let sent: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let ok: Vec<Value> = sent["Entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| json!({"Id": e["Id"], "MessageId": uuid::Uuid::new_v4().to_string()}))
                        .collect();
                    json!({"Successful": ok, "Failed": []})
                }
                other => panic!("the stand-in does not answer {other:?}"),
            };
            (
                [("content-type", "application/x-amz-json-1.0")],
                answer.to_string(),
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

/// The webhook's variables, pointing at the stand-in.
fn environment(aws: &str) -> Vec<(String, String)> {
    [
        ("TABLE_NAME", "mailbridge-state"),
        (
            "QUEUE_URL",
            &format!("{aws}/123456789012/mailbridge-import"),
        ),
        ("AWS_ENDPOINT_URL", aws),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn notification(i: usize) -> String {
    json!({"value": [{
        "subscriptionId": SUBSCRIPTION, "clientState": CLIENT_STATE, "changeType": "created",
        "resource": format!("Users/u/Messages/m{i}"), "resourceData": {"id": format!("m{i}")}
    }]})
    .to_string()
}

const TOKEN: &str = "Validation: Testing client application reachability";

/// Host start → the validation request answered, `COLD_RUNS` times: (ready, answered) sorted.
async fn component_cold(host: &WasiHost, env: &[(String, String)]) -> Vec<(Duration, Duration)> {
    let wasm = wasi_host::component("mailbridge-webhook-component");
    let http = reqwest::Client::new();
    let mut runs = Vec::new();
    for _ in 0..COLD_RUNS {
        let port = mailbridge_tests::free_port();
        let started = Instant::now();
        let served = ComponentHost::serve_on(host, &wasm, port, env)
            .await
            .unwrap();
        let answer = http
            .post(format!("{}/notifications", served.url))
            .query(&[("validationToken", TOKEN)])
            .send()
            .await
            .unwrap();
        let answered = started.elapsed();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.unwrap(), TOKEN);
        runs.push((served.ready_after, answered));
    }
    runs.sort_by_key(|r| r.1);
    runs
}

async fn lambda_cold(env: &[(String, String)]) -> Vec<Duration> {
    let name = "mailbridge-webhook";
    let mut runs = Vec::new();
    for _ in 0..COLD_RUNS {
        let host = LambdaHost::start(name, Duration::from_secs(3)).await;
        let event = http_api_event(
            "POST",
            "/notifications",
            &format!(
                "validationToken={}",
                TOKEN.replace(' ', "+").replace(':', "%3A")
            ),
            &[("content-type", "text/plain; charset=utf-8")],
            None,
        );
        let started = Instant::now();
        host.spawn(&binary(name), env);
        let outcome = host.invoke(&event).await;
        runs.push(started.elapsed());
        match outcome {
            Outcome::Response(r) => assert_eq!(r["body"], TOKEN, "{r}"),
            Outcome::Error(e) => panic!("the webhook failed its first request: {e}"),
        }
        host.stop().await;
    }
    runs.sort();
    runs
}

/// `per_second` notifications a second for 10 s, after 1 s to warm up.
async fn acknowledge(url: &str, calls: &Calls, what: &str, per_second: usize) {
    let (warmup, n) = (per_second, 10 * per_second);
    let before = calls.get_item.load(Ordering::Relaxed);
    let Acks { failed, latencies } = acknowledgements(
        format!("{url}/notifications"),
        (0..warmup + n).map(notification).collect(),
        Duration::from_secs(1) / per_second as u32,
        warmup,
    )
    .await;
    let looked_up = calls.get_item.load(Ordering::Relaxed) - before;
    println!(
        "{what:<34} {per_second:>6}/s {:>11} {:>11} {:>11} {:>11}   {failed} not answered 202; {looked_up} subscriptions read",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        ms(*latencies.last().unwrap()),
    );
}

fn size(path: &std::path::Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:.2} MB", m.len() as f64 / 1e6),
        Err(_) => format!("{} not built", path.display()),
    }
}

#[tokio::main]
async fn main() {
    println!("the webhook, component and Lambda, on {}\n", machine());
    let wasm = wasi_host::component("mailbridge-webhook-component");
    println!("component (wasm32-wasip2, release): {}", size(&wasm));
    println!(
        "Lambda bootstrap (x86_64, release):  {}\n",
        size(&binary("mailbridge-webhook"))
    );
    let (aws, calls) = aws_stand_in().await;
    let env = environment(&aws);
    let mut hosts = vec![("jco serve", WasiHost::Jco)];
    if let Some(wasmtime) = std::env::var_os("MAILBRIDGE_WASMTIME") {
        hosts.push(("wasmtime serve", WasiHost::Wasmtime(wasmtime.into())));
    }

    println!("cold start, {COLD_RUNS} runs: host start → validation answered (min, median, max)");
    for (name, host) in &hosts {
        let runs = component_cold(host, &env).await;
        println!(
            "  component, {name:<15} {} {} {} (port open after {} median)",
            ms(runs[0].1),
            ms(runs[COLD_RUNS / 2].1),
            ms(runs[COLD_RUNS - 1].1),
            ms(runs[COLD_RUNS / 2].0),
        );
    }
    if binary("mailbridge-webhook").exists() {
        let runs = lambda_cold(&env).await;
        println!(
            "  Lambda bootstrap, Runtime API {} {} {}",
            ms(runs[0]),
            ms(runs[COLD_RUNS / 2]),
            ms(runs[COLD_RUNS - 1])
        );
    }

    println!(
        "\nacknowledgement, 10 s after 1 s to warm up, open loop\n\
         {:<34} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "", "rate", "p50", "p99", "p99.9", "max"
    );
    for per_second in RATES {
        for (name, host) in &hosts {
            let served = ComponentHost::serve_on(host, &wasm, mailbridge_tests::free_port(), &env)
                .await
                .unwrap();
            acknowledge(
                &served.url,
                &calls,
                &format!("component, {name}"),
                per_second,
            )
            .await;
        }
    }
    // The Lambda function's router, natively, over the same stand-in.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&aws)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    let aws_env = mailbridge_aws::AwsEnv::new(config, mailbridge_webhook::PORTS, {
        let env = env.clone();
        move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    });
    let router = mailbridge_webhook::wire(&aws_env).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    for per_second in RATES {
        acknowledge(&url, &calls, "Lambda's router, native", per_second).await;
    }
    println!(
        "\nstand-in calls: {} GetItem, {} SendMessageBatch",
        calls.get_item.load(Ordering::Relaxed),
        calls.send_batch.load(Ordering::Relaxed)
    );
}
