//! The webhook as a WebAssembly component of the `wasi:http/proxy` world, for any host of that
//! world (Wasmtime, Spin, wasmCloud, Fastly Compute…): the same intake as the Lambda function
//! (the core's [`Webhook::reply`]: the validation handshake, the clientState check, the jobs sent
//! to SQS before the answer), over the same ports, with every AWS call going out through the
//! host's `wasi:http` outgoing handler (the AWS SDK with `aws-smithy-wasm`).
//!
//! Variables, as the host passes them: `TABLE_NAME`, `QUEUE_URL`, `AWS_REGION`, the credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), `AWS_ENDPOINT_URL` (an
//! emulator) and `RUST_LOG`.
//!
//! [`Webhook::reply`]: mailbridge_core::services::webhook::Webhook::reply

use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use mailbridge_aws::AwsEnv;
use mailbridge_core::services::webhook::MAX_BODY_BYTES;
use wstd::http::{Body, Error, Method, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    mailbridge_edge::logging::init(false);
    Ok(answer(request).await)
}

/// Every request gets an answer: the component never fails the host's call.
async fn answer(request: Request<Body>) -> Response<Body> {
    if !matches!(request.uri().path(), "/notifications" | "/lifecycle") {
        return bare(StatusCode::NOT_FOUND);
    }
    if request.method() != Method::POST {
        return bare(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Ok(token) = validation_token(request.uri().query()) else {
        return bare(StatusCode::BAD_REQUEST);
    };
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read no more than the webhook takes, as API Gateway and the Lambda router do.
    let limited = Limited::new(request.into_body().into_boxed_body(), MAX_BODY_BYTES);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return bare(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => return bare(StatusCode::BAD_REQUEST),
    };
    let webhook = match AwsEnv::from_wasi(mailbridge_webhook::PORTS)
        .and_then(|env| mailbridge_webhook::webhook(&env))
    {
        Ok(webhook) => webhook,
        Err(e) => {
            // A set-up mistake: Graph retries on 5xx while the operator fixes it.
            tracing::error!(error = %e, "the webhook component is not configured");
            return bare(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let reply = webhook
        .reply(token.as_deref(), content_type.as_deref(), &body)
        .await;
    let status = StatusCode::from_u16(reply.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = Response::builder()
        .status(status)
        .header("x-content-type-options", "nosniff");
    match reply.body() {
        Some((content_type, text)) => answer
            .header("content-type", content_type)
            .body(Body::from(text.to_owned())),
        None => answer.body(Body::empty()),
    }
    .unwrap_or_else(|_| bare(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The query's `validationToken`, URL-decoded; `Err` for a query that does not decode.
fn validation_token(query: Option<&str>) -> Result<Option<String>, ()> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).map_err(drop)?;
    Ok(pairs
        .into_iter()
        .find(|(name, _)| name == "validationToken")
        .map(|(_, token)| token))
}

fn bare(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
