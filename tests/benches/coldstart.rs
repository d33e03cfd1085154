//! Cold starts, measured the way Lambda starts a custom runtime: each function's release binary is
//! started under a Runtime API (`tests/lambda.rs`) with Lambda's variables and the ones
//! `template.yaml` sets for it, and timed from process start to its first `next` request (what
//! Lambda reports as `Init Duration`). Then the webhook's whole first answer on a cold start: a
//! Graph validation request, from process start to the response.
//!
//! `scripts/sizes.sh && cargo bench -p mailbridge-tests --bench coldstart` (the release binaries
//! must be built first, each on its own as `sam build` builds them: `scripts/sizes.sh` does).

use mailbridge_tests::lambda::{binary, http_api_event, LambdaHost, Outcome};
use mailbridge_tests::template_yaml;
use std::time::Duration;

const RUNS: usize = 20;

fn environment(binary: &str) -> Vec<(String, String)> {
    let t = template_yaml::parse();
    let mut env: Vec<(String, String)> = template_yaml::variables(&t, binary)
        .into_iter()
        .map(|(k, v)| {
            let value = if v.starts_with('!') {
                template_yaml::deployed_value(&k)
            } else {
                v
            };
            (k, value)
        })
        .collect();
    // What Lambda sets for every function; the credentials are the role's.
    for (k, v) in [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
        ("RUST_LOG", "info"),
    ] {
        env.push((k.into(), v.into()));
    }
    env
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    println!("cold starts: process start → first Runtime API `next`, {RUNS} runs each");
    println!(
        "{:<12} {:>10} {:>10} {:>10}",
        "function", "min", "median", "max"
    );
    for f in ["oauth", "webhook", "import", "maintenance", "admin"] {
        let name = format!("mailbridge-{f}");
        let bin = binary(&name);
        assert!(
            bin.exists(),
            "{} is missing: run scripts/sizes.sh first",
            bin.display()
        );
        let env = environment(&name);
        let mut inits = Vec::new();
        for _ in 0..RUNS {
            let host = LambdaHost::start(&name, Duration::from_secs(30)).await;
            host.spawn(&bin, &env);
            inits.push(host.initialised().await.unwrap());
            host.stop().await;
        }
        inits.sort();
        println!(
            "{:<12} {:>10} {:>10} {:>10}",
            f,
            ms(inits[0]),
            ms(inits[RUNS / 2]),
            ms(inits[RUNS - 1])
        );
    }

    // The webhook on a cold start: Graph's validation request, answered from a fresh process.
    let name = "mailbridge-webhook";
    let env = environment(name);
    let mut firsts = Vec::new();
    for i in 0..RUNS {
        let host = LambdaHost::start(name, Duration::from_secs(3)).await;
        let token = format!("Validation: Testing client application reachability {i}");
        let encoded = token.replace(' ', "+").replace(':', "%3A");
        let event = http_api_event(
            "POST",
            "/notifications",
            &format!("validationToken={encoded}"),
            &[("content-type", "text/plain; charset=utf-8")],
            None,
        );
        let started = std::time::Instant::now();
        host.spawn(&binary(name), &env);
        let outcome = host.invoke(&event).await;
        firsts.push(started.elapsed());
        match outcome {
            Outcome::Response(r) => {
                assert_eq!(r["statusCode"], 200, "{r}");
                assert_eq!(r["body"], token.as_str(), "{r}");
            }
            Outcome::Error(e) => panic!("the webhook failed its first request: {e}"),
        }
        host.stop().await;
    }
    firsts.sort();
    println!(
        "webhook, cold: process start → validation answered: min {}, median {}, max {} (Graph's limit: 3 s, slow over 2.9 s)",
        ms(firsts[0]),
        ms(firsts[RUNS / 2]),
        ms(firsts[RUNS - 1])
    );
}
