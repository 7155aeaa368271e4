//! Every error leaves the service as `application/problem+json`, mapped here once.

use app::BalancesError;
use aws_adapters::balances_http::wire::{
    problem_type, OperationRecordBody, Problem, PROBLEM_CONTENT_TYPE,
};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::OperationRecord;

use crate::authz::Forbidden;

/// Boxed: the problem is large and errors travel through every `?`.
pub struct ApiError(Box<Problem>);

impl ApiError {
    fn new(status: StatusCode, problem_type: &str, title: &str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Problem {
            problem_type: problem_type.into(),
            title: title.into(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            operation: None,
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

    /// The caller may not do this; nothing was read or written.
    pub fn forbidden(reason: &Forbidden) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            problem_type::FORBIDDEN,
            "Forbidden",
            reason.to_string(),
        )
    }

    /// A stored refusal: answered `422`, the same on every replay.
    pub fn refused(record: &OperationRecord, detail: String) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem_type::INSUFFICIENT_FUNDS,
            "Insufficient funds",
            detail,
        );
        error.0.operation = Some(OperationRecordBody::from_record(record));
        error
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<BalancesError> for ApiError {
    fn from(error: BalancesError) -> Self {
        let detail = error.to_string();
        match error {
            BalancesError::KeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                problem_type::KEY_REUSED,
                "Idempotency key reused",
                detail,
            ),
            BalancesError::UnknownAccount => Self::new(
                StatusCode::NOT_FOUND,
                problem_type::UNKNOWN_ACCOUNT,
                "Unknown account",
                detail,
            ),
            BalancesError::OperationNotFound => Self::new(
                StatusCode::NOT_FOUND,
                problem_type::OPERATION_NOT_FOUND,
                "Operation not found",
                detail,
            ),
            BalancesError::InvalidOperation(_) => Self::invalid(StatusCode::BAD_REQUEST, detail),
            BalancesError::Store(_) => {
                // The cause is logged; callers learn only that they may retry.
                tracing::error!(error = %detail, "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    problem_type::UNAVAILABLE,
                    "Temporarily unavailable",
                    "retry with the same idempotency key",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&self.0).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)], body).into_response()
    }
}
