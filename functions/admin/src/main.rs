//! The admin function: API Gateway HTTP API → the admin routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_edge::lambda::init_logging();
    let env = mailbridge_aws::AwsEnv::from_process(mailbridge_admin::PORTS).await;
    lambda_http::run(mailbridge_admin::wire(&env)?).await
}
