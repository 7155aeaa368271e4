use std::sync::Arc;

use app::{BalancesService, Clock, LedgerStore};
use aws_adapters::balances_http::wire::{
    BalancesBody, OperationBody, OperationRecordBody, REPLAYED_HEADER,
};
use aws_adapters::http_edge;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::{AccountId, Catalog, IdempotencyKey, Outcome};
use lambda_http::RequestExt;
use tracing::Instrument;

use crate::authz::{self, Access, Caller, Roles};
use crate::problem::ApiError;

/// Largest request body; an operation is under 200 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Trading operations (reserve, settle, release).
pub const TRADING_OPERATIONS_PATH: &str = "/accounts/{account}/operations";
/// Deposits: an operator's route.
pub const ADMIN_OPERATIONS_PATH: &str = "/admin/accounts/{account}/operations";

struct AppState<S, C> {
    service: BalancesService<S, C>,
    catalog: Catalog,
    roles: Roles,
}

type Shared<S, C> = State<Arc<AppState<S, C>>>;

/// The service's routes over `service`, ready for `lambda_http::run` or a
/// TCP listener. `roles` says which IAM roles may call which route.
pub fn router<S: LedgerStore, C: Clock + 'static>(
    service: BalancesService<S, C>,
    catalog: Catalog,
    roles: Roles,
) -> Router {
    let state = Arc::new(AppState {
        service,
        catalog,
        roles,
    });
    Router::new()
        .route(TRADING_OPERATIONS_PATH, post(execute_trading::<S, C>))
        .route(ADMIN_OPERATIONS_PATH, post(execute_admin::<S, C>))
        .route(
            "/accounts/{account}/operations/{key}",
            get(operation::<S, C>),
        )
        .route("/accounts/{account}/balances", get(balances::<S, C>))
        .fallback(|| async { ApiError::invalid(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The caller's identity from the request context API Gateway passed
/// (never from a header the caller could write).
struct Identity(Caller);

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Identity(Caller::from_context(
            parts.extensions.request_context_ref(),
        )))
    }
}

/// The caller's role if it may use `access`; refused before anything else
/// is looked at.
fn authorize<S, C>(
    state: &AppState<S, C>,
    caller: &Caller,
    access: Access,
) -> Result<String, ApiError> {
    state.roles.authorize(caller, access).map_err(|reason| {
        tracing::warn!(caller = caller.user_arn.as_deref(), %reason, "refused");
        ApiError::forbidden(&reason)
    })
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

async fn execute_trading<S: LedgerStore, C: Clock>(
    State(state): Shared<S, C>,
    Identity(caller): Identity,
    Path(account_text): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &caller,
        Access::Trading,
        &account_text,
        &headers,
        body,
    )
    .await
}

async fn execute_admin<S: LedgerStore, C: Clock>(
    State(state): Shared<S, C>,
    Identity(caller): Identity,
    Path(account_text): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &caller,
        Access::Admin,
        &account_text,
        &headers,
        body,
    )
    .await
}

async fn execute<S: LedgerStore, C: Clock>(
    state: &AppState<S, C>,
    caller: &Caller,
    access: Access,
    account_text: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Who asks is checked before the request is looked at (its body is only
    // buffered, within MAX_BODY_BYTES); then everything is validated before
    // anything is written.
    let role = authorize(state, caller, access)?;
    let body =
        body.map_err(|rejection| ApiError::invalid(rejection.status(), rejection.body_text()))?;
    let account = account(account_text)?;
    let key = idempotency_key(headers)?;
    require_json(headers)?;
    let request: OperationBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
    })?;
    let operation = request
        .parse(&state.catalog)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))?;
    let span =
        tracing::info_span!("operation", %account, key = %key, kind = operation.kind(), %role);
    async {
        authz::check_route(&operation, access).map_err(|reason| {
            tracing::warn!(%reason, "refused");
            ApiError::forbidden(&reason)
        })?;
        let executed = state.service.execute(account, key, operation).await?;
        let record = &executed.record;
        tracing::info!(outcome = ?record.outcome, replayed = executed.replayed, "operation answered");
        let mut response = match &record.outcome {
            Outcome::Succeeded | Outcome::Shortfall { .. } => {
                Json(OperationRecordBody::from_record(record)).into_response()
            }
            Outcome::Failed(failure) => {
                ApiError::refused(record, failure.to_string()).into_response()
            }
        };
        if executed.replayed {
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, header::HeaderValue::from_static("true"));
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

async fn operation<S: LedgerStore, C: Clock>(
    State(state): Shared<S, C>,
    Identity(caller): Identity,
    Path((account_text, key_text)): Path<(String, String)>,
) -> Result<Json<OperationRecordBody>, ApiError> {
    authorize(&state, &caller, Access::Read)?;
    let account = account(&account_text)?;
    let key = IdempotencyKey::parse(&key_text)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))?;
    let record = state.service.operation(&account, &key).await?;
    Ok(Json(OperationRecordBody::from_record(&record)))
}

async fn balances<S: LedgerStore, C: Clock>(
    State(state): Shared<S, C>,
    Identity(caller): Identity,
    Path(account_text): Path<String>,
) -> Result<Json<BalancesBody>, ApiError> {
    authorize(&state, &caller, Access::Read)?;
    let account = account(&account_text)?;
    let balances = state.service.balances(&account).await?;
    Ok(Json(BalancesBody::from_balances(&account, &balances)))
}
