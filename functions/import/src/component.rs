//! The import worker as a WebAssembly component: a `wasi:cli` command that polls the import queue
//! itself (Lambda's SQS trigger does that for the function) and runs the same worker over the same
//! ports: Entra ID and Graph through the host's `wasi:http` outgoing handler
//! ([`mailbridge_graph::WasiHttp`]), the AWS SDK through `aws-smithy-wasm`. A message's `$value`
//! streams from Graph into S3 piece by piece (a multipart upload past 8 MB), as on Lambda.
//!
//! Variables, as the host passes them: those of the import function (`PUBLIC_BASE_URL`,
//! `TABLE_NAME`, `QUEUE_URL`, `BUCKET_NAME`, `EVENT_BUS_NAME`, `TOKEN_KEY_SECRET`,
//! `PROFILE_SECRET_PREFIX`, `MAX_MESSAGE_MB`, `CUSTOM_CLOUD_HOSTS`), `AWS_REGION`, the
//! credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! `AWS_ENDPOINT_URL` (an emulator) and `RUST_LOG`.

use mailbridge_aws::{AwsEnv, BoxError};
use mailbridge_core::services::worker::poll_once;
use std::sync::Arc;
use std::time::Duration;

/// How long a received job stays hidden from other pollers: longer than a job runs (the Lambda
/// function's 900 s timeout), so that a job still at work is not received twice; a job whose
/// worker died comes back after it.
const VISIBILITY: Duration = Duration::from_secs(900);

#[wstd::main]
async fn main() -> Result<(), BoxError> {
    mailbridge_edge::logging::init(false);
    let env = AwsEnv::from_wasi(mailbridge_import::PORTS)?;
    let http = Arc::new(mailbridge_graph::WasiHttp::default());
    let import = mailbridge_import::wire_with(&env, mailbridge_graph::microsoft_through(http))?;
    let source = env.job_source()?;
    tracing::info!("the import component polls its queue");
    loop {
        if let Err(e) = poll_once(import.worker.clone(), source.clone(), VISIBILITY).await {
            // SQS or its credentials out of reach: the jobs wait in the queue meanwhile.
            tracing::warn!(error = %e, "the queue could not be polled; trying again in 5 s");
            mailbridge_core::rt::sleep(Duration::from_secs(5)).await;
        }
    }
}
