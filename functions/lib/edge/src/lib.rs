//! The inbound edge of the mailbridge functions, shared by the Lambda binaries and the local
//! runner: the HTTP routers of the oauth, webhook and admin functions, and the handlers of the SQS
//! and schedule events. Each takes the one service it serves; nothing here builds services.
//! Without the `http` feature, only the log format, for the WebAssembly components.

#[cfg(feature = "http")]
pub mod admin;
#[cfg(feature = "http")]
pub mod console;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
pub mod lambda;
pub mod logging;
pub mod metrics;
