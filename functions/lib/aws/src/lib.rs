//! AWS adapters for mailbridge: DynamoDB (state, conditional writes), S3 (messages), SQS (jobs),
//! Secrets Manager (client secrets, the token key), EventBridge (import events), and the wiring of a function from its
//! environment. `AWS_ENDPOINT_URL` points the SDK at an emulator for tests.

mod dynamo;
mod env;
mod events;
mod s3;
mod secrets;
mod sqs;

pub use dynamo::DynamoStateStore;
pub use env::{app_from_env, init_logging, job_source_from_env};
pub use events::EventBridgeEvents;
pub use s3::S3BlobStore;
pub use secrets::SecretsManagerStore;
pub use sqs::SqsQueue;

use mailbridge_core::Error;

/// An SDK error as a storage error, with its whole chain of causes.
pub(crate) fn sdk<E: std::error::Error + 'static>(what: &str, e: E) -> Error {
    Error::Storage(format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
    ))
}
