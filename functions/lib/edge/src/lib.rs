//! The inbound edge of the mailbridge functions, shared by the Lambda binaries and the local
//! runner: the HTTP routers of the oauth, webhook and admin functions, and the handlers of the SQS
//! and schedule events. Each takes the one service it serves; nothing here builds services.

pub mod admin;
pub mod console;
pub mod http;
pub mod lambda;
pub mod logging;
pub mod metrics;
