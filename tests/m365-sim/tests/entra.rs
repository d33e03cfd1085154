//! Entra ID v2.0 as the simulator speaks it: discovery, JWKS, RS256 tokens and their claims, the
//! authorize/consent step, admin consent, every grant, and every error in Entra's shape.

mod common;

use common::*;
use m365_sim::jwt::peek;
use m365_sim::world::{ConsentAnswer, MailboxKind, SignIn};
use m365_sim::{AppSpec, Options};
use serde_json::Value;

#[tokio::test]
async fn discovery_and_jwks_for_a_tenant_and_the_aliases() {
    let t = &T::new().await;
    let base = t.sim.base_url().to_string();
    for tenant in [t.demo.tenant_id.as_str(), "contoso.example"] {
        let d: Value = t
            .http
            .get(t.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], format!("{base}/{}/v2.0", t.demo.tenant_id));
        assert_eq!(
            d["token_endpoint"],
            format!("{base}/{tenant}/oauth2/v2.0/token")
        );
        assert_eq!(d["id_token_signing_alg_values_supported"][0], "RS256");
        let jwks: Value = t
            .http
            .get(d["jwks_uri"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert!(jwks["keys"][0]["kid"].is_string());
    }
    for alias in ["common", "organizations", "consumers"] {
        let d: Value = t
            .http
            .get(t.url(&format!("/{alias}/v2.0/.well-known/openid-configuration")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(d["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    }
    let resp = t
        .http
        .get(t.url("/nowhere.example/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_aad(&resp.json().await.unwrap(), "invalid_tenant", 90002);
}

#[tokio::test]
async fn code_flow_gives_signed_tokens_with_the_usual_claims() {
    let t = &T::new().await;
    let v = t.user_tokens(&t.demo.user_upn, SCOPES).await;
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert!(v["scope"]
        .as_str()
        .unwrap()
        .contains("https://graph.microsoft.com/Mail.ReadWrite"));
    let at = peek(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(at["aud"], "https://graph.microsoft.com");
    assert_eq!(at["tid"], t.demo.tenant_id);
    assert_eq!(at["oid"], t.demo.user_id);
    assert_eq!(at["appid"], t.demo.client_id);
    assert_eq!(at["preferred_username"], t.demo.user_upn);
    assert!(at["scp"].as_str().unwrap().contains("Mail.ReadWrite"));
    assert!(at["exp"].as_i64().unwrap() > at["iat"].as_i64().unwrap());
    assert!(at["nbf"].is_i64());
    assert_eq!(
        at["iss"],
        format!("https://sts.windows.net/{}/", t.demo.tenant_id)
    );
    let id = peek(v["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["aud"], t.demo.client_id);
    assert_eq!(id["tid"], t.demo.tenant_id);
    assert_eq!(id["nonce"], "n1");
    assert_eq!(id["ver"], "2.0");
    assert_eq!(
        id["iss"],
        format!("{}/{}/v2.0", t.sim.base_url(), t.demo.tenant_id)
    );
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v["id_token"].as_str().unwrap().split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert!(v["refresh_token"].is_string());
}

#[tokio::test]
async fn codes_are_single_use_and_bound_to_pkce_and_redirect_uri() {
    let t = &T::new().await;
    let (code, verifier) = t.code(&t.demo.user_upn, SCOPES).await;
    let form = |c: &str, v: &str, r: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("client_id".into(), t.demo.client_id.clone()),
            ("client_secret".into(), t.demo.client_secret.clone()),
            ("code".into(), c.into()),
            ("redirect_uri".into(), r.into()),
            ("code_verifier".into(), v.into()),
        ]
    };
    let send = |f: Vec<(String, String)>| async move {
        let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        t.token(&t.demo.tenant_id, &refs).await
    };
    let (s, v) = send(form(&code, "wrong-verifier", REDIRECT)).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 501481);
    let (s, v) = send(form(&code, &verifier, "http://localhost:9/other")).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 50148);
    let (s, _) = send(form(&code, &verifier, REDIRECT)).await;
    assert_eq!(s, 200);
    let (s, v) = send(form(&code, &verifier, REDIRECT)).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 54005);
    let (s, v) = send(form("not-a-code", &verifier, REDIRECT)).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 9002313);

    // A redirect URI that is not registered exactly gets Entra's error page, not a redirect.
    let err = t
        .authorize(
            &t.demo.tenant_id,
            &[
                ("client_id", &t.demo.client_id),
                ("response_type", "code"),
                ("redirect_uri", "http://localhost:9/cb/"),
                ("scope", SCOPES),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.0, 400);
    assert!(err.1.contains("AADSTS50011"));
}

#[tokio::test]
async fn refresh_tokens_rotate_old_ones_keep_working_until_revoked() {
    let t = &T::new().await;
    let v = t.user_tokens(&t.demo.user_upn, SCOPES).await;
    let rt1 = v["refresh_token"].as_str().unwrap();
    let (s, v2) = t.refresh(rt1).await;
    assert_eq!(s, 200);
    let rt2 = v2["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    assert!(v2["id_token"].is_string());
    let (s, _) = t.refresh(rt1).await;
    assert_eq!(s, 200, "the old refresh token still works");
    t.sim.revoke(&t.demo.user_upn);
    for rt in [rt1, rt2] {
        let (s, v) = t.refresh(rt).await;
        assert_eq!(s, 400);
        assert_aad(&v, "invalid_grant", 50173);
    }
    // 90 days without use.
    t.sim
        .set_user(&t.demo.user_upn, |u| u.revoked_before = None);
    let v = t.user_tokens(&t.demo.user_upn, SCOPES).await;
    let rt = v["refresh_token"].as_str().unwrap();
    t.sim.world().refresh_tokens.get_mut(rt).unwrap().issued_at =
        chrono::Utc::now() - chrono::Duration::days(91);
    let (s, v) = t.refresh(rt).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 700082);
}

#[tokio::test]
async fn consent_can_be_declined_required_or_withdrawn() {
    let t = &T::new().await;
    let base = |prompt: &'static str| {
        vec![
            ("client_id", t.demo.client_id.clone()),
            ("response_type", "code".into()),
            ("redirect_uri", REDIRECT.into()),
            ("scope", SCOPES.into()),
            ("state", "st".into()),
            ("prompt", prompt.into()),
        ]
    };
    let auth = |p: Vec<(&'static str, String)>| async move {
        let refs: Vec<(&str, &str)> = p.iter().map(|(a, b)| (*a, b.as_str())).collect();
        t.authorize(&t.demo.tenant_id, &refs).await.unwrap()
    };
    // Silent sign-in before any consent: consent_required.
    let q = auth(base("none")).await;
    assert_eq!(q["error"], "consent_required");
    assert!(q["error_description"].starts_with("AADSTS65001:"));
    assert_eq!(q["state"], "st");
    // The user declines at the prompt.
    t.sim
        .set_user(&t.demo.user_upn, |u| u.consent = ConsentAnswer::Decline);
    let q = auth(base("select_account")).await;
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS65004:"));
    // Accepts: then a silent sign-in works.
    t.sim
        .set_user(&t.demo.user_upn, |u| u.consent = ConsentAnswer::Accept);
    assert!(auth(base("consent")).await.contains_key("code"));
    assert!(auth(base("none")).await.contains_key("code"));
    // Consent withdrawn: refreshing fails with 65001.
    let v = t.user_tokens(&t.demo.user_upn, SCOPES).await;
    t.sim.set_user(&t.demo.user_upn, |u| u.grants.clear());
    let (s, v) = t.refresh(v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_grant", 65001);
    assert_eq!(v["suberror"], "consent_required");
    // No user signed in and no hint: login_required.
    t.sim.sign_in_as(None);
    let q = auth(base("none")).await;
    assert_eq!(q["error"], "login_required");
}

#[tokio::test]
async fn sign_in_states_surface_as_entra_errors() {
    let t = &T::new().await;
    let rt = t.user_tokens(&t.demo.user_upn, SCOPES).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    for (state, code) in [
        (SignIn::MfaRequired, 50076),
        (SignIn::Blocked, 53003),
        (SignIn::Disabled, 50057),
    ] {
        t.sim.set_user(&t.demo.user_upn, |u| u.sign_in = state);
        let (s, v) = t.refresh(&rt).await;
        assert_eq!(s, 400);
        assert_aad(&v, "invalid_grant", code);
    }
    t.sim.set_user(&t.demo.user_upn, |u| u.sign_in = SignIn::Ok);
    assert_eq!(t.refresh(&rt).await.0, 200);
    // A shared mailbox cannot sign in.
    let shared = t.sim.add_mailbox(
        &t.demo.tenant_id,
        "info@contoso.example",
        "Info",
        MailboxKind::Shared,
    );
    let q = t
        .authorize(
            &t.demo.tenant_id,
            &[
                ("client_id", t.demo.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", SCOPES),
                ("login_hint", &shared),
            ],
        )
        .await
        .unwrap();
    assert!(q["error_description"].starts_with("AADSTS50057:"));
}

#[tokio::test]
async fn client_authentication_and_request_errors() {
    let t = &T::new().await;
    let tid = t.demo.tenant_id.clone();
    let cc = |id: &str, secret: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".into(), id.into()),
            ("client_secret".into(), secret.into()),
            (
                "scope".into(),
                "https://graph.microsoft.com/.default".into(),
            ),
        ]
    };
    let send = |tenant: String, f: Vec<(String, String)>| async move {
        let refs: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        t.token(&tenant, &refs).await
    };
    let (s, v) = send(tid.clone(), cc(&t.demo.client_id, "wrong")).await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 7000215);
    let (s, v) = send(tid.clone(), cc("00000000-0000-0000-0000-000000000000", "x")).await;
    assert_eq!(s, 400);
    assert_aad(&v, "unauthorized_client", 700016);
    let (s, v) = send(
        tid.clone(),
        vec![("client_id".into(), t.demo.client_id.clone())],
    )
    .await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_request", 900144);
    let mut bad_scope = cc(&t.demo.client_id, &t.demo.client_secret);
    bad_scope[3].1 = "https://graph.microsoft.com/Mail.Read".into();
    let (s, v) = send(tid.clone(), bad_scope).await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_scope", 1002012);
    let (s, v) = send(
        "common".into(),
        cc(&t.demo.client_id, &t.demo.client_secret),
    )
    .await;
    assert_eq!(s, 400);
    assert_aad(&v, "invalid_request", 50059);
    let mut bad_grant = cc(&t.demo.client_id, &t.demo.client_secret);
    bad_grant[0].1 = "password".into();
    let (s, v) = send(tid.clone(), bad_grant).await;
    assert_eq!(s, 400);
    assert_aad(&v, "unsupported_grant_type", 70003);
    // A new secret works; once expired, 7000222.
    let fresh = t.sim.add_secret(&t.demo.client_id, 30).unwrap();
    assert_eq!(
        send(tid.clone(), cc(&t.demo.client_id, &fresh)).await.0,
        200
    );
    t.sim.expire_secrets(&t.demo.client_id);
    let (s, v) = send(tid.clone(), cc(&t.demo.client_id, &fresh)).await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 7000222);
}

#[tokio::test]
async fn client_credentials_need_admin_consent_in_the_tenant() {
    let t = &T::new().await;
    // The home tenant without admin consent: a token, but no roles.
    let (s, v) = t.app_token(&t.demo.tenant_id).await;
    assert_eq!(s, 200);
    let claims = peek(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["idtyp"], "app");
    assert!(claims.get("roles").is_none());
    assert!(v.get("refresh_token").is_none());
    // Another tenant: the app is not there until its admin consents.
    let other = t.sim.add_tenant("fabrikam.example");
    let admin = t
        .sim
        .add_mailbox(&other, "admin@fabrikam.example", "Admin", MailboxKind::User);
    let (s, v) = t.app_token(&other).await;
    assert_eq!(s, 400);
    assert_aad(&v, "unauthorized_client", 700016);
    // The admin consent endpoint.
    t.sim.sign_in_as(Some(&admin));
    let resp = t
        .http
        .get(t.url("/organizations/v2.0/adminconsent"))
        .query(&[
            ("client_id", t.demo.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "a1"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], other);
    assert_eq!(q["state"], "a1");
    let (s, v) = t.app_token("fabrikam.example").await;
    assert_eq!(s, 200);
    let claims = peek(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["tid"], other);
    assert_eq!(claims["roles"][0], "Mail.Read");
    // An admin of another tenant cannot consent for this one.
    let resp = t
        .http
        .get(t.url(&format!("/{}/adminconsent", t.demo.tenant_id)))
        .query(&[
            ("client_id", t.demo.client_id.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("error=access_denied") && loc.contains("AADSTS90094"));
}

#[tokio::test]
async fn single_tenant_apps_and_other_tenants_users() {
    let t = &T::new().await;
    let (single, _) = t.sim.add_app(
        &t.demo.tenant_id,
        AppSpec {
            name: "single".into(),
            redirect_uris: vec![REDIRECT.into()],
            multi_tenant: false,
            ..AppSpec::default()
        },
    );
    let other = t.sim.add_tenant("fabrikam.example");
    let bob = t
        .sim
        .add_mailbox(&other, "bob@fabrikam.example", "Bob", MailboxKind::User);
    let params = |tenant: &str, client: &str| {
        vec![
            ("client_id".to_string(), client.to_string()),
            ("response_type".into(), "code".into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("scope".into(), SCOPES.into()),
            ("login_hint".into(), bob.clone()),
            ("tenant".into(), tenant.into()),
        ]
    };
    let go = |p: Vec<(String, String)>| async move {
        let tenant = p[5].1.clone();
        let refs: Vec<(&str, &str)> = p[..5]
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        t.authorize(&tenant, &refs).await.unwrap()
    };
    let q = go(params("common", &single)).await;
    assert!(q["error_description"].starts_with("AADSTS50194:"), "{q:?}");
    let q = go(params(&t.demo.tenant_id, &t.demo.client_id)).await;
    assert!(q["error_description"].starts_with("AADSTS50020:"), "{q:?}");
    let q = go(params("consumers", &t.demo.client_id)).await;
    assert!(q["error_description"].starts_with("AADSTS50020:"), "{q:?}");
    let q = go(params("organizations", &t.demo.client_id)).await;
    assert!(q.contains_key("code"), "{q:?}");
}

#[tokio::test]
async fn a_national_cloud_takes_only_its_own_resource() {
    let t = T::with(Options {
        resource: "https://graph.microsoft.us".into(),
        cloud_instance: "microsoftonline.us".into(),
        ..Options::default()
    })
    .await;
    // Scopes for the global Graph are refused in this cloud.
    let q = t
        .authorize(
            &t.demo.tenant_id,
            &[
                ("client_id", t.demo.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", SCOPES),
            ],
        )
        .await
        .unwrap();
    assert_eq!(q["error"], "invalid_resource");
    assert!(q["error_description"].starts_with("AADSTS500011:"));
    let v = t
        .user_tokens(
            &t.demo.user_upn,
            "openid offline_access https://graph.microsoft.us/Mail.Read",
        )
        .await;
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(peek(token).unwrap()["aud"], "https://graph.microsoft.us");
    assert_eq!(t.get(token, "/me").await.0, 200);
    // A token of the global cloud is not accepted here.
    let global = T::new().await;
    let foreign = global.user_token(&global.demo.user_upn).await;
    let (s, v) = t.get(&foreign, "/me").await;
    assert_eq!(s, 401);
    assert_graph_error(&v, "InvalidAuthenticationToken");
}

/// A client assertion for the demo app: signed by `key` (PKCS#8), naming `cert` (DER) by its
/// thumbprints, for `aud`, ending at `exp`.
fn assertion(t: &T, key: &rcgen::KeyPair, cert: &[u8], aud: &str, exp: i64) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT",
        "x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(cert))});
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"aud": aud, "iss": t.demo.client_id, "sub": t.demo.client_id,
        "jti": "j1", "nbf": now, "iat": now, "exp": exp});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key.serialize_der()).unwrap();
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A certificate (RSA) ending `days` from now, and its key.
fn certificate(days: i64) -> (rcgen::Certificate, rcgen::KeyPair) {
    use chrono::Datelike;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["app".to_string()]).unwrap();
    let end = chrono::Utc::now() + chrono::Duration::days(days);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    (params.self_signed(&key).unwrap(), key)
}

#[tokio::test]
async fn client_assertions_are_checked_against_the_apps_certificates() {
    let t = &T::new().await;
    assert!(t.sim.admin_consent(&t.demo.tenant_id, &t.demo.client_id));
    let (cert, key) = certificate(365);
    let aud = t.url(&format!("/{}/oauth2/v2.0/token", t.demo.tenant_id));
    let exp = chrono::Utc::now().timestamp() + 600;
    let ask = |jwt: String| async move {
        t.token(
            &t.demo.tenant_id,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &t.demo.client_id),
                ("scope", "https://graph.microsoft.com/.default"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &jwt),
            ],
        )
        .await
    };
    // Not registered yet: the key was not found.
    let (s, v) = ask(assertion(t, &key, cert.der(), &aud, exp)).await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 700027);
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .contains("not registered on application"));
    // Registered: a token with the app's roles.
    assert!(t.sim.add_certificate(&t.demo.client_id, &cert.pem()));
    let (s, v) = ask(assertion(t, &key, cert.der(), &aud, exp)).await;
    assert_eq!(s, 200, "{v}");
    let claims = peek(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["roles"][0], "Mail.Read");
    // Signed by another key in the registered certificate's name.
    let (_, other_key) = certificate(365);
    let (s, v) = ask(assertion(t, &other_key, cert.der(), &aud, exp)).await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 700027);
    assert!(v["error_description"]
        .as_str()
        .unwrap()
        .contains("signature validation"));
    // Another audience, or past its end.
    let (s, v) = ask(assertion(
        t,
        &key,
        cert.der(),
        "https://elsewhere/token",
        exp,
    ))
    .await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 700027);
    let (_, v) = ask(assertion(t, &key, cert.der(), &aud, exp - 1200)).await;
    assert_aad(&v, "invalid_client", 700024);
    // A registered certificate past its end: the key used is expired.
    let (old, old_key) = certificate(-2);
    assert!(t.sim.add_certificate(&t.demo.client_id, &old.pem()));
    let (s, v) = ask(assertion(t, &old_key, old.der(), &aud, exp)).await;
    assert_eq!(s, 401);
    assert_aad(&v, "invalid_client", 700027);
    assert!(v["error_description"].as_str().unwrap().contains("expired"));
}
