//! The admin function: API Gateway HTTP API → the admin routes.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    mailbridge_aws::init_logging();
    let app = mailbridge_aws::app_from_env().await?;
    lambda_http::run(mailbridge_app::http::admin_router(app)).await
}
