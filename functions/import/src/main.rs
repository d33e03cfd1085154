//! The import function: SQS batches of jobs → messages in S3, with partial batch failures.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mailbridge_edge::lambda::init_logging();
    let env = mailbridge_aws::AwsEnv::from_process(mailbridge_import::PORTS).await;
    let import = mailbridge_import::wire(&env)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        mailbridge_edge::lambda::handle_sqs(import.worker.clone(), import.redelivery.clone(), event)
    }))
    .await
}
