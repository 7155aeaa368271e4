use std::sync::Arc;

use app::{BalancesService, Clock, LedgerStore};
use aws_adapters::balances_http::wire::{
    BalancesBody, OperationBody, OperationRecordBody, REPLAYED_HEADER,
};
use aws_adapters::http_edge;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::{AccountId, Catalog, IdempotencyKey, Outcome};
use tracing::Instrument;

use crate::problem::ApiError;

/// Largest request body; an operation is under 200 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

struct AppState<S, C> {
    service: BalancesService<S, C>,
    catalog: Catalog,
}

/// The service's routes over `service`, ready for `lambda_http::run` or a TCP listener.
pub fn router<S: LedgerStore, C: Clock + 'static>(
    service: BalancesService<S, C>,
    catalog: Catalog,
) -> Router {
    let state = Arc::new(AppState { service, catalog });
    Router::new()
        .route("/accounts/{account}/operations", post(execute::<S, C>))
        .route(
            "/accounts/{account}/operations/{key}",
            get(operation::<S, C>),
        )
        .route("/accounts/{account}/balances", get(balances::<S, C>))
        .fallback(|| async { ApiError::invalid(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn account(text: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(text).map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))
}

fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    http_edge::idempotency_key(headers)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    if http_edge::is_json(headers) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/json",
        ))
    }
}

async fn execute<S: LedgerStore, C: Clock>(
    State(state): State<Arc<AppState<S, C>>>,
    Path(account_text): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Everything is validated before anything is written.
    let body =
        body.map_err(|rejection| ApiError::invalid(rejection.status(), rejection.body_text()))?;
    let account = account(&account_text)?;
    let key = idempotency_key(&headers)?;
    require_json(&headers)?;
    let request: OperationBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
    })?;
    let operation = request
        .parse(&state.catalog)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))?;

    let span = tracing::info_span!("operation", %account, key = %key, kind = operation.kind());
    let executed = state
        .service
        .execute(account, key, operation)
        .instrument(span.clone())
        .await?;
    let record = &executed.record;
    span.in_scope(|| {
        tracing::info!(outcome = ?record.outcome, replayed = executed.replayed, "operation answered");
    });

    let mut response = match &record.outcome {
        Outcome::Succeeded | Outcome::Shortfall { .. } => {
            Json(OperationRecordBody::from_record(record)).into_response()
        }
        Outcome::Failed(failure) => ApiError::refused(record, failure.to_string()).into_response(),
    };
    if executed.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, header::HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn operation<S: LedgerStore, C: Clock>(
    State(state): State<Arc<AppState<S, C>>>,
    Path((account_text, key_text)): Path<(String, String)>,
) -> Result<Json<OperationRecordBody>, ApiError> {
    let account = account(&account_text)?;
    let key = IdempotencyKey::parse(&key_text)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))?;
    let record = state.service.operation(&account, &key).await?;
    Ok(Json(OperationRecordBody::from_record(&record)))
}

async fn balances<S: LedgerStore, C: Clock>(
    State(state): State<Arc<AppState<S, C>>>,
    Path(account_text): Path<String>,
) -> Result<Json<BalancesBody>, ApiError> {
    let account = account(&account_text)?;
    let balances = state.service.balances(&account).await?;
    Ok(Json(BalancesBody::from_balances(&account, &balances)))
}
