//! The flows of mailbridge, each over the narrow set of ports it needs.

pub mod admin;
pub mod alerts;
pub mod checks;
pub mod connect;
pub mod import;
pub mod maintenance;
pub mod organisation;
pub mod pace;
pub mod profiles;
pub mod subscriptions;
pub mod sweep;
pub mod tokens;
pub mod upkeep;
pub mod webhook;
pub mod worker;

use crate::{Error, Result};
use chrono::Duration;

/// The largest message mailbridge takes, in MB: what Graph lets a mailbox hold.
pub const MAX_MESSAGE_MB: u64 = 150;

/// Settings shared by the services, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where Microsoft reaches mailbridge: the redirect URI and notification URLs are built on it.
    pub public_base_url: String,
    /// Name of the secret holding the 32-byte key that seals tokens at rest.
    pub token_key_name: String,
    /// How long a sign-in may take between `/connect` and the callback.
    pub auth_state_ttl: Duration,
    /// How long an import worker holds a message before another may take it over.
    pub import_lease: Duration,
    /// Subscription lifetime asked of Graph (Graph may grant less; what it returns is kept).
    pub subscription_lifetime: Duration,
    /// Refresh an access token when it has less than this left.
    pub token_margin: Duration,
    /// When each part of a mailbox's upkeep falls due.
    pub schedule: upkeep::Schedule,
    /// Messages larger than this are refused with an alert instead of imported.
    pub max_message_bytes: u64,
    /// Client secrets of server profiles are named under this prefix, and only there; the
    /// token-sealing key never is.
    pub profile_secret_prefix: String,
    /// Hosts (`host` or `host:port`) that the URLs of a `custom` cloud may name. Empty: a profile
    /// with a custom cloud is refused, so that no profile can send tokens or secrets elsewhere
    /// than Microsoft's clouds unless the deployment says so.
    pub custom_cloud_hosts: Vec<String>,
    /// Graph's limits per app and mailbox, as mailbridge holds them across every process.
    pub graph_limits: pace::GraphLimits,
    /// Message claims and Graph slots taken before this instant belong to a process that has
    /// ended, and are taken over at once rather than after their lease. Only for a deployment
    /// that holds its state alone (the local runner locks its data directory and sets its start);
    /// `None` on AWS, where other containers may be working.
    pub claims_void_before: Option<chrono::DateTime<chrono::Utc>>,
    /// How long after an administrator's consent Graph may still answer 403 while the
    /// permission propagates (Microsoft: up to two hours): no failure alert before it has passed.
    pub consent_propagation: Duration,
}

/// Whether a lease of `length` that runs until `until` was taken before `void_before`, by a
/// process that has ended ([`Settings::claims_void_before`]): message claims and Graph slots.
pub(crate) fn taken_by_an_ended_process(
    void_before: Option<chrono::DateTime<chrono::Utc>>,
    until: chrono::DateTime<chrono::Utc>,
    length: Duration,
) -> bool {
    void_before.is_some_and(|start| until - length < start)
}

impl Settings {
    pub fn new(public_base_url: impl Into<String>) -> Self {
        Self {
            public_base_url: public_base_url.into().trim_end_matches('/').to_string(),
            token_key_name: "mailbridge/token-key".into(),
            auth_state_ttl: Duration::minutes(10),
            import_lease: Duration::minutes(5),
            // Graph's maximum for Outlook messages is 10,080 minutes; stay under it.
            subscription_lifetime: Duration::minutes(10_070),
            token_margin: Duration::minutes(5),
            schedule: upkeep::Schedule::default(),
            max_message_bytes: MAX_MESSAGE_MB * 1024 * 1024,
            profile_secret_prefix: "mailbridge/profiles/".into(),
            custom_cloud_hosts: Vec::new(),
            graph_limits: pace::GraphLimits::default(),
            claims_void_before: None,
            consent_propagation: Duration::hours(2),
        }
    }

    /// Allows custom clouds on these hosts (`host` or `host:port`, comma-separated or not).
    pub fn with_custom_cloud_hosts<S: AsRef<str>>(mut self, hosts: &[S]) -> Self {
        self.custom_cloud_hosts = hosts
            .iter()
            .flat_map(|h| h.as_ref().split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        self
    }

    /// Sets the size limit of an imported message, in MB (1 to 150).
    pub fn with_max_message_mb(mut self, mb: u64) -> Result<Self> {
        if !(1..=MAX_MESSAGE_MB).contains(&mb) {
            return Err(Error::invalid(format!(
                "the message size limit is {mb} MB; it must be between 1 and {MAX_MESSAGE_MB}"
            )));
        }
        self.max_message_bytes = mb * 1024 * 1024;
        Ok(self)
    }

    /// Where an administrator starts the consent of an organisation-wide profile.
    pub fn admin_consent_url(&self, profile_id: &str) -> String {
        format!(
            "{}/admin-consent?profile={}",
            self.public_base_url,
            query_value(profile_id)
        )
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_base_url)
    }

    pub fn notification_url(&self) -> String {
        format!("{}/notifications", self.public_base_url)
    }

    pub fn lifecycle_url(&self) -> String {
        format!("{}/lifecycle", self.public_base_url)
    }

    /// Where a person signs in again to reconnect a mailbox of `profile_id`.
    pub fn reconnect_url(&self, profile_id: &str, address: &str) -> String {
        format!(
            "{}/connect?profile={}&login_hint={}",
            self.public_base_url,
            query_value(profile_id),
            query_value(address)
        )
    }
}

/// A value percent-encoded for a URL's query (RFC 3986's unreserved characters kept).
pub fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

use crate::ports::{
    BlobStore, Clock, EventSink, Identity, JobQueue, KeySigner, MailGraph, Metrics, SecretStore,
    StateStore,
};
use crate::repo::Repos;
use std::sync::Arc;

/// The ports behind the mailbox services: every function but the webhook builds on these.
#[derive(Clone)]
pub struct MailPorts {
    pub store: Arc<dyn StateStore>,
    /// Where the per-mailbox Graph pace records live: the shared store wherever several processes
    /// work on the same mailboxes (every Lambda container); memory for a single process.
    pub pace_store: Arc<dyn StateStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub identity: Arc<dyn Identity>,
    /// Signs client assertions with a profile's certificate key.
    pub signer: Arc<dyn KeySigner>,
    pub graph: Arc<dyn MailGraph>,
    pub queue: Arc<dyn JobQueue>,
    /// Import events and alert events.
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
}

/// The pieces each function is assembled from: tokens, sweeps and subscriptions over its ports,
/// and a constructor for each function's service. A Lambda function's wiring builds the one it
/// serves; the local runner builds them all from the same pieces.
#[derive(Clone)]
pub struct MailServices {
    pub repos: Repos,
    pub tokens: Arc<tokens::Tokens>,
    pub sweeper: Arc<sweep::Sweeper>,
    pub subscriptions: Arc<subscriptions::Subscriptions>,
    pub alerts: Arc<alerts::Alerts>,
    pub events: Arc<dyn EventSink>,
    pub identity: Arc<dyn Identity>,
    /// Graph, paced by [`pace::SharedPace`]: every request waits for its mailbox's turn.
    pub graph: Arc<dyn MailGraph>,
    pub pace: Arc<pace::SharedPace>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn Metrics>,
    pub settings: Settings,
}

impl MailServices {
    /// Fails when the settings put the token-sealing key where a profile could name it.
    pub fn new(p: MailPorts, settings: Settings) -> Result<Self> {
        let repos = Repos::new(p.store);
        let paces = crate::repo::Repo::new(p.pace_store);
        let secrets = profiles::Secrets::new(p.secrets, &settings, p.clock.clone())?;
        let pace = Arc::new(
            pace::SharedPace::new(paces, p.clock.clone(), settings.graph_limits)
                .voiding_before(settings.claims_void_before),
        );
        let graph: Arc<dyn MailGraph> = Arc::new(pace::PacedGraph {
            inner: p.graph,
            pace: pace.clone(),
            metrics: p.metrics.clone(),
        });
        let alerts = Arc::new(alerts::Alerts {
            repos: repos.clone(),
            events: p.events.clone(),
            clock: p.clock.clone(),
            settings: settings.clone(),
        });
        let tokens = Arc::new(tokens::Tokens::new(
            repos.clone(),
            secrets,
            p.identity.clone(),
            p.signer.clone(),
            alerts.clone(),
            p.clock.clone(),
            settings.clone(),
        ));
        let sweeper = Arc::new(sweep::Sweeper {
            repos: repos.clone(),
            graph: graph.clone(),
            tokens: tokens.clone(),
            queue: p.queue.clone(),
            clock: p.clock.clone(),
        });
        let subscriptions = Arc::new(subscriptions::Subscriptions {
            repos: repos.clone(),
            graph: graph.clone(),
            tokens: tokens.clone(),
            sweeper: sweeper.clone(),
            clock: p.clock.clone(),
            settings: settings.clone(),
        });
        Ok(Self {
            repos,
            tokens,
            sweeper,
            subscriptions,
            alerts,
            events: p.events,
            identity: p.identity,
            graph,
            pace,
            queue: p.queue,
            clock: p.clock,
            metrics: p.metrics,
            settings,
        })
    }

    /// The oauth function's service: sign-in, callback, first subscriptions.
    pub fn connect(&self) -> connect::Connect {
        connect::Connect {
            repos: self.repos.clone(),
            identity: self.identity.clone(),
            graph: self.graph.clone(),
            tokens: self.tokens.clone(),
            subscriptions: self.subscriptions.clone(),
            alerts: self.alerts.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
        }
    }

    /// The import function's service: imports, sweeps, resubscriptions, over the message store and
    /// the event sink.
    pub fn worker(&self, blobs: Arc<dyn BlobStore>) -> worker::Worker {
        worker::Worker {
            repos: self.repos.clone(),
            importer: Arc::new(import::Importer {
                repos: self.repos.clone(),
                graph: self.graph.clone(),
                tokens: self.tokens.clone(),
                blobs,
                events: self.events.clone(),
                clock: self.clock.clone(),
                settings: self.settings.clone(),
            }),
            sweeper: self.sweeper.clone(),
            subscriptions: self.subscriptions.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            alerts: self.alerts.clone(),
            checks: Arc::new(self.checks()),
            upkeep: Arc::new(upkeep::Upkeep {
                repos: self.repos.clone(),
                alerts: self.alerts.clone(),
                organisation: Arc::new(self.organisation()),
                tokens: self.tokens.clone(),
                subscriptions: self.subscriptions.clone(),
                sweeper: self.sweeper.clone(),
                clock: self.clock.clone(),
                schedule: self.settings.schedule,
            }),
            pace: Arc::new(pace::Pace::with_limits(self.settings.graph_limits)),
            shared: self.pace.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Organisation-wide connections: mailboxes added by address or discovered, and reached.
    pub fn organisation(&self) -> organisation::Organisation {
        organisation::Organisation {
            repos: self.repos.clone(),
            graph: self.graph.clone(),
            tokens: self.tokens.clone(),
            subscriptions: self.subscriptions.clone(),
            alerts: self.alerts.clone(),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
        }
    }

    /// Test and enable, for the admin API and the import function's `Test` jobs.
    pub fn checks(&self) -> checks::Checks {
        checks::Checks {
            repos: self.repos.clone(),
            graph: self.graph.clone(),
            tokens: self.tokens.clone(),
            subscriptions: self.subscriptions.clone(),
            alerts: self.alerts.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The maintenance function's service: the scheduled round, which reads state and queues.
    pub fn maintenance(&self) -> maintenance::Maintenance {
        maintenance::Maintenance {
            repos: self.repos.clone(),
            queue: self.queue.clone(),
            clock: self.clock.clone(),
            schedule: self.settings.schedule,
        }
    }

    /// The admin function's service.
    pub fn admin(&self) -> admin::Admin {
        admin::Admin {
            repos: self.repos.clone(),
            graph: self.graph.clone(),
            tokens: self.tokens.clone(),
            subscriptions: self.subscriptions.clone(),
            checks: Arc::new(self.checks()),
            organisation: Arc::new(self.organisation()),
            clock: self.clock.clone(),
            settings: self.settings.clone(),
        }
    }
}
