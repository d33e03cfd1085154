//! The Microsoft side of mailbridge: Entra ID v2.0 through the `oauth2` crate and a thin Graph v1.0
//! client over reqwest, with every base URL taken from the server profile (national clouds, the
//! simulator). Errors are mapped here to the core's decisions.

mod errors;
mod graph;
mod identity;

pub use errors::{classify_aad, parse_retry_after};
pub use graph::GraphClient;
pub use identity::EntraIdentity;

/// The HTTP client both use: no redirects (a token or code never follows a redirect), bounded
/// connect time, TLS from rustls.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(300))
        .user_agent(concat!("mailbridge/", env!("CARGO_PKG_VERSION")))
        .build()
}
