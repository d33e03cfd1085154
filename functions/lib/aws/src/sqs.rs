//! Jobs on SQS.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use mailbridge_core::model::Job;
use mailbridge_core::ports::{Delivery, JobQueue, JobSource, Redelivery};
use mailbridge_core::{Error, Result};
use std::time::Duration;

pub struct SqsQueue {
    client: Client,
    url: String,
    /// How long a receive waits for a job to arrive (SQS long polling); 0 answers at once.
    wait_seconds: i32,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            wait_seconds: 0,
        }
    }

    /// A receive waits up to `seconds` (at most SQS's 20) for a job: an idle poller costs a
    /// request every `seconds`, not a stream of empty answers.
    pub fn long_polling(self, seconds: u8) -> Self {
        Self {
            wait_seconds: i32::from(seconds.min(20)),
            ..self
        }
    }
}

/// Batches of ten sent at once, at most this many at a time: a maintenance round's thousands of
/// jobs take seconds, not minutes.
const BATCHES_IN_FLIGHT: usize = 16;

async fn send_batch(
    client: &Client,
    url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
) -> Result<()> {
    let count = entries.len();
    let out = client
        .send_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| sdk("SQS SendMessageBatch", e))?;
    if !out.failed().is_empty() {
        return Err(Error::Storage(format!(
            "SQS refused {} of {count} jobs",
            out.failed().len(),
        )));
    }
    Ok(())
}

#[async_trait]
impl JobQueue for SqsQueue {
    /// Sends in batches of ten, several at once; any entry SQS did not take fails the call, so
    /// that the webhook answers 5xx and Graph sends the notification again (a job sent twice is
    /// harmless: every job is idempotent).
    async fn send(&self, jobs: &[Job]) -> Result<()> {
        use futures_util::stream::{self, StreamExt as _};
        let mut batches = Vec::with_capacity(jobs.len().div_ceil(10));
        for chunk in jobs.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, job) in chunk.iter().enumerate() {
                let body = serde_json::to_string(job).map_err(Error::storage)?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| Error::storage(format!("SQS entry: {e}")))?,
                );
            }
            batches.push(entries);
        }
        // Driven in this task, whatever runs it (tokio on Lambda, a wasi:http host's executor);
        // every batch is tried, and the first failure is the answer.
        let sent: Vec<Result<()>> = stream::iter(batches)
            .map(|entries| send_batch(&self.client, &self.url, entries))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .collect()
            .await;
        sent.into_iter().collect()
    }
}

/// On AWS the Lambda trigger receives and deletes; the import function uses this side to make a
/// failed job visible again after its Retry-After, and it serves any poller of the queue.
#[async_trait]
impl JobSource for SqsQueue {
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX))
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| sdk("SQS ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Delivery {
                    receipt: m.receipt_handle()?.to_string(),
                    job_body: m.body().unwrap_or_default().to_string(),
                    receive_count: m
                        .attributes()
                        .and_then(|a| {
                            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                        })
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect())
    }

    async fn ack(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sdk("SQS DeleteMessage", e))?;
        Ok(())
    }
}

/// The import function hands a job back with a visibility change (its Retry-After).
#[async_trait]
impl Redelivery for SqsQueue {
    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(delay.as_secs().min(43_200)).unwrap_or(43_200))
            .send()
            .await
            .map_err(|e| sdk("SQS ChangeMessageVisibility", e))?;
        Ok(())
    }
}
