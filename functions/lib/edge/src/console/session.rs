//! The console's session: a signed cookie (HMAC-SHA256 with a key derived from the token-sealing
//! key, so the oauth function that signs a person in and the admin function that serves the
//! console agree without a new secret), `HttpOnly`, `SameSite=Lax`, `Secure` outside loopback,
//! expiring after eight hours. It carries who the person is and their form token (CSRF); whether
//! they are an administrator is decided on every request, from the deployment's list (or the
//! app role the person held when they signed in).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use mailbridge_core::services::tokens::Tokens;
use mailbridge_core::Result;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "mb_session";
/// How long a session lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(8);

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The person's user object id in Entra ID.
    pub oid: String,
    pub name: String,
    /// The app roles the person held in the app registration when they signed in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// When the session ends (Unix seconds).
    pub exp: i64,
    /// The token every form of this session carries.
    pub csrf: String,
}

/// The key sessions are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Derived from the token-sealing key (never the key itself).
    pub async fn of(tokens: &Tokens) -> Result<SessionKey> {
        let sealing = tokens.secrets().sealing_key().await?;
        let mut h = Sha256::new();
        h.update(b"mailbridge console session v1\n");
        h.update(sealing.expose().as_bytes());
        Ok(SessionKey(h.finalize().into()))
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    /// A new session for a person, as a cookie value.
    pub fn sign(
        &self,
        oid: &str,
        name: &str,
        roles: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let s = Session {
            oid: oid.into(),
            name: name.chars().take(120).collect(),
            roles: roles.iter().take(32).cloned().collect(),
            exp: (now + LIFETIME).timestamp(),
            csrf: mailbridge_core::crypto::random_token(24),
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&s).expect("a session serialises"));
        let mac = URL_SAFE_NO_PAD.encode(self.mac(body.as_bytes()));
        format!("{body}.{mac}")
    }

    /// The session a cookie value carries, if its signature holds and it has not ended.
    pub fn verify(&self, value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Session> {
        let (body, mac) = value.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        m.update(body.as_bytes());
        m.verify_slice(&mac).ok()?;
        let s: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (s.exp > now.timestamp()).then_some(s)
    }
}

/// Whether the console's cookies must be `Secure`: the deployment is reached over https.
pub fn secure(settings: &mailbridge_core::services::Settings) -> bool {
    settings.public_base_url.starts_with("https://")
}

/// The `Set-Cookie` value that stores a session (or, with an empty value, ends it).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let max_age = if value.is_empty() {
        0
    } else {
        LIFETIME.num_seconds()
    };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A cookie's value from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_only_with_its_signature_and_until_it_ends() {
        let key = SessionKey([7; 32]);
        let now = chrono::Utc::now();
        let v = key.sign("oid-1", "Adèle", &[], now);
        let s = key.verify(&v, now).unwrap();
        assert_eq!((s.oid.as_str(), s.name.as_str()), ("oid-1", "Adèle"));
        assert!(key.verify(&v, now + LIFETIME).is_none(), "ended");
        let other = SessionKey([8; 32]);
        assert!(other.verify(&v, now).is_none(), "another key");
        let (body, mac) = v.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap())
                .unwrap()
                .replace("oid-1", "oid-2"),
        );
        assert!(
            key.verify(&format!("{forged}.{mac}"), now).is_none(),
            "changed"
        );
        assert!(set_cookie(&v, true).contains("HttpOnly; SameSite=Lax; Max-Age=28800; Secure"));
        assert!(!set_cookie(&v, false).contains("Secure"));
    }
}
