//! Handlers of the non-HTTP events: the SQS batch of the import function and the schedule of the
//! maintenance function. Plain async functions over the services, testable with `LambdaEvent::new`.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use mailbridge_core::ports::{Delivery, Redelivery};
use mailbridge_core::services::maintenance::{Maintenance, Report};
use mailbridge_core::services::worker::{run_batch, Settlement, Worker};
use std::collections::HashMap;
use std::sync::Arc;

/// JSON logs for CloudWatch, escaped and bounded ([`crate::logging`]); `RUST_LOG` sets the level.
pub fn init_logging() {
    crate::logging::init(true);
}

/// The import function: every record on its own (see [`run_batch`]); only the records that must
/// come back are reported in `batchItemFailures`, each made visible again after its delay through
/// `redelivery` (a visibility change on SQS). Lambda's trigger deletes the others.
pub async fn handle_sqs(
    worker: Arc<Worker>,
    redelivery: Arc<dyn Redelivery>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut ids = HashMap::new();
    let mut deliveries = Vec::new();
    for record in event.payload.records {
        let (Some(id), Some(receipt)) = (
            record.message_id.filter(|m| !m.is_empty()),
            record.receipt_handle,
        ) else {
            tracing::error!("an SQS record without a messageId or receipt handle was skipped");
            continue;
        };
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        ids.insert(receipt.clone(), id);
        deliveries.push(Delivery {
            receipt,
            job_body: record.body.unwrap_or_default(),
            receive_count,
        });
    }
    let mut response = SqsBatchResponse::default();
    for (receipt, settlement) in run_batch(worker, deliveries).await? {
        if let Settlement::RetryAfter(delay) = settlement {
            if let Err(e) = redelivery.retry_later(&receipt, delay).await {
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
