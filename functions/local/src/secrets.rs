//! The secrets of a configured deployment: client secrets read where the configuration points (an
//! environment variable or a file, read again whenever the core's 5-minute cache expires, so that a
//! rotated secret needs no restart), everything else (the token-sealing key) in the secrets file,
//! sealed with a key kept outside the data directory.

use crate::config::SecretSource;
use async_trait::async_trait;
use mailbridge_core::ports::SecretStore;
use mailbridge_core::{Error, Result, Secret};
use mailbridge_embedded::FileSecrets;
use std::collections::HashMap;
use std::path::Path;

/// The secrets file's folder inside the data directory.
const SECRETS: &str = "secrets";

pub struct LocalSecrets {
    referenced: HashMap<String, SecretSource>,
    sealed: FileSecrets,
}

impl LocalSecrets {
    pub fn new(referenced: HashMap<String, SecretSource>, sealed: FileSecrets) -> Self {
        Self { referenced, sealed }
    }

    /// The secrets file of the data directory at `data`, sealed with `key`.
    pub fn sealed_in(data: &Path, key: mailbridge_core::crypto::SealingKey) -> Result<FileSecrets> {
        FileSecrets::open_with_key(data.join(SECRETS), key)
    }
}

/// Whether the data directory at `data` holds anything sealed.
pub fn has_sealed_data(data: &Path) -> bool {
    FileSecrets::exist_in(data.join(SECRETS))
}

#[async_trait]
impl SecretStore for LocalSecrets {
    async fn get(&self, name: &str) -> Result<Secret> {
        let Some(source) = self.referenced.get(name) else {
            return self.sealed.get(name).await;
        };
        match source.read() {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(Error::Config {
                code: "secret-missing".into(),
                reason: format!("the client secret {name} is not set where the configuration says"),
            }),
            Err(e) => Err(Error::Config {
                code: "secret-unreadable".into(),
                reason: format!("the client secret {name}: {e}"),
            }),
        }
    }
}
