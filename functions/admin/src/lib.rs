//! The admin function's wiring: the admin API (profiles, mailboxes, approval, folders, tests,
//! shared mailboxes) and the console's pages.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_edge::admin::{AdminApi, AdminToken};
use std::sync::Arc;

/// What the admin function uses of AWS; its IAM policy in `template.yaml` is derived from this.
pub const PORTS: &[Port] = &[
    Port::State,
    Port::QueueSend,
    Port::Events,
    Port::SealingKey,
    Port::ProfileSecrets,
    Port::CertificateKeys,
    Port::AdminToken,
];

/// The admin routes over their ports. Variables: `PUBLIC_BASE_URL`, `TABLE_NAME`, `QUEUE_URL`,
/// `EVENT_BUS_NAME`, `TOKEN_KEY_SECRET`, `PROFILE_SECRET_PREFIX`, `ADMIN_TOKEN_SECRET`, `CUSTOM_CLOUD_HOSTS`
/// and `CONSOLE_ADMINS` (optional: the console's administrators, user object ids).
pub fn wire(env: &AwsEnv) -> Result<axum::Router, BoxError> {
    let microsoft = mailbridge_graph::microsoft(mailbridge_graph::extra_ca_from_env()?.as_deref())?;
    let metrics = Arc::new(mailbridge_edge::metrics::EmfMetrics::new("admin"));
    let mail = env.mail_services(env.settings()?, microsoft, metrics)?;
    let token = AdminToken::from_secret(env.secrets(), env.admin_token_name()?);
    let admin = Arc::new(mail.admin());
    let admins = env
        .optional_var("CONSOLE_ADMINS")
        .map(|v| {
            v.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(mailbridge_edge::admin::admin_router(AdminApi {
        admin: admin.clone(),
        token,
    })
    .merge(mailbridge_edge::console::console_router(
        mailbridge_edge::console::Console {
            admin,
            admins: Arc::new(admins),
        },
    )))
}
