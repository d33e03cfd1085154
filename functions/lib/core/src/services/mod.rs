//! The flows of mailbridge, each over the narrow set of ports it needs.

pub mod admin;
pub mod connect;
pub mod import;
pub mod maintenance;
pub mod pace;
pub mod subscriptions;
pub mod sweep;
pub mod tokens;
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
    /// Renew a subscription when it has less than this left.
    pub renew_margin: Duration,
    /// Refresh an access token when it has less than this left.
    pub token_margin: Duration,
    /// Warn this long before a client secret expires.
    pub secret_warning: Duration,
    /// Messages larger than this are refused with an alert instead of imported.
    pub max_message_bytes: u64,
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
            renew_margin: Duration::hours(36),
            token_margin: Duration::minutes(5),
            secret_warning: Duration::days(30),
            max_message_bytes: MAX_MESSAGE_MB * 1024 * 1024,
        }
    }

    /// Sets the size limit of an imported message, in MB (1 to 150).
    pub fn with_max_message_mb(mut self, mb: u64) -> Result<Self> {
        if !(1..=MAX_MESSAGE_MB).contains(&mb) {
            return Err(Error::Invalid(format!(
                "the message size limit is {mb} MB; it must be between 1 and {MAX_MESSAGE_MB}"
            )));
        }
        self.max_message_bytes = mb * 1024 * 1024;
        Ok(self)
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
}
