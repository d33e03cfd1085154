//! Jobs on SQS.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use mailbridge_core::model::Job;
use mailbridge_core::ports::JobQueue;
use mailbridge_core::{Error, Result};

pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    /// Sends in batches of ten; any entry SQS did not take fails the call, so that the webhook
    /// answers 5xx and Graph sends the notification again.
    async fn send(&self, jobs: &[Job]) -> Result<()> {
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
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk("SQS SendMessageBatch", e))?;
            if !out.failed().is_empty() {
                return Err(Error::Storage(format!(
                    "SQS refused {} of {} jobs",
                    out.failed().len(),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }
}
