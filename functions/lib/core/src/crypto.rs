//! Randomness, hashing and sealing (AES-256-GCM) of the secrets mailbridge must keep.

use crate::say::{CertificateFault, Say};
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

/// The DER of a PEM certificate (`-----BEGIN CERTIFICATE-----`).
pub fn certificate_der(pem: &str) -> Result<Vec<u8>> {
    let bad = |why| Error::invalid(Say::NotACertificate { why });
    let body = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .ok_or_else(|| bad(CertificateFault::NoBlock))?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| bad(CertificateFault::NotBase64))?;
    certificate_not_after(&der).map_err(|_| bad(CertificateFault::NotX509))?;
    Ok(der)
}

/// One DER element: its tag, its content, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSA public key (PKCS#1 `RSAPublicKey`) inside a DER SubjectPublicKeyInfo: the BIT STRING
/// after the algorithm identifier, without its unused-bits byte.
pub fn spki_rsa_public_key(spki: &[u8]) -> Result<Vec<u8>> {
    let bad = || Error::Invalid("not a SubjectPublicKeyInfo".into());
    let (_, body, _) = der_element(spki).ok_or_else(bad)?;
    let (_, _, rest) = der_element(body).ok_or_else(bad)?;
    match der_element(rest) {
        Some((0x03, bits, _)) if !bits.is_empty() => Ok(bits[1..].to_vec()),
        _ => Err(bad()),
    }
}

/// A certificate's `notAfter` (X.509: tbsCertificate → validity → notAfter).
pub fn certificate_not_after(der: &[u8]) -> Result<chrono::DateTime<chrono::Utc>> {
    let fail = || Error::Invalid("not an X.509 certificate".into());
    let (0x30, cert, _) = der_element(der).ok_or_else(fail)? else {
        return Err(fail());
    };
    let (0x30, tbs, _) = der_element(cert).ok_or_else(fail)? else {
        return Err(fail());
    };
    let mut rest = tbs;
    // [0] version (optional), serialNumber, signature, issuer, then validity.
    let (tag, _, after) = der_element(rest).ok_or_else(fail)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..3 {
        rest = der_element(rest).ok_or_else(fail)?.2;
    }
    let (0x30, validity, _) = der_element(rest).ok_or_else(fail)? else {
        return Err(fail());
    };
    let (_, _, after_not_before) = der_element(validity).ok_or_else(fail)?;
    let (tag, time, _) = der_element(after_not_before).ok_or_else(fail)?;
    let text = std::str::from_utf8(time).map_err(|_| fail())?;
    let full = match tag {
        // UTCTime: YYMMDDHHMMSSZ, years 1950–2049.
        0x17 if text.len() == 13 => {
            let yy: u32 = text[..2].parse().map_err(|_| fail())?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        // GeneralizedTime: YYYYMMDDHHMMSSZ.
        0x18 if text.len() == 15 => text.to_string(),
        _ => return Err(fail()),
    };
    chrono::NaiveDateTime::parse_from_str(full.trim_end_matches('Z'), "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|_| fail())
}

/// The signing input of an RS256 client assertion for `client_id` at `token_endpoint` (RFC 7523,
/// as Entra ID takes it: `x5t` and `x5t#S256` name the certificate), to be signed with the
/// certificate's key and finished with [`finish_assertion`].
pub fn assertion_input(
    certificate_der: &[u8],
    client_id: &str,
    token_endpoint: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let header = serde_json::json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(certificate_der)),
        "x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der)),
    });
    let claims = serde_json::json!({
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now.timestamp(),
        "iat": now.timestamp(),
        "exp": (now + chrono::Duration::minutes(10)).timestamp(),
    });
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The compact JWT: the signing input and its signature.
pub fn finish_assertion(input: &str, signature: &[u8]) -> Secret {
    Secret::new(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
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
