//! A function's wiring from its environment, done once per container.

use crate::{DynamoStateStore, EventBridgeEvents, S3BlobStore, SecretsManagerStore, SqsQueue};
use mailbridge_app::{App, Ports};
use mailbridge_core::ports::{SecretStore, SystemClock};
use mailbridge_core::services::Settings;
use mailbridge_graph::{http_client, EntraIdentity, GraphClient};
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn var(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// JSON logs for CloudWatch; `RUST_LOG` sets the level.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .without_time()
        .init();
}

/// Builds the services over the AWS adapters. Environment: `PUBLIC_BASE_URL`, `TABLE_NAME`,
/// `BUCKET_NAME`, `QUEUE_URL`, `TOKEN_KEY_SECRET`, `EVENT_BUS_NAME`, `MAX_MESSAGE_MB` (optional, default 150), and `ADMIN_TOKEN_SECRET` (admin function only).
pub async fn app_from_env() -> Result<App, BoxError> {
    let config = aws_config::load_from_env().await;
    let mut settings = Settings::new(var("PUBLIC_BASE_URL")?);
    if let Ok(mb) = std::env::var("MAX_MESSAGE_MB") {
        let mb = mb
            .parse()
            .map_err(|_| format!("MAX_MESSAGE_MB is {mb:?}, not a number of MB"))?;
        settings = settings.with_max_message_mb(mb)?;
    }
    settings.token_key_name = var("TOKEN_KEY_SECRET")?;
    let secrets = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&config),
    ));
    let admin_token = match std::env::var("ADMIN_TOKEN_SECRET") {
        Ok(name) => Some(secrets.get(&name).await?),
        Err(_) => None,
    };
    let http = http_client()?;
    let ports = Ports {
        store: Arc::new(DynamoStateStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            var("TABLE_NAME")?,
        )),
        blobs: Arc::new(S3BlobStore::new(
            aws_sdk_s3::Client::new(&config),
            var("BUCKET_NAME")?,
        )),
        queue: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&config),
            var("QUEUE_URL")?,
        )),
        secrets,
        identity: Arc::new(EntraIdentity::new(http.clone())),
        graph: Arc::new(GraphClient::new(http)),
        events: Arc::new(EventBridgeEvents::new(
            aws_sdk_eventbridge::Client::new(&config),
            var("EVENT_BUS_NAME")?,
        )),
        clock: Arc::new(SystemClock),
    };
    Ok(App::new(ports, settings, admin_token))
}

/// The job queue as the import function settles it (visibility changes for Retry-After).
pub async fn job_source_from_env() -> Result<Arc<SqsQueue>, BoxError> {
    let config = aws_config::load_from_env().await;
    Ok(Arc::new(SqsQueue::new(
        aws_sdk_sqs::Client::new(&config),
        var("QUEUE_URL")?,
    )))
}
