//! The oauth function: API Gateway HTTP API → the oauth routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_aws::init_logging();
    let app = mailbridge_aws::app_from_env().await?;
    lambda_http::run(mailbridge_app::http::oauth_router(app)).await
}
