//! Handlers of the non-HTTP events: the SQS batch of the import function and the schedule of the
//! maintenance function. Plain async functions over the services, testable with `LambdaEvent::new`.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mailbridge_core::model::Job;
use mailbridge_core::services::maintenance::{Maintenance, Report};
use mailbridge_core::services::worker::{Done, Worker};
use mailbridge_core::Error;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Concurrent Graph work per mailbox: Graph allows 4 concurrent requests per app and mailbox.
pub const PER_MAILBOX_CONCURRENCY: usize = 4;

/// Whether a failed job should come back (true) or be acknowledged and recorded (false).
pub fn should_retry(e: &Error) -> bool {
    !matches!(
        e,
        Error::Permanent(_) | Error::Invalid(_) | Error::NotFound(_)
    )
}

/// Runs one job body and says whether it is done with (acknowledge) or must come back.
pub async fn run_one(worker: &Worker, body: &str) -> Result<Done, Error> {
    let result = worker.run_body(body).await;
    match &result {
        Ok(done) => tracing::debug!(?done, "job done"),
        Err(e) if should_retry(e) => tracing::warn!(error = %e, "job failed, will be retried"),
        Err(e) => tracing::error!(error = %e, "job failed for good; acknowledged"),
    }
    result
}

fn mailbox_of(body: &str) -> String {
    match serde_json::from_str::<Job>(body) {
        Ok(
            Job::Import { mailbox_id, .. }
            | Job::Sweep { mailbox_id, .. }
            | Job::Resubscribe { mailbox_id, .. },
        ) => mailbox_id,
        Err(_) => String::new(),
    }
}

/// The import function: every record on its own, at most [`PER_MAILBOX_CONCURRENCY`] at a time per
/// mailbox, and only the records that must come back reported in `batchItemFailures`.
pub async fn handle_sqs(
    worker: Arc<Worker>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut gates: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for record in event.payload.records {
        let Some(id) = record.message_id.filter(|m| !m.is_empty()) else {
            tracing::error!("an SQS record without a messageId was skipped");
            continue;
        };
        let body = record.body.unwrap_or_default();
        let gate = gates
            .entry(mailbox_of(&body))
            .or_insert_with(|| Arc::new(Semaphore::new(PER_MAILBOX_CONCURRENCY)))
            .clone();
        let worker = worker.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let retry = matches!(run_one(&worker, &body).await, Err(e) if should_retry(&e));
            (id, retry)
        });
    }
    let mut response = SqsBatchResponse::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((id, true)) => {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Ok((_, false)) => {}
            // A panicked task: its record id is lost with it, so fail the whole batch (SQS retries it all).
            Err(e) => return Err(format!("an import task failed: {e}").into()),
        }
    }
    Ok(response)
}

/// The maintenance function, on its schedule.
pub async fn handle_schedule(
    maintenance: Arc<Maintenance>,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<Report, lambda_runtime::Error> {
    let report = maintenance.run().await?;
    tracing::info!(?report, "maintenance round done");
    Ok(report)
}
