//! The maintenance function's wiring: token refresh, subscription renewal, sweep jobs, alerts.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_core::services::maintenance::Maintenance;
use std::sync::Arc;

/// What the maintenance function uses of AWS; its IAM policy in `template.yaml` is derived from
/// this.
pub const PORTS: &[Port] = &[
    Port::State,
    Port::QueueSend,
    Port::SealingKey,
    Port::ProfileSecrets,
];

/// The maintenance round over its ports. Variables: `PUBLIC_BASE_URL`, `TABLE_NAME`,
/// `QUEUE_URL`, `TOKEN_KEY_SECRET`, `PROFILE_SECRET_PREFIX`, `CUSTOM_CLOUD_HOSTS` (optional).
pub fn wire(env: &AwsEnv) -> Result<Arc<Maintenance>, BoxError> {
    let microsoft = mailbridge_graph::microsoft(mailbridge_graph::extra_ca_from_env()?.as_deref())?;
    let metrics = Arc::new(mailbridge_edge::metrics::EmfMetrics::new("maintenance"));
    let mail = env.mail_services(env.settings()?, microsoft, metrics)?;
    Ok(Arc::new(mail.maintenance()))
}
