//! `serve` as an operator runs it: the `mailbridge-local` binary from a configuration file, talking
//! to a Microsoft 365 simulator started as a process of its own and named by a `custom` profile
//! (no code path may assume the built-in simulator). Connect, import, stop with SIGKILL, receive
//! mail while down, start again: the mailbox is still there and the mail of the downtime is
//! imported, everything exactly once and byte for byte.
//!
//! Needs the binaries (`cargo build --bins`, which `scripts/test.sh` runs first).

use mailbridge_tests::lambda::binary;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The simulator as its own process; its demo tenant as it prints it.
async fn simulator(port: u16, redirect: &str) -> (Child, Value) {
    let mut child = Command::new(binary("m365-sim"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--redirect",
            redirect,
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the simulator starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut json = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.starts_with('{') || !json.is_empty() {
            json.push_str(&line);
            if line == "}" {
                break;
            }
        }
    }
    (child, serde_json::from_str(&json).expect("the demo tenant"))
}

/// `serve --config`, with nothing from this process's environment but `PATH` and `HOME`.
fn serve(config: &Path) -> Child {
    Command::new(binary("mailbridge-local"))
        .args(["serve", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", config.parent().unwrap())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts")
}

async fn wait_listening(port: u16, child: &mut Child) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("serve exited: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The import events written so far, one per line.
fn events(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn wait_events(data: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let e = events(data);
        if e.len() >= n {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} imports: {e:?}",
            e.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliver(http: &reqwest::Client, sim: &str, upn: &str, mime: &[u8]) -> String {
    let created: Value = http
        .post(format!("{sim}/_sim/users/{upn}/messages?folder=inbox"))
        .header("content-type", "message/rfc822")
        .body(mime.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_from_its_configuration_against_another_process_and_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let sim_port = free_port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let (_sim, demo) =
        simulator(sim_port, &format!("http://127.0.0.1:{port}/oauth/callback")).await;
    let upn = demo["user_upn"].as_str().unwrap();

    // The operator's files: the configuration, and the client secret in a file of its own.
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(
        root.join("etc/client-secret"),
        demo["client_secret"].as_str().unwrap(),
    )
    .unwrap();
    let data: PathBuf = root.join("data");
    let config = root.join("etc/mailbridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
custom_cloud_hosts = ["127.0.0.1:{sim_port}"]

[[profiles]]
id = "lab"
name = "Lab tenant"
cloud = {{ name = "custom", login = "{sim_url}", graph = "{sim_url}", resource = "https://graph.microsoft.com" }}
auth = "delegated"
tenant = "{tenant}"
client_id = "{client}"
client_secret = {{ file = "{etc}/client-secret" }}
is_default = true
"#,
            data = data.display(),
            etc = root.join("etc").display(),
            tenant = demo["tenant_id"].as_str().unwrap(),
            client = demo["client_id"].as_str().unwrap(),
        ),
    )
    .unwrap();

    let mut mailbridge = serve(&config);
    wait_listening(port, &mut mailbridge).await;
    // The admin token and the sealing key were generated beside the configuration.
    let token = std::fs::read_to_string(root.join("etc/admin-token")).unwrap();
    assert!(root.join("etc/sealing.key").exists());

    // Connect through the configured profile, as a browser would.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (status, page) =
        mailbridge_local::follow_sign_in(&browser, format!("http://127.0.0.1:{port}/connect"))
            .await
            .unwrap();
    assert_eq!(status, 200, "{page}");
    let http = reqwest::Client::new();
    let mailboxes = |http: reqwest::Client, token: String| async move {
        http.get(format!("http://127.0.0.1:{port}/admin/mailboxes"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = mailboxes(http.clone(), token.clone()).await;
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");

    // A message, notified and imported.
    let messages = mailbridge_local::sample_messages();
    let first = deliver(&http, &sim_url, upn, &messages[0].1).await;
    let got = wait_events(&data, 1).await;
    assert_eq!(got[0]["messageId"], first.as_str());

    // Killed without warning; mail arrives while it is down (Graph's notifications fail).
    mailbridge.kill().await.unwrap();
    let second = deliver(&http, &sim_url, upn, &messages[2].1).await;

    // Started again on the same directory: the same mailbox, and the mail of the downtime.
    let mut mailbridge = serve(&config);
    wait_listening(port, &mut mailbridge).await;
    let after = mailboxes(http.clone(), token.clone()).await;
    assert_eq!(after[0]["id"], before[0]["id"], "{after}");
    let got = wait_events(&data, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_all = events(&data);
    assert_eq!(got_all.len(), 2, "each message once: {got_all:?}");
    assert_eq!(got[1]["messageId"], second.as_str());
    for (event, (_, mime)) in got.iter().zip([&messages[0], &messages[2]]) {
        let stored = std::fs::read(event["emlLocation"].as_str().unwrap()).unwrap();
        assert_eq!(&stored, mime, "byte for byte");
    }
    let counters: Value = http
        .get(format!("{sim_url}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["mime"], 2, "one $value per message: {counters}");

    // Alive, and one line per mailbox for the operator.
    let health = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let status = http
        .get(format!("http://127.0.0.1:{port}/admin/status"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status.lines().count(), 1, "{status}");
    assert!(status.starts_with(&format!("{upn} connected ")), "{status}");
    assert!(status.contains(" imported=2 "), "{status}");
    assert!(status.contains(" alerts=none"), "{status}");

    // A second instance on the same directory stops at once and touches nothing.
    let second_instance = Command::new(binary("mailbridge-local"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .unwrap();
    assert!(!second_instance.status.success());
    let said = String::from_utf8_lossy(&second_instance.stderr);
    assert!(said.contains("another mailbridge is running"), "{said}");
    assert_eq!(events(&data).len(), 2);
    mailbridge.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_configuration_is_one_line_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let unreachable = free_port();
    std::fs::write(root.join("secret"), "s").unwrap();
    for (text, expected) in [
        ("colour = \"blue\"\n".to_string(), "unknown field `colour`"),
        (
            "public_url = \"http://mail.example.com\"\n".to_string(),
            "public_url:",
        ),
        (
            format!(
                r#"[[profiles]]
id = "lab"
name = "Lab"
cloud = {{ name = "custom", login = "http://127.0.0.1:{unreachable}", graph = "http://127.0.0.1:{unreachable}", resource = "https://graph.microsoft.com" }}
auth = "delegated"
tenant = "contoso.example"
client_id = "x"
client_secret = {{ file = "{secret}" }}
"#,
                secret = root.join("secret").display()
            ),
            "profiles[0] (lab).cloud: cannot reach the login URL",
        ),
    ] {
        let config = root.join("mailbridge.toml");
        let data = root.join("data");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ncustom_cloud_hosts = [\"127.0.0.1:{unreachable}\"]\n{text}",
                data.display()
            ),
        )
        .unwrap();
        let out = Command::new(binary("mailbridge-local"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(expected), "{text}: {said}");
        assert_eq!(said.trim().lines().count(), 1, "{said}");
        // Nothing listens.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let _ = std::fs::remove_dir_all(&data);
    }
}
