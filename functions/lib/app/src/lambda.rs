//! Handlers of the non-HTTP events: the SQS batch of the import function and the schedule of the
//! maintenance function. Plain async functions over the services, testable with `LambdaEvent::new`.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mailbridge_core::ports::JobSource;
use mailbridge_core::services::maintenance::{Maintenance, Report};
use mailbridge_core::services::worker::{Done, Worker};
use mailbridge_core::Error;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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

/// Longest delay SQS accepts for a visibility change (12 hours).
const MAX_DELAY: Duration = Duration::from_secs(43_200);

/// When a job that failed should come back: when Graph said (`Retry-After` on 429 or 503), else
/// after an exponential backoff on the number of receives (10 s, 20 s, 40 s… up to 15 min).
pub fn retry_delay(e: &Error, receive_count: u32) -> Duration {
    e.retry_after()
        .unwrap_or_else(|| {
            let n = receive_count.clamp(1, 8) - 1;
            Duration::from_secs(10 << n).min(Duration::from_secs(900))
        })
        .min(MAX_DELAY)
}

/// What became of one job of a batch: done with, or to come back after a delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    RetryAfter(Duration),
}

/// Runs a batch of jobs, each on its own and all at once; the worker's [`Pace`] holds each
/// mailbox to 4 at a time and under Graph's rate. `jobs` are (receipt, body, receive count); the
/// answer gives each receipt's outcome. A job never sleeps for its Retry-After: it is handed back
/// with it.
///
/// [`Pace`]: mailbridge_core::services::pace::Pace
pub async fn run_batch(
    worker: Arc<Worker>,
    jobs: Vec<(String, String, u32)>,
) -> Result<Vec<(String, Outcome)>, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for (receipt, body, receives) in jobs {
        let worker = worker.clone();
        tasks.spawn(async move {
            let outcome = match run_one(&worker, &body).await {
                Err(e) if should_retry(&e) => Outcome::RetryAfter(retry_delay(&e, receives)),
                _ => Outcome::Done,
            };
            (receipt, outcome)
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        // A panicked task: its receipt is lost with it, so the whole batch must come back.
        out.push(joined.map_err(|e| format!("an import task failed: {e}"))?);
    }
    Ok(out)
}

/// The import function: every record on its own (see [`run_batch`]); only the records that must
/// come back are reported in `batchItemFailures`, each made visible again after its delay through
/// `source` (a visibility change on SQS).
pub async fn handle_sqs(
    worker: Arc<Worker>,
    source: Arc<dyn JobSource>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut ids = HashMap::new();
    let mut jobs = Vec::new();
    for record in event.payload.records {
        let (Some(id), Some(receipt)) = (
            record.message_id.filter(|m| !m.is_empty()),
            record.receipt_handle,
        ) else {
            tracing::error!("an SQS record without a messageId or receipt handle was skipped");
            continue;
        };
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        ids.insert(receipt.clone(), id);
        jobs.push((receipt, record.body.unwrap_or_default(), receives));
    }
    let mut response = SqsBatchResponse::default();
    for (receipt, outcome) in run_batch(worker, jobs).await? {
        if let Outcome::RetryAfter(delay) = outcome {
            if let Err(e) = source.retry_later(&receipt, delay).await {
                tracing::warn!(error = %e, "visibility change failed; the job comes back after the queue's timeout");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = ids.remove(&receipt).unwrap_or_default();
            response.batch_item_failures.push(failure);
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
