//! Embedded adapters for the local runner: SQLite for state and the job queue, a directory for
//! messages, an encrypted file for secrets. They implement the same ports as the AWS adapters.

mod files;
mod sqlite;

pub use files::{FileBlobStore, FileSecrets};
pub use sqlite::SqliteDb;
