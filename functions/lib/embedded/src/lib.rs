//! Embedded adapters for the local runner: SQLite for state and the job queue, a directory for
//! messages, an encrypted file for secrets, certificate keys in the secret store. They implement the same ports as the AWS adapters.

mod files;
mod keys;
mod sqlite;

pub use files::{FileBlobStore, FileSecrets};
pub use keys::SecretStoreKeys;
pub use sqlite::SqliteDb;
