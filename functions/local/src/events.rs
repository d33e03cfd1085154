//! Events locally: one JSON line each in `events.jsonl` (imports) or `alerts.jsonl` (alerts
//! raised and cleared), a log line, and a POST to the hook when one is given, with an
//! `X-Mailbridge-Event` header that says which (`MessageImported`, `MailboxAlert`).

use async_trait::async_trait;
use mailbridge_core::model::{AlertEvent, MessageImported};
use mailbridge_core::ports::EventSink;
use mailbridge_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One JSON-lines file, appended to.
struct Lines {
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

impl Lines {
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Self {
            file: Mutex::new(file),
            path,
        })
    }

    fn append<T: Serialize>(&self, value: &T) -> Result<()> {
        let mut line = serde_json::to_vec(value).map_err(Error::storage)?;
        line.push(b'\n');
        self.file
            .lock()
            .unwrap()
            .write_all(&line)
            .map_err(Error::storage)
    }

    fn read<T: DeserializeOwned>(&self) -> std::io::Result<Vec<T>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

pub struct LocalEvents {
    imports: Lines,
    alerts: Lines,
    hook: Option<(reqwest::Client, String)>,
    /// The job queue, whose parked jobs come back when an alert clears.
    queue: Option<std::sync::Arc<mailbridge_embedded::SqliteDb>>,
}

impl LocalEvents {
    /// The event files in `dir`, and the hook.
    pub fn open(dir: &Path, hook: Option<(reqwest::Client, String)>) -> std::io::Result<Self> {
        Ok(Self {
            imports: Lines::open(dir.join("events.jsonl"))?,
            alerts: Lines::open(dir.join("alerts.jsonl"))?,
            hook,
            queue: None,
        })
    }

    /// When an alert clears (a person signed in again, a secret was replaced, a licence given),
    /// the jobs parked on `queue` for a person come back at once instead of at their hourly try.
    pub fn waking(mut self, queue: std::sync::Arc<mailbridge_embedded::SqliteDb>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Every import event written so far, oldest first.
    pub fn read(&self) -> std::io::Result<Vec<MessageImported>> {
        self.imports.read()
    }

    /// Every alert event written so far, oldest first.
    pub fn read_alerts(&self) -> std::io::Result<Vec<AlertEvent>> {
        self.alerts.read()
    }

    /// POSTs the event to the hook, if there is one: a refusal is a failure to retry.
    async fn post<T: Serialize + Sync>(&self, kind: &str, event: &T) -> Result<()> {
        let Some((http, url)) = &self.hook else {
            return Ok(());
        };
        let resp = http
            .post(url)
            .header("x-mailbridge-event", kind)
            .json(event)
            .send()
            .await
            .map_err(|e| Error::retry(format!("event hook {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::retry(format!(
                "event hook {url} answered {}",
                resp.status()
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl EventSink for LocalEvents {
    async fn publish(&self, event: &MessageImported) -> Result<()> {
        self.post("MessageImported", event).await?;
        self.imports.append(event)?;
        tracing::info!(
            event = %event.event_id,
            eml = %event.eml_location,
            metadata = %event.metadata_location,
            "import event"
        );
        Ok(())
    }

    async fn alert(&self, event: &AlertEvent) -> Result<()> {
        self.post("MailboxAlert", event).await?;
        self.alerts.append(event)?;
        tracing::warn!(
            kind = ?event.kind,
            state = %event.state,
            mailbox = event.mailbox_address.as_deref().unwrap_or("-"),
            profile = %event.profile_id,
            message = %event.message,
            action = event.action_url.as_deref().unwrap_or("-"),
            "alert"
        );
        let parks = event.kind.holds_jobs();
        if let (Some(queue), "cleared", true) = (&self.queue, event.state.as_str(), parks) {
            // Jobs due within five minutes are backing off from a passing failure, not parked.
            let woken = queue.wake_parked(
                event.mailbox_id.as_deref(),
                std::time::Duration::from_secs(300),
            )?;
            if woken > 0 {
                tracing::info!(woken, "parked jobs back in the queue");
            }
        }
        Ok(())
    }
}
