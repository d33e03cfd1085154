//! Connecting a mailbox: the authorization code flow with PKCE, from `/connect` to the callback.

use crate::crypto::{pkce_pair, random_token, sha256_hex};
use crate::model::*;
use crate::ports::{AuthorizeRequest, Clock, Cond, GraphCtx, Identity, MailGraph};
use crate::repo::Repos;
use crate::services::alerts::Alerts;
use crate::services::subscriptions::Subscriptions;
use crate::services::tokens::Tokens;
use crate::services::Settings;
use crate::{Error, Result, Say};
use std::sync::Arc;

/// What the authorize endpoint sent back to the callback.
#[derive(Debug, Default, Clone)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// The admin-consent answer: `True` when granted.
    pub admin_consent: Option<String>,
    /// The admin-consent answer: the tenant that granted it.
    pub tenant: Option<String>,
}

/// What a completed authorization made.
#[derive(Debug, Clone)]
pub enum Completed {
    /// A person's sign-in: their mailbox, connected, and the app roles they hold.
    Mailbox {
        mailbox: Mailbox,
        roles: Vec<String>,
    },
    /// An administrator's consent to an organisation-wide profile.
    Consent {
        profile: ServerProfile,
        consent: AppConsent,
    },
    /// A person signed in to the console: who they are, and the app roles they hold.
    Person {
        user: GraphUser,
        tenant_id: String,
        roles: Vec<String>,
    },
}

impl Completed {
    /// The person who signed in, when a person did (a sign-in or a mailbox connected): their
    /// user object id, name and app roles.
    pub fn person(&self) -> Option<(&str, &str, &[String])> {
        match self {
            Completed::Mailbox { mailbox: m, roles } if m.kind == MailboxKind::User => {
                Some((m.user_id.as_str(), m.display_name.as_str(), roles))
            }
            Completed::Person { user, roles, .. } => {
                Some((user.id.as_str(), user.display_name.as_str(), roles))
            }
            _ => None,
        }
    }
}

pub struct Connect {
    pub repos: Repos,
    pub identity: Arc<dyn Identity>,
    pub graph: Arc<dyn MailGraph>,
    pub tokens: Arc<Tokens>,
    pub subscriptions: Arc<Subscriptions>,
    pub alerts: Arc<Alerts>,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// The mailbox id of a user under a profile: stable, so that signing in again finds the same
/// mailbox with its settings.
pub fn mailbox_id(profile_id: &str, user_object_id: &str) -> MailboxId {
    format!(
        "mbx_{}",
        &sha256_hex(format!("{profile_id}\n{user_object_id}").as_bytes())[..24]
    )
}

impl Connect {
    /// The profile to use: the one named, or the default one.
    pub async fn profile(&self, id: Option<&str>) -> Result<ServerProfile> {
        let Some(id) = id else {
            let default = self
                .repos
                .profiles
                .values()
                .await?
                .into_iter()
                .find(|p| p.is_default)
                .ok_or(Error::Invalid(Say::NoDefaultProfile))?;
            return self.tokens.usable(default);
        };
        self.tokens.profile(id).await
    }

    /// Starts a sign-in: stores the single-use state and the PKCE verifier, returns where to send
    /// the browser.
    pub async fn begin(
        &self,
        profile_id: Option<&str>,
        login_hint: Option<String>,
    ) -> Result<String> {
        let profile = self.profile(profile_id).await?;
        if profile.auth != AuthType::Delegated {
            return Err(Error::Invalid(Say::ProfileIsOrganisationWide {
                profile: profile.id.clone(),
            }));
        }
        let (verifier, challenge) = pkce_pair();
        let (state, pending) = self
            .pending(AuthPurpose::SignIn, &profile, verifier)
            .await?;
        self.identity.authorize_url(
            &profile,
            &AuthorizeRequest {
                scopes: profile.delegated_scopes(),
                redirect_uri: pending.redirect_uri,
                state,
                pkce_challenge: challenge,
                login_hint,
                prompt: None,
            },
        )
    }

    /// Starts a person's sign-in to the console, with the default (delegated) profile's app
    /// registration and only the sign-in scopes.
    pub async fn begin_console_sign_in(&self) -> Result<String> {
        let profile = self.profile(None).await?;
        if profile.auth != AuthType::Delegated {
            return Err(Error::Invalid(Say::DefaultIsOrganisationWide));
        }
        let (verifier, challenge) = pkce_pair();
        let (state, pending) = self
            .pending(AuthPurpose::ConsoleSignIn, &profile, verifier)
            .await?;
        self.identity.authorize_url(
            &profile,
            &AuthorizeRequest {
                scopes: profile.sign_in_scopes(),
                redirect_uri: pending.redirect_uri,
                state,
                pkce_challenge: challenge,
                login_hint: None,
                prompt: Some("select_account".into()),
            },
        )
    }

    /// Starts an administrator's consent to an organisation-wide profile: where to send the
    /// browser (Microsoft's admin-consent endpoint, back to the same callback as sign-ins).
    pub async fn begin_admin_consent(&self, profile_id: &str) -> Result<String> {
        let profile = self.tokens.profile(profile_id).await?;
        if profile.auth != AuthType::Application {
            return Err(Error::Invalid(Say::ProfileIsDelegated {
                profile: profile.id.clone(),
            }));
        }
        // The consent has no code to redeem; the verifier is kept only for the record's shape.
        let (verifier, _) = pkce_pair();
        let (state, pending) = self
            .pending(AuthPurpose::AdminConsent, &profile, verifier)
            .await?;
        self.identity
            .admin_consent_url(&profile, &pending.redirect_uri, &state)
    }

    /// Stores a single-use state for an authorization: the state, and what was stored.
    async fn pending(
        &self,
        purpose: AuthPurpose,
        profile: &ServerProfile,
        pkce_verifier: crate::Secret,
    ) -> Result<(crate::Secret, PendingAuth)> {
        let state = random_token(32);
        let pending = PendingAuth {
            purpose,
            profile_id: profile.id.clone(),
            pkce_verifier,
            redirect_uri: self.settings.redirect_uri(),
            expires_at: self.clock.now() + self.settings.auth_state_ttl,
        };
        self.repos
            .auth_states
            .put_expiring(
                &sha256_hex(state.as_bytes()),
                &pending,
                Cond::Absent,
                Some(pending.expires_at),
            )
            .await?;
        Ok((crate::Secret::new(state), pending))
    }

    /// Completes a sign-in: the state is used once, the code exchanged with the PKCE verifier, the
    /// tokens sealed, the mailbox created or reconnected (keeping its settings), and, if it is
    /// approved, its subscriptions and cursors set up.
    pub async fn complete(&self, cb: Callback) -> Result<Completed> {
        let state = cb
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(Error::Invalid(Say::SignInNoState))?;
        let pending = self
            .repos
            .auth_states
            .take(&sha256_hex(state.as_bytes()))
            .await?
            .ok_or(Error::Invalid(Say::SignInUnknown))?;
        if pending.expires_at < self.clock.now() {
            return Err(Error::Invalid(Say::SignInExpired));
        }
        if let Some(error) = cb.error {
            let detail = cb.error_description.unwrap_or_default();
            let code = detail.split(':').next().unwrap_or_default();
            let error = if code.is_empty() {
                error
            } else {
                format!("{error}, {code}")
            };
            return Err(Error::Invalid(
                match (pending.purpose, error.as_str(), code) {
                    (AuthPurpose::AdminConsent, _, "AADSTS90094") => {
                        Say::ConsentNotByAdmin { code: error }
                    }
                    (AuthPurpose::AdminConsent, e, _) if e.starts_with("access_denied") => {
                        Say::ConsentDeclined { error }
                    }
                    (_, e, _) if e.starts_with("access_denied") => {
                        Say::PermissionsDeclined { error }
                    }
                    (_, e, _)
                        if e.starts_with("consent_required")
                            || e.starts_with("interaction_required") =>
                    {
                        Say::ConsentFirst { error }
                    }
                    _ => Say::SignInRefused { error },
                },
            ));
        }
        if pending.purpose == AuthPurpose::AdminConsent {
            return self.consented(&pending, &cb).await;
        }
        let code = cb
            .code
            .filter(|c| !c.is_empty())
            .ok_or(Error::Invalid(Say::SignInNoCode))?;
        let profile = self.tokens.profile(&pending.profile_id).await?;
        let secret = self.tokens.credential(&profile).await?;
        if pending.purpose == AuthPurpose::ConsoleSignIn {
            return self.signed_in(&profile, &secret, &code, &pending).await;
        }
        let tokens = self
            .identity
            .exchange_code(
                &profile,
                &secret,
                &code,
                &pending.pkce_verifier,
                &pending.redirect_uri,
            )
            .await
            .map_err(|e| self.tokens.forgetting_refused(&profile, e))?;
        let graph_base = profile.cloud.endpoints().graph;
        let me = self
            .graph
            .me(GraphCtx {
                graph_base: &graph_base,
                token: &tokens.access_token,
                mailbox: "",
            })
            .await?;

        let id = mailbox_id(&profile.id, &me.id);
        let roles = tokens.roles.clone();
        self.tokens.store(&id, &tokens, Cond::Any).await?;
        let now = self.clock.now();
        // The user's own tenant, from the ID token; a profile may name `organizations` instead.
        let tenant = tokens
            .tenant_id
            .clone()
            .unwrap_or_else(|| profile.tenant.clone());
        let mut mailbox = self
            .repos
            .mailboxes
            .update(&id, |current| {
                Some(match current {
                    Some(mut m) => {
                        m.connection = ConnectionState::Connected;
                        m.address = me.address();
                        m.display_name = me.display_name.clone();
                        m.updated_at = now;
                        m
                    }
                    None => Mailbox {
                        id: id.clone(),
                        profile_id: profile.id.clone(),
                        kind: MailboxKind::User,
                        address: me.address(),
                        display_name: me.display_name.clone(),
                        user_id: me.id.clone(),
                        tenant_id: tenant.clone(),
                        via: None,
                        approved: !profile.approval_required,
                        enabled: true,
                        connection: ConnectionState::Connected,
                        folders: vec![],
                        created_at: now,
                        updated_at: now,
                    },
                })
            })
            .await?
            .expect("update always writes");
        self.alerts
            .touch(&id, |h| h.clear(AlertKind::ReauthRequired))
            .await?;

        if mailbox.folders.is_empty() {
            let inbox = self
                .graph
                .folder(
                    GraphCtx {
                        graph_base: &graph_base,
                        token: &tokens.access_token,
                        mailbox: &id,
                    },
                    &me.id,
                    "inbox",
                )
                .await?;
            let choice = FolderChoice {
                id: inbox.id,
                display_name: inbox.display_name,
            };
            mailbox = self
                .repos
                .mailboxes
                .update(&id, |m| {
                    let mut m = m?;
                    if m.folders.is_empty() {
                        m.folders.push(choice.clone());
                    }
                    Some(m)
                })
                .await?
                .ok_or_else(|| Error::NotFound(format!("mailbox {id}")))?;
        }
        if mailbox.is_active() {
            self.subscriptions.activate(&mailbox).await?;
        }
        tracing::info!(mailbox = %mailbox.id, "mailbox connected");
        Ok(Completed::Mailbox {
            mailbox,
            roles: roles.clone(),
        })
    }

    /// A console sign-in: the code redeemed for a token that only says who the person is; nothing
    /// is stored.
    async fn signed_in(
        &self,
        profile: &ServerProfile,
        secret: &ClientCredential,
        code: &str,
        pending: &PendingAuth,
    ) -> Result<Completed> {
        let tokens = self
            .identity
            .exchange_code(
                profile,
                secret,
                code,
                &pending.pkce_verifier,
                &pending.redirect_uri,
            )
            .await
            .map_err(|e| self.tokens.forgetting_refused(profile, e))?;
        let user = self
            .graph
            .me(GraphCtx {
                graph_base: &profile.cloud.endpoints().graph,
                token: &tokens.access_token,
                mailbox: "",
            })
            .await?;
        Ok(Completed::Person {
            user,
            tenant_id: tokens.tenant_id.unwrap_or_default(),
            roles: tokens.roles,
        })
    }

    /// Records an administrator's consent: granted, by the profile's tenant (a consent from
    /// another tenant is refused), with its time, from which Graph's propagation is counted.
    async fn consented(&self, pending: &PendingAuth, cb: &Callback) -> Result<Completed> {
        let profile = self.tokens.profile(&pending.profile_id).await?;
        if !cb
            .admin_consent
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Error::Invalid(Say::ConsentNotConfirmed));
        }
        let tenant = cb
            .tenant
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or(Error::Invalid(Say::ConsentNotConfirmed))?;
        let known = self.repos.consents.get(&profile.id).await?;
        let expected = known
            .as_ref()
            .map(|c| c.value.tenant_id.clone())
            .or_else(|| {
                uuid::Uuid::parse_str(&profile.tenant)
                    .is_ok()
                    .then(|| profile.tenant.clone())
            });
        if let Some(expected) = expected.filter(|e| !e.eq_ignore_ascii_case(tenant)) {
            return Err(Error::Invalid(Say::ConsentFromOtherTenant {
                tenant: tenant.into(),
                profile: profile.name.clone(),
                expected,
            }));
        }
        let consent = AppConsent {
            profile_id: profile.id.clone(),
            tenant_id: tenant.to_string(),
            granted_at: self.clock.now(),
        };
        self.repos
            .consents
            .put(&profile.id, &consent, Cond::Any)
            .await?;
        tracing::info!(profile = %profile.id, tenant, "admin consent granted");
        Ok(Completed::Consent { profile, consent })
    }
}
