use std::sync::Arc;

use app::balances::Balances;
use app::exchange::Exchange;
use app::order_store::OrderStore;
use app::orders::{Orders, Placed};
use app::Clock;
use aws_adapters::http_edge;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use domain::order::{OrderId, OrderStatus};
use domain::{Catalog, IdempotencyKey};
use serde::Deserialize;
use tracing::Instrument;

use crate::auth::{AccountMapping, Caller};
use crate::problem::ApiError;
use crate::wire::{ExecutionBody, ExecutionListBody, OrderBody, OrderListBody, PlaceOrderBody};

/// Largest request body; an order is under 200 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub use aws_adapters::http_edge::IDEMPOTENCY_KEY_HEADER;
/// Set to `true` on an answer to a repeated request.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Every route, as `(method, path)`; the OpenAPI document must list exactly these.
pub const ROUTES: [(&str, &str); 5] = [
    ("post", "/orders"),
    ("get", "/orders"),
    ("get", "/orders/{id}"),
    ("delete", "/orders/{id}"),
    ("get", "/orders/{id}/executions"),
];

struct AppState<S, B, E, C> {
    orders: Orders<S, B, E, C>,
    catalog: Catalog,
}

type Shared<S, B, E, C> = State<Arc<AppState<S, B, E, C>>>;

/// The routes, with plain `sub`s of any issuer taken as account ids (see
/// [`router_with`]).
pub fn router<S, B, E, C>(orders: Orders<S, B, E, C>, catalog: Catalog) -> Router
where
    S: OrderStore,
    B: Balances + 'static,
    E: Exchange + 'static,
    C: Clock + 'static,
{
    router_with(orders, catalog, AccountMapping::default())
}

/// The routes, each caller's account derived from its token by `accounts`.
pub fn router_with<S, B, E, C>(
    orders: Orders<S, B, E, C>,
    catalog: Catalog,
    accounts: AccountMapping,
) -> Router
where
    S: OrderStore,
    B: Balances + 'static,
    E: Exchange + 'static,
    C: Clock + 'static,
{
    let state = Arc::new(AppState { orders, catalog });
    Router::new()
        .route("/orders", post(place::<S, B, E, C>).get(list::<S, B, E, C>))
        .route(
            "/orders/{id}",
            get(order::<S, B, E, C>).delete(cancel::<S, B, E, C>),
        )
        .route("/orders/{id}/executions", get(executions::<S, B, E, C>))
        .fallback(|| async { ApiError::invalid(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(accounts))
        .with_state(state)
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

/// An id that does not parse is answered like one that does not exist.
fn order_id(text: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(text).map_err(|_| ApiError::from(app::orders::OrderError::NotFound))
}

/// The status code says how far the order got: `201` at the exchange (or
/// beyond), `202` still pending (its outcome will be known later), `200`
/// ended before this answer (a cancel that won the race with the
/// placement), `422` rejected (with the order).
fn placed_response(placed: Placed) -> Response {
    let body = OrderBody::from_order(&placed.order);
    let mut response = match body.status {
        OrderStatus::Rejected => {
            let detail = body
                .status_reason
                .clone()
                .unwrap_or_else(|| "rejected".into());
            ApiError::rejected(body, detail).into_response()
        }
        OrderStatus::Pending | OrderStatus::Unknown => {
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        OrderStatus::Cancelled if !placed.order.is_placed() => {
            (StatusCode::OK, Json(body)).into_response()
        }
        _ => (StatusCode::CREATED, Json(body)).into_response(),
    };
    if placed.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

async fn place<S: OrderStore, B: Balances, E: Exchange, C: Clock>(
    State(state): Shared<S, B, E, C>,
    Caller(account): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Everything is validated before anything is written.
    let body =
        body.map_err(|rejection| ApiError::invalid(rejection.status(), rejection.body_text()))?;
    let key = idempotency_key(&headers)?;
    require_json(&headers)?;
    let request: PlaceOrderBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}"))
    })?;
    let request = request
        .parse(&state.catalog)
        .map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.to_string()))?;
    let span = tracing::info_span!("place_order", %account, key = %key);
    async {
        let placed = state.orders.place(account, key, request).await?;
        tracing::info!(order_id = %placed.order.id, status = ?placed.order.status(), replayed = placed.replayed, "answered");
        Ok(placed_response(placed))
    }
    .instrument(span)
    .await
}

async fn order<S: OrderStore, B: Balances, E: Exchange, C: Clock>(
    State(state): Shared<S, B, E, C>,
    Caller(account): Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderBody>, ApiError> {
    let order = state.orders.get(&account, &order_id(&id)?).await?;
    Ok(Json(OrderBody::from_order(&order)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

const CURSOR_PREFIX: &str = "v1:";

fn encode_cursor(id: &OrderId) -> String {
    hex::encode(format!("{CURSOR_PREFIX}{id}"))
}

fn decode_cursor(cursor: &str) -> Result<OrderId, ApiError> {
    let invalid =
        || ApiError::invalid(StatusCode::BAD_REQUEST, "cursor is not one this API issued");
    let bytes = hex::decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
    OrderId::parse(id).map_err(|_| invalid())
}

async fn list<S: OrderStore, B: Balances, E: Exchange, C: Clock>(
    State(state): Shared<S, B, E, C>,
    Caller(account): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderListBody>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.body_text()))?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=app::orders::MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::invalid(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {}", app::orders::MAX_PAGE_SIZE),
        ));
    }
    let page = state.orders.list(&account, after.as_ref(), limit).await?;
    Ok(Json(OrderListBody {
        orders: page.orders.iter().map(OrderBody::from_order).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    }))
}

async fn cancel<S: OrderStore, B: Balances, E: Exchange, C: Clock>(
    State(state): Shared<S, B, E, C>,
    Caller(account): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let span = tracing::info_span!("cancel_order", %account, order_id = %id);
    let cancelled = state.orders.cancel(&account, &id).instrument(span).await?;
    // The cancel is recorded: `200` once the order has ended, else `202`
    // (the platform sends it until the exchange confirms; never repeat it).
    let status = if cancelled.order.is_closed() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(OrderBody::from_order(&cancelled.order))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn executions<S: OrderStore, B: Balances, E: Exchange, C: Clock>(
    State(state): Shared<S, B, E, C>,
    Caller(account): Caller,
    Path(id): Path<String>,
    query: Result<Query<ExecutionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExecutionListBody>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid(StatusCode::BAD_REQUEST, e.body_text()))?;
    let id = order_id(&id)?;
    let invalid_cursor =
        || ApiError::invalid(StatusCode::BAD_REQUEST, "cursor is not one this API issued");
    let after = match query.cursor.as_deref() {
        Some(cursor) => {
            let text = String::from_utf8(hex::decode(cursor).map_err(|_| invalid_cursor())?)
                .map_err(|_| invalid_cursor())?;
            let exec = text
                .strip_prefix(CURSOR_PREFIX)
                .ok_or_else(invalid_cursor)?;
            Some(domain::order::ExecId::parse(exec).map_err(|_| invalid_cursor())?)
        }
        None => None,
    };
    let limit = query.limit.unwrap_or(app::orders::MAX_PAGE_SIZE);
    if !(1..=app::orders::MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::invalid(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1 to {}", app::orders::MAX_PAGE_SIZE),
        ));
    }
    let (_, page) = state
        .orders
        .executions(&account, &id, after.as_ref(), limit)
        .await?;
    Ok(Json(ExecutionListBody {
        order_id: id.to_string(),
        executions: page.fills.iter().map(ExecutionBody::from_record).collect(),
        next_cursor: page
            .next
            .map(|e| hex::encode(format!("{CURSOR_PREFIX}{e}"))),
    }))
}
