//! Entra ID v2.0 through the `oauth2` crate, over the crate's [`Transport`] (reqwest natively, the
//! host's `wasi:http` in a component).

use crate::errors::classify_aad;
use crate::transport::Transport;
use async_trait::async_trait;
use mailbridge_core::model::{ClientCredential, ServerProfile, TokenSet};
use mailbridge_core::ports::{AuthorizeRequest, Identity};
use mailbridge_core::{rt, Error, Result, Secret};
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpClientError, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Entra ID's token error body, with the AADSTS codes that `oauth2`'s standard type drops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntraError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
    #[serde(default)]
    pub error_codes: Vec<u64>,
}

impl std::fmt::Display for EntraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.error_description)
    }
}

impl oauth2::ErrorResponse for EntraError {}

/// The `id_token` of a token response, which `oauth2`'s basic response drops.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type EntraTokenResponse = oauth2::StandardTokenResponse<IdTokenField, BasicTokenType>;

/// An ID token's claims. Its signature is not checked: it came straight from the token endpoint
/// over TLS, which OpenID Connect accepts as proof of origin.
fn id_token_claims(id_token: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = id_token.split('.').nth(1)?;
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?,
    )
    .ok()
}

type EntraClient = oauth2::Client<
    EntraError,
    EntraTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The longest a token request may take, sent to the last byte of its answer: the transport's own
/// limits only bound the wait for each byte, and a sign-in or a refresh should not hang on a
/// trickling endpoint.
const TOKEN_EXCHANGE_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// A [`Transport`] as `oauth2`'s async HTTP client. No answer in words is [`HttpClientError::Other`].
struct Http<'a>(&'a dyn Transport);

/// What [`Http`] fails with.
type HttpError = HttpClientError<std::convert::Infallible>;

impl<'c> oauth2::AsyncHttpClient<'c> for Http<'_> {
    type Error = HttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let exchange = async {
                let mut answer = self.0.send(request).await.map_err(HttpClientError::Other)?;
                let mut out = http::Response::builder().status(answer.status);
                if let Some(headers) = out.headers_mut() {
                    headers.extend(std::mem::take(&mut answer.headers));
                }
                let body = answer
                    .bytes()
                    .await
                    .map_err(|e| HttpClientError::Other(e.to_string()))?;
                Ok(out.body(body)?)
            };
            rt::timeout(TOKEN_EXCHANGE_MOST, exchange)
                .await
                .unwrap_or_else(|| {
                    Err(HttpClientError::Other(format!(
                        "no full answer within {} s",
                        TOKEN_EXCHANGE_MOST.as_secs()
                    )))
                })
        })
    }
}

pub struct EntraIdentity {
    http: Arc<dyn Transport>,
}

impl EntraIdentity {
    /// Entra ID over reqwest (see [`crate::http_client_trusting`]).
    #[cfg(feature = "native")]
    pub fn new(http: reqwest::Client) -> Self {
        Self::over(Arc::new(http))
    }

    /// Entra ID over any [`Transport`].
    pub fn over(http: Arc<dyn Transport>) -> Self {
        Self { http }
    }

    fn client(profile: &ServerProfile, secret: Option<&Secret>) -> Result<EntraClient> {
        let login = profile.cloud.endpoints().login;
        let bad = |e: oauth2::url::ParseError| Error::Config {
            code: "profile-url".into(),
            reason: format!("bad login URL: {e}"),
        };
        let mut c = oauth2::Client::new(ClientId::new(profile.client_id.clone()))
            .set_auth_uri(
                AuthUrl::new(format!("{login}/{}/oauth2/v2.0/authorize", profile.tenant))
                    .map_err(bad)?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{login}/{}/oauth2/v2.0/token", profile.tenant))
                    .map_err(bad)?,
            )
            .set_auth_type(AuthType::RequestBody);
        if let Some(s) = secret {
            c = c.set_client_secret(ClientSecret::new(s.expose().to_string()));
        }
        Ok(c)
    }

    fn tokens(resp: EntraTokenResponse) -> TokenSet {
        let lifetime = resp
            .expires_in()
            .unwrap_or(std::time::Duration::from_secs(3600));
        let claims = resp
            .extra_fields()
            .id_token
            .as_deref()
            .and_then(id_token_claims);
        TokenSet {
            access_token: Secret::new(resp.access_token().secret().clone()),
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1)),
            refresh_token: resp
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
            tenant_id: claims
                .as_ref()
                .and_then(|c| c.get("tid")?.as_str().map(str::to_string)),
            // The app roles the person holds in this app registration (at most a few).
            roles: claims
                .as_ref()
                .and_then(|c| c.get("roles")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .take(32)
                .collect(),
        }
    }
}

fn map_error(e: RequestTokenError<HttpError, EntraError>) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => {
            classify_aad(&r.error, &r.error_codes, &r.error_description)
        }
        RequestTokenError::Request(e) => Error::retry(format!("token endpoint unreachable: {e}")),
        RequestTokenError::Parse(_, body) => Error::retry(format!(
            "token endpoint answered something unexpected ({} bytes)",
            body.len()
        )),
        RequestTokenError::Other(s) => Error::retry(format!("token endpoint: {s}")),
    }
}

#[async_trait]
impl Identity for EntraIdentity {
    fn authorize_url(&self, profile: &ServerProfile, req: &AuthorizeRequest) -> Result<String> {
        let client = Self::client(profile, None)?.set_redirect_uri(
            RedirectUrl::new(req.redirect_uri.clone()).map_err(|e| Error::Config {
                code: "redirect-uri".into(),
                reason: e.to_string(),
            })?,
        );
        let state = req.state.expose().to_string();
        let mut auth = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(req.scopes.iter().cloned().map(Scope::new))
            .add_extra_param("code_challenge", req.pkce_challenge.clone())
            .add_extra_param("code_challenge_method", "S256")
            .add_extra_param("response_mode", "query");
        if let Some(h) = &req.login_hint {
            auth = auth.add_extra_param("login_hint", h.clone());
        }
        if let Some(p) = &req.prompt {
            auth = auth.add_extra_param("prompt", p.clone());
        }
        Ok(auth.url().0.to_string())
    }

    fn admin_consent_url(
        &self,
        profile: &ServerProfile,
        redirect_uri: &str,
        state: &Secret,
    ) -> Result<String> {
        let login = profile.cloud.endpoints().login;
        let mut url =
            oauth2::url::Url::parse(&format!("{login}/{}/v2.0/adminconsent", profile.tenant))
                .map_err(|e| Error::Config {
                    code: "profile-url".into(),
                    reason: format!("bad login URL: {e}"),
                })?;
        url.query_pairs_mut()
            .append_pair("client_id", &profile.client_id)
            .append_pair("scope", &profile.application_scope())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state.expose());
        Ok(url.to_string())
    }

    async fn exchange_code(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
        code: &str,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet> {
        let (secret, assertion) = split(credential);
        let client = Self::client(profile, secret)?.set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| Error::Config {
                code: "redirect-uri".into(),
                reason: e.to_string(),
            })?,
        );
        let mut req = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_string()));
        if let Some(a) = assertion {
            req = req
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a);
        }
        let resp = req
            .request_async(&Http(self.http.as_ref()))
            .await
            .map_err(map_error)?;
        Ok(Self::tokens(resp))
    }

    async fn refresh(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
        refresh_token: &Secret,
    ) -> Result<TokenSet> {
        let rt = RefreshToken::new(refresh_token.expose().to_string());
        let (secret, assertion) = split(credential);
        let client = Self::client(profile, secret)?;
        let mut req = client
            .exchange_refresh_token(&rt)
            .add_scopes(profile.delegated_scopes().into_iter().map(Scope::new));
        if let Some(a) = assertion {
            req = req
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a);
        }
        let resp = req
            .request_async(&Http(self.http.as_ref()))
            .await
            .map_err(map_error)?;
        Ok(Self::tokens(resp))
    }

    async fn client_credentials(
        &self,
        profile: &ServerProfile,
        credential: &ClientCredential,
    ) -> Result<TokenSet> {
        let (secret, assertion) = split(credential);
        let client = Self::client(profile, secret)?;
        let mut req = client
            .exchange_client_credentials()
            .add_scope(Scope::new(profile.application_scope()));
        if let Some(a) = assertion {
            req = req
                .add_extra_param("client_assertion_type", JWT_BEARER)
                .add_extra_param("client_assertion", a);
        }
        let resp = req
            .request_async(&Http(self.http.as_ref()))
            .await
            .map_err(map_error)?;
        Ok(Self::tokens(resp))
    }
}

/// RFC 7523's client assertion type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The secret to authenticate with, or the signed assertion to send instead.
fn split(credential: &ClientCredential) -> (Option<&Secret>, Option<String>) {
    match credential {
        ClientCredential::Secret(s) => (Some(s), None),
        ClientCredential::Assertion(a) => (None, Some(a.expose().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Answer;
    use bytes::Bytes;
    use mailbridge_core::fakes::FakeWorld;
    use mailbridge_core::ports::ByteSource;

    /// A token endpoint that answers 200 at once, sends the first byte of its body, then nothing.
    struct Trickling;

    /// The body it sends: `{`, then it waits forever.
    struct Stalled(bool);

    #[async_trait]
    impl ByteSource for Stalled {
        async fn next_piece(&mut self) -> Result<Option<Bytes>> {
            if !std::mem::replace(&mut self.0, true) {
                return Ok(Some(Bytes::from_static(b"{")));
            }
            std::future::pending().await
        }
    }

    #[async_trait]
    impl Transport for Trickling {
        async fn send(&self, _: http::Request<Vec<u8>>) -> std::result::Result<Answer, String> {
            Ok(Answer {
                status: http::StatusCode::OK,
                headers: http::HeaderMap::new(),
                body: Box::new(Stalled(false)),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_answer_that_never_ends_is_given_up_after_30_s_and_tried_again_later() {
        let entra = EntraIdentity::over(Arc::new(Trickling));
        let started = tokio::time::Instant::now();
        let refreshed = entra
            .refresh(
                &FakeWorld::profile(),
                &ClientCredential::Secret(Secret::new("client-secret")),
                &Secret::new("refresh-token"),
            )
            .await;
        let waited = started.elapsed();
        assert!(
            matches!(&refreshed, Err(Error::Retry { reason, .. }) if reason.contains("within 30 s")),
            "{refreshed:?}"
        );
        assert!(
            waited >= TOKEN_EXCHANGE_MOST && waited < TOKEN_EXCHANGE_MOST * 2,
            "{waited:?}"
        );
    }
}
