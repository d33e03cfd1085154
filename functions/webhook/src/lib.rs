//! The webhook function's wiring: it reads subscription records (and nothing else) and sends
//! jobs to the import queue. It never calls Graph, holds no secret and reads no profile.

use mailbridge_aws::{AwsEnv, BoxError, Port};
use mailbridge_core::services::webhook::Webhook;
use std::sync::Arc;

/// What the webhook uses of AWS; its IAM policy in `template.yaml` is derived from this.
pub const PORTS: &[Port] = &[Port::SubscriptionLookup, Port::QueueSend];

/// The webhook's routes over its ports. Variables: `TABLE_NAME`, `QUEUE_URL`.
pub fn wire(env: &AwsEnv) -> Result<axum::Router, BoxError> {
    let webhook = Webhook::new(
        env.subscription_lookup()?,
        env.queue()?,
        Arc::new(mailbridge_core::ports::SystemClock),
    );
    Ok(mailbridge_edge::http::webhook_router(Arc::new(webhook)))
}
