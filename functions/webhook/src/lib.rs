//! The webhook function's wiring: it reads subscription records (and nothing else) and sends
//! jobs to the import queue. It never calls Graph, holds no secret and reads no profile. The same
//! wiring serves the Lambda function and the WebAssembly component.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_core::services::webhook::Webhook;
use std::sync::Arc;

/// What the webhook uses of AWS; its IAM policy in `template.yaml` is derived from this, and so
/// are the permissions the README asks for the component's credentials.
pub const PORTS: &[Port] = &[Port::SubscriptionLookup, Port::QueueSend];

/// The webhook over its ports. Variables: `TABLE_NAME`, `QUEUE_URL`.
pub fn webhook(env: &AwsEnv) -> Result<Webhook, BoxError> {
    Ok(Webhook::new(
        env.subscription_lookup()?,
        env.queue()?,
        Arc::new(mailbridge_core::ports::SystemClock),
    ))
}

/// The webhook's routes, for Lambda and the local runner.
#[cfg(feature = "lambda")]
pub fn wire(env: &AwsEnv) -> Result<axum::Router, BoxError> {
    Ok(mailbridge_edge::http::webhook_router(Arc::new(webhook(
        env,
    )?)))
}
