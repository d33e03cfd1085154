//! Certificate keys in the deployment's secret store (the one-server runner's sealed store): a
//! PEM RSA private key, read when a client assertion is signed, never written anywhere else.

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mailbridge_core::model::KeyRef;
use mailbridge_core::ports::{KeySigner, SecretStore};
use mailbridge_core::{Error, Result};
use std::sync::Arc;

pub struct SecretStoreKeys {
    store: Arc<dyn SecretStore>,
}

impl SecretStoreKeys {
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self { store }
    }
}

fn bad_key(name: &str, why: &str) -> Error {
    Error::Config {
        code: "certificate-key".into(),
        reason: format!("the private key under {name} {why}: store the certificate's RSA key as PEM (PKCS#8 or PKCS#1)"),
    }
}

/// An RSA key pair from PEM: `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1).
fn key_pair(name: &str, pem: &str) -> Result<RsaKeyPair> {
    for (label, pkcs8) in [("PRIVATE KEY", true), ("RSA PRIVATE KEY", false)] {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(body) = pem
            .split(begin.as_str())
            .nth(1)
            .and_then(|rest| rest.split(end.as_str()).next())
        else {
            continue;
        };
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| bad_key(name, "is not base64 PEM"))?;
        let pair = if pkcs8 {
            RsaKeyPair::from_pkcs8(&der)
        } else {
            RsaKeyPair::from_der(&der)
        };
        return pair.map_err(|_| bad_key(name, "is not an RSA private key"));
    }
    Err(bad_key(name, "is not a PEM private key"))
}

#[async_trait]
impl KeySigner for SecretStoreKeys {
    async fn sign_rs256(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>> {
        let KeyRef::SecretStore { name } = key else {
            return Err(Error::Config {
                code: "certificate-key".into(),
                reason: "this deployment keeps certificate keys in its secret store, not in KMS"
                    .into(),
            });
        };
        let pem = self.store.get(name).await?;
        let pair = key_pair(name, pem.expose())?;
        let mut signature = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut signature,
        )
        .map_err(|_| Error::storage("RSA signing failed"))?;
        Ok(signature)
    }
}
