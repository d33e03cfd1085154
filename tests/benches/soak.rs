//! The soak: many messages over many mailboxes with the faults of the field together, then the
//! count. mailbridge runs as an operator runs it (`mailbridge-local serve --config`, several
//! import workers as separate containers would be), killed with SIGKILL and started again at
//! intervals, against the Microsoft 365 simulator (in this process), which meanwhile answers a
//! share of Graph calls 429, 503 or not at all, drops, doubles and delays notifications, sends
//! lifecycle events, expires delta tokens, has grants revoked (and signed in again) and the
//! client secret expire (and replaced). At the end every message the simulator holds is looked
//! for in what mailbridge stored: the figures, and exit status 1 if anything is lost, doubled or
//! changed, left dead-lettered, or a mailbox is in the wrong state or missed its alert.
//!
//! ```sh
//! cargo build --profile bench -p mailbridge-local --bin mailbridge-local   # README, "The soak"
//! cargo bench -p mailbridge-tests --bench soak -- --messages 100000 --mailboxes 100
//! ```

use m365_sim::control::generate_mime;
use m365_sim::{Faults, Sim};
use mailbridge_core::crypto::sha256_hex;
use mailbridge_tests::lambda::binary;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The simulator's access tokens live this long, so that revoked grants show soon.
const ACCESS_TOKEN_SECONDS: i64 = 60;

/// How big the run is and how hard the chaos.
#[derive(Debug, Clone)]
struct Plan {
    messages: usize,
    mailboxes: usize,
    workers: usize,
    /// Messages delivered per second.
    rate: f64,
    kill_every: Duration,
    /// Share of Graph calls that fail (429, 503 or hang, in 12:7:1).
    fault_rate: f64,
    /// How long a revoked grant stays revoked: longer than an access token lives plus a
    /// maintenance round, so that mailbridge must notice.
    revoked_for: Duration,
    /// `serve`'s log filter (`RUST_LOG`): `warn` unless `--log` says otherwise.
    log: String,
    /// Keep the data directory and serve's log after a run that passed (`--keep`).
    keep: bool,
}

impl Plan {
    fn from_args() -> Result<Plan, String> {
        let mut p = Plan {
            messages: 100_000,
            mailboxes: 100,
            workers: 4,
            rate: 100.0,
            kill_every: Duration::from_secs(90),
            fault_rate: 0.2,
            revoked_for: Duration::from_secs(150),
            log: "warn".into(),
            keep: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut number = |what: &str| -> Result<f64, String> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("{what} needs a number"))
            };
            match a.as_str() {
                "--messages" => p.messages = number("--messages")? as usize,
                "--mailboxes" => p.mailboxes = number("--mailboxes")?.max(2.0) as usize,
                "--workers" => p.workers = number("--workers")?.max(1.0) as usize,
                "--rate" => p.rate = number("--rate")?.max(1.0),
                "--kill-every" => p.kill_every = Duration::from_secs_f64(number("--kill-every")?),
                "--fault-rate" => p.fault_rate = number("--fault-rate")?.clamp(0.0, 0.9),
                "--log" => p.log = args.next().ok_or("--log needs a filter, such as info")?,
                "--keep" => p.keep = true,
                // The reduced soak of the test command.
                "--reduced" => {
                    p.messages = 2_000;
                    p.mailboxes = 10;
                    p.rate = 40.0;
                    p.kill_every = Duration::from_secs(20);
                }
                // What `cargo bench` adds.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(p)
    }
}

/// A message the simulator delivered.
struct Sent {
    mailbox: usize,
    internet_id: String,
    sha256: String,
    /// Deleted by its owner soon after delivery: imported or not, both are right.
    deleted: AtomicBool,
}

/// A revocation: whose, when, when signed in again.
struct Revocation {
    mailbox: usize,
    at: chrono::DateTime<chrono::Utc>,
    restored: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the chaos did.
#[derive(Default)]
struct Chaos {
    kills: AtomicU64,
    lifecycle: AtomicU64,
    delta_expired: AtomicU64,
    secrets_replaced: AtomicU64,
    moved: AtomicU64,
    revocations: Mutex<Vec<Revocation>>,
}

/// The simulator, `serve`'s configuration and its process.
struct Lab {
    sim: Sim,
    /// Removed after a clean run, kept after a failed one.
    dir: PathBuf,
    etc: PathBuf,
    data: PathBuf,
    config: PathBuf,
    log: PathBuf,
    log_filter: String,
    base: String,
    port: u16,
    client_id: String,
    upns: Vec<String>,
    user_ids: Vec<String>,
    mailbox_ids: Mutex<Vec<String>>,
    child: Mutex<Option<Child>>,
    /// One browser at a time: the simulator signs in whoever it was told last.
    signing_in: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Drop for Lab {
    /// However the soak ends, its `serve` does not outlive it.
    fn drop(&mut self) {
        self.kill();
    }
}

impl Lab {
    async fn start(plan: &Plan) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("soak-")
            .tempdir_in(std::env::temp_dir())
            .expect("a working directory")
            .keep();
        let etc = dir.join("etc");
        std::fs::create_dir(&etc).unwrap();
        let port = mailbridge_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let sim = Sim::start_with(m365_sim::Options {
            addr: "127.0.0.1:0".into(),
            ..m365_sim::Options::default()
        })
        .await
        .expect("the simulator starts");
        let demo = sim.seed_demo(&format!("{base}/oauth/callback"));
        sim.set_limits(|l| l.access_token_seconds = ACCESS_TOKEN_SECONDS);
        let mut upns = vec![demo.user_upn.clone()];
        let mut user_ids = vec![demo.user_id.clone()];
        for i in 1..plan.mailboxes {
            let upn = format!("user{i}@{}", demo.tenant_domain);
            user_ids.push(sim.add_mailbox(
                &demo.tenant_id,
                &upn,
                &format!("Utilisateur {i}"),
                m365_sim::world::MailboxKind::User,
            ));
            upns.push(upn);
        }
        std::fs::write(etc.join("client-secret"), &demo.client_secret).unwrap();
        let data = dir.join("data");
        let config = etc.join("mailbridge.toml");
        let sim_url = sim.base_url().to_string();
        let extra = format!(
            "import_workers = {}\nmaintenance_minutes = 1\nsweep_minutes = 2\n",
            plan.workers
        );
        let toml = mailbridge_tests::ServeConfig {
            port,
            data: &data,
            etc: &etc,
            sim_url: &sim_url,
            tenant: &demo.tenant_id,
            client_id: &demo.client_id,
            profile: ("soak", "Soak"),
            extra: &extra,
        }
        .toml();
        std::fs::write(&config, toml).unwrap();
        Lab {
            log: dir.join("serve.log"),
            log_filter: plan.log.clone(),
            sim,
            dir,
            etc,
            data,
            config,
            base,
            port,
            client_id: demo.client_id,
            upns,
            user_ids,
            mailbox_ids: Mutex::default(),
            child: Mutex::default(),
            signing_in: tokio::sync::Mutex::default(),
            http: reqwest::Client::new(),
        }
    }

    /// `serve` started, once it listens.
    async fn serve(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let out = log.try_clone().unwrap();
        let child = Command::new(binary("mailbridge-local"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.etc)
            .env("RUST_LOG", &self.log_filter)
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("serve starts (build it first: cargo build --workspace --bins)");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            if let Some(Ok(Some(status))) = self.child.lock().unwrap().as_mut().map(Child::try_wait)
            {
                panic!("serve exited: {status}; see {}", self.log.display());
            }
            assert!(Instant::now() < deadline, "serve did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash or a power cut.
    fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the wait for a clean stop.
    fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.etc.join("admin-token"))
            .expect("serve wrote its admin token")
            .trim()
            .to_string()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.admin_token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the admin API answers");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A person signs in (again) through `/connect`, retried while mailbridge is down or Graph
    /// fails the sign-in's own calls.
    async fn sign_in(&self, mailbox: usize) {
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut last = String::new();
        for _ in 0..120 {
            {
                let _one = self.signing_in.lock().await;
                self.sim.sign_in_as(Some(&self.upns[mailbox]));
                match mailbridge_local::follow_sign_in(
                    &browser,
                    format!("{}/connect?profile=soak", self.base),
                )
                .await
                {
                    Ok((200, _)) => return,
                    Ok((status, page)) => {
                        last = format!("{status}: {}", &page[..page.len().min(300)])
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("{} could not sign in: {last}", self.upns[mailbox]);
    }

    fn folder_id(&self, mailbox: usize, name: &str) -> String {
        self.sim
            .world()
            .folder_of(&self.user_ids[mailbox], name)
            .expect("a well-known folder")
            .id
            .clone()
    }

    /// Every mailbox connected with Inbox and Sent Items chosen.
    async fn connect_all(&self) {
        for i in 0..self.upns.len() {
            self.sign_in(i).await;
        }
        let views = self
            .admin(reqwest::Method::GET, "/admin/mailboxes", None)
            .await;
        let by_address: HashMap<String, String> = views
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["address"].as_str().unwrap().to_lowercase(),
                    v["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let ids: Vec<String> = self
            .upns
            .iter()
            .map(|u| by_address[&u.to_lowercase()].clone())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            let folders = [self.folder_id(i, "inbox"), self.folder_id(i, "sentitems")];
            self.admin(
                reqwest::Method::PUT,
                &format!("/admin/mailboxes/{id}/folders"),
                Some(json!({ "folder_ids": folders })),
            )
            .await;
        }
        *self.mailbox_ids.lock().unwrap() = ids;
    }
}

/// Sizes from 1 KB to 5 MB, most small, as mail is.
fn size(rng: &mut impl Rng) -> usize {
    match rng.gen_range(0..1000) {
        0 => rng.gen_range(1_000_000..5_000_000),
        1..=19 => rng.gen_range(100_000..1_000_000),
        20..=199 => rng.gen_range(8_000..100_000),
        _ => rng.gen_range(1_000..8_000),
    }
}

const SUBJECTS: &[&str] = &[
    "Quarterly figures",
    "Facture n°{} — échéance au 30",
    "=?UTF-8?B?UsOpdW5pb24gZCfDqXF1aXBlIOKAlCBvcmRyZSBkdSBqb3Vy?= {}",
    "Übersicht {} für Zoë",
    "Devis {} : réponse attendue",
];

/// The `Message-ID` of a generated message, without its angle brackets.
fn internet_id(mime: &[u8]) -> String {
    let text = String::from_utf8_lossy(&mime[..mime.len().min(2000)]);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("generated messages have a Message-ID");
    line.trim_matches(|c| c == '<' || c == '>').to_string()
}

/// Delivers `count` messages at the plan's rate; each is recorded before anything can import it.
async fn produce(lab: Arc<Lab>, plan: &Plan, sent: Arc<Mutex<Vec<Arc<Sent>>>>, chaos: Arc<Chaos>) {
    let start = Instant::now();
    for i in 0..plan.messages {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due).await;
        let (mailbox, bytes, folder, moved, deleted) = {
            let mut rng = rand::thread_rng();
            (
                rng.gen_range(0..lab.upns.len()),
                size(&mut rng),
                if rng.gen_bool(0.8) {
                    "inbox"
                } else {
                    "sentitems"
                },
                rng.gen_bool(0.03),
                rng.gen_bool(0.02),
            )
        };
        let (message, id) = deliver(&lab, &sent, mailbox, bytes, folder, i);
        let upn = lab.upns[mailbox].clone();
        if moved {
            let (lab, chaos) = (lab.clone(), chaos.clone());
            let other = if folder == "inbox" {
                "sentitems"
            } else {
                "inbox"
            };
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 5000)).await;
                if lab.sim.move_message(&upn, &id, other).is_some() {
                    chaos.moved.fetch_add(1, SeqCst);
                }
            });
        } else if deleted {
            let lab = lab.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 3000)).await;
                // Marked first: the import may already be on its way.
                message.deleted.store(true, SeqCst);
                lab.sim.delete_message(&upn, &id);
            });
        }
        if i % 5_000 == 4_999 {
            eprintln!("  {} messages delivered", i + 1);
        }
    }
}

/// Delivers a generated message of about `bytes` and records it; the record and the simulator's id.
fn deliver(
    lab: &Lab,
    sent: &Mutex<Vec<Arc<Sent>>>,
    mailbox: usize,
    bytes: usize,
    folder: &str,
    n: usize,
) -> (Arc<Sent>, String) {
    let subject = SUBJECTS[n % SUBJECTS.len()].replace("{}", &n.to_string());
    let mime = generate_mime(
        "Élodie Dupré <elodie@fabrikam.example>",
        &lab.upns[mailbox],
        &subject,
        bytes,
    );
    let record = Arc::new(Sent {
        mailbox,
        internet_id: internet_id(&mime),
        sha256: sha256_hex(&mime),
        deleted: AtomicBool::new(false),
    });
    sent.lock().unwrap().push(record.clone());
    let id = lab
        .sim
        .deliver(&lab.upns[mailbox], folder, mime)
        .expect("the simulator delivers");
    (record, id)
}

/// Until `done`: kills and restarts, lifecycle events, expired delta tokens, revocations and
/// their sign-ins, and once, the client secret expired then replaced.
async fn chaos(lab: Arc<Lab>, plan: Plan, chaos: Arc<Chaos>, done: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut last_kill = Instant::now();
    let mut secret_expired_at: Option<Instant> = None;
    let mut restores = Vec::new();
    let last = lab.upns.len() - 1;
    // At least one revocation, however the dice fall.
    let quarter = Duration::from_secs_f64(plan.messages as f64 / plan.rate / 4.0);
    let revocations_none = |c: &Chaos| c.revocations.lock().unwrap().is_empty();
    while !done.load(SeqCst) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if last_kill.elapsed() >= plan.kill_every {
            lab.kill();
            tokio::time::sleep(Duration::from_millis(500 + rand::random::<u64>() % 2500)).await;
            lab.serve().await;
            chaos.kills.fetch_add(1, SeqCst);
            last_kill = Instant::now();
        }
        let roll: f64 = rand::random();
        if roll < 0.12 {
            let subs = lab.sim.subscription_ids();
            if !subs.is_empty() {
                let sub = &subs[rand::random::<usize>() % subs.len()];
                let event = ["missed", "reauthorizationRequired", "subscriptionRemoved"]
                    [rand::random::<usize>() % 3];
                if lab.sim.lifecycle(sub, event) {
                    chaos.lifecycle.fetch_add(1, SeqCst);
                }
            }
        } else if roll < 0.18 {
            let i = rand::random::<usize>() % lab.upns.len();
            lab.sim.expire_delta_tokens(&lab.upns[i]);
            chaos.delta_expired.fetch_add(1, SeqCst);
        } else if roll < 0.21 || (revocations_none(&chaos) && start.elapsed() > quarter) {
            let revoked: HashSet<usize> = chaos
                .revocations
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.restored.is_none())
                .map(|r| r.mailbox)
                .collect();
            // One mailbox in five at most, never the last (it is revoked at the end).
            let i = rand::random::<usize>() % last;
            if !revoked.contains(&i) && revoked.len() < lab.upns.len() / 5 + 1 {
                lab.sim.revoke(&lab.upns[i]);
                let at = chrono::Utc::now();
                let index = {
                    let mut r = chaos.revocations.lock().unwrap();
                    r.push(Revocation {
                        mailbox: i,
                        at,
                        restored: None,
                    });
                    r.len() - 1
                };
                let (lab, chaos, wait) = (lab.clone(), chaos.clone(), plan.revoked_for);
                restores.push(tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    lab.sign_in(i).await;
                    chaos.revocations.lock().unwrap()[index].restored = Some(chrono::Utc::now());
                }));
            }
        }
        let third = plan.messages as f64 / plan.rate / 3.0;
        if secret_expired_at.is_none() && start.elapsed().as_secs_f64() > third {
            lab.sim.expire_secrets(&lab.client_id);
            secret_expired_at = Some(Instant::now());
        }
        if let Some(at) = secret_expired_at {
            if chaos.secrets_replaced.load(SeqCst) == 0 && at.elapsed() > Duration::from_secs(20) {
                let secret = lab
                    .sim
                    .add_secret(&lab.client_id, 365)
                    .expect("the app takes a new secret");
                std::fs::write(lab.etc.join("client-secret"), secret).unwrap();
                chaos.secrets_replaced.fetch_add(1, SeqCst);
            }
        }
    }
    for r in restores {
        r.await.unwrap();
    }
    if chaos.secrets_replaced.load(SeqCst) == 0 && secret_expired_at.is_some() {
        let secret = lab.sim.add_secret(&lab.client_id, 365).unwrap();
        std::fs::write(lab.etc.join("client-secret"), secret).unwrap();
        chaos.secrets_replaced.fetch_add(1, SeqCst);
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Distinct import events (by event id) per (mailbox id, internet message id).
fn imports(data: &Path) -> HashMap<(String, String), BTreeMap<String, Value>> {
    let mut by: HashMap<(String, String), BTreeMap<String, Value>> = HashMap::new();
    for e in read_lines(&data.join("events.jsonl")) {
        let key = (
            e["mailboxId"].as_str().unwrap_or_default().to_string(),
            e["internetMessageId"]
                .as_str()
                .unwrap_or_default()
                .trim_matches(|c| c == '<' || c == '>')
                .to_string(),
        );
        let id = e["eventId"].as_str().unwrap_or_default().to_string();
        by.entry(key).or_default().insert(id, e);
    }
    by
}

/// Alerts whose last event says raised: (kind, mailbox id or "profile").
fn raised(data: &Path) -> BTreeMap<(String, String), Value> {
    let mut last = BTreeMap::new();
    for a in read_lines(&data.join("alerts.jsonl")) {
        let key = (
            a["kind"].as_str().unwrap_or_default().to_string(),
            a["mailboxId"].as_str().unwrap_or("profile").to_string(),
        );
        last.insert(key, a);
    }
    last.retain(|_, a| a["state"] == "raised");
    last
}

#[tokio::main]
async fn main() {
    let plan = match Plan::from_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("soak: {plan:?}");
    let lab = Arc::new(Lab::start(&plan).await);
    lab.serve().await;
    lab.connect_all().await;
    let ids = lab.mailbox_ids.lock().unwrap().clone();
    eprintln!("soak: {} mailboxes connected; chaos on", ids.len());
    let f = plan.fault_rate;
    lab.sim.set_faults(|x| {
        *x = Faults {
            graph_throttle_rate: f * 0.6,
            graph_unavailable_rate: f * 0.35,
            graph_hang_rate: f * 0.05,
            // Past mailbridge's 30 s read timeout.
            hang_seconds: 40,
            notification_drop_rate: 0.05,
            notification_duplicate_rate: 0.1,
            notification_delay_rate: 0.3,
            notification_delay_max_ms: 5_000,
            ..Faults::default()
        }
    });
    lab.sim.reset_counters();

    let sent: Arc<Mutex<Vec<Arc<Sent>>>> = Arc::default();
    let record = Arc::new(Chaos::default());
    let done = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let chaos_task = tokio::spawn(chaos(
        lab.clone(),
        plan.clone(),
        record.clone(),
        done.clone(),
    ));
    produce(lab.clone(), &plan, sent.clone(), record.clone()).await;
    let produced_in = began.elapsed();
    done.store(true, SeqCst);
    eprintln!(
        "soak: all delivered in {produced_in:.0?}; chaos stops, revoked grants are signed in again"
    );
    chaos_task.await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    lab.sim.set_faults(|x| *x = Faults::default());
    if lab.child.lock().unwrap().is_none() {
        lab.serve().await;
    }
    // One more message per mailbox, once Graph is healthy again: each mailbox's throttling alert
    // clears with an import that gets through.
    for i in 0..lab.upns.len() {
        deliver(&lab, &sent, i, 2_000, "inbox", plan.messages + i);
    }
    // Until every message that is still in its mailbox is imported, or nothing moves for long.
    let sent: Vec<Arc<Sent>> = sent.lock().unwrap().clone();
    let mut progress = (usize::MAX, Instant::now());
    loop {
        let got = imports(&lab.data);
        let waiting = sent
            .iter()
            .filter(|s| !s.deleted.load(SeqCst))
            .filter(|s| !got.contains_key(&(ids[s.mailbox].clone(), s.internet_id.clone())))
            .count();
        if waiting == 0 {
            break;
        }
        if waiting != progress.0 {
            progress = (waiting, Instant::now());
            eprintln!("  {waiting} messages still to import");
        }
        if progress.1.elapsed() > Duration::from_secs(300) {
            eprintln!("soak: nothing moved for 5 minutes; counting now");
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let converged_in = began.elapsed();
    // Then the last mailbox's grant is revoked and stays so: mailbridge must notice (at its next
    // token refresh) and say that its person must sign in again.
    // A revoked grant shows when the grant is next used: a message arrives, and its import
    // needs a token once the one held has lapsed. That message waits for its person.
    let last = lab.upns.len() - 1;
    lab.sim.revoke(&lab.upns[last]);
    let final_revoked_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(ACCESS_TOKEN_SECONDS as u64 + 5)).await;
    let (waits, _) = deliver(&lab, &Mutex::default(), last, 2_000, "inbox", usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(400);
    while !raised(&lab.data).contains_key(&("reauth_required".into(), ids[last].clone()))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let views = lab
        .admin(reqwest::Method::GET, "/admin/mailboxes", None)
        .await;
    lab.stop();

    // The count.
    let got = imports(&lab.data);
    let (mut expected, mut imported, mut lost, mut twice, mut mismatched, mut deleted_imported) =
        (0, 0, 0, 0, 0, 0);
    let mut bytes = 0u64;
    let mut known = HashSet::new();
    for s in &sent {
        let key = (ids[s.mailbox].clone(), s.internet_id.clone());
        known.insert(key.clone());
        let deleted = s.deleted.load(SeqCst);
        expected += usize::from(!deleted);
        let Some(events) = got.get(&key) else {
            if !deleted {
                lost += 1;
                println!("    lost: {} in {}", s.internet_id, lab.upns[s.mailbox]);
            }
            continue;
        };
        imported += 1;
        deleted_imported += usize::from(deleted);
        twice += usize::from(events.len() > 1);
        for e in events.values() {
            let stored = std::fs::read(e["emlLocation"].as_str().unwrap_or_default())
                .map(|b| {
                    bytes += b.len() as u64;
                    sha256_hex(&b)
                })
                .unwrap_or_default();
            if stored != s.sha256 || e["sha256"].as_str() != Some(s.sha256.as_str()) {
                mismatched += 1;
            }
        }
    }
    known.insert((ids[last].clone(), waits.internet_id.clone()));
    let unknown = got.keys().filter(|k| !known.contains(*k)).count();
    let log = std::fs::read_to_string(&lab.log).unwrap_or_default();
    // Each job set aside by the queue's redrive policy, by kind (the line names the job's kind).
    let mut dead_lettered = std::collections::BTreeMap::<String, usize>::new();
    for line in log
        .lines()
        .filter(|l| l.contains("job dead-lettered after"))
    {
        let kind = line
            .split_once("job=")
            .map(|(_, rest)| rest.trim_start_matches('"'))
            .and_then(|rest| rest.split(['"', ' ']).next())
            .unwrap_or("?");
        *dead_lettered.entry(kind.to_string()).or_default() += 1;
    }
    let dead_lettered = match dead_lettered.values().sum::<usize>() {
        0 => "0".to_string(),
        n => format!(
            "{n} ({})",
            dead_lettered
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dead = mailbridge_embedded::SqliteDb::open(lab.data.join("state.db"))
        .and_then(|db| db.dead_letter_depth())
        .expect("the state database opens after the stop") as usize;

    let mut wrong_state = Vec::new();
    for v in views.as_array().unwrap() {
        let id = v["id"].as_str().unwrap_or_default();
        let state = v["connection"]["state"].as_str().unwrap_or_default();
        let want = if id == ids[last] {
            "reauth_required"
        } else {
            "connected"
        };
        if state != want {
            wrong_state.push(format!("{} is {state}, not {want}", v["address"]));
        }
    }
    let alerts = raised(&lab.data);
    let mut missing_alerts = Vec::new();
    let all_alerts = read_lines(&lab.data.join("alerts.jsonl"));
    let reauth_raised =
        |mailbox: usize, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
            all_alerts.iter().any(|a| {
                a["kind"] == "reauth_required"
                    && a["state"] == "raised"
                    && a["mailboxId"].as_str() == Some(&ids[mailbox])
                    && a["at"]
                        .as_str()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .is_some_and(|t| t >= from && t <= to)
            })
        };
    let revocations = record.revocations.lock().unwrap();
    for r in revocations.iter() {
        let until = r.restored.unwrap_or_else(chrono::Utc::now);
        if !reauth_raised(r.mailbox, r.at, until) {
            missing_alerts.push(format!(
                "no sign-in alert for {} revoked at {}",
                lab.upns[r.mailbox], r.at
            ));
        }
    }
    if !reauth_raised(last, final_revoked_at, chrono::Utc::now()) {
        missing_alerts.push(format!(
            "no sign-in alert for {} (revoked at the end)",
            lab.upns[last]
        ));
    }
    for ((kind, mailbox), a) in &alerts {
        if !(kind == "reauth_required" && *mailbox == ids[last]) {
            missing_alerts.push(format!(
                "{kind} still raised for {mailbox}: {}",
                a["message"]
            ));
        }
    }
    let counters = lab.sim.counters();
    let c = |k: &str| counters.get(k).copied().unwrap_or(0);

    println!(
        "soak: {} messages over {} mailboxes, {} import workers, {:.0} delivered/s",
        sent.len(),
        ids.len(),
        plan.workers,
        plan.rate
    );
    println!(
        "  delivered in {:.0?}, everything imported or given up after {:.0?}",
        produced_in, converged_in
    );
    println!("  chaos: {} SIGKILLs and restarts, {} lifecycle events, {} delta tokens expired, {} grants revoked and signed in again, {} client secret expired and replaced, {} messages moved between chosen folders, {} deleted soon after delivery",
        record.kills.load(SeqCst), record.lifecycle.load(SeqCst), record.delta_expired.load(SeqCst), revocations.len(), record.secrets_replaced.load(SeqCst), record.moved.load(SeqCst), sent.iter().filter(|s| s.deleted.load(SeqCst)).count());
    println!("  Graph: {} requests, {} answered 429 by the chaos, {} answered 503, {} hung past the timeout, {} throttled by Graph's own limits", c("graph"), c("throttled_injected"), c("errors"), c("hangs"), c("throttled").saturating_sub(c("throttled_injected")));
    println!(
        "  notifications: {} delivered, {} dropped",
        c("notifications_delivered"),
        c("notifications_dropped")
    );
    println!("  messages expected {expected}, imported {imported} ({:.1} MB; {deleted_imported} of them deleted after import), lost {lost}, imported twice {twice}, byte mismatches {mismatched}, imports of unknown messages {unknown}", bytes as f64 / 1_048_576.0);
    println!("  1 message delivered after the last mailbox's grant was revoked for good waits for its person ({})", if got.contains_key(&(ids[last].clone(), waits.internet_id.clone())) { "imported: the token had not lapsed" } else { "parked" });
    println!("  jobs dead-lettered during the run {dead_lettered}, left in the dead-letter queue at the end {dead}; mailboxes in the wrong state {}; alerts missing or left raised {}", wrong_state.len(), missing_alerts.len());
    println!(
        "  Graph calls per imported message {:.2}",
        c("graph") as f64 / imported.max(1) as f64
    );
    for w in wrong_state.iter().chain(&missing_alerts) {
        println!("    {w}");
    }
    let failed =
        lost + twice + mismatched + unknown + dead + wrong_state.len() + missing_alerts.len();
    if failed > 0 {
        println!("soak: FAILED (serve's log: {})", lab.log.display());
        std::process::exit(1);
    }
    println!("soak: nothing lost, nothing twice");
    if plan.keep {
        println!(
            "soak: kept {} (serve's log: {})",
            lab.dir.display(),
            lab.log.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&lab.dir);
    }
}
