//! The oauth function's wiring: sign-in with PKCE, the callback, the new mailbox's first
//! subscriptions and cursors (and its backfill jobs, when the profile asks for one).

use mailbridge_aws::{AwsEnv, BoxError, Port};
use std::sync::Arc;

/// What the oauth function uses of AWS; its IAM policy in `template.yaml` is derived from this.
pub const PORTS: &[Port] = &[
    Port::State,
    Port::QueueSend,
    Port::Events,
    Port::SealingKey,
    Port::ProfileSecrets,
    Port::CertificateKeys,
];

/// The oauth routes over their ports. Variables: `PUBLIC_BASE_URL`, `TABLE_NAME`, `QUEUE_URL`,
/// `EVENT_BUS_NAME`, `TOKEN_KEY_SECRET`, `PROFILE_SECRET_PREFIX`, `CUSTOM_CLOUD_HOSTS` (optional).
pub fn wire(env: &AwsEnv) -> Result<axum::Router, BoxError> {
    let microsoft = mailbridge_graph::microsoft(mailbridge_graph::extra_ca_from_env()?.as_deref())?;
    let metrics = Arc::new(mailbridge_edge::metrics::EmfMetrics::new("oauth"));
    let mail = env.mail_services(env.settings()?, microsoft, metrics)?;
    Ok(mailbridge_edge::http::oauth_router(Arc::new(
        mail.connect(),
    )))
}
