//! AWS adapters for mailbridge: DynamoDB (state, conditional writes), S3 (messages), SQS (jobs),
//! Secrets Manager (client secrets, the token key), EventBridge (import and alert events), KMS
//! (certificate keys). Each client is
//! behind a feature of its own, so that a function links only what it uses. [`AwsEnv`] builds
//! them from a function's environment, one [`Port`] at a time, and [`Port::grant`] says which IAM
//! actions each needs. `AWS_ENDPOINT_URL` points the SDK at an emulator for tests.

#[cfg(feature = "dynamodb")]
mod dynamo;
mod env;
#[cfg(feature = "eventbridge")]
mod events;
mod iam;
#[cfg(feature = "kms")]
mod kms;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "secretsmanager")]
mod secrets;
#[cfg(feature = "sqs")]
mod sqs;

#[cfg(feature = "dynamodb")]
pub use dynamo::DynamoStateStore;
pub use env::{AwsEnv, BoxError};
#[cfg(feature = "eventbridge")]
pub use events::EventBridgeEvents;
pub use iam::{Grant, Port};
#[cfg(feature = "kms")]
pub use kms::KmsKeys;
#[cfg(feature = "s3")]
pub use s3::S3BlobStore;
#[cfg(feature = "secretsmanager")]
pub use secrets::SecretsManagerStore;
#[cfg(feature = "sqs")]
pub use sqs::SqsQueue;

/// An SDK error as a storage error, with its whole chain of causes.
#[allow(dead_code)] // used by whichever clients are enabled
pub(crate) fn sdk<E: std::error::Error + 'static>(what: &str, e: E) -> mailbridge_core::Error {
    mailbridge_core::Error::Storage(format!(
        "{what}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(e)
    ))
}
