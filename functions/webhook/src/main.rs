//! The webhook function: API Gateway HTTP API → the webhook routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_edge::lambda::init_logging();
    let env = mailbridge_aws::AwsEnv::from_process(mailbridge_webhook::PORTS).await;
    lambda_http::run(mailbridge_webhook::wire(&env)?).await
}
