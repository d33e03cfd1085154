//! The oauth function: API Gateway HTTP API → the oauth routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_edge::lambda::init_logging();
    let env = mailbridge_aws::AwsEnv::from_process(mailbridge_oauth::PORTS).await;
    lambda_http::run(mailbridge_oauth::wire(&env)?).await
}
