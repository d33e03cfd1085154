//! Conformance: a third-party OpenID Connect client (the `openidconnect` crate, with its own
//! discovery parsing, ID token and JWKS validation) drives the simulator over HTTPS through
//! discovery, authorize, code exchange and refresh, trusting only the simulator's generated CA.

mod common;

use common::{REDIRECT, T};
use m365_sim::Options;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

#[tokio::test]
async fn openidconnect_crate_discovers_signs_in_exchanges_and_refreshes_over_https() {
    let t = T::with(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    assert!(t.sim.base_url().starts_with("https://"));
    let http = {
        let client = t.http.clone();
        move |req: openidconnect::HttpRequest| {
            let client = client.clone();
            async move {
                let (parts, body) = req.into_parts();
                let resp = client
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let mut out = http::Response::builder().status(resp.status());
                for (k, v) in resp.headers() {
                    out = out.header(k, v);
                }
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>(out.body(body.to_vec()).expect("response"))
            }
        }
    };
    // A client that does not trust the generated CA is refused.
    let untrusting = reqwest::Client::new();
    assert!(untrusting.get(t.sim.base_url()).send().await.is_err());

    let issuer = IssuerUrl::new(format!("{}/{}/v2.0", t.sim.base_url(), t.demo.tenant_id)).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(t.demo.client_id.clone()),
        Some(ClientSecret::new(t.demo.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .add_scope(Scope::new("https://graph.microsoft.com/Mail.Read".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The simulated browser signs in and consents; the redirect carries the code.
    let resp = t.http.get(url.as_str()).send().await.unwrap();
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(&q["state"], csrf.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an id_token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("a valid, signed id_token");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some(t.demo.user_upn.as_str())
    );
    let rt = tokens.refresh_token().expect("a refresh token");
    let refreshed = client
        .exchange_refresh_token(rt)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(refreshed.refresh_token().unwrap().secret(), rt.secret());
    // The refreshed access token works on Graph.
    let (s, me) = t.get(refreshed.access_token().secret(), "/me").await;
    assert_eq!(s, 200);
    assert_eq!(me["userPrincipalName"], t.demo.user_upn);
}
