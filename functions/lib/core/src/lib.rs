//! The core of mailbridge: domain types, the ports (traits) the functions use, and the services that
//! implement each flow over those ports. Nothing here depends on AWS, HTTP or Lambda; adapters live at
//! the edge (`mailbridge-aws`, `mailbridge-embedded`, `mailbridge-graph`).

pub mod crypto;
pub mod error;
/// Test doubles of the ports, for tests and benchmarks only (feature `fakes`).
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod mime;
pub mod model;
pub mod ports;
pub mod repo;
pub mod rt;
pub mod say;
pub mod secret;
pub mod services;
pub mod state;

pub use error::{Disposition, Error, Result};
pub use say::{Lang, Say};
pub use secret::Secret;
