//! The Lambda binary's metrics (declared by `main.rs`, not by the library):
//! one CloudWatch Embedded Metric Format line per delivery, counting what
//! became of it, under the dimension `Function = fill-webhook` that the
//! template's alarms and dashboard read.
//!
//! It reads the answer only (status and, for a `202`, its `outcome`), after
//! the handler has finished: no AWS call, nothing added to the delivery's
//! path but one line on stdout.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use fill_webhook::{Accepted, WEBHOOK_PATH};

/// The dimension value of every metric this function emits.
pub const FUNCTION: &str = "fill-webhook";
/// Largest answer read back for its outcome (an `Accepted` is under 1 KB).
const MAX_READ_BYTES: u64 = 16 * 1024;

/// Axum middleware: runs the handler, then prints the delivery's metric line.
pub async fn record(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let (response, outcome) = if status == StatusCode::ACCEPTED {
        let (response, accepted) =
            aws_adapters::metrics::read_back::<Accepted>(response, MAX_READ_BYTES).await;
        (response, accepted.map(|accepted| accepted.outcome))
    } else {
        (response, None)
    };
    if let Some(name) = metric(&method, route.as_deref(), status, outcome.as_deref()) {
        println!("{}", aws_adapters::metrics::line(FUNCTION, &[(name, 1)]));
    }
    response
}

/// What one delivery counts as, if anything. `outcome`: the `Accepted`
/// body's, for a `202`.
pub fn metric(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
    outcome: Option<&str>,
) -> Option<&'static str> {
    if method != Method::POST || route != Some(WEBHOOK_PATH) {
        // Anything else is not the exchange (a probe of the public URL).
        return None;
    }
    match (status, outcome) {
        (StatusCode::ACCEPTED, Some("set_aside")) => Some("WebhooksSetAside"),
        (StatusCode::ACCEPTED, _) => Some("WebhooksQueued"),
        // A status that is not final: nothing to apply.
        (StatusCode::OK, _) => Some("WebhooksIgnored"),
        (StatusCode::UNAUTHORIZED, _) => Some("WebhookSignatureFailures"),
        // Not accepted (queue or secret unavailable): the exchange delivers again.
        (s, _) if s.is_server_error() => Some("WebhookErrors"),
        (s, _) if s.is_client_error() => Some("WebhooksInvalid"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::{Json, Router};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn delivery(status: StatusCode, outcome: Option<&str>) -> Option<&'static str> {
        metric(&Method::POST, Some(WEBHOOK_PATH), status, outcome)
    }

    #[test]
    fn each_delivery_counts_what_became_of_it() {
        assert_eq!(
            delivery(StatusCode::ACCEPTED, Some("queued")),
            Some("WebhooksQueued")
        );
        assert_eq!(
            delivery(StatusCode::ACCEPTED, Some("set_aside")),
            Some("WebhooksSetAside")
        );
        assert_eq!(
            delivery(StatusCode::OK, Some("ignored")),
            Some("WebhooksIgnored")
        );
        assert_eq!(
            delivery(StatusCode::UNAUTHORIZED, None),
            Some("WebhookSignatureFailures")
        );
        assert_eq!(
            delivery(StatusCode::SERVICE_UNAVAILABLE, None),
            Some("WebhookErrors")
        );
        assert_eq!(
            delivery(StatusCode::PAYLOAD_TOO_LARGE, None),
            Some("WebhooksInvalid")
        );
    }

    #[test]
    fn requests_to_other_paths_are_not_deliveries() {
        assert_eq!(
            metric(&Method::GET, None, StatusCode::NOT_FOUND, None),
            None
        );
        assert_eq!(
            metric(&Method::POST, None, StatusCode::UNAUTHORIZED, None),
            None
        );
    }

    #[tokio::test]
    async fn the_answer_reaches_the_exchange_unchanged() {
        let app = Router::new()
            .route(
                WEBHOOK_PATH,
                post(|| async {
                    let body = Accepted {
                        outcome: "set_aside".into(),
                        detail: Some("unreadable".into()),
                    };
                    (StatusCode::ACCEPTED, Json(body))
                }),
            )
            .layer(axum::middleware::from_fn(record));
        let request = axum::http::Request::post(WEBHOOK_PATH)
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("answered");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let answer: Accepted = serde_json::from_slice(&bytes).expect("an Accepted");
        assert_eq!(answer.outcome, "set_aside");
        assert_eq!(answer.detail.as_deref(), Some("unreadable"));
    }
}
