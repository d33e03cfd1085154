//! RS256 JSON Web Tokens: the simulator's signing key, its JWKS, signing and verification.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// The key that signs every token the simulator issues (one per run, like a daily rotation),
/// with a self-signed certificate for it, as Entra publishes (`x5c`, `x5t`).
pub struct SigningKey {
    pair: KeyPair,
    kid: String,
    cert_der: Vec<u8>,
    rng: SystemRandom,
}

impl SigningKey {
    pub fn generate() -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        let pkcs8 = pair.as_der().expect("PKCS#8 encoding");
        let cert_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .expect("certificate key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "accounts.accesscontrol.windows.net",
        );
        let cert_der = params
            .self_signed(&cert_key)
            .expect("self-signed certificate")
            .der()
            .to_vec();
        // Entra's key id is the certificate's SHA-1 thumbprint.
        let kid = URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &cert_der)
                .as_ref(),
        );
        Self {
            pair,
            kid,
            cert_der,
            rng: SystemRandom::new(),
        }
    }

    /// The JWKS document, shaped as Entra's `discovery/v2.0/keys`.
    pub fn jwks(&self, issuer: &str) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": URL_SAFE_NO_PAD.encode(trim_zeros(&c.n)),
            "e": URL_SAFE_NO_PAD.encode(trim_zeros(&c.e)),
            "x5c": [STANDARD.encode(&self.cert_der)],
            "issuer": issuer,
        }]})
    }

    /// Signs a claims object as a compact JWS with RS256.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signature");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The claims of a token this key signed, or None when the signature or shape is wrong.
    pub fn verify<C: DeserializeOwned>(&self, token: &str) -> Option<C> {
        let (input, sig) = token.rsplit_once('.')?;
        let (header, claims) = input.split_once('.')?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")? != "RS256" || header.get("kid")? != self.kid.as_str() {
            return None;
        }
        let key = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.pair.public_key().as_ref(),
        );
        key.verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig).ok()?)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

fn trim_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// The claims of a token, read without checking its signature (for tests and diagnostics).
pub fn peek(token: &str) -> Option<Value> {
    let claims = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let k = SigningKey::generate();
        let t = k.sign(&json!({"tid": "t1", "exp": 1}));
        let claims: Value = k.verify(&t).expect("valid");
        assert_eq!(claims["tid"], "t1");
        // A flipped claim breaks the signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"tid":"t2","exp":1}"#);
        parts[1] = &forged;
        assert!(k.verify::<Value>(&parts.join(".")).is_none());
        assert_eq!(peek(&t).unwrap()["tid"], "t1");
        let jwks = k.jwks("iss");
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
    }
}
