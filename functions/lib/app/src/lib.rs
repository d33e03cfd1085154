//! The edges of the mailbridge functions, shared by the Lambda binaries and the local runner:
//! wiring of the services over ports, HTTP routers for the oauth, webhook and admin functions, and
//! the handlers of the SQS and schedule events.

pub mod http;
pub mod lambda;

use mailbridge_core::ports::*;
use mailbridge_core::repo::Repos;
use mailbridge_core::services::admin::Admin;
use mailbridge_core::services::connect::Connect;
use mailbridge_core::services::import::Importer;
use mailbridge_core::services::maintenance::Maintenance;
use mailbridge_core::services::pace::Pace;
use mailbridge_core::services::subscriptions::Subscriptions;
use mailbridge_core::services::sweep::Sweeper;
use mailbridge_core::services::tokens::Tokens;
use mailbridge_core::services::webhook::Webhook;
use mailbridge_core::services::worker::Worker;
use mailbridge_core::services::Settings;
use mailbridge_core::Secret;
use std::sync::Arc;

/// The adapters one deployment uses.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn StateStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub secrets: Arc<dyn SecretStore>,
    pub identity: Arc<dyn Identity>,
    pub graph: Arc<dyn MailGraph>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
}

/// Every service, built once at start-up.
#[derive(Clone)]
pub struct App {
    pub repos: Repos,
    pub settings: Settings,
    pub connect: Arc<Connect>,
    pub webhook: Arc<Webhook>,
    pub worker: Arc<Worker>,
    pub maintenance: Arc<Maintenance>,
    pub admin: Arc<Admin>,
    pub blobs: Arc<dyn BlobStore>,
    /// Bearer token of the admin API (None: the admin API refuses every call).
    pub admin_token: Option<Secret>,
}

impl App {
    pub fn new(p: Ports, settings: Settings, admin_token: Option<Secret>) -> Self {
        let repos = Repos::new(p.store.clone());
        let tokens = Arc::new(Tokens::new(
            repos.clone(),
            p.secrets.clone(),
            p.identity.clone(),
            p.clock.clone(),
            settings.clone(),
        ));
        let sweeper = Arc::new(Sweeper {
            repos: repos.clone(),
            graph: p.graph.clone(),
            tokens: tokens.clone(),
            queue: p.queue.clone(),
            clock: p.clock.clone(),
        });
        let subscriptions = Arc::new(Subscriptions {
            repos: repos.clone(),
            graph: p.graph.clone(),
            tokens: tokens.clone(),
            sweeper: sweeper.clone(),
            clock: p.clock.clone(),
            settings: settings.clone(),
        });
        let importer = Arc::new(Importer {
            repos: repos.clone(),
            graph: p.graph.clone(),
            tokens: tokens.clone(),
            blobs: p.blobs.clone(),
            events: p.events.clone(),
            queue: p.queue.clone(),
            clock: p.clock.clone(),
            settings: settings.clone(),
        });
        Self {
            connect: Arc::new(Connect {
                repos: repos.clone(),
                secrets: p.secrets.clone(),
                identity: p.identity.clone(),
                graph: p.graph.clone(),
                tokens: tokens.clone(),
                subscriptions: subscriptions.clone(),
                clock: p.clock.clone(),
                settings: settings.clone(),
            }),
            webhook: Arc::new(Webhook {
                subscriptions: repos.subscriptions.clone(),
                queue: p.queue.clone(),
            }),
            worker: Arc::new(Worker {
                repos: repos.clone(),
                importer,
                sweeper,
                subscriptions: subscriptions.clone(),
                pace: Arc::new(Pace::default()),
            }),
            maintenance: Arc::new(Maintenance {
                repos: repos.clone(),
                tokens: tokens.clone(),
                subscriptions: subscriptions.clone(),
                queue: p.queue.clone(),
                clock: p.clock.clone(),
                settings: settings.clone(),
            }),
            admin: Arc::new(Admin {
                repos: repos.clone(),
                graph: p.graph,
                tokens,
                subscriptions,
                clock: p.clock,
            }),
            repos,
            settings,
            blobs: p.blobs,
            admin_token,
        }
    }
}
