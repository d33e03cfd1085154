//! The Microsoft side of mailbridge: Entra ID v2.0 through the `oauth2` crate and a thin Graph v1.0
//! client, with every base URL taken from the server profile (national clouds, the simulator).
//! Errors are mapped here to the core's decisions. Requests leave through a [`Transport`]: reqwest
//! natively (feature `native`, the default), the host's `wasi:http` in a WebAssembly component
//! (feature `wasi`).

mod errors;
mod graph;
mod identity;
mod transport;

pub use errors::{classify_aad, parse_retry_after};
pub use graph::GraphClient;
pub use identity::EntraIdentity;
#[cfg(feature = "wasi")]
pub use transport::WasiHttp;
pub use transport::{Answer, Transport};

/// Names a PEM file of extra CA certificates to trust (a TLS-intercepting proxy, or the
/// simulator's generated CA).
pub const EXTRA_CA_ENV: &str = "MAILBRIDGE_EXTRA_CA_FILE";

#[cfg(feature = "native")]
/// The HTTP client both use: no redirects (a token or code never follows a redirect), bounded
/// connect time, TLS from rustls with the platform's roots, plus the CA file that
/// `MAILBRIDGE_EXTRA_CA_FILE` names, if any.
pub fn http_client() -> Result<reqwest::Client, String> {
    http_client_trusting(extra_ca_from_env()?.as_deref())
}

#[cfg(feature = "native")]
/// The extra CA certificates that `MAILBRIDGE_EXTRA_CA_FILE` names, if it is set.
pub fn extra_ca_from_env() -> Result<Option<String>, String> {
    match std::env::var_os(EXTRA_CA_ENV) {
        Some(path) => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| format!("{EXTRA_CA_ENV} ({}): {e}", path.to_string_lossy())),
        None => Ok(None),
    }
}

#[cfg(feature = "native")]
/// [`http_client`] that also trusts the CA certificates of `extra_ca_pem`.
pub fn http_client_trusting(extra_ca_pem: Option<&str>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(300))
        // A connection that stops sending (a hung Graph front end) fails after this long without
        // a byte, and the job is retried; a large message still has the whole 300 s.
        .read_timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("mailbridge/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("extra CA certificates: {e}"))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| format!("HTTP client: {e}"))
}

#[cfg(feature = "native")]
/// Entra ID and Graph over one HTTP client (see [`http_client_trusting`]), as the ports the
/// mailbox services take.
pub fn microsoft(extra_ca_pem: Option<&str>) -> Result<mailbridge_core::ports::Microsoft, String> {
    Ok(microsoft_over(http_client_trusting(extra_ca_pem)?))
}

#[cfg(feature = "native")]
/// Entra ID and Graph over a client the caller already has (built by [`http_client_trusting`]).
pub fn microsoft_over(http: reqwest::Client) -> mailbridge_core::ports::Microsoft {
    microsoft_through(std::sync::Arc::new(http))
}

/// Entra ID and Graph over one [`Transport`] (a component's [`WasiHttp`], say).
pub fn microsoft_through(http: std::sync::Arc<dyn Transport>) -> mailbridge_core::ports::Microsoft {
    (
        std::sync::Arc::new(EntraIdentity::over(http.clone())),
        std::sync::Arc::new(GraphClient::over(http)),
    )
}
