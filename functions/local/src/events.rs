//! Import events locally: one JSON line each in `events.jsonl`, a log line, and a POST to the
//! consuming application's hook when one is given.

use async_trait::async_trait;
use mailbridge_core::model::MessageImported;
use mailbridge_core::ports::EventSink;
use mailbridge_core::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct LocalEvents {
    log: Mutex<std::fs::File>,
    path: PathBuf,
    hook: Option<(reqwest::Client, String)>,
}

impl LocalEvents {
    pub fn open(path: &Path, hook: Option<(reqwest::Client, String)>) -> std::io::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            log: Mutex::new(log),
            path: path.to_path_buf(),
            hook,
        })
    }

    /// Every event written so far, oldest first.
    pub fn read(&self) -> std::io::Result<Vec<MessageImported>> {
        let text = std::fs::read_to_string(&self.path)?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[async_trait]
impl EventSink for LocalEvents {
    async fn publish(&self, event: &MessageImported) -> Result<()> {
        if let Some((http, url)) = &self.hook {
            let resp = http
                .post(url)
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
        }
        let mut line = serde_json::to_vec(event).map_err(Error::storage)?;
        line.push(b'\n');
        self.log
            .lock()
            .unwrap()
            .write_all(&line)
            .map_err(Error::storage)?;
        tracing::info!(
            event = %event.event_id,
            eml = %event.eml_location,
            metadata = %event.metadata_location,
            "import event"
        );
        Ok(())
    }
}
