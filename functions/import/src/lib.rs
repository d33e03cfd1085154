//! The import function's wiring: imports, sweeps and resubscriptions from the queue; messages to
//! S3, events to EventBridge; Retry-After as a visibility change. The same wiring serves the Lambda
//! function and the WebAssembly component.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_core::ports::{Microsoft, Redelivery};
use mailbridge_core::services::worker::Worker;
use std::sync::Arc;

/// What the import function uses of AWS; its IAM policy in `template.yaml` is derived from this.
pub const PORTS: &[Port] = &[
    Port::State,
    Port::MessageStore,
    Port::QueueSend,
    Port::QueueRedelivery,
    Port::QueueTrigger,
    Port::Events,
    Port::SealingKey,
    Port::ProfileSecrets,
    Port::CertificateKeys,
];

/// The import function's services.
pub struct Import {
    pub worker: Arc<Worker>,
    pub redelivery: Arc<dyn Redelivery>,
}

/// The worker over its ports, with Microsoft reached through reqwest. Variables:
/// `PUBLIC_BASE_URL`, `TABLE_NAME`, `QUEUE_URL`, `BUCKET_NAME`, `EVENT_BUS_NAME`,
/// `TOKEN_KEY_SECRET`, `PROFILE_SECRET_PREFIX`, `MAX_MESSAGE_MB` and `CUSTOM_CLOUD_HOSTS`
/// (optional).
#[cfg(feature = "lambda")]
pub fn wire(env: &AwsEnv) -> Result<Import, BoxError> {
    let microsoft = mailbridge_graph::microsoft(mailbridge_graph::extra_ca_from_env()?.as_deref())?;
    wire_with(env, microsoft)
}

/// The worker over its ports, with Microsoft's identity platform and Graph as given (reqwest on
/// Lambda, the host's `wasi:http` in the component).
pub fn wire_with(env: &AwsEnv, microsoft: Microsoft) -> Result<Import, BoxError> {
    let mut settings = env.settings()?;
    if let Some(mb) = env.optional_var("MAX_MESSAGE_MB") {
        let mb = mb
            .parse()
            .map_err(|_| format!("MAX_MESSAGE_MB is {mb:?}, not a number of MB"))?;
        settings = settings.with_max_message_mb(mb)?;
    }
    let metrics = Arc::new(mailbridge_edge::metrics::EmfMetrics::new("import"));
    let mail = env.mail_services(settings, microsoft, metrics)?;
    Ok(Import {
        worker: Arc::new(mail.worker(env.message_store()?)),
        redelivery: env.redelivery()?,
    })
}
