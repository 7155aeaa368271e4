//! The Lambda binary's metrics (declared by `main.rs`, not by the library):
//! one CloudWatch Embedded Metric Format line per answered request, counting
//! the operations that took effect by kind, refusals, shortfalls and
//! errors, under the dimension `Function = balances` that the template's
//! alarms and dashboard read.
//!
//! It reads the answer only (route, status, the replay header and, for an
//! operation, the record it answers with), after the handler has finished:
//! no AWS call, nothing added to the request's path but one line on stdout.

use aws_adapters::balances_http::wire::{problem_type, REPLAYED_HEADER};
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use balances::{ADMIN_OPERATIONS_PATH, TRADING_OPERATIONS_PATH};
use serde_json::Value;

/// The dimension value of every metric this function emits.
pub const FUNCTION: &str = "balances";
/// Largest answer read back for its record (a record is under 2 KB).
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
    let operation = method == Method::POST && is_operation_route(route.as_deref());
    let (response, body) = if operation && !replayed {
        aws_adapters::metrics::read_back::<Value>(response, MAX_READ_BYTES).await
    } else {
        (response, None)
    };
    let counts: Vec<(&str, u64)> =
        metrics(&method, route.as_deref(), status, replayed, body.as_ref())
            .into_iter()
            .map(|name| (name, 1))
            .collect();
    if !counts.is_empty() {
        println!("{}", aws_adapters::metrics::line(FUNCTION, &counts));
    }
    response
}

fn is_operation_route(route: Option<&str>) -> bool {
    matches!(route, Some(TRADING_OPERATIONS_PATH | ADMIN_OPERATIONS_PATH))
}

/// What one answer counts as. `body`: the JSON answer of an operation
/// (its record, or the problem that carries it).
pub fn metrics(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
    replayed: bool,
    body: Option<&Value>,
) -> Vec<&'static str> {
    if status == StatusCode::FORBIDDEN {
        // A caller on a route its role does not allow.
        return vec!["RequestsForbidden"];
    }
    if !(method == Method::POST && is_operation_route(route)) {
        return match status {
            s if s.is_server_error() => vec!["ReadErrors"],
            _ => vec![],
        };
    }
    if status.is_server_error() {
        return vec!["OperationErrors"];
    }
    if replayed {
        // Counted when it was first answered.
        return vec!["OperationsReplayed"];
    }
    let record = match status {
        StatusCode::OK => body,
        // A stored refusal carries its record; other 422s do not.
        StatusCode::UNPROCESSABLE_ENTITY => body.and_then(|b| b.get("operation")),
        _ => None,
    };
    match (status, record) {
        (StatusCode::OK, Some(record)) => {
            let mut names = vec![kind_metric(record)];
            if record.get("outcome").and_then(Value::as_str) == Some("succeeded_with_shortfall") {
                names.push("Shortfalls");
            }
            names
        }
        (StatusCode::UNPROCESSABLE_ENTITY, Some(_)) => vec!["OperationsRefused"],
        (StatusCode::UNPROCESSABLE_ENTITY, None)
            if body.and_then(|b| b.get("type")).and_then(Value::as_str)
                == Some(problem_type::KEY_REUSED) =>
        {
            vec!["IdempotencyKeyConflicts"]
        }
        (s, _) if s.is_client_error() => vec!["RequestsInvalid"],
        _ => vec![],
    }
}

/// The operation that took effect, by kind (the record's `operation.type`).
fn kind_metric(record: &Value) -> &'static str {
    let kind = record
        .get("operation")
        .and_then(|o| o.get("type"))
        .and_then(Value::as_str);
    match kind {
        Some("reserve") => "ReserveOperations",
        Some("settle") => "SettleOperations",
        Some("release") => "ReleaseOperations",
        Some("deposit") => "DepositOperations",
        Some("withdraw") => "WithdrawOperations",
        _ => "OtherOperations",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt;
    use serde_json::json;
    use tower::ServiceExt;

    fn operation(status: StatusCode, body: &Value) -> Vec<&'static str> {
        metrics(
            &Method::POST,
            Some(TRADING_OPERATIONS_PATH),
            status,
            false,
            Some(body),
        )
    }

    fn record(kind: &str, outcome: &str) -> Value {
        json!({"operation": {"type": kind}, "outcome": outcome})
    }

    #[test]
    fn operations_count_by_kind_and_shortfalls_besides() {
        assert_eq!(
            operation(StatusCode::OK, &record("reserve", "succeeded")),
            ["ReserveOperations"]
        );
        assert_eq!(
            operation(StatusCode::OK, &record("release", "succeeded")),
            ["ReleaseOperations"]
        );
        assert_eq!(
            operation(
                StatusCode::OK,
                &record("settle", "succeeded_with_shortfall")
            ),
            ["SettleOperations", "Shortfalls"]
        );
        let deposit = metrics(
            &Method::POST,
            Some(ADMIN_OPERATIONS_PATH),
            StatusCode::OK,
            false,
            Some(&record("deposit", "succeeded")),
        );
        assert_eq!(deposit, ["DepositOperations"]);
    }

    #[test]
    fn refusals_conflicts_replays_and_errors_are_told_apart() {
        let refused = json!({"type": problem_type::INSUFFICIENT_FUNDS,
            "operation": record("reserve", "failed")});
        assert_eq!(
            operation(StatusCode::UNPROCESSABLE_ENTITY, &refused),
            ["OperationsRefused"]
        );
        let reused = json!({"type": problem_type::KEY_REUSED});
        assert_eq!(
            operation(StatusCode::UNPROCESSABLE_ENTITY, &reused),
            ["IdempotencyKeyConflicts"]
        );
        assert_eq!(
            operation(StatusCode::BAD_REQUEST, &json!({})),
            ["RequestsInvalid"]
        );
        assert_eq!(
            operation(StatusCode::FORBIDDEN, &json!({})),
            ["RequestsForbidden"]
        );
        assert_eq!(
            operation(StatusCode::SERVICE_UNAVAILABLE, &json!({})),
            ["OperationErrors"]
        );
        let replay = metrics(
            &Method::POST,
            Some(TRADING_OPERATIONS_PATH),
            StatusCode::OK,
            true,
            None,
        );
        assert_eq!(replay, ["OperationsReplayed"]);
    }

    #[test]
    fn reads_count_only_their_errors() {
        let read = |status| {
            metrics(
                &Method::GET,
                Some("/accounts/{account}/balances"),
                status,
                false,
                None,
            )
        };
        assert!(read(StatusCode::OK).is_empty());
        assert_eq!(read(StatusCode::SERVICE_UNAVAILABLE), ["ReadErrors"]);
        assert_eq!(read(StatusCode::FORBIDDEN), ["RequestsForbidden"]);
    }

    #[tokio::test]
    async fn the_record_reaches_the_caller_unchanged() {
        let body = record("settle", "succeeded_with_shortfall").to_string();
        let answer = body.clone();
        let app = Router::new()
            .route(
                TRADING_OPERATIONS_PATH,
                post(move || async move { (StatusCode::OK, answer) }),
            )
            .layer(axum::middleware::from_fn(super::record));
        let request = axum::http::Request::post("/accounts/alice/operations")
            .body(Body::empty())
            .expect("request");
        let response = app.oneshot(request).await.expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(bytes, body.as_bytes());
    }
}
