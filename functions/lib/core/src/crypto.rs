//! Randomness, hashing and sealing (AES-256-GCM) of the secrets mailbridge must keep.

use crate::secret::Secret;
use crate::{Error, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `n` random bytes from the OS generator, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A PKCE pair (RFC 7636, S256): the verifier stays server-side, the challenge goes to authorize.
pub fn pkce_pair() -> (Secret, String) {
    let verifier = random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (Secret::new(verifier), challenge)
}

/// A sealed value as stored: AES-256-GCM with a random nonce, bound to its context (e.g. mailbox id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

/// The key that seals tokens at rest (32 bytes, base64 in the secret store).
#[derive(Clone)]
pub struct SealingKey(Aes256Gcm);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

impl SealingKey {
    /// The key from its secret: 32 bytes in base64, or a random string of at least 40 characters
    /// (what Secrets Manager generates), hashed to 32 bytes.
    pub fn from_base64(secret: &Secret) -> Result<Self> {
        let text = secret.expose().trim();
        let raw = match STANDARD.decode(text) {
            Ok(raw) if raw.len() == 32 => raw,
            _ if text.len() >= 40 => Sha256::digest(text.as_bytes()).to_vec(),
            _ => {
                return Err(Error::Config {
                    code: "token-key".into(),
                    reason: "the token key must be 32 bytes in base64 or a random string of 40 characters or more".into(),
                })
            }
        };
        Ok(Self(Aes256Gcm::new_from_slice(&raw).expect("32-byte key")))
    }

    /// A new random key, base64 (the local runner creates one for a new data directory).
    pub fn generate_base64() -> Secret {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Secret::new(STANDARD.encode(k))
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Sealed> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Permanent("sealing failed".into()))?;
        Ok(Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ct),
        })
    }

    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>> {
        let bad =
            || Error::Storage("a sealed value cannot be opened (wrong key or tampered)".into());
        let nonce = STANDARD.decode(&sealed.nonce).map_err(|_| bad())?;
        let ct = STANDARD.decode(&sealed.ciphertext).map_err(|_| bad())?;
        if nonce.len() != 12 {
            return Err(bad());
        }
        self.0
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let key = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        let sealed = key.seal(b"refresh-token", "mbx_1").unwrap();
        assert!(!sealed.ciphertext.contains("refresh"));
        assert_eq!(key.open(&sealed, "mbx_1").unwrap(), b"refresh-token");
        assert!(
            key.open(&sealed, "mbx_2").is_err(),
            "another mailbox's context must not open it"
        );
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        assert!(other.open(&sealed, "mbx_1").is_err());
    }

    #[test]
    fn pkce_challenge_is_s256_of_verifier() {
        let (v, c) = pkce_pair();
        assert_eq!(v.expose().len(), 43);
        assert_eq!(
            c,
            URL_SAFE_NO_PAD.encode(Sha256::digest(v.expose().as_bytes()))
        );
        // RFC 7636 appendix B test vector.
        let c = URL_SAFE_NO_PAD.encode(Sha256::digest(
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        ));
        assert_eq!(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn key_must_be_32_bytes() {
        assert!(SealingKey::from_base64(&Secret::new(STANDARD.encode([0u8; 16]))).is_err());
        assert!(SealingKey::from_base64(&Secret::new("not base64!")).is_err());
        assert!(SealingKey::from_base64(&Secret::new("x".repeat(48))).is_ok());
    }
}
