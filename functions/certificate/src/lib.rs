//! A certificate for a KMS key: the key pair stays in KMS (RSA 2048, `SIGN_VERIFY`), the
//! certificate's signature is made by KMS `Sign`. Upload the certificate to the app registration
//! (Certificates & secrets → Certificates) and give it, with the key's alias, in the profile.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The KMS aliases a profile may name (the functions' IAM grants `kms:Sign` through these only).
pub const ALIAS_PREFIX: &str = "alias/mailbridge/";

/// A KMS key as the certificate's signer.
struct KmsKey {
    client: Client,
    alias: String,
    public: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

impl rcgen::PublicKeyData for KmsKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for KmsKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let request = self
            .client
            .sign()
            .key_id(&self.alias)
            .message(Blob::new(msg))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::RsassaPkcs1V15Sha256);
        tokio::task::block_in_place(|| {
            self.runtime
                .block_on(request.send())
                .ok()
                .and_then(|o| o.signature)
        })
        .map(Blob::into_inner)
        .ok_or(rcgen::Error::RemoteKeyError)
    }
}

/// Creates an RSA key in KMS under `alias` (which must be under [`ALIAS_PREFIX`]) unless the alias
/// exists, then a certificate over it for `subject`, valid `days` from now, signed by KMS. Needs a
/// multi-threaded Tokio runtime. Returns the certificate (PEM).
pub async fn certificate(
    client: &Client,
    alias: &str,
    subject: &str,
    days: u32,
) -> Result<String, BoxError> {
    if !alias.starts_with(ALIAS_PREFIX) || alias.len() == ALIAS_PREFIX.len() {
        return Err(
            format!("the alias must be under {ALIAS_PREFIX}, like {ALIAS_PREFIX}contoso").into(),
        );
    }
    let exists = client.describe_key().key_id(alias).send().await.is_ok();
    if !exists {
        let key = client
            .create_key()
            .key_spec(KeySpec::Rsa2048)
            .key_usage(KeyUsageType::SignVerify)
            .description(format!("mailbridge certificate key ({subject})"))
            .send()
            .await?
            .key_metadata
            .ok_or("KMS created no key")?
            .key_id;
        client
            .create_alias()
            .alias_name(alias)
            .target_key_id(key)
            .send()
            .await?;
    }
    let spki = client
        .get_public_key()
        .key_id(alias)
        .send()
        .await?
        .public_key
        .ok_or("KMS gave no public key")?
        .into_inner();
    let key = KmsKey {
        client: client.clone(),
        alias: alias.to_string(),
        public: mailbridge_core::crypto::spki_rsa_public_key(&spki)
            .map_err(|_| "KMS gave a public key that is not a SubjectPublicKeyInfo")?,
        runtime: tokio::runtime::Handle::current(),
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(days) * 86_400)).into();
    Ok(params.self_signed(&key)?.pem())
}
