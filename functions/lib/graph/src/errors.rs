//! Entra ID and Graph errors, mapped to what mailbridge does about them.

use mailbridge_core::Error;
use std::time::Duration;

/// Maps an Entra ID token-endpoint error to a decision. Microsoft asks clients to branch on
/// `error`; the AADSTS code refines it where the remedy differs (a person signs in again, an
/// administrator fixes the app registration, or a retry).
pub fn classify_aad(error: &str, codes: &[u64], description: &str) -> Error {
    let code = codes
        .first()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| error.to_string());
    let reason = description
        .split(" Trace ID:")
        .next()
        .unwrap_or(description)
        .trim()
        .to_string();
    let config = |reason: &str| Error::Config {
        code: code.clone(),
        reason: reason.to_string(),
    };
    match codes.first().copied() {
        Some(7000222) => {
            return config("the client secret has expired: create a new one and update the profile")
        }
        Some(7000215) => {
            return config("the client secret is not valid: check the profile's secret")
        }
        Some(700016) => {
            return config(
                "the application is not registered in this tenant: check the client id and tenant",
            )
        }
        Some(7000112) => return config("the application is disabled in this tenant"),
        Some(50194) => {
            return config("the app registration is single-tenant: use the tenant id, not 'common'")
        }
        Some(90055 | 50196) => {
            return Error::Retry {
                after: Some(Duration::from_secs(60)),
                reason,
            }
        }
        _ => {}
    }
    match error {
        "invalid_grant" | "interaction_required" | "consent_required" | "login_required" => {
            Error::ReauthRequired { code, reason }
        }
        "invalid_client" | "unauthorized_client" | "invalid_scope" | "invalid_resource" => {
            config(&reason)
        }
        "temporarily_unavailable" | "server_error" => Error::Retry {
            after: None,
            reason,
        },
        _ => Error::Permanent(format!("{code}: {reason}")),
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_by_code() {
        assert!(
            matches!(classify_aad("invalid_grant", &[700082], "AADSTS700082: expired"), Error::ReauthRequired { code, .. } if code == "AADSTS700082")
        );
        assert!(matches!(
            classify_aad("invalid_grant", &[50173], "x"),
            Error::ReauthRequired { .. }
        ));
        assert!(matches!(
            classify_aad("interaction_required", &[50076], "x"),
            Error::ReauthRequired { .. }
        ));
        assert!(
            matches!(classify_aad("invalid_client", &[7000222], "x"), Error::Config { code, .. } if code == "AADSTS7000222")
        );
        assert!(matches!(
            classify_aad("invalid_client", &[7000215], "x"),
            Error::Config { .. }
        ));
        assert!(matches!(
            classify_aad("unauthorized_client", &[700016], "x"),
            Error::Config { .. }
        ));
        assert!(matches!(
            classify_aad("temporarily_unavailable", &[], "x"),
            Error::Retry { .. }
        ));
        let e = classify_aad(
            "invalid_grant",
            &[50173],
            "AADSTS50173: revoked. Trace ID: abc Correlation ID: d",
        );
        assert_eq!(
            e.to_string(),
            "re-authentication required (AADSTS50173): AADSTS50173: revoked."
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
