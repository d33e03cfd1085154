//! Secrets from Secrets Manager. What was read is kept a few minutes per container by the core's
//! `Secrets` (`SECRETS_CACHED_FOR`), for AWS and the local runner alike.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use mailbridge_core::ports::SecretStore;
use mailbridge_core::{Error, Result, Secret};

pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<Secret> {
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
        Ok(Secret::new(out.secret_string().unwrap_or_default()))
    }
}
