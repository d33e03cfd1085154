//! Certificate keys in AWS KMS: the client assertion is signed by KMS `Sign`
//! (RSASSA-PKCS1-v1_5 SHA-256 over the raw message); the private key never leaves KMS.

use crate::sdk;
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use mailbridge_core::model::KeyRef;
use mailbridge_core::ports::KeySigner;
use mailbridge_core::{Error, Result};

pub struct KmsKeys {
    client: Client,
}

impl KmsKeys {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl KeySigner for KmsKeys {
    async fn sign_rs256(&self, key: &KeyRef, message: &[u8]) -> Result<Vec<u8>> {
        let KeyRef::Kms { key_id } = key else {
            return Err(Error::Config {
                code: "certificate-key".into(),
                reason:
                    "on AWS a certificate's key is a KMS key (an alias under alias/mailbridge/)"
                        .into(),
            });
        };
        let out = self
            .client
            .sign()
            .key_id(key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256)
            .send()
            .await
            .map_err(|e| {
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_not_found_exception() || s.is_disabled_exception());
                if missing {
                    Error::Config {
                        code: "certificate-key".into(),
                        reason: format!("KMS has no usable key {key_id}: {e}"),
                    }
                } else {
                    sdk("KMS Sign", e)
                }
            })?;
        out.signature
            .map(|b| b.into_inner())
            .ok_or_else(|| Error::storage("KMS Sign returned no signature"))
    }
}
