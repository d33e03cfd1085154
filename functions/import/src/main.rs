//! The import function: SQS batches of jobs → messages in S3, with partial batch failures.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mailbridge_aws::init_logging();
    let worker = mailbridge_aws::app_from_env().await?.worker;
    let source: std::sync::Arc<dyn mailbridge_core::ports::JobSource> =
        mailbridge_aws::job_source_from_env().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        mailbridge_app::lambda::handle_sqs(worker.clone(), source.clone(), event)
    }))
    .await
}
