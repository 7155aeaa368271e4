//! The Lambda binary's metrics (declared by `main.rs`, not by the library):
//! one CloudWatch Embedded Metric Format line per answered request, counting
//! what the answer says happened, under the dimension `Function =
//! place-order` that the template's alarms and dashboard read.
//!
//! It reads the answer only (route, status, the replay header and, for a
//! `422`, the problem type), after the handler has finished: no AWS call,
//! nothing added to the request's path but one line on stdout.

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use place_order::{problem_type, REPLAYED_HEADER};

/// The dimension value of every metric this function emits.
pub const FUNCTION: &str = "place-order";
/// Largest answer read back for its problem type: a rejected order's
/// problem is under 2 KB; anything larger is not read.
const MAX_READ_BYTES: u64 = 64 * 1024;

/// Axum middleware: runs the handler, then prints the answer's metric line.
pub async fn record(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let replayed = response.headers().contains_key(REPLAYED_HEADER);
    let (response, problem) = if status == StatusCode::UNPROCESSABLE_ENTITY {
        let (response, body) =
            aws_adapters::metrics::read_back::<serde_json::Value>(response, MAX_READ_BYTES).await;
        let problem = body.and_then(|v| Some(v.get("type")?.as_str()?.to_owned()));
        (response, problem)
    } else {
        (response, None)
    };
    if let Some(name) = metric(
        &method,
        route.as_deref(),
        status,
        replayed,
        problem.as_deref(),
    ) {
        println!("{}", aws_adapters::metrics::line(FUNCTION, &[(name, 1)]));
    }
    response
}

/// What one answer counts as, if anything. `route` is the matched route
/// (`None`: no route matched).
pub fn metric(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
    replayed: bool,
    problem: Option<&str>,
) -> Option<&'static str> {
    match (method, route) {
        (&Method::POST, Some("/orders")) => placement(status, replayed, problem),
        (&Method::DELETE, Some("/orders/{id}")) if status.is_server_error() => Some("CancelErrors"),
        // `200`: the order had ended; `202`: the cancel is recorded and sent.
        (&Method::DELETE, Some("/orders/{id}")) if status.is_success() => Some("CancelsRequested"),
        _ if status.is_server_error() => Some("ReadErrors"),
        _ => refusal(status),
    }
}

/// `POST /orders`: the status says how far the order got (routes.rs).
fn placement(status: StatusCode, replayed: bool, problem: Option<&str>) -> Option<&'static str> {
    if status.is_server_error() {
        // Unavailable: the caller retries with the same key.
        return Some("PlacementErrors");
    }
    if replayed {
        // The order was counted when it was first answered.
        return Some("OrdersReplayed");
    }
    match (status, problem) {
        (StatusCode::CREATED, _) => Some("OrdersPlaced"),
        // Outcome unknown (the exchange or Balances did not answer): recovery finishes it.
        (StatusCode::ACCEPTED, _) => Some("OrdersPending"),
        // A cancel won the race with the placement.
        (StatusCode::OK, _) => Some("OrdersCancelledBeforePlacement"),
        (StatusCode::UNPROCESSABLE_ENTITY, Some(problem_type::ORDER_REJECTED)) => {
            Some("OrdersRejected")
        }
        (StatusCode::UNPROCESSABLE_ENTITY, Some(problem_type::KEY_REUSED)) => {
            Some("IdempotencyKeyConflicts")
        }
        _ => refusal(status),
    }
}

/// A request refused before anything was done.
fn refusal(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Some("RequestsUnauthorized"),
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => Some("RequestsInvalid"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const POST: &Method = &Method::POST;
    const ORDERS: Option<&str> = Some("/orders");

    #[test]
    fn a_placement_counts_by_how_far_the_order_got() {
        let placed = |status, problem| metric(POST, ORDERS, status, false, problem);
        assert_eq!(placed(StatusCode::CREATED, None), Some("OrdersPlaced"));
        assert_eq!(placed(StatusCode::ACCEPTED, None), Some("OrdersPending"));
        assert_eq!(
            placed(StatusCode::OK, None),
            Some("OrdersCancelledBeforePlacement")
        );
        assert_eq!(
            placed(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(problem_type::ORDER_REJECTED)
            ),
            Some("OrdersRejected")
        );
        assert_eq!(
            placed(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(problem_type::KEY_REUSED)
            ),
            Some("IdempotencyKeyConflicts")
        );
        assert_eq!(
            placed(StatusCode::SERVICE_UNAVAILABLE, None),
            Some("PlacementErrors")
        );
        assert_eq!(
            placed(StatusCode::BAD_REQUEST, None),
            Some("RequestsInvalid")
        );
        assert_eq!(
            placed(StatusCode::FORBIDDEN, None),
            Some("RequestsUnauthorized")
        );
    }

    #[test]
    fn a_replay_is_counted_once_as_a_replay() {
        for status in [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY] {
            assert_eq!(
                metric(
                    POST,
                    ORDERS,
                    status,
                    true,
                    Some(problem_type::ORDER_REJECTED)
                ),
                Some("OrdersReplayed")
            );
        }
    }

    #[test]
    fn cancels_and_reads_count_their_outcome_and_errors_only() {
        let cancel = |status| metric(&Method::DELETE, Some("/orders/{id}"), status, false, None);
        assert_eq!(cancel(StatusCode::ACCEPTED), Some("CancelsRequested"));
        assert_eq!(cancel(StatusCode::OK), Some("CancelsRequested"));
        assert_eq!(
            cancel(StatusCode::SERVICE_UNAVAILABLE),
            Some("CancelErrors")
        );
        assert_eq!(cancel(StatusCode::NOT_FOUND), None);
        let read = |status| metric(&Method::GET, Some("/orders/{id}"), status, false, None);
        assert_eq!(read(StatusCode::OK), None);
        assert_eq!(read(StatusCode::SERVICE_UNAVAILABLE), Some("ReadErrors"));
        assert_eq!(
            metric(&Method::GET, None, StatusCode::NOT_FOUND, false, None),
            None
        );
    }

    #[tokio::test]
    async fn the_answer_reaches_the_caller_unchanged() {
        let body = r#"{"type":"/problems/order-rejected","title":"Order rejected","status":422}"#;
        let app = Router::new()
            .route(
                "/orders",
                post(move || async move {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        [("content-type", "application/problem+json")],
                        body,
                    )
                }),
            )
            .layer(axum::middleware::from_fn(record));
        let request = axum::http::Request::post("/orders")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("answered");
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(bytes, body.as_bytes());
    }
}
