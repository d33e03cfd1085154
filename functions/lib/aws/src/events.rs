//! Import and alert events on an EventBridge bus.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use mailbridge_core::model::{AlertEvent, MessageImported};
use mailbridge_core::ports::EventSink;
use mailbridge_core::{Error, Result};

/// The event's `source` and `detail-type`, for the consuming application's rules to match.
pub const SOURCE: &str = "mailbridge";
pub const DETAIL_TYPE: &str = "MessageImported";
pub const ALERT_DETAIL_TYPE: &str = "MailboxAlert";

pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

impl EventBridgeEvents {
    /// Puts one event on the bus; PutEvents answers 200 with the entries it could not take
    /// counted apart, which is a failure here.
    async fn put(&self, entry: PutEventsRequestEntry) -> Result<()> {
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| sdk("EventBridge PutEvents", e))?;
        if out.failed_entry_count > 0 {
            let why = out
                .entries
                .unwrap_or_default()
                .into_iter()
                .find_map(|e| e.error_message)
                .unwrap_or_default();
            return Err(Error::storage(format!(
                "EventBridge refused the event: {why}"
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl EventSink for EventBridgeEvents {
    async fn publish(&self, event: &MessageImported) -> Result<()> {
        let detail = serde_json::to_string(event).map_err(Error::storage)?;
        self.put(
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(SOURCE)
                .detail_type(DETAIL_TYPE)
                .resources(&event.eml_location)
                .detail(detail)
                .build(),
        )
        .await
    }

    async fn alert(&self, event: &AlertEvent) -> Result<()> {
        let detail = serde_json::to_string(event).map_err(Error::storage)?;
        self.put(
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(SOURCE)
                .detail_type(ALERT_DETAIL_TYPE)
                .detail(detail)
                .build(),
        )
        .await
    }
}
