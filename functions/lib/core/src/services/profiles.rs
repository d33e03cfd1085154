//! What a server profile may say, checked in one place: when an administrator stores it, and again
//! before mailbridge sends it a secret or a token. And the two secret namespaces: the key that
//! seals tokens, and the client secrets of profiles, which no profile can name across.

use crate::crypto::certificate_der;
use crate::model::{Cloud, KeyRef, ServerProfile};
use crate::ports::{Clock, SecretStore};

use crate::services::Settings;
use crate::{Error, Result, Say, Secret};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The longest backfill window a profile may ask for, in days (ten years).
pub const MAX_BACKFILL_DAYS: u32 = 3650;
/// The longest profile id: it is part of mailbox ids and secret names.
const MAX_ID: usize = 64;
/// The longest free text (names, client id, tenant, category, URLs).
const MAX_TEXT: usize = 256;
/// The KMS aliases a profile's certificate key may have: the only keys the functions may sign with.
pub const KMS_ALIAS_PREFIX: &str = "alias/mailbridge/";
/// Secrets Manager's longest secret name.
const MAX_SECRET_NAME: usize = 512;

impl Settings {
    /// Whether a profile may be stored and used. `Error::Invalid` says what is wrong.
    pub fn check_profile(&self, p: &ServerProfile) -> Result<()> {
        let id_ok = !p.id.is_empty()
            && p.id.len() <= MAX_ID
            && p.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(Error::invalid(Say::BadProfileId { max: MAX_ID }));
        }
        for (field, value) in [
            ("name", p.name.as_str()),
            ("client_id", p.client_id.as_str()),
            ("tenant", p.tenant.as_str()),
        ] {
            if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
                return Err(Error::invalid(Say::TextTooLong {
                    field: field.into(),
                    max: MAX_TEXT,
                }));
            }
        }
        if p.client_id.trim().is_empty() || p.tenant.trim().is_empty() {
            return Err(Error::invalid(Say::NeedsClientAndTenant));
        }
        check_tenant(p)?;
        if p.backfill_days > MAX_BACKFILL_DAYS {
            return Err(Error::invalid(Say::BackfillTooLong {
                days: p.backfill_days,
                max: MAX_BACKFILL_DAYS,
            }));
        }
        if let Some(c) = &p.outlook_category {
            if c.trim().is_empty() || c.len() > MAX_TEXT || c.chars().any(char::is_control) {
                return Err(Error::invalid(Say::BadCategory { max: MAX_TEXT }));
            }
        }
        match &p.certificate {
            None => self.check_secret_ref(&p.client_secret_ref)?,
            Some(cert) => {
                if !p.client_secret_ref.is_empty() {
                    self.check_secret_ref(&p.client_secret_ref)?;
                }
                certificate_der(&cert.certificate_pem)?;
                match &cert.key {
                    KeyRef::SecretStore { name } => self.check_secret_ref(name)?,
                    KeyRef::Kms { key_id } => {
                        let ok = key_id.len() > KMS_ALIAS_PREFIX.len()
                            && key_id.len() <= MAX_TEXT
                            && key_id.starts_with(KMS_ALIAS_PREFIX)
                            && key_id
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
                        if !ok {
                            return Err(Error::invalid(Say::NotAKmsAlias {
                                prefix: KMS_ALIAS_PREFIX.into(),
                            }));
                        }
                    }
                }
            }
        }
        if let Cloud::Custom {
            login,
            graph,
            resource,
        } = &p.cloud
        {
            self.check_custom_url("login", login)?;
            self.check_custom_url("graph", graph)?;
            if resource.trim().is_empty() || resource.len() > MAX_TEXT {
                return Err(Error::invalid(Say::CustomCloudNeedsResource));
            }
        }
        Ok(())
    }

    /// What only an administrator's `PUT` can check, besides [`Settings::check_profile`]: a
    /// secret expiry still ahead, and the secret itself in the secret store.
    pub async fn check_new_profile(
        &self,
        p: &ServerProfile,
        secrets: &Secrets,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.check_profile(p)?;
        if let Some(cert) = &p.certificate {
            let not_after = p.credential_expires_at().unwrap_or(now);
            if not_after <= now {
                return Err(Error::invalid(Say::CertificateExpiredOn { on: not_after }));
            }
            if let KeyRef::SecretStore { name } = &cert.key {
                return match secrets.get(name).await {
                    Ok(s) if !s.expose().trim().is_empty() => Ok(()),
                    Ok(_) | Err(Error::Config { .. }) => {
                        Err(Error::invalid(Say::NoKeyInStore { name: name.clone() }))
                    }
                    Err(e) => Err(e),
                };
            }
            return Ok(());
        }
        if let Some(at) = p.client_secret_expires_at {
            if at <= now {
                return Err(Error::invalid(Say::SecretExpiredOn {
                    on: at,
                    name: p.client_secret_ref.clone(),
                }));
            }
        }
        match secrets.client_secret(p).await {
            Ok(s) if !s.expose().trim().is_empty() => Ok(()),
            Ok(_) => Err(Error::invalid(Say::SecretEmpty {
                name: p.client_secret_ref.clone(),
            })),
            Err(Error::Config { code, .. }) if code == "secret-missing" => {
                Err(Error::invalid(Say::NoSuchSecret {
                    name: p.client_secret_ref.clone(),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// A client secret's name must lie under the profile prefix: never the token-sealing key, the
    /// admin token or any other secret of the deployment.
    pub fn check_secret_ref(&self, name: &str) -> Result<()> {
        let prefix = &self.profile_secret_prefix;
        let ok = name.len() > prefix.len()
            && name.len() <= MAX_SECRET_NAME
            && name.starts_with(prefix.as_str())
            && !name.split('/').any(|part| part == ".." || part == ".")
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        if !ok {
            return Err(Error::invalid(Say::SecretOutsidePrefix {
                prefix: prefix.clone(),
            }));
        }
        Ok(())
    }

    /// A custom cloud's URL: https (http only on this machine's loopback, for the simulator), on a
    /// host the deployment allows.
    fn check_custom_url(&self, field: &str, url: &str) -> Result<()> {
        if self.custom_cloud_hosts.is_empty() {
            return Err(Error::invalid(Say::NoCustomClouds));
        }
        let (https, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => {
                return Err(Error::invalid(Say::CustomUrlNotHttps {
                    field: field.into(),
                }))
            }
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.to_ascii_lowercase();
        let hostname = host
            .strip_prefix('[')
            .and_then(|h| h.split(']').next())
            .unwrap_or_else(|| host.split(':').next().unwrap_or_default());
        let well_formed = !host.is_empty()
            && url.len() <= MAX_TEXT
            && !url.chars().any(|c| c.is_control() || c.is_whitespace())
            && !authority.contains('@');
        if !well_formed {
            return Err(Error::invalid(Say::CustomUrlNotPlain {
                field: field.into(),
            }));
        }
        let loopback = matches!(hostname, "localhost" | "127.0.0.1" | "::1");
        if !https && !loopback {
            return Err(Error::invalid(Say::CustomUrlNotHttps {
                field: field.into(),
            }));
        }
        if !self
            .custom_cloud_hosts
            .iter()
            .any(|allowed| *allowed == host || *allowed == hostname)
        {
            return Err(Error::invalid(Say::CustomHostNotAllowed {
                field: field.into(),
                host,
            }));
        }
        Ok(())
    }
}

/// The tenant a profile signs in against: `common`, `organizations`, `consumers`, a tenant id
/// (GUID) or a domain; an organisation-wide (application) profile needs one tenant, since
/// Microsoft grants application permissions per tenant.
fn check_tenant(p: &ServerProfile) -> Result<()> {
    let t = p.tenant.trim().to_ascii_lowercase();
    let shared = matches!(t.as_str(), "common" | "organizations" | "consumers");
    let guid = t.len() == 36
        && t.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let domain = t.contains('.')
        && t.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !(shared || guid || domain) {
        return Err(Error::invalid(Say::NotATenant {
            tenant: p.tenant.clone(),
        }));
    }
    if shared && p.auth == crate::model::AuthType::Application {
        return Err(Error::invalid(Say::OrganisationWideNeedsTenant {
            tenant: t,
        }));
    }
    Ok(())
}

/// The name of a secret given by name or by ARN (`arn:…:secret:NAME-AbCdEf`, as CloudFormation's
/// `Ref` gives it).
fn secret_name(name_or_arn: &str) -> &str {
    match name_or_arn.split_once(":secret:") {
        Some((_, rest)) if name_or_arn.starts_with("arn:") => {
            // Secrets Manager adds a hyphen and six characters to the name in the ARN.
            match rest.rsplit_once('-') {
                Some((name, suffix)) if suffix.len() == 6 => name,
                _ => rest,
            }
        }
        _ => name_or_arn,
    }
}

/// How long a process keeps a secret it read (a client secret, the token-sealing key) before it
/// reads it again: a rotated secret is in use everywhere within this time, and a busy container
/// asks the secret store a few times an hour, not at every token.
pub const SECRETS_CACHED_FOR: chrono::Duration = chrono::Duration::minutes(5);

/// The secrets mailbridge reads, in two namespaces no name crosses; each kept for
/// [`SECRETS_CACHED_FOR`] (clones share what was read). A failed read is not kept: a secret put
/// right is used at once.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn SecretStore>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    read: Arc<Mutex<HashMap<String, Kept>>>,
}

/// A secret as read, and when.
type Kept = (Secret, DateTime<Utc>);

impl Secrets {
    /// Refuses a deployment whose token-sealing key lies under the profile prefix, where a
    /// profile could name it.
    pub fn new(
        store: Arc<dyn SecretStore>,
        settings: &Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let key = secret_name(&settings.token_key_name);
        if key.starts_with(settings.profile_secret_prefix.as_str()) {
            return Err(Error::Config {
                code: "token-key-in-profile-namespace".into(),
                reason: format!(
                    "the token-sealing key {key:?} lies under the profile secret prefix {:?}; \
                     name it outside that prefix",
                    settings.profile_secret_prefix
                ),
            });
        }
        Ok(Self {
            store,
            settings: settings.clone(),
            clock,
            read: Arc::default(),
        })
    }

    /// The key that seals tokens at rest.
    pub async fn sealing_key(&self) -> Result<Secret> {
        self.get(&self.settings.token_key_name).await
    }

    /// A profile's client secret: only from the profile namespace.
    pub async fn client_secret(&self, profile: &ServerProfile) -> Result<Secret> {
        self.settings.check_secret_ref(&profile.client_secret_ref)?;
        self.get(&profile.client_secret_ref).await
    }

    /// Drops the kept value of a profile's client secret, so that the next use reads it again:
    /// Entra refused it, and the operator may have replaced it since it was read.
    pub fn forget_client_secret(&self, profile: &ServerProfile) {
        self.read.lock().unwrap().remove(&profile.client_secret_ref);
    }

    async fn get(&self, name: &str) -> Result<Secret> {
        let now = self.clock.now();
        if let Some((value, at)) = self.read.lock().unwrap().get(name) {
            if *at <= now && now - *at < SECRETS_CACHED_FOR {
                return Ok(value.clone());
            }
        }
        let value = self.store.get(name).await?;
        self.read
            .lock()
            .unwrap()
            .insert(name.to_string(), (value.clone(), now));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ServerProfile {
        crate::fakes::FakeWorld::profile()
    }

    fn custom(login: &str, graph: &str) -> ServerProfile {
        ServerProfile {
            cloud: Cloud::Custom {
                login: login.into(),
                graph: graph.into(),
                resource: "https://graph.microsoft.com".into(),
            },
            ..profile()
        }
    }

    #[test]
    fn a_good_profile_passes() {
        Settings::new("https://x")
            .check_profile(&profile())
            .unwrap();
    }

    #[test]
    fn secret_references_stay_in_the_profile_namespace() {
        let s = Settings::new("https://x");
        for bad in [
            "mailbridge/token-key",
            "arn:aws:secretsmanager:eu-west-1:1:secret:mailbridge/profiles/x-AbCdEf",
            "mailbridge/profiles/",
            "mailbridge/profiles/../token-key",
            "other/secret",
            "mailbridge/profiles/a b",
        ] {
            let p = ServerProfile {
                client_secret_ref: bad.into(),
                ..profile()
            };
            assert!(
                matches!(s.check_profile(&p), Err(Error::Invalid(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn values_are_bounded() {
        let s = Settings::new("https://x");
        let p = ServerProfile {
            backfill_days: u32::MAX,
            ..profile()
        };
        assert!(
            matches!(s.check_profile(&p), Err(Error::Invalid(m)) if m.to_string().contains("backfill_days"))
        );
        let p = ServerProfile {
            backfill_days: MAX_BACKFILL_DAYS,
            ..profile()
        };
        s.check_profile(&p).unwrap();
        for id in ["", "a/b", &"x".repeat(65)] {
            let p = ServerProfile {
                id: id.into(),
                ..profile()
            };
            assert!(s.check_profile(&p).is_err(), "{id:?}");
        }
        let p = ServerProfile {
            outlook_category: Some("x".repeat(300)),
            ..profile()
        };
        assert!(s.check_profile(&p).is_err());
    }

    #[test]
    fn custom_clouds_only_on_allowed_hosts_over_https() {
        let closed = Settings::new("https://x");
        assert!(closed
            .check_profile(&custom("https://login.example", "https://graph.example"))
            .is_err());
        let open = Settings::new("https://x")
            .with_custom_cloud_hosts(&["login.example, graph.example", "127.0.0.1:8400"]);
        open.check_profile(&custom("https://login.example", "https://graph.example/"))
            .unwrap();
        open.check_profile(&custom("http://127.0.0.1:8400", "http://127.0.0.1:8400"))
            .unwrap();
        for (login, graph) in [
            ("http://login.example", "https://graph.example"),
            ("https://login.example", "https://evil.example"),
            (
                "https://login.example@evil.example",
                "https://graph.example",
            ),
            ("https://login.example", "ftp://graph.example"),
            ("https://login.example", "https://127.0.0.1:9999"),
            ("https://login.example", "graph.example"),
        ] {
            assert!(
                open.check_profile(&custom(login, graph)).is_err(),
                "{login} {graph} was accepted"
            );
        }
    }

    fn clock() -> Arc<dyn Clock> {
        Arc::new(crate::fakes::ShiftedClock::default())
    }

    #[tokio::test]
    async fn secrets_are_read_again_once_they_are_five_minutes_old() {
        let store = Arc::new(crate::fakes::InMemorySecrets::default());
        let clock = Arc::new(crate::fakes::ShiftedClock::default());
        let mut settings = Settings::new("https://x");
        settings.token_key_name = "token-key".into();
        let secrets = Secrets::new(store.clone(), &settings, clock.clone()).unwrap();
        let mut profile = profile();
        profile.client_secret_ref = format!("{}demo", settings.profile_secret_prefix);

        // Missing: an error, not kept; put right, it is used at once.
        assert!(secrets.sealing_key().await.is_err());
        store.set("token-key", Secret::new("key-1"));
        store.set(&profile.client_secret_ref, Secret::new("secret-1"));
        assert_eq!(secrets.sealing_key().await.unwrap().expose(), "key-1");
        assert_eq!(
            secrets.client_secret(&profile).await.unwrap().expose(),
            "secret-1"
        );
        let reads = store.reads();

        // Rotated: the old values serve until they are five minutes old, in every clone.
        store.set("token-key", Secret::new("key-2"));
        store.set(&profile.client_secret_ref, Secret::new("secret-2"));
        clock.advance(SECRETS_CACHED_FOR - chrono::Duration::seconds(1));
        let clone = secrets.clone();
        assert_eq!(clone.sealing_key().await.unwrap().expose(), "key-1");
        assert_eq!(
            clone.client_secret(&profile).await.unwrap().expose(),
            "secret-1"
        );
        assert_eq!(store.reads(), reads);

        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(secrets.sealing_key().await.unwrap().expose(), "key-2");
        assert_eq!(
            secrets.client_secret(&profile).await.unwrap().expose(),
            "secret-2"
        );
        assert_eq!(store.reads(), reads + 2);

        // Refused by Entra and replaced meanwhile: read again at the next use, not 5 minutes on.
        store.set(&profile.client_secret_ref, Secret::new("secret-3"));
        secrets.forget_client_secret(&profile);
        assert_eq!(
            secrets.client_secret(&profile).await.unwrap().expose(),
            "secret-3"
        );
        assert_eq!(secrets.sealing_key().await.unwrap().expose(), "key-2");
    }

    #[test]
    fn tenants_take_the_forms_entra_id_knows() {
        let s = Settings::new("https://x");
        let mut p = profile();
        for ok in [
            "common",
            "Organizations",
            "consumers",
            "contoso.onmicrosoft.com",
            "fabrikam.fr",
            "8f3e1c52-7a4d-4b6e-9d21-3c5f0a7b9e14",
        ] {
            p.tenant = ok.into();
            assert!(s.check_profile(&p).is_ok(), "{ok}");
        }
        for bad in [
            "contoso",
            "8f3e1c52",
            "-a.example",
            "a..example",
            "ünïcode.example",
            "a b.example",
        ] {
            p.tenant = bad.into();
            assert!(s.check_profile(&p).is_err(), "{bad}");
        }
        p.auth = crate::model::AuthType::Application;
        for shared in ["common", "organizations", "consumers"] {
            p.tenant = shared.into();
            assert!(s.check_profile(&p).is_err(), "{shared}");
        }
        p.tenant = "contoso.onmicrosoft.com".into();
        assert!(s.check_profile(&p).is_ok());
    }

    #[test]
    fn the_sealing_key_cannot_live_in_the_profile_namespace() {
        let store: Arc<dyn SecretStore> = Arc::new(crate::fakes::InMemorySecrets::default());
        let mut s = Settings::new("https://x");
        s.token_key_name = "mailbridge/profiles/key".into();
        assert!(matches!(
            Secrets::new(store.clone(), &s, clock()),
            Err(Error::Config { .. })
        ));
        s.token_key_name =
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:TokenKeySecret-AbCdEf".into();
        assert!(Secrets::new(store, &s, clock()).is_ok());
        assert_eq!(
            secret_name("arn:aws:secretsmanager:r:1:secret:mailbridge/profiles/k-AbCdEf"),
            "mailbridge/profiles/k"
        );
    }
}
