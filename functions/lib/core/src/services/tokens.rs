//! Tokens: sealed at rest, refreshed before they expire, rotated refresh tokens stored under a
//! conditional write so that two concurrent refreshes cannot lose one.

use crate::crypto::{assertion_input, certificate_der, finish_assertion, SealingKey};
use crate::model::ClientCredential;
use crate::model::{
    AlertBoard, AlertKind, AuthType, ConnectionState, Mailbox, ServerProfile, TokenSet,
};
use crate::ports::{Clock, Cond, GraphCtx, Identity, KeySigner};
use crate::repo::Repos;
use crate::secret::Secret;
use crate::services::alerts::Alerts;
use crate::services::profiles::Secrets;
use crate::services::Settings;
use crate::{Error, Result, Say};
use std::sync::Arc;

/// What a Graph call for a mailbox needs: its profile, its cloud's Graph and a fresh token.
pub struct Session {
    pub mailbox: String,
    pub profile: ServerProfile,
    pub graph_base: String,
    pub token: Secret,
}

impl Session {
    pub fn ctx(&self) -> GraphCtx<'_> {
        GraphCtx {
            graph_base: &self.graph_base,
            token: &self.token,
            mailbox: &self.mailbox,
        }
    }
}

pub struct Tokens {
    repos: Repos,
    secrets: Secrets,
    identity: Arc<dyn Identity>,
    signer: Arc<dyn KeySigner>,
    alerts: Arc<Alerts>,
    clock: Arc<dyn Clock>,
    settings: Settings,
}

impl Tokens {
    pub fn new(
        repos: Repos,
        secrets: Secrets,
        identity: Arc<dyn Identity>,
        signer: Arc<dyn KeySigner>,
        alerts: Arc<Alerts>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            repos,
            secrets,
            identity,
            signer,
            alerts,
            clock,
            settings,
        }
    }

    /// The sealing key (kept by [`Secrets`] for a few minutes, like every secret).
    async fn key(&self) -> Result<SealingKey> {
        SealingKey::from_base64(&self.secrets.sealing_key().await?)
    }

    /// Seals and stores a token set for `owner` (a mailbox id, or `app-{profile}`).
    pub async fn store(&self, owner: &str, set: &TokenSet, cond: Cond) -> Result<u64> {
        let plain = serde_json::to_vec(set).map_err(Error::storage)?;
        let sealed = self.key().await?.seal(&plain, owner)?;
        self.repos.tokens.put(owner, &sealed, cond).await
    }

    async fn load(&self, owner: &str) -> Result<Option<(TokenSet, u64)>> {
        let Some(v) = self.repos.tokens.get(owner).await? else {
            return Ok(None);
        };
        let plain = self.key().await?.open(&v.value, owner)?;
        let set: TokenSet = serde_json::from_slice(&plain).map_err(Error::storage)?;
        Ok(Some((set, v.version)))
    }

    /// A stored profile, checked again before mailbridge sends it a secret or a token (one stored
    /// before the checks existed, or written around the admin API, is refused here too).
    pub async fn profile(&self, id: &str) -> Result<ServerProfile> {
        self.usable(self.repos.profile(id).await?)
    }

    /// A profile already read, if it passes the checks.
    pub fn usable(&self, profile: ServerProfile) -> Result<ServerProfile> {
        self.settings
            .check_profile(&profile)
            .map_err(|e| Error::Config {
                code: "profile-refused".into(),
                reason: format!("server profile {} cannot be used: {e}", profile.id),
            })?;
        Ok(profile)
    }

    /// The deployment's secrets (client secrets, the sealing key).
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// How the profile proves the app's identity at the token endpoint: its client secret (from
    /// the profile namespace only), or a client assertion its certificate's key signed.
    pub async fn credential(&self, profile: &ServerProfile) -> Result<ClientCredential> {
        let Some(cert) = &profile.certificate else {
            return Ok(ClientCredential::Secret(
                self.secrets.client_secret(profile).await?,
            ));
        };
        let der = certificate_der(&cert.certificate_pem)?;
        let endpoint = format!(
            "{}/{}/oauth2/v2.0/token",
            profile.cloud.endpoints().login,
            profile.tenant
        );
        let input = assertion_input(&der, &profile.client_id, &endpoint, self.clock.now());
        let signature = self.signer.sign_rs256(&cert.key, input.as_bytes()).await?;
        Ok(ClientCredential::Assertion(finish_assertion(
            &input, &signature,
        )))
    }

    /// Everything a Graph call for `mailbox` needs: profile → token → Graph context, in one place.
    pub async fn session(&self, mailbox: &Mailbox) -> Result<Session> {
        let profile = self.profile(&mailbox.profile_id).await?;
        let token = self.token_for(mailbox, &profile).await?;
        Ok(Session {
            mailbox: mailbox.id.clone(),
            graph_base: profile.cloud.endpoints().graph,
            profile,
            token,
        })
    }

    /// An access token good for a few more minutes, refreshing (and storing the rotated refresh
    /// token) when needed. A grant that no longer works marks the mailbox for re-authentication.
    pub async fn access_token(&self, mailbox: &Mailbox) -> Result<Secret> {
        let profile = self.profile(&mailbox.profile_id).await?;
        self.token_for(mailbox, &profile).await
    }

    /// An organisation-wide profile's own access token (client credentials), for calls that are
    /// for no mailbox (listing the tenant's users).
    pub async fn app_token(&self, profile: &ServerProfile) -> Result<Secret> {
        self.token_of(None, profile).await
    }

    async fn token_for(&self, mailbox: &Mailbox, profile: &ServerProfile) -> Result<Secret> {
        self.token_of(Some(mailbox), profile).await
    }

    async fn token_of(&self, mailbox: Option<&Mailbox>, profile: &ServerProfile) -> Result<Secret> {
        let owner = match (profile.auth, mailbox) {
            (AuthType::Delegated, Some(m)) => m.token_owner().to_string(),
            (AuthType::Application, _) => format!("app-{}", profile.id),
            (AuthType::Delegated, None) => {
                return Err(Error::invalid(Say::ProfileIsDelegated {
                    profile: profile.id.clone(),
                }))
            }
        };
        let mut read_again = false;
        for _ in 0..4 {
            let current = self.load(&owner).await?;
            if let Some((set, _)) = &current {
                if set.expires_at - self.settings.token_margin > self.clock.now() {
                    return Ok(set.access_token.clone());
                }
            }
            let secret = match self.credential(profile).await {
                Ok(s) => s,
                Err(e) => return Err(self.refused(profile, e).await),
            };
            let (fresh, cond) = match (profile.auth, current) {
                (AuthType::Application, cur) => {
                    let fresh = self
                        .identity
                        .client_credentials(profile, &secret)
                        .await
                        .and_then(|t| without_permissions(t, profile));
                    (fresh, cur.map_or(Cond::Absent, |(_, v)| Cond::Version(v)))
                }
                (AuthType::Delegated, Some((set, version))) => {
                    let mailbox = mailbox.expect("a delegated token has a mailbox");
                    let Some(rt) = set.refresh_token.clone() else {
                        return Err(self
                            .needs_reauth(mailbox, "no-refresh-token", "no refresh token is stored")
                            .await);
                    };
                    let fresh = self
                        .identity
                        .refresh(profile, &secret, &rt)
                        .await
                        .map(|mut t| {
                            // Microsoft rotates refresh tokens; keep the old one only if none came back.
                            t.refresh_token.get_or_insert(rt);
                            t
                        });
                    (fresh, Cond::Version(version))
                }
                (AuthType::Delegated, None) => {
                    let mailbox = mailbox.expect("a delegated token has a mailbox");
                    return Err(self
                        .needs_reauth(
                            mailbox,
                            "not-connected",
                            "nobody has signed in for this mailbox",
                        )
                        .await);
                }
            };
            let fresh = match fresh {
                Ok(t) => t,
                Err(Error::ReauthRequired { code, reason }) => {
                    return Err(match mailbox {
                        Some(m) => self.needs_reauth(m, &code, &reason).await,
                        None => Error::ReauthRequired { code, reason },
                    })
                }
                Err(e @ Error::Config { .. }) if !read_again => {
                    // Kept from before the operator replaced it? Then try the new one first:
                    // processes that read the secret at different times must not take turns
                    // raising and clearing the profile's alert.
                    read_again = true;
                    if self.replaced_since(profile, &secret).await {
                        continue;
                    }
                    return Err(self.refused(profile, e).await);
                }
                Err(e) => return Err(self.refused(profile, e).await),
            };
            match self.store(&owner, &fresh, cond).await {
                Ok(_) => {
                    // Entra took the credential: a profile alert about it is over.
                    if let Err(e) = self
                        .alerts
                        .touch_profile(&profile.id, |h| {
                            h.clear(AlertKind::CredentialRefused);
                            h.clear(AlertKind::ConsentRevoked);
                        })
                        .await
                    {
                        tracing::warn!(profile = %profile.id, error = %e, "could not clear the profile's credential alert");
                    }
                    return Ok(fresh.access_token);
                }
                // Another refresh won: its rotated token is stored; read it again and use it.
                Err(Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::retry("token refresh kept conflicting"))
    }

    /// Whether the client secret in the store is another than `used`, which Entra just refused:
    /// the kept value is dropped and the secret read again. A certificate's assertion is signed
    /// afresh at each use, so it has no older copy to replace.
    async fn replaced_since(&self, profile: &ServerProfile, used: &ClientCredential) -> bool {
        let ClientCredential::Secret(used) = used else {
            return false;
        };
        self.secrets.forget_client_secret(profile);
        matches!(self.secrets.client_secret(profile).await, Ok(now) if now.expose() != used.expose())
    }

    /// An error of Entra's token endpoint, as it came; a refused credential (a configuration
    /// error) is read afresh at its next use, so that a replaced secret works at once.
    pub fn forgetting_refused(&self, profile: &ServerProfile, e: Error) -> Error {
        if matches!(e, Error::Config { .. }) {
            self.secrets.forget_client_secret(profile);
        }
        e
    }

    /// A profile's credential refused (a configuration error): one alert on the profile, not one
    /// per mailbox, saying what to do; the error is returned as it came.
    async fn refused(&self, profile: &ServerProfile, e: Error) -> Error {
        let e = self.forgetting_refused(profile, e);
        let Error::Config { code, .. } = &e else {
            return e;
        };
        let consent = matches!(code.as_str(), "AADSTS700016" | "no-app-permission");
        let kind = if consent && profile.auth == AuthType::Application {
            AlertKind::ConsentRevoked
        } else {
            AlertKind::CredentialRefused
        };
        let message = Say::OfProfile {
            profile: profile.name.clone(),
            then: Box::new(e.advice()),
        };
        let now = self.clock.now();
        if let Err(err) = self
            .alerts
            .touch_profile(&profile.id, |h| h.raise(kind, message.clone(), now))
            .await
        {
            tracing::warn!(profile = %profile.id, error = %err, "could not record the profile's credential alert");
        }
        e
    }

    /// Records that a person must sign in again, raises the alert, and returns the error to report.
    pub async fn needs_reauth(&self, mailbox: &Mailbox, code: &str, reason: &str) -> Error {
        let now = self.clock.now();
        let state = ConnectionState::ReauthRequired {
            code: code.into(),
            reason: reason.into(),
        };
        let mut ids = vec![mailbox.id.clone()];
        if mailbox.token_owner() != mailbox.id {
            ids.push(mailbox.token_owner().to_string());
        }
        for id in ids {
            let marked = self
                .repos
                .mailboxes
                .update(&id, |m| {
                    let mut m = m?;
                    (m.connection != state).then(|| {
                        m.connection = state.clone();
                        m.updated_at = now;
                        m
                    })
                })
                .await;
            let alerted = self
                .alerts
                .touch(&id, |h| {
                    h.raise(
                        AlertKind::ReauthRequired,
                        Say::SignInAgain { code: code.into() },
                        now,
                    )
                })
                .await;
            if let Err(e) = marked.and(alerted.map(|_| ())) {
                tracing::warn!(mailbox = %id, error = %e, "could not record that the mailbox needs re-authentication");
            }
        }
        tracing::warn!(mailbox = %mailbox.id, code, "mailbox needs re-authentication");
        Error::ReauthRequired {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

/// An app-only token that carries no application permission (its `roles` claim empty or absent):
/// the tenant's consent was never granted or was withdrawn, and every Graph call would be refused.
/// A token whose payload cannot be read is taken as it is (Microsoft may make Graph's opaque).
fn without_permissions(set: TokenSet, profile: &ServerProfile) -> Result<TokenSet> {
    use base64::Engine;
    let claims = set
        .access_token
        .expose()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(claims) = claims else {
        return Ok(set);
    };
    let granted = claims["roles"].as_array().is_some_and(|r| !r.is_empty());
    if granted {
        return Ok(set);
    }
    Err(Error::Config {
        code: "no-app-permission".into(),
        reason: format!(
            "the app registration of profile '{}' has no application permission granted in tenant {}",
            profile.name, profile.tenant
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::fakes::FakeWorld;
    use crate::model::{AlertBoard, AlertKind, ConnectionState};
    use crate::Error;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_fresh_token_is_used_without_a_refresh() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let token = w.services.tokens.access_token(&m).await.unwrap();
        assert_eq!(token.expose(), "at-1");
        assert_eq!(w.identity.issued(), 1);
    }

    #[tokio::test]
    async fn concurrent_refreshes_keep_one_rotated_token_and_agree_on_it() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        // The stored token is due: both callers load it, both refresh, one store wins.
        due(&w, &m.id).await;
        *w.identity.refresh_barrier.lock().unwrap() = Some(Arc::new(tokio::sync::Barrier::new(2)));
        let tokens = w.services.tokens.clone();
        let (a, b) = tokio::join!(tokens.access_token(&m), tokens.access_token(&m));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(w.identity.issued(), 3, "one sign-in and two refreshes");
        // The loser's conditional write failed; it read the winner's token and used it.
        assert_eq!(a.expose(), b.expose());
        *w.identity.refresh_barrier.lock().unwrap() = None;
        // The stored set is the winner's, with its rotated refresh token: a later call uses it.
        assert_eq!(
            w.services.tokens.access_token(&m).await.unwrap().expose(),
            a.expose()
        );
        assert_eq!(w.identity.issued(), 3);
    }

    #[tokio::test]
    async fn a_revoked_grant_marks_the_mailbox_for_a_person() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        w.clock.advance(chrono::Duration::hours(2));
        w.identity.revoke();
        let e = w.services.tokens.access_token(&m).await.unwrap_err();
        assert!(matches!(e, Error::ReauthRequired { ref code, .. } if code == "AADSTS50173"));
        let stored = w.services.repos.mailbox(&m.id).await.unwrap();
        assert!(matches!(
            stored.connection,
            ConnectionState::ReauthRequired { .. }
        ));
        let health = w.services.repos.health.get(&m.id).await.unwrap().unwrap();
        assert!(health.value.has(AlertKind::ReauthRequired));
    }

    /// Stores a token set for the mailbox that is due for a refresh.
    async fn due(w: &FakeWorld, mailbox_id: &str) {
        let due = crate::model::TokenSet {
            access_token: crate::Secret::new("at-old"),
            expires_at: chrono::Utc::now() - chrono::Duration::minutes(1),
            refresh_token: Some(crate::Secret::new("rt-old")),
            tenant_id: None,
            roles: Vec::new(),
        };
        w.services
            .tokens
            .store(mailbox_id, &due, crate::ports::Cond::Any)
            .await
            .unwrap();
    }

    /// The profile's alert board.
    async fn profile_alerts(w: &FakeWorld) -> Option<crate::model::ProfileHealth> {
        w.services
            .repos
            .profile_health
            .get("contoso")
            .await
            .unwrap()
            .map(|v| v.value)
    }

    #[tokio::test]
    async fn a_secret_replaced_since_it_was_read_is_used_at_once_and_raises_nothing() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let profile = FakeWorld::profile();
        // This process read the secret (and keeps it for 5 minutes)...
        w.services.tokens.credential(&profile).await.unwrap();
        // ...then it expired and the operator stored a new one.
        w.identity.refuse_secret("client-secret");
        w.secrets.set(
            &profile.client_secret_ref,
            crate::Secret::new("client-secret-2"),
        );
        due(&w, &m.id).await;
        let token = w.services.tokens.access_token(&m).await.unwrap();
        assert_eq!(token.expose(), "at-2", "refreshed with the new secret");
        let raised = profile_alerts(&w)
            .await
            .is_some_and(|h| h.has(AlertKind::CredentialRefused));
        assert!(!raised, "no alert for a secret already replaced");
    }

    #[tokio::test]
    async fn an_expired_secret_not_yet_replaced_raises_the_profile_alert() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        w.identity.refuse_secret("client-secret");
        due(&w, &m.id).await;
        let e = w.services.tokens.access_token(&m).await.unwrap_err();
        assert!(matches!(e, Error::Config { ref code, .. } if code == "AADSTS7000222"));
        let health = profile_alerts(&w)
            .await
            .expect("the profile has an alert board");
        assert!(health.has(AlertKind::CredentialRefused));
    }

    #[tokio::test]
    async fn a_profile_that_fails_its_checks_gets_no_secret_and_no_token() {
        let w = FakeWorld::default();
        let m = w.mailbox().await;
        let mut p = FakeWorld::profile();
        p.client_secret_ref = "mailbridge/token-key".into();
        w.services
            .repos
            .profiles
            .put("contoso", &p, crate::ports::Cond::Any)
            .await
            .unwrap();
        w.clock.advance(chrono::Duration::hours(2));
        let e = w.services.tokens.access_token(&m).await.unwrap_err();
        assert!(matches!(e, Error::Config { ref code, .. } if code == "profile-refused"));
        assert_eq!(w.identity.issued(), 1);
    }
}
