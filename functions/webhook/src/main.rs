//! The webhook function: API Gateway HTTP API → the webhook routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_aws::init_logging();
    let app = mailbridge_aws::app_from_env().await?;
    lambda_http::run(mailbridge_app::http::webhook_router(app)).await
}
