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

    /// Whether doing the same thing again later may succeed without anybody's help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Retry { .. } | Error::Throttled { .. } | Error::Storage(_) | Error::Conflict(_)
        )
    }

    /// The delay the other side asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Throttled { after } => Some(*after),
            Error::Retry { after, .. } => *after,
            _ => None,
        }
    }
}
