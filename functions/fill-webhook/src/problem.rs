//! Every refusal leaves as `application/problem+json` (RFC 9457), mapped here once.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Problem types (RFC 9457 `type`).
pub mod problem_type {
    pub const INVALID_SIGNATURE: &str = "/problems/invalid-signature";
    pub const INVALID_REQUEST: &str = "/problems/invalid-request";
    pub const NOT_FOUND: &str = "/problems/not-found";
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
}

impl Problem {
    pub fn new(
        status: StatusCode,
        problem_type: &str,
        title: &str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            problem_type: problem_type.into(),
            title: title.into(),
            status: status.as_u16(),
            detail: Some(detail.into()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)], body).into_response()
    }
}
