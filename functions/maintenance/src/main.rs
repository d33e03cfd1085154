//! The maintenance function: on its EventBridge schedule, one maintenance round.

use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mailbridge_edge::lambda::init_logging();
    let env = mailbridge_aws::AwsEnv::from_process(mailbridge_maintenance::PORTS).await;
    let maintenance = mailbridge_maintenance::wire(&env)?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        mailbridge_edge::lambda::handle_schedule(maintenance.clone(), event)
    }))
    .await
}
