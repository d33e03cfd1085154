//! Secrets from Secrets Manager, cached for a few minutes per container.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use mailbridge_core::ports::SecretStore;
use mailbridge_core::{Error, Result, Secret};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CACHE_FOR: Duration = Duration::from_secs(300);

pub struct SecretsManagerStore {
    client: Client,
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<Secret> {
        if let Some((s, at)) = self.cache.lock().unwrap().get(name) {
            if at.elapsed() < CACHE_FOR {
                return Ok(s.clone());
            }
        }
        let out = match self.client.get_secret_value().secret_id(name).send().await {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(Error::Config {
                    code: "secret-missing".into(),
                    reason: format!("no secret named {name}"),
                })
            }
            Err(e) => return Err(sdk("Secrets Manager GetSecretValue", e)),
        };
        let value = Secret::new(out.secret_string().unwrap_or_default());
        self.cache
            .lock()
            .unwrap()
            .insert(name.to_string(), (value.clone(), Instant::now()));
        Ok(value)
    }
}
