//! The local runner: every mailbridge function in one process, on embedded storage (SQLite, files,
//! an encrypted secrets file), against the in-process Microsoft 365 simulator.

pub mod config;
mod data_dir;
mod events;
pub mod http_server;
mod secrets;

pub use data_dir::{DataDir, Purpose};
pub use events::LocalEvents;
use m365_sim::{Demo, Options as SimOptions, Sim};
use mailbridge_core::model::{AuthType, Cloud, ServerProfile};
use mailbridge_core::ports::{Clock, Delivery, JobSource, Redelivery, SecretStore, SystemClock};
use mailbridge_core::repo::Repos;
use mailbridge_core::services::admin::Admin;
use mailbridge_core::services::connect::Connect;
use mailbridge_core::services::maintenance::Maintenance;
use mailbridge_core::services::pace::GraphLimits;
use mailbridge_core::services::webhook::Webhook;
use mailbridge_core::services::worker::{poll_once, Worker};
use mailbridge_core::services::{MailPorts, MailServices, Settings};
use mailbridge_core::{crypto::SealingKey, Secret};
use mailbridge_edge::admin::{admin_router, AdminApi, AdminToken};
use mailbridge_edge::http::{oauth_router, webhook_router};
use mailbridge_embedded::{FileBlobStore, FileSecrets, SqliteDb};
use mailbridge_graph::http_client_trusting;
pub use secrets::LocalSecrets;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How to run.
#[derive(Clone)]
pub struct Options {
    /// Where state, messages and secrets go: opened as found, never deleted, locked while in use
    /// ([`DataDir`]).
    pub data_dir: PathBuf,
    /// `Serve` keeps the directory's data; `Demo` starts its own directory afresh.
    pub purpose: Purpose,
    /// Address of mailbridge's HTTP endpoints (`127.0.0.1:0` for any free port).
    pub listen: String,
    /// Address of the Microsoft 365 simulator.
    pub sim_listen: String,
    /// How often the maintenance round runs.
    pub maintenance_every: Duration,
    /// How often expired records (sign-in states) are deleted, as DynamoDB's TTL does on AWS.
    pub purge_every: Duration,
    /// How long a client has to send its request.
    pub http_limits: http_server::Limits,
    /// mailbridge's clock (tests shift it).
    pub clock: Arc<dyn Clock>,
    /// Serve the simulator over HTTPS with a generated CA, which mailbridge is told to trust.
    pub sim_tls: bool,
    /// Messages larger than this many MB (at most 150) are refused with an alert.
    pub max_message_mb: u64,
    /// Where import and alert events are POSTed (JSON; the `X-Mailbridge-Event` header says
    /// which), besides `events.jsonl` and `alerts.jsonl` in the data directory.
    pub event_hook: Option<String>,
    /// Graph's per-mailbox limits, as mailbridge holds them.
    pub graph_limits: GraphLimits,
    /// Independent import workers, each with its own in-memory state and one batch at a time,
    /// as Lambda containers are; 1 (the default): one worker with several batches in flight;
    /// 0: none, the caller works the queue (a benchmark that times each batch).
    pub containers: usize,
    /// User object ids of the console's administrators.
    pub console_admins: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".local/mailbridge"),
            purpose: Purpose::Serve,
            listen: "127.0.0.1:8300".into(),
            sim_listen: "127.0.0.1:8400".into(),
            maintenance_every: Duration::from_secs(300),
            purge_every: Duration::from_secs(60),
            http_limits: http_server::Limits::default(),
            clock: Arc::new(SystemClock),
            sim_tls: false,
            max_message_mb: mailbridge_core::services::MAX_MESSAGE_MB,
            event_hook: None,
            graph_limits: GraphLimits::default(),
            containers: 1,
            console_admins: Vec::new(),
        }
    }
}

/// Every function's service, built from the same pieces as the Lambda functions' wiring.
#[derive(Clone)]
pub struct Services {
    pub repos: Repos,
    pub connect: Arc<Connect>,
    pub webhook: Arc<Webhook>,
    pub worker: Arc<Worker>,
    pub maintenance: Arc<Maintenance>,
    pub admin: Arc<Admin>,
    /// The message store, which the demo and the tests read back.
    pub blobs: Arc<FileBlobStore>,
}

impl Services {
    /// Every route, as the local runner serves them.
    pub fn routes(&self, admin_token: Secret, console_admins: &[String]) -> axum::Router {
        let repos = self.repos.clone();
        oauth_router(self.connect.clone())
            .merge(mailbridge_edge::console::console_router(
                mailbridge_edge::console::Console {
                    admin: self.admin.clone(),
                    admins: Arc::new(console_admins.to_vec()),
                },
            ))
            .merge(webhook_router(self.webhook.clone()))
            .merge(admin_router(AdminApi {
                admin: self.admin.clone(),
                token: AdminToken::fixed(admin_token),
            }))
            .route(
                "/healthz",
                axum::routing::get(move || healthz(repos.clone())),
            )
    }
}

/// Alive, and its state readable: 200 `ok`, or 503 saying what fails. No authentication, and
/// nothing about any mailbox.
async fn healthz(repos: Repos) -> (axum::http::StatusCode, &'static str) {
    match repos.profiles.list().await {
        Ok(_) => (axum::http::StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "health check: the state store cannot be read");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the state store cannot be read\n",
            )
        }
    }
}

/// A running local deployment: every function over embedded storage in one data directory,
/// talking to whatever clouds its profiles name.
pub struct Deployment {
    pub services: Services,
    pub db: Arc<SqliteDb>,
    pub events: Arc<LocalEvents>,
    pub addr: SocketAddr,
    pub base_url: String,
    pub admin_token: Secret,
    /// The data directory, locked while the deployment lives.
    data: DataDir,
    /// Set to stop taking requests and jobs ([`Deployment::shutdown`]).
    stop: tokio::sync::watch::Sender<bool>,
    /// The HTTP server and the queue pollers, which end once told to stop.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Receipts of the jobs being worked, to hand back if the grace period ends first.
    in_flight: InFlight,
}

type InFlight = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// What a deployment is made of besides its [`Options`]: decided by the caller (the simulator
/// runner, or a configuration file).
pub struct Parts {
    /// Already bound, so that the settings can name its address.
    pub listener: tokio::net::TcpListener,
    pub settings: Settings,
    pub secrets: Arc<dyn SecretStore>,
    /// The client for Entra ID, Graph and the event hook.
    pub http: reqwest::Client,
    /// Server profiles put (created or replaced) at start.
    pub profiles: Vec<ServerProfile>,
    pub admin_token: Secret,
}

impl Deployment {
    /// Opens the data directory (locked; refused if it is not mailbridge's) and starts every
    /// function in this process.
    pub async fn start(
        opts: &Options,
        data: DataDir,
        parts: Parts,
    ) -> Result<Deployment, Box<dyn std::error::Error + Send + Sync>> {
        let Parts {
            listener,
            mut settings,
            secrets,
            http,
            profiles,
            admin_token,
        } = parts;
        // The directory is this process's alone: claims left by an earlier run are void.
        settings.claims_void_before = Some(opts.clock.now());
        let addr = listener.local_addr()?;
        let db = Arc::new(SqliteDb::open(data.path().join("state.db"))?);
        let events = Arc::new(
            LocalEvents::open(
                data.path(),
                opts.event_hook.clone().map(|url| (http.clone(), url)),
            )?
            .waking(db.clone()),
        );
        let (identity, graph) = mailbridge_graph::microsoft_over(http.clone());
        let ports = MailPorts {
            store: db.clone(),
            // One process: its Graph pace records need not leave memory; as several containers,
            // they share the store, as Lambda containers share DynamoDB.
            pace_store: if opts.containers <= 1 {
                Arc::new(mailbridge_core::state::MemoryStore::default())
            } else {
                db.clone()
            },
            signer: Arc::new(mailbridge_embedded::SecretStoreKeys::new(secrets.clone())),
            secrets,
            identity,
            graph,
            queue: db.clone(),
            events: events.clone(),
            clock: opts.clock.clone(),
            // No CloudWatch here; the log and the admin API's status say what happens.
            metrics: Arc::new(mailbridge_core::ports::NoMetrics),
        };
        let mail = MailServices::new(ports.clone(), settings.clone())?;
        let blobs = Arc::new(FileBlobStore::new(data.path().join("store")));
        // Locked: a partial file left in the store is a killed run's, never to be committed.
        let removed = blobs.remove_unfinished()?;
        if removed > 0 {
            tracing::info!(removed, "partial message files of an earlier run removed");
        }
        // What an earlier run gave up on gets its tries again, as a redrive of the DLQ does.
        let redriven = db.redrive()?;
        if redriven > 0 {
            tracing::warn!(
                redriven,
                "dead-lettered jobs of an earlier run back in the queue"
            );
        }
        let services = Services {
            repos: mail.repos.clone(),
            connect: Arc::new(mail.connect()),
            webhook: Arc::new(Webhook::new(db.clone(), db.clone(), opts.clock.clone())),
            worker: Arc::new(mail.worker(blobs.clone())),
            maintenance: Arc::new(mail.maintenance()),
            admin: Arc::new(mail.admin()),
            blobs,
        };
        for profile in profiles {
            services.admin.put_profile(profile).await?;
        }

        let (stop, stopping) = tokio::sync::watch::channel(false);
        let router = services.routes(admin_token.clone(), &opts.console_admins);
        let mut tasks = vec![tokio::spawn(http_server::serve(
            listener,
            router,
            opts.http_limits,
            stopping.clone(),
        ))];
        // Like concurrent Lambda invocations: several batches in flight, each job admitted by
        // the worker's per-mailbox pace.
        let in_flight = InFlight::default();
        let jobs = Arc::new(Tracked {
            db: db.clone(),
            in_flight: in_flight.clone(),
        });
        let poller =
            |worker: Arc<Worker>| tokio::spawn(work_queue(worker, jobs.clone(), stopping.clone()));
        if opts.containers == 1 {
            for _ in 0..POLLERS {
                tasks.push(poller(services.worker.clone()));
            }
        } else if opts.containers > 1 {
            // As separate containers: each builds its own services over the shared ports.
            for _ in 0..opts.containers {
                let own = MailServices::new(ports.clone(), settings.clone())?;
                let worker = Arc::new(own.worker(services.blobs.clone()));
                tasks.push(poller(worker));
            }
        }
        // DynamoDB's TTL, locally: expired records (sign-in states above all) are deleted.
        let (purged_db, clock, mut until_stop) = (db.clone(), opts.clock.clone(), stopping.clone());
        let purge_every = opts.purge_every;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(purge_every);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = until_stop.wait_for(|s| *s) => return,
                }
                if let Err(e) = purged_db.purge_expired(clock.now()) {
                    tracing::warn!(error = %e, "expired records could not be purged");
                }
            }
        });
        let maintenance = services.maintenance.clone();
        let mut until_stop = stopping.clone();
        let every = opts.maintenance_every;
        tokio::spawn(async move {
            tokio::select! {
                _ = maintain(maintenance, every) => {}
                _ = until_stop.wait_for(|s| *s) => {}
            }
        });
        Ok(Deployment {
            services,
            db,
            events,
            addr,
            base_url: settings.public_base_url.clone(),
            admin_token,
            data,
            stop,
            tasks: std::sync::Mutex::new(tasks),
            in_flight,
        })
    }

    /// Where state, messages and events are.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// Stops taking notifications, sign-ins and jobs, and lets the jobs being worked finish for
    /// up to `grace`; those still running then are handed back to the queue at once (their
    /// message claims expire on their own), so a restart resumes them. Returns how many were
    /// handed back.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let finished = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        if finished.is_ok() {
            return 0;
        }
        for a in aborts {
            a.abort();
        }
        let receipts: Vec<String> = self.in_flight.lock().unwrap().drain().collect();
        for receipt in &receipts {
            if let Err(e) = self.db.retry_later(receipt, Duration::ZERO).await {
                tracing::error!(error = %e, "could not hand a job back; it comes back after its visibility timeout");
            }
        }
        receipts.len()
    }
}

/// mailbridge with its own Microsoft 365 simulator, and the simulator's demo tenant as its
/// default profile: the demo and the tests. Everything a [`Deployment`] has, through `Deref`.
pub struct Runner {
    pub deployment: Deployment,
    pub sim: Sim,
    pub demo: Demo,
}

impl std::ops::Deref for Runner {
    type Target = Deployment;

    fn deref(&self) -> &Deployment {
        &self.deployment
    }
}

/// Name of the demo profile's client secret in the secret store.
pub const DEMO_SECRET: &str = "mailbridge/profiles/demo/client-secret";

impl Runner {
    /// The demo tenant's user (Adele) is an administrator of the console, besides
    /// `opts.console_admins`.
    pub async fn start(
        mut opts: Options,
    ) -> Result<Runner, Box<dyn std::error::Error + Send + Sync>> {
        // First the directory's lock: a second instance stops here, before anything is touched.
        let data = DataDir::open(&opts.data_dir, opts.purpose)?;
        let listener = tokio::net::TcpListener::bind(&opts.listen).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let sim = Sim::start_with(SimOptions {
            addr: opts.sim_listen.clone(),
            tls: opts.sim_tls,
            ..SimOptions::default()
        })
        .await?;
        // The demo profile is a custom cloud on the simulator's address: the one host allowed.
        let sim_host = sim
            .base_url()
            .split_once("://")
            .map_or(sim.base_url(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string();
        let mut settings = Settings::new(&base_url)
            .with_max_message_mb(opts.max_message_mb)?
            .with_custom_cloud_hosts(&[sim_host]);
        settings.graph_limits = opts.graph_limits;
        let demo = sim.seed_demo(&settings.redirect_uri());

        let secrets = Arc::new(FileSecrets::open(data.path().join("secrets"))?);
        token_key_in(&secrets, &settings)?;
        secrets.set(DEMO_SECRET, &Secret::new(demo.client_secret.clone()))?;
        let profile = ServerProfile {
            id: "demo".into(),
            name: "Simulated Microsoft 365 (demo tenant)".into(),
            cloud: Cloud::Custom {
                login: sim.base_url().into(),
                graph: sim.base_url().into(),
                resource: "https://graph.microsoft.com".into(),
            },
            auth: AuthType::Delegated,
            tenant: demo.tenant_id.clone(),
            client_id: demo.client_id.clone(),
            client_secret_ref: DEMO_SECRET.into(),
            client_secret_expires_at: None,
            is_default: true,
            approval_required: false,
            backfill_days: 0,
            outlook_category: None,
            certificate: None,
        };
        let parts = Parts {
            listener,
            settings,
            secrets,
            http: http_client_trusting(sim.ca_pem())?,
            profiles: vec![profile],
            admin_token: Secret::new(mailbridge_core::crypto::random_token(24)),
        };
        opts.console_admins.push(demo.user_id.clone());
        let deployment = Deployment::start(&opts, data, parts).await?;
        Ok(Runner {
            deployment,
            sim,
            demo,
        })
    }

    /// Connects the demo user's mailbox through the real redirect flow, as a browser would:
    /// `/connect` → the simulator's authorize endpoint (which signs Adele in and consents) →
    /// `/oauth/callback`. Returns the callback page's status and text.
    pub async fn connect_demo_mailbox(&self) -> Result<(u16, String), reqwest::Error> {
        let mut browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = self.sim.ca_pem() {
            browser =
                browser.tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes())?);
        }
        follow_sign_in(&browser.build()?, format!("{}/connect", self.base_url)).await
    }
}

/// `serve` for real tenants, from a checked configuration: the data directory locked, the sealing
/// key found (or generated on the first start), every profile's login reachable, then every
/// function started; nothing starts half-configured.
pub async fn serve(
    config: &config::Config,
) -> Result<Deployment, Box<dyn std::error::Error + Send + Sync>> {
    // The network first: it changes nothing, so a profile that cannot work stops the start
    // before any file is created.
    let http = http_client_trusting(None)?;
    config.check_reachable(&http).await?;
    let data = DataDir::open(&config.data_dir, Purpose::Serve)?;
    let key = config.sealing_key(&data)?;
    let admin_token = config.admin_token()?;
    let settings = config.settings();
    let sealed = LocalSecrets::sealed_in(data.path(), key)?;
    token_key_in(&sealed, &settings)?;
    // A wrong key is found now, not at the first token.
    mailbridge_core::ports::SecretStore::get(&sealed, &settings.token_key_name)
        .await
        .map_err(|_| {
            format!(
                "sealing_key: the {} does not open the secrets in {}; is it the key this \
                 directory was started with?",
                config.sealing_key.describe(),
                data.path().display()
            )
        })?;
    let referenced = config
        .profiles
        .iter()
        .flat_map(|p| p.secret_sources(&settings))
        .collect();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen: cannot listen on {}: {e}", config.listen))?;
    let opts = Options {
        data_dir: config.data_dir.clone(),
        listen: config.listen.to_string(),
        max_message_mb: config.max_message_mb,
        containers: config.import_workers,
        maintenance_every: config.maintenance_every,
        event_hook: config.event_hook.clone(),
        console_admins: config.console_admins.clone(),
        purpose: Purpose::Serve,
        ..Options::default()
    };
    let parts = Parts {
        listener,
        settings,
        secrets: Arc::new(LocalSecrets::new(referenced, sealed)),
        http,
        profiles: config.server_profiles(),
        admin_token,
    };
    let deployment = Deployment::start(&opts, data, parts).await?;
    deployment.sweep_everything().await?;
    Ok(deployment)
}

impl Deployment {
    /// Queues a sweep of every active mailbox: after a restart, what was notified while mailbridge
    /// was down (and Graph gave up on) is found now, not at the next scheduled sweep.
    pub async fn sweep_everything(&self) -> Result<u32, mailbridge_core::Error> {
        let mut jobs = Vec::new();
        for m in self.services.repos.mailboxes.values().await? {
            if m.is_active() {
                jobs.push(mailbridge_core::model::Job::Sweep {
                    mailbox_id: m.id.clone(),
                    folder_id: None,
                    reason: mailbridge_core::model::Reason::Restart,
                });
            }
        }
        mailbridge_core::ports::JobQueue::send(self.db.as_ref(), &jobs).await?;
        Ok(jobs.len() as u32)
    }
}

/// The key that seals tokens lives in the secrets file, generated there on the first start.
fn token_key_in(secrets: &FileSecrets, settings: &Settings) -> mailbridge_core::Result<()> {
    if !secrets.contains(&settings.token_key_name)? {
        secrets.set(&settings.token_key_name, &SealingKey::generate_base64())?;
    }
    Ok(())
}

/// A browser's part of a sign-in: from mailbridge's `/connect`, through Microsoft's authorize
/// redirects, to the callback page. `browser` must not follow redirects itself. Returns the last
/// page's status and text.
pub async fn follow_sign_in(
    browser: &reqwest::Client,
    connect_url: String,
) -> Result<(u16, String), reqwest::Error> {
    let mut url = connect_url;
    for _ in 0..5 {
        let resp = browser.get(&url).send().await?;
        match resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
        {
            Some(next) if resp.status().is_redirection() => url = next.to_string(),
            _ => {
                let status = resp.status().as_u16();
                return Ok((status, resp.text().await?));
            }
        }
    }
    Ok((508, "too many redirects".into()))
}

/// Queue pollers, each with a batch of up to 10 jobs in flight.
const POLLERS: usize = 8;

/// The queue as the pollers take from it: the database's, which dead-letters as SQS's redrive
/// policy does, with the receipts being worked kept so that a shutdown whose grace runs out can
/// hand them back.
struct Tracked {
    db: Arc<SqliteDb>,
    in_flight: InFlight,
}

impl Tracked {
    fn done(&self, receipt: &str) {
        self.in_flight.lock().unwrap().remove(receipt);
    }
}

#[async_trait::async_trait]
impl JobSource for Tracked {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> mailbridge_core::Result<Vec<Delivery>> {
        let batch = self.db.receive(max, visibility).await?;
        let mut in_flight = self.in_flight.lock().unwrap();
        in_flight.extend(batch.iter().map(|d| d.receipt.clone()));
        Ok(batch)
    }

    async fn ack(&self, receipt: &str) -> mailbridge_core::Result<()> {
        let acked = self.db.ack(receipt).await;
        self.done(receipt);
        acked
    }
}

#[async_trait::async_trait]
impl Redelivery for Tracked {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> mailbridge_core::Result<()> {
        let handed_back = self.db.retry_later(receipt, delay).await;
        self.done(receipt);
        handed_back
    }
}

/// The local stand-in for Lambda's SQS trigger: the core's [`poll_once`], as the import component
/// runs it, until the deployment is stopping.
async fn work_queue(
    worker: Arc<Worker>,
    jobs: Arc<Tracked>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    const VISIBILITY: Duration = Duration::from_secs(120);
    while !*stopping.borrow() {
        match poll_once(worker.clone(), jobs.clone(), VISIBILITY).await {
            Ok(0) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stopping.changed() => {}
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "a batch failed; its jobs come back after their visibility timeout");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The local stand-in for the EventBridge schedule.
async fn maintain(maintenance: Arc<Maintenance>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        match maintenance.run().await {
            Ok(r) => tracing::info!(?r, "maintenance round done"),
            Err(e) => tracing::error!(error = %e, "maintenance round failed"),
        }
    }
}

/// Three sample messages: plain ASCII, non-ASCII headers, and one with a PDF attachment.
pub fn sample_messages() -> Vec<(String, Vec<u8>)> {
    let date = chrono::Utc::now().to_rfc2822();
    let plain = format!(
        "From: Megan Bowen <megan@contoso.example>\r\nTo: Adele Vance <adele@contoso.example>\r\nSubject: Quarterly figures\r\n\
Date: {date}\r\nMessage-ID: <q3-figures@contoso.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
Hi Adele,\r\n\r\nThe figures are ready.\r\n"
    );
    let accents = format!(
        "From: =?UTF-8?Q?Fran=C3=A7ois_M=C3=BCller?= <francois@exemple.fr>\r\nTo: adele@contoso.example\r\n\
Subject: =?UTF-8?B?UsOpdW5pb24gZCfDqXTDqSDigJMgY2Fmw6kg4piV?=\r\nDate: {date}\r\nMessage-ID: <reunion-ete@exemple.fr>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Bonjour Adèle, à bientôt !\r\n"
    );
    let attachment = format!(
        "From: Lee Gu <lee@fabrikam.example>\r\nTo: adele@contoso.example\r\nCc: megan@contoso.example\r\nSubject: Invoice 2026-117\r\n\
Date: {date}\r\nMessage-ID: <invoice-2026-117@fabrikam.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"=_boundary_1\"\r\n\r\n--=_boundary_1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
Please find the invoice attached.\r\n--=_boundary_1\r\nContent-Type: application/pdf; name=\"invoice-2026-117.pdf\"\r\n\
Content-Disposition: attachment; filename=\"invoice-2026-117.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==\r\n\
--=_boundary_1--\r\n"
    );
    vec![
        ("plain".into(), plain.into_bytes()),
        ("non-ascii".into(), accents.into_bytes()),
        ("attachment".into(), attachment.into_bytes()),
    ]
}
