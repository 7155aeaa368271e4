//! Every error leaves as `application/problem+json`, mapped here once.

use app::orders::OrderError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::wire::OrderBody;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem types (RFC 9457 `type`).
pub mod problem_type {
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const UNAUTHENTICATED: &str = "/problems/unauthenticated";
    pub const INSUFFICIENT_SCOPE: &str = "/problems/insufficient-scope";
    pub const NOT_FOUND: &str = "/problems/not-found";
    pub const KEY_REUSED: &str = "/problems/idempotency-key-reused";
    pub const ORDER_REJECTED: &str = "/problems/order-rejected";
    pub const UNAVAILABLE: &str = "/problems/unavailable";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A rejected order, as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderBody>,
}

/// Boxed: a problem can carry a whole order.
pub struct ApiError(Box<Problem>);

impl ApiError {
    pub fn new(
        status: StatusCode,
        problem_type: &str,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError(Box::new(Problem {
            problem_type: problem_type.into(),
            title: title.into(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            order: None,
        }))
    }

    pub fn invalid(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(
            status,
            problem_type::INVALID_REQUEST,
            "Invalid request",
            detail,
        )
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            problem_type::UNAUTHENTICATED,
            "Unauthenticated",
            "a valid bearer token naming the caller (claim `sub`) is required",
        )
    }

    /// The token is valid but does not grant `scope`.
    pub fn insufficient_scope(scope: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            problem_type::INSUFFICIENT_SCOPE,
            "Insufficient scope",
            format!("this route needs a token with the scope `{scope}`"),
        )
    }

    pub fn rejected(order: OrderBody, detail: String) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type::ORDER_REJECTED,
            "Order rejected",
            detail,
        );
        error.0.order = Some(order);
        error
    }
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let detail = error.to_string();
        match error {
            OrderError::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem_type::KEY_REUSED,
                "Idempotency key reused",
                detail,
            ),
            OrderError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                problem_type::NOT_FOUND,
                "Not found",
                detail,
            ),
            OrderError::Invalid(_) => Self::invalid(StatusCode::BAD_REQUEST, detail),
            OrderError::Store(_) | OrderError::Exchange(_) | OrderError::Busy => {
                tracing::error!(error = %detail, "request failed; the caller may retry with the same key");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    problem_type::UNAVAILABLE,
                    "Temporarily unavailable",
                    "retry with the same Idempotency-Key",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)], body).into_response()
    }
}
