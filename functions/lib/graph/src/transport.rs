//! How requests to Entra ID and Graph leave: through reqwest natively (feature `native`), through
//! the host's `wasi:http` outgoing handler in a WebAssembly component (feature `wasi`). Both give
//! the answer's head at once and its body piece by piece, so that a large `$value` streams.

use async_trait::async_trait;
use bytes::Bytes;
use mailbridge_core::ports::ByteSource;
use mailbridge_core::{Error, Result};

/// An answer's status and headers, and its body to read.
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Box<dyn ByteSource>,
}

impl Answer {
    /// The length the answer announces, if it does.
    pub fn content_length(&self) -> Option<u64> {
        self.headers
            .get(http::header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(piece) = self.body.next_piece().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

/// Sends a request and gives its answer; `Err` when none came (unreachable, refused, no head in
/// time), in words that name no header (the bearer token is one).
#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, request: http::Request<Vec<u8>>) -> std::result::Result<Answer, String>;
}

/// An answer cut short while its body was read: the call is worth another try.
fn cut_short(e: impl std::fmt::Display) -> Error {
    Error::retry(format!("answer cut short: {e}"))
}

#[cfg(feature = "native")]
mod native {
    use super::*;

    /// reqwest's client, as built by [`crate::http_client_trusting`] (its timeouts and its TLS).
    #[async_trait]
    impl Transport for reqwest::Client {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> std::result::Result<Answer, String> {
            let request = reqwest::Request::try_from(request).map_err(|e| e.to_string())?;
            let resp = self.execute(request).await.map_err(|e| e.to_string())?;
            Ok(Answer {
                status: resp.status(),
                headers: resp.headers().clone(),
                body: Box::new(Pieces(resp)),
            })
        }
    }

    struct Pieces(reqwest::Response);

    #[async_trait]
    impl ByteSource for Pieces {
        async fn next_piece(&mut self) -> Result<Option<Bytes>> {
            self.0.chunk().await.map_err(cut_short)
        }
    }
}

#[cfg(feature = "wasi")]
pub use wasi::WasiHttp;

#[cfg(feature = "wasi")]
mod wasi {
    use super::*;
    use std::time::Duration;
    use wstd::http::body::util::combinators::UnsyncBoxBody;
    use wstd::http::{Body, BodyExt as _};

    /// The host's `wasi:http` outgoing handler, with the native client's limits: 5 s to connect,
    /// 30 s for the first byte and between two bytes. The host's TLS decides which certificates
    /// are trusted, and nothing follows a redirect (a token never goes elsewhere).
    pub struct WasiHttp(wstd::http::Client);

    impl Default for WasiHttp {
        fn default() -> Self {
            let mut client = wstd::http::Client::new();
            client.set_connect_timeout(Duration::from_secs(5));
            client.set_first_byte_timeout(Duration::from_secs(30));
            client.set_between_bytes_timeout(Duration::from_secs(30));
            Self(client)
        }
    }

    #[async_trait]
    impl Transport for WasiHttp {
        async fn send(
            &self,
            mut request: http::Request<Vec<u8>>,
        ) -> std::result::Result<Answer, String> {
            request
                .headers_mut()
                .entry(http::header::USER_AGENT)
                .or_insert(http::HeaderValue::from_static(concat!(
                    "mailbridge/",
                    env!("CARGO_PKG_VERSION")
                )));
            let resp = self.0.send(request).await.map_err(|e| e.to_string())?;
            let (head, body) = resp.into_parts();
            Ok(Answer {
                status: head.status,
                headers: head.headers,
                body: Box::new(Pieces(Body::into_boxed_body(body))),
            })
        }
    }

    struct Pieces(UnsyncBoxBody<Bytes, wstd::http::Error>);

    #[async_trait]
    impl ByteSource for Pieces {
        async fn next_piece(&mut self) -> Result<Option<Bytes>> {
            loop {
                match self.0.frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(cut_short(e)),
                    // Trailers carry no bytes of the body.
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => return Ok(Some(data)),
                        Err(_) => continue,
                    },
                }
            }
        }
    }
}
