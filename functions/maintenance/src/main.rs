//! The maintenance function: on its EventBridge schedule, one maintenance round.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mailbridge_aws::init_logging();
    let maintenance = mailbridge_aws::app_from_env().await?.maintenance;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        mailbridge_app::lambda::handle_schedule(maintenance.clone(), event)
    }))
    .await
}
