//! Errors that carry the decision: what the caller should do next.

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
    Invalid(String),
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

    /// What a person should do about this error: one sentence, for tests and alerts alike.
    pub fn what_to_do(&self) -> String {
        let e = self;
        match e {
            Error::ReauthRequired { code, .. } => format!(
                "Sign in again with this mailbox's account to reconnect it ({code})."
            ),
            Error::Config { code, reason } => match code.as_str() {
                "AADSTS7000222" => "The profile's client secret has expired: create a new one in the app registration, store it in the secret store and update the profile.".into(),
                "AADSTS7000215" => "The profile's client secret is wrong: store the secret's value (not its id) in the secret store.".into(),
                "AADSTS700016" => "The app registration is not known in this tenant, or its consent was withdrawn: check the profile's client id and tenant, and have an administrator grant consent again.".into(),
                "AADSTS700027" => "Entra ID refused the certificate: upload the profile's certificate to the app registration (Certificates & secrets), or give the profile the certificate registered there with its key; an expired certificate must be replaced.".into(),
                "AADSTS700024" => "Entra ID found the client assertion outside its time window: check this server's clock.".into(),
                "certificate-key" => format!("The certificate's private key cannot be used: {reason}"),
                "no-app-permission" => "No application permission of the app registration is granted in this tenant: an administrator must grant consent (again) from mailbridge's admin-consent link.".into(),
                _ => format!("Fix the server profile: {reason}"),
            },
            Error::MailboxNotEnabled(_) => "Microsoft Graph cannot reach this mailbox: give the user an Exchange Online licence (or move the mailbox to Exchange Online), then test again.".into(),
            Error::AccessDenied(_) => "Microsoft Graph denied access to this mailbox: for a shared mailbox, give the signed-in user Full Access to it; for an organisation-wide profile, check the administrator's consent and the app's Exchange access policy or RBAC scope.".into(),
            Error::NotFound(what) => format!("Microsoft Graph found no such mailbox or folder ({what}): check the address, or choose the folders again."),
            Error::Throttled { after } => format!("Microsoft Graph is throttling this mailbox: test again in {} s.", after.as_secs()),
            Error::Inactive(why) => format!("The mailbox is not active ({why})."),
            _ => "A temporary failure: try again in a few minutes.".into(),
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
