//! Errors that carry the decision: what the caller should do next.

use crate::say::Say;
use std::time::Duration;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A conditional write lost: someone else wrote first. Re-read and decide again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Nothing there (a record, a message deleted in the mailbox, an unknown subscription).
    #[error("not found: {0}")]
    NotFound(String),
    /// Worth trying again later; `after` is what the other side asked for (Retry-After), if anything.
    #[error("temporary failure, retry{}: {reason}", after.map(|d| format!(" after {}s", d.as_secs())).unwrap_or_default())]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Microsoft throttled us (429 / 503 with Retry-After).
    #[error("throttled by Microsoft Graph, retry after {}s", after.as_secs())]
    Throttled { after: Duration },
    /// The connection needs a person: sign in again, consent, fix the app registration.
    #[error("re-authentication required ({code}): {reason}")]
    ReauthRequired { code: String, reason: String },
    /// The mailbox cannot be reached through Graph (no licence, on-premises, soft-deleted).
    #[error("mailbox not reachable through Microsoft Graph: {0}")]
    MailboxNotEnabled(String),
    /// Access denied by Graph (permission not granted yet, application access policy, RBAC scope).
    #[error("access denied by Microsoft Graph: {0}")]
    AccessDenied(String),
    /// Bad input from a caller: say what is wrong, never retry.
    #[error("invalid request: {0}")]
    Invalid(Say),
    /// The client registration is wrong (secret expired or invalid, app not in tenant).
    #[error("configuration error ({code}): {reason}")]
    Config { code: String, reason: String },
    /// A failure that will not go away by retrying.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The delta token is no longer valid (410 Gone, `syncStateNotFound`, `resyncRequired`): the
    /// folder's sync must start over.
    #[error("delta sync state lost: {0}")]
    SyncReset(String),
    /// The storage or queue behind a port failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The mailbox is not active (not approved, disabled, or waiting for a person to sign in
    /// again): its work waits until someone acts.
    #[error("mailbox not active: {0}")]
    Inactive(String),
}

/// What to do with work that failed: the one decision that the Lambda handler, the local runner
/// and a mailbox's health all follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Finished with: acknowledged, and the reason recorded (bad input, message gone, refused).
    Done,
    /// Try again after exactly this long: the other side said so (Retry-After), or another
    /// worker holds the message for about that long.
    RetryAfter(Duration),
    /// Try again after a growing delay: a passing failure (storage, network, a conflict).
    Backoff,
    /// Keep it until a person acts (sign in again, fix the app registration, a licence, approve
    /// or enable the mailbox): retrying sooner cannot help.
    Park,
}

impl Error {
    pub fn retry(reason: impl Into<String>) -> Self {
        Error::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    pub fn storage(e: impl std::fmt::Display) -> Self {
        Error::Storage(e.to_string())
    }

    /// Bad input, in words for the person who gave it.
    pub fn invalid(why: impl Into<Say>) -> Self {
        Error::Invalid(why.into())
    }

    /// What a person should do about this error: one sentence, for pages, alerts and tests alike.
    pub fn advice(&self) -> Say {
        match self {
            Error::ReauthRequired { code, .. } => Say::SignInAgain { code: code.clone() },
            Error::Config { code, reason } => match code.as_str() {
                "AADSTS7000222" => Say::SecretExpired,
                "AADSTS7000215" => Say::SecretWrong,
                "AADSTS700016" => Say::AppNotInTenant,
                "AADSTS700027" => Say::CertificateRefused,
                "AADSTS700024" => Say::ClockSkew,
                "certificate-key" => Say::CertificateKeyUnusable {
                    detail: reason.clone(),
                },
                "no-app-permission" => Say::NoAppPermission,
                _ => Say::FixProfile {
                    detail: reason.clone(),
                },
            },
            Error::MailboxNotEnabled(_) => Say::NoExchangeMailbox { address: None },
            Error::AccessDenied(_) => Say::AccessDenied,
            Error::NotFound(what) => Say::NoSuchMailboxOrFolder { what: what.clone() },
            Error::Throttled { after } => Say::ThrottledTestLater {
                seconds: after.as_secs(),
            },
            Error::Inactive(_) => Say::NotActive,
            Error::Invalid(why) => why.clone(),
            _ => Say::TryLater,
        }
    }

    /// What to do with the work that failed with this error.
    pub fn disposition(&self) -> Disposition {
        match self {
            Error::Throttled { after } => Disposition::RetryAfter(*after),
            Error::Retry {
                after: Some(after), ..
            } => Disposition::RetryAfter(*after),
            Error::Retry { after: None, .. }
            | Error::Storage(_)
            | Error::Conflict(_)
            | Error::SyncReset(_) => Disposition::Backoff,
            Error::ReauthRequired { .. }
            | Error::MailboxNotEnabled(_)
            | Error::AccessDenied(_)
            | Error::Config { .. }
            | Error::Inactive(_) => Disposition::Park,
            Error::Invalid(_) | Error::NotFound(_) | Error::Permanent(_) => Disposition::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_one_disposition() {
        let after = Duration::from_secs(7);
        let cases = [
            (Error::Throttled { after }, Disposition::RetryAfter(after)),
            (
                Error::Retry {
                    after: Some(after),
                    reason: "held".into(),
                },
                Disposition::RetryAfter(after),
            ),
            (Error::retry("network"), Disposition::Backoff),
            (Error::Storage("s".into()), Disposition::Backoff),
            (Error::Conflict("c".into()), Disposition::Backoff),
            (
                Error::ReauthRequired {
                    code: "AADSTS50173".into(),
                    reason: "revoked".into(),
                },
                Disposition::Park,
            ),
            (Error::Inactive("disabled".into()), Disposition::Park),
            (
                Error::Config {
                    code: "AADSTS7000222".into(),
                    reason: "expired".into(),
                },
                Disposition::Park,
            ),
            (Error::NotFound("m".into()), Disposition::Done),
            (Error::Permanent("p".into()), Disposition::Done),
        ];
        for (e, d) in cases {
            assert_eq!(e.disposition(), d, "{e}");
        }
    }
}
