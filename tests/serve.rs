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

/// The JSON a request is answered with.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn deliver(http: &reqwest::Client, sim: &str, upn: &str, mime: &[u8]) -> String {
    let created = json_of(
        http.post(format!("{sim}/_sim/users/{upn}/messages?folder=inbox"))
            .header("content-type", "message/rfc822")
            .body(mime.to_vec()),
    )
    .await;
    created["id"].as_str().unwrap().to_string()
}

/// An operator's setup: a simulator in a process of its own, and in `etc/` the configuration of
/// a `custom` profile on it, with the client secret in a file of its own.
struct Lab {
    dir: tempfile::TempDir,
    port: u16,
    sim_url: String,
    upn: String,
    config: PathBuf,
    data: PathBuf,
    _sim: Child,
}

impl Lab {
    async fn start() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let port = mailbridge_tests::free_port();
        let sim_port = mailbridge_tests::free_port();
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let (sim, demo) =
            simulator(sim_port, &format!("http://127.0.0.1:{port}/oauth/callback")).await;
        std::fs::write(
            etc.join("client-secret"),
            demo["client_secret"].as_str().unwrap(),
        )
        .unwrap();
        let data = dir.path().join("data");
        let config = etc.join("mailbridge.toml");
        let toml = mailbridge_tests::ServeConfig {
            port,
            data: &data,
            etc: &etc,
            sim_url: &sim_url,
            tenant: demo["tenant_id"].as_str().unwrap(),
            client_id: demo["client_id"].as_str().unwrap(),
            profile: ("lab", "Lab tenant"),
            extra: "",
        }
        .toml();
        std::fs::write(&config, toml).unwrap();
        Lab {
            dir,
            port,
            sim_url,
            upn: demo["user_upn"].as_str().unwrap().to_string(),
            config,
            data,
            _sim: sim,
        }
    }

    /// `serve` started on the configuration, once it listens.
    async fn serve(&self) -> Child {
        let mut child = serve(&self.config);
        wait_listening(self.port, &mut child).await;
        child
    }

    /// Connects the simulator's user through the configured profile, as a browser would.
    async fn connect(&self) {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let (status, page) = mailbridge_local::follow_sign_in(
            &browser,
            format!("http://127.0.0.1:{}/connect", self.port),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_from_its_configuration_against_another_process_and_survives_a_kill() {
    let lab = Lab::start().await;
    let (port, sim_url, upn, data, root) = (
        lab.port,
        lab.sim_url.clone(),
        lab.upn.as_str(),
        lab.data.clone(),
        lab.dir.path(),
    );
    let mailbridge = lab.serve().await;
    // The admin token and the sealing key were generated beside the configuration.
    let token = std::fs::read_to_string(root.join("etc/admin-token")).unwrap();
    assert!(root.join("etc/sealing.key").exists());
    lab.connect().await;
    let http = reqwest::Client::new();
    let mailboxes = || {
        json_of(
            http.get(format!("http://127.0.0.1:{port}/admin/mailboxes"))
                .bearer_auth(token.trim()),
        )
    };
    let before = mailboxes().await;
    assert_eq!(before.as_array().unwrap().len(), 1, "{before}");

    // A message, notified and imported.
    let messages = mailbridge_local::sample_messages();
    let first = deliver(&http, &sim_url, upn, &messages[0].1).await;
    let got = wait_events(&data, 1).await;
    assert_eq!(got[0]["messageId"], first.as_str());

    // Killed without warning; mail arrives while it is down (Graph's notifications fail).
    let mut mailbridge = mailbridge;
    mailbridge.kill().await.unwrap();
    let second = deliver(&http, &sim_url, upn, &messages[2].1).await;

    // Started again on the same directory: the same mailbox, and the mail of the downtime.
    let mut mailbridge = lab.serve().await;
    let after = mailboxes().await;
    assert_eq!(after[0]["id"], before[0]["id"], "{after}");
    let subscriptions = json_of(http.get(format!("{sim_url}/_sim/subscriptions"))).await;
    assert_eq!(
        subscriptions["value"].as_array().map(Vec::len),
        Some(1),
        "the subscription was kept, not made again: {subscriptions}"
    );
    let got = wait_events(&data, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got_all = events(&data);
    assert_eq!(got_all.len(), 2, "each message once: {got_all:?}");
    assert_eq!(got[1]["messageId"], second.as_str());
    for (event, (_, mime)) in got.iter().zip([&messages[0], &messages[2]]) {
        let stored = std::fs::read(event["emlLocation"].as_str().unwrap()).unwrap();
        assert_eq!(&stored, mime, "byte for byte");
    }
    let counters = json_of(http.get(format!("{sim_url}/_sim/counters"))).await;
    assert_eq!(counters["mime"], 2, "one $value per message: {counters}");

    // Owner-only: the directory and the files in it.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("state.db")), 0o600);
    assert_eq!(mode(&data.join("events.jsonl")), 0o600);
    let eml = got[1]["emlLocation"].as_str().unwrap();
    assert_eq!(mode(Path::new(eml)), 0o600);

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
        .arg(&lab.config)
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
    let port = mailbridge_tests::free_port();
    let unreachable = mailbridge_tests::free_port();
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

/// Every file under `dir`.
fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk_all(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every `.eml` under the message store.
fn stored_emls(dir: &Path) -> Vec<PathBuf> {
    walk_all(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect()
}

async fn wait_distinct_imports(data: &Path, at_least: usize, deadline_s: u64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(deadline_s);
    loop {
        let n = events(data)
            .iter()
            .map(|e| e["messageId"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if n >= at_least || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_and_killed_in_the_middle_of_500_imports_nothing_is_lost_or_doubled() {
    let lab = Lab::start().await;
    let (sim_url, upn, data) = (lab.sim_url.clone(), lab.upn.clone(), lab.data.clone());
    let mut mailbridge = lab.serve().await;
    lab.connect().await;

    // 500 messages of different sizes, Graph a little slow, so that imports are in flight.
    let http = reqwest::Client::new();
    http.put(format!("{sim_url}/_sim/faults"))
        .json(&serde_json::json!({"graph_latency_ms": 20}))
        .send()
        .await
        .unwrap();
    let mut sent = std::collections::HashMap::new();
    for i in 0..500 {
        let mime = m365_sim::control::generate_mime(
            "sender@fabrikam.example",
            &upn,
            &format!("Message {i}"),
            1_000 + (i * 97) % 20_000,
        );
        let id = deliver(&http, &sim_url, &upn, &mime).await;
        sent.insert(id, mime);
    }

    // SIGTERM part-way: it stops taking work, lets what runs finish, and exits cleanly.
    let before_term = wait_distinct_imports(&data, 100, 60).await;
    assert!(before_term >= 100, "{before_term} imported");
    let pid = mailbridge.id().unwrap().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let exited = tokio::time::timeout(Duration::from_secs(40), mailbridge.wait())
        .await
        .expect("stopped within its grace period")
        .unwrap();
    assert!(exited.success(), "{exited}");
    let at_stop = wait_distinct_imports(&data, 0, 0).await;
    assert!(
        at_stop < 500,
        "everything was imported before the stop: nothing tested"
    );

    // Started again, then killed without warning part-way.
    let mut mailbridge = lab.serve().await;
    wait_distinct_imports(&data, at_stop + 100, 60).await;
    mailbridge.kill().await.unwrap();
    let at_kill = wait_distinct_imports(&data, 0, 0).await;
    assert!(
        at_kill < 500,
        "everything was imported before the kill: nothing tested"
    );

    // Started again: everything, once, byte for byte.
    let mut mailbridge = lab.serve().await;
    let done = wait_distinct_imports(&data, 500, 120).await;
    assert_eq!(done, 500);
    let emls = stored_emls(&data.join("store"));
    assert_eq!(emls.len(), 500, "one .eml per message");
    let mut last = std::collections::HashMap::new();
    for e in events(&data) {
        last.insert(
            e["messageId"].as_str().unwrap().to_string(),
            e["emlLocation"].as_str().unwrap().to_string(),
        );
    }
    for (id, mime) in &sent {
        let stored = std::fs::read(&last[id]).unwrap();
        assert!(stored == *mime, "{id} is not byte-exact");
    }
    // No partial file of the killed run is left behind.
    let partial = walk_all(&data.join("store"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .count();
    assert_eq!(partial, 0);
    mailbridge.kill().await.unwrap();
}
