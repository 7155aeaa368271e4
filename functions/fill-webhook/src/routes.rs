use std::sync::Arc;
use std::time::Duration;

use app::fill_queue::{FillQueue, QueueError};
use app::Clock;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;

use crate::payload::{self, Parsed, MAX_BODY_BYTES};
use crate::problem::{problem_type, Problem};
use crate::secrets::{KeysUnavailable, SigningKeys};
use crate::signature::{SignatureError, SignedHeaders, HEADER_ID, MAX_ID_LEN};

/// Where the exchange delivers its webhooks.
pub const WEBHOOK_PATH: &str = "/webhooks/exchange";

struct AppState<Q, C, K> {
    queue: Q,
    clock: C,
    keys: K,
    tolerance_seconds: u64,
}

/// The body of a `2xx`: what became of the webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// `queued` (`202`), `ignored` (`200`, a status that is not final), or
    /// `set_aside` (`202`, signed but unreadable: kept for an operator;
    /// sending it again will not help).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One variant per way a delivery is refused; each maps to one status.
#[derive(Debug, thiserror::Error)]
enum WebhookError {
    #[error("body over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("body unreadable: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Unauthenticated(#[from] SignatureError),
    #[error(transparent)]
    NoSecret(#[from] KeysUnavailable),
    #[error(transparent)]
    Unavailable(#[from] QueueError),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        match self {
            WebhookError::TooLarge => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                problem_type::INVALID_REQUEST,
                "Payload too large",
                format!("the body may hold at most {MAX_BODY_BYTES} bytes"),
            ),
            WebhookError::Unreadable(detail) => Problem::new(
                StatusCode::BAD_REQUEST,
                problem_type::INVALID_REQUEST,
                "Invalid request",
                detail,
            ),
            WebhookError::Unauthenticated(error) => Problem::new(
                StatusCode::UNAUTHORIZED,
                problem_type::INVALID_SIGNATURE,
                "Invalid signature",
                error.to_string(),
            ),
            // The causes are logged; the exchange only needs to know to retry.
            WebhookError::NoSecret(_) | WebhookError::Unavailable(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                problem_type::UNAVAILABLE,
                "Temporarily unavailable",
                "not accepted; deliver again later",
            ),
        }
        .into_response()
    }
}

/// The webhook route over `queue`, ready for `lambda_http::run` or a TCP
/// listener. `keys` are the signing secrets (any of them may sign: rotation);
/// `tolerance` is how far the sender's timestamp may be from `clock`,
/// either way.
pub fn router<Q: FillQueue + 'static, C: Clock + 'static, K: SigningKeys>(
    queue: Q,
    clock: C,
    keys: K,
    tolerance: Duration,
) -> Router {
    let state = Arc::new(AppState {
        queue,
        clock,
        keys,
        tolerance_seconds: tolerance.as_secs(),
    });
    Router::new()
        .route(WEBHOOK_PATH, post(receive::<Q, C, K>))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                problem_type::NOT_FOUND,
                "Not found",
                "no such route",
            )
        })
        .with_state(state)
}

/// Verify, parse, queue; acknowledge only what the queue accepted, so the
/// exchange retries everything else. Nothing else is called on this path.
#[tracing::instrument(skip_all, fields(webhook_id = Empty, client_order_id = Empty))]
async fn receive<Q: FillQueue, C: Clock, K: SigningKeys>(
    State(state): State<Arc<AppState<Q, C, K>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WebhookError> {
    let result = handle(&state, &headers, body).await;
    match &result {
        Ok(response) => tracing::info!(status = response.status().as_u16(), "webhook accepted"),
        Err(WebhookError::Unauthenticated(error)) => {
            // The id is unauthenticated input: log it only when it is small.
            let claimed_id = headers
                .get(HEADER_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|id| id.len() <= MAX_ID_LEN);
            tracing::warn!(claimed_webhook_id = claimed_id, %error, "webhook refused: signature");
        }
        Err(error @ (WebhookError::Unavailable(_) | WebhookError::NoSecret(_))) => {
            tracing::error!(%error, "webhook not accepted: deliver again later")
        }
        Err(error) => tracing::warn!(%error, "webhook refused"),
    }
    result
}

/// A declared `Content-Length` over the limit: refused unread.
fn declared_too_large(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

/// The body, read up to the limit (a body without a declared length, or
/// longer than it declared, is cut off there).
async fn read_body(body: Body) -> Result<Bytes, WebhookError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let over_limit = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            if over_limit {
                WebhookError::TooLarge
            } else {
                WebhookError::Unreadable(error.to_string())
            }
        })
}

/// Cheapest refusals first: an oversized or unsigned delivery (or one whose
/// timestamp is off) is refused before its body is read, a secret is looked
/// up or anything is queued.
async fn handle<Q: FillQueue, C: Clock, K: SigningKeys>(
    state: &AppState<Q, C, K>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, WebhookError> {
    if declared_too_large(headers) {
        return Err(WebhookError::TooLarge);
    }
    let now_seconds = state.clock.now_ms() / 1000;
    let checked =
        SignedHeaders::from_headers(headers)?.check(now_seconds, state.tolerance_seconds)?;
    let body = read_body(body).await?;
    let secrets = state.keys.current().await?;
    let verified = checked.verify(&secrets, &body)?;
    let span = tracing::Span::current();
    span.record("webhook_id", verified.webhook_id.as_str());

    let report = match payload::parse(&body) {
        Ok(Parsed::Report(report)) => report,
        Ok(Parsed::NotFinal {
            client_order_id,
            status,
        }) => {
            span.record("client_order_id", client_order_id.as_str());
            tracing::debug!(?status, "status is not final; nothing to queue");
            return Ok(accepted(StatusCode::OK, "ignored"));
        }
        Err(error) => {
            // Signed by the exchange yet unreadable: retrying will not help.
            // It is kept where an operator looks (once per webhook id: the
            // dead-letter queue drops a retry it took in the last five
            // minutes), and the exchange is told it was received, so it
            // stops retrying it.
            let reason = error.to_string();
            state
                .queue
                .set_aside(
                    &String::from_utf8_lossy(&body),
                    &reason,
                    &verified.webhook_id,
                )
                .await?;
            tracing::error!(%reason, "signed webhook unreadable; set aside");
            return Ok(accepted_with(
                StatusCode::ACCEPTED,
                "set_aside",
                Some(reason),
            ));
        }
    };
    span.record("client_order_id", report.client_order_id().as_str());
    state.queue.send(&report, &verified.webhook_id).await?;
    Ok(accepted(StatusCode::ACCEPTED, "queued"))
}

fn accepted(status: StatusCode, outcome: &str) -> Response {
    accepted_with(status, outcome, None)
}

fn accepted_with(status: StatusCode, outcome: &str, detail: Option<String>) -> Response {
    let body = Accepted {
        outcome: outcome.to_owned(),
        detail,
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::memory::MemoryFillQueue;
    use app::ManualClock;
    use axum::body::Body;
    use axum::http::Request;
    use base64::Engine as _;
    use domain::order::ExchangeReport;
    use http_body_util::BodyExt;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    use crate::secrets::FixedKeys;
    use crate::signature::{self, Secret};

    const NOW_MS: u64 = 1_709_294_400_000;
    const ORDER: &str = "0190a6e4-5b7e-7c2a-9f1e-3b2c4d5e6f70";

    fn secret(byte: u8) -> Secret {
        let encoded = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        Secret::parse(&format!("whsec_{encoded}")).expect("secret")
    }

    /// A queue that accepts nothing.
    struct DownQueue;

    impl FillQueue for DownQueue {
        async fn send(&self, _: &ExchangeReport, _: &str) -> Result<(), QueueError> {
            Err(QueueError::Unavailable("down".into()))
        }
        async fn set_aside(&self, _: &str, _: &str, _: &str) -> Result<(), QueueError> {
            Err(QueueError::Unavailable("down".into()))
        }
    }

    fn app<Q: FillQueue + 'static>(queue: Q) -> Router {
        app_with_keys(queue, FixedKeys::new(vec![secret(1)]))
    }

    fn app_with_keys<Q: FillQueue + 'static, K: SigningKeys>(queue: Q, keys: K) -> Router {
        router(
            queue,
            ManualClock::at(NOW_MS),
            keys,
            Duration::from_secs(300),
        )
    }

    /// Counts lookups of the signing secrets; `None` answers none.
    #[derive(Clone)]
    struct CountedKeys {
        keys: Option<FixedKeys>,
        lookups: Arc<AtomicUsize>,
    }

    impl CountedKeys {
        fn new(keys: Option<FixedKeys>) -> Self {
            CountedKeys {
                keys,
                lookups: Arc::default(),
            }
        }

        fn lookups(&self) -> usize {
            self.lookups.load(Ordering::SeqCst)
        }
    }

    impl SigningKeys for CountedKeys {
        async fn current(&self) -> Result<Arc<[Secret]>, KeysUnavailable> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            match &self.keys {
                Some(keys) => keys.current().await,
                None => Err(KeysUnavailable("none stored".into())),
            }
        }
    }

    fn execution() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": "execution", "event_id": "evt-1", "client_order_id": ORDER,
            "order_id": "x-1", "exec_id": "e-1", "quantity": "5", "price": "10.00",
            "cum_quantity": "5", "leaves_quantity": "0", "status": "filled"
        }))
        .expect("json")
    }

    fn signed(body: Vec<u8>, secret: &Secret, timestamp_seconds: u64) -> Request<Body> {
        Request::post(WEBHOOK_PATH)
            .header("content-type", "application/json")
            .header(signature::HEADER_ID, "evt-1")
            .header(signature::HEADER_TIMESTAMP, timestamp_seconds.to_string())
            .header(
                signature::HEADER_SIGNATURE,
                secret.sign("evt-1", timestamp_seconds, &body),
            )
            .body(Body::from(body))
            .expect("request")
    }

    async fn call(router: Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = router.oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_signed_execution_is_queued() {
        let queue = MemoryFillQueue::default();
        let (status, body) = call(
            app(queue.clone()),
            signed(execution(), &secret(1), NOW_MS / 1000),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["outcome"], "queued");
        let reports = queue.drain();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].client_order_id().as_str(), ORDER);
    }

    #[tokio::test]
    async fn a_bad_signature_is_401_and_queues_nothing() {
        let queue = MemoryFillQueue::default();
        let (status, body) = call(
            app(queue.clone()),
            signed(execution(), &secret(2), NOW_MS / 1000),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["type"], problem_type::INVALID_SIGNATURE);
        assert!(queue.is_empty());
        assert!(queue.set_aside_messages().is_empty());
    }

    #[tokio::test]
    async fn a_signed_malformed_payload_is_set_aside() {
        let queue = MemoryFillQueue::default();
        let body = b"{\"type\":\"bust\"}".to_vec();
        let (status, answer) =
            call(app(queue.clone()), signed(body, &secret(1), NOW_MS / 1000)).await;
        // Received and kept for an operator: the exchange need not send it again.
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(answer["outcome"], "set_aside");
        assert!(answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("bust")));
        let set_aside = queue.set_aside_messages();
        assert_eq!(set_aside.len(), 1);
        assert_eq!(set_aside[0].0, "{\"type\":\"bust\"}");
        assert!(set_aside[0].1.contains("bust"), "{}", set_aside[0].1);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn nothing_is_acknowledged_that_the_queue_did_not_take() {
        let (status, _) = call(
            app(DownQueue),
            signed(execution(), &secret(1), NOW_MS / 1000),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = call(
            app(DownQueue),
            signed(b"[]".to_vec(), &secret(1), NOW_MS / 1000),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let queue = MemoryFillQueue::default();
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let (status, _) = call(app(queue.clone()), signed(body, &secret(1), NOW_MS / 1000)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(queue.is_empty());
    }

    /// Oversized and unsigned deliveries are refused before the body is
    /// read or a secret is looked up, and nothing is queued.
    #[tokio::test]
    async fn oversized_and_unsigned_deliveries_cost_no_other_work() {
        let queue = MemoryFillQueue::default();
        let keys = CountedKeys::new(Some(FixedKeys::new(vec![secret(1)])));
        let app = app_with_keys(queue.clone(), keys.clone());

        // Declared too large: refused unread, signed or not.
        let mut huge = signed(execution(), &secret(1), NOW_MS / 1000);
        huge.headers_mut().insert(
            header::CONTENT_LENGTH,
            (MAX_BODY_BYTES + 1).to_string().parse().expect("value"),
        );
        let (status, body) = call(app.clone(), huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["type"], problem_type::INVALID_REQUEST);

        // Unsigned, or with a stale timestamp: 401 before any lookup.
        let mut unsigned = signed(execution(), &secret(1), NOW_MS / 1000);
        unsigned.headers_mut().remove(signature::HEADER_SIGNATURE);
        let (status, body) = call(app.clone(), unsigned).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["type"], problem_type::INVALID_SIGNATURE);
        let stale = signed(execution(), &secret(1), NOW_MS / 1000 - 301);
        assert_eq!(call(app.clone(), stale).await.0, StatusCode::UNAUTHORIZED);

        // Signed headers, but the body runs past the limit: 413, no lookup.
        let long = signed(vec![b' '; MAX_BODY_BYTES + 1], &secret(1), NOW_MS / 1000);
        assert_eq!(
            call(app.clone(), long).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );

        assert_eq!(keys.lookups(), 0);
        assert!(queue.is_empty());
        assert!(queue.set_aside_messages().is_empty());

        // A well-formed delivery is the first to need the secrets.
        let good = signed(execution(), &secret(1), NOW_MS / 1000);
        assert_eq!(call(app, good).await.0, StatusCode::ACCEPTED);
        assert_eq!(keys.lookups(), 1);
    }

    #[tokio::test]
    async fn no_secret_to_verify_with_is_503_and_queues_nothing() {
        let queue = MemoryFillQueue::default();
        let app = app_with_keys(queue.clone(), CountedKeys::new(None));
        let (status, body) = call(app, signed(execution(), &secret(1), NOW_MS / 1000)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["type"], problem_type::UNAVAILABLE);
        assert!(queue.is_empty());
        assert!(queue.set_aside_messages().is_empty());
    }

    #[tokio::test]
    async fn other_routes_are_404() {
        let request = Request::get("/").body(Body::empty()).expect("request");
        let (status, _) = call(app(MemoryFillQueue::default()), request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
