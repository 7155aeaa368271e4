//! The REST API over the engine (axum). Handlers translate only: request →
//! engine call → response. Every call first advances the engine to "now", so
//! reads see fills that fell due; a background ticker does the same.
//!
//! Fault injection wraps each operation: latency, then "fail before" (nothing
//! happens), then the effect, then "fail after" (the effect stays). A reset
//! needs the connection, which the server in [`crate::server`] puts in the
//! request's extensions as a [`ConnControl`]; without one (e.g. `oneshot`
//! tests) a reset is answered as `503` with `x-exchange-sim-fault: reset`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineAudit, PageError, PlaceError};
use crate::faults::{Failure, FaultConfig, FaultCounters, FaultInjector, Operation};
use crate::order::{PlaceOrder, PlaceOrderBody, MAX_CLIENT_ORDER_ID_LEN};
use crate::server::ConnControl;
use crate::time::Clock;
use crate::webhooks::WebhookSender;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Header that names the fault behind a synthetic failure.
pub const FAULT_HEADER: &str = "x-exchange-sim-fault";
const PROBLEM_JSON: &str = "application/problem+json";

/// Shared by all requests.
pub struct AppState {
    engine: Mutex<Engine>,
    faults: Arc<Mutex<FaultInjector>>,
    clock: Arc<dyn Clock>,
    webhooks: Option<WebhookSender>,
}

impl AppState {
    pub fn new(
        engine: Engine,
        faults: Arc<Mutex<FaultInjector>>,
        clock: Arc<dyn Clock>,
        webhooks: Option<WebhookSender>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            engine: Mutex::new(engine),
            faults,
            clock,
            webhooks,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The engine, advanced to now, with due events handed to the webhook
    /// sender (or dropped when none is configured).
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        // Engine methods do not panic on input; if one ever did, keep serving
        // rather than poison every later request.
        let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        let events = engine.advance(self.now_ms());
        if let Some(w) = &self.webhooks {
            events.into_iter().for_each(|e| w.send(e));
        }
        engine
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultInjector> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The routes; see the crate documentation for the list.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/orders", post(place))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/orders/{order_id}/executions", get(list_executions))
        .route(
            "/v1/orders:by-client-id/{client_order_id}",
            get(get_by_client_id).delete(cancel),
        )
        .route("/v1/quotes/{symbol}", get(quote))
        .route("/admin/audit", get(audit))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/heal", post(heal))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .with_state(state)
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip)]
    fault: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:exchange-sim:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            fault: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, Json(&self)).into_response();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_JSON),
        );
        if let Some(f) = self.fault {
            r.headers_mut()
                .insert(FAULT_HEADER, HeaderValue::from_static(f));
        }
        r
    }
}

fn fault_problem(failure: Failure, when: &'static str) -> Response {
    let fault = match failure {
        Failure::Status5xx => "5xx",
        Failure::Reset => "reset",
        Failure::Timeout => "timeout",
    };
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "injected-fault",
        format!("injected fault ({fault}, {when} taking effect)"),
    );
    p.fault = Some(fault);
    p.into_response()
}

/// Runs `effect` under the faults configured for `op`.
async fn with_faults(
    state: &AppState,
    op: Operation,
    conn: Option<Extension<ConnControl>>,
    effect: impl FnOnce() -> Response,
) -> Response {
    let (decision, timeout_delay_ms) = {
        let mut f = state.faults();
        (f.decide_rest(op), f.timeout_delay_ms())
    };
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some(failure) = decision.before {
        return fail(failure, "before", conn, timeout_delay_ms, None).await;
    }
    let response = effect();
    match decision.after {
        Some(failure) => fail(failure, "after", conn, timeout_delay_ms, Some(response)).await,
        None => response,
    }
}

async fn fail(
    failure: Failure,
    when: &'static str,
    conn: Option<Extension<ConnControl>>,
    timeout_delay_ms: u64,
    response: Option<Response>,
) -> Response {
    match failure {
        Failure::Status5xx => fault_problem(failure, when),
        Failure::Reset => match conn {
            Some(Extension(c)) => {
                c.reset();
                // The server drops this connection (and this future) now.
                std::future::pending::<()>().await;
                fault_problem(failure, when)
            }
            None => fault_problem(failure, when),
        },
        Failure::Timeout => {
            tokio::time::sleep(Duration::from_millis(timeout_delay_ms)).await;
            response.unwrap_or_else(|| fault_problem(failure, when))
        }
    }
}

async fn read_body(body: Body) -> Result<Bytes, Problem> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the request body is over {MAX_BODY_BYTES} bytes (or could not be read)"),
            )
        })
}

fn parse_place(bytes: &[u8]) -> Result<PlaceOrder, Problem> {
    let body: PlaceOrderBody = serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the body is not a valid order: {e}"),
        )
    })?;
    PlaceOrder::try_from(body)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string()))
}

fn place_error(e: PlaceError) -> Problem {
    let (status, slug) = match &e {
        PlaceError::IdempotencyMismatch(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-mismatch")
        }
        PlaceError::Tombstoned(_) => (StatusCode::CONFLICT, "client-order-id-tombstoned"),
        PlaceError::DeadlinePassed => (StatusCode::UNPROCESSABLE_ENTITY, "deadline-passed"),
        PlaceError::UnknownSymbol(_) | PlaceError::BadLimitPrice => {
            (StatusCode::BAD_REQUEST, "validation")
        }
        PlaceError::Full => (StatusCode::SERVICE_UNAVAILABLE, "capacity"),
    };
    Problem::new(status, slug, e.to_string())
}

/// `POST /v1/orders`: `201` with the new order, `200` with the existing one
/// for a repeated identical request.
async fn place(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    request: Request,
) -> Response {
    let bytes = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    with_faults(&state, Operation::Place, conn, || {
        let req = match parse_place(&bytes) {
            Ok(r) => r,
            Err(p) => return p.into_response(),
        };
        let now = state.now_ms();
        match state.engine().place(req, now) {
            Ok(p) if p.replayed => (StatusCode::OK, Json(p.order)).into_response(),
            Ok(p) => (StatusCode::CREATED, Json(p.order)).into_response(),
            Err(e) => place_error(e).into_response(),
        }
    })
    .await
}

fn not_found(what: &str) -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "order-not-found",
        format!("no order with {what}"),
    )
    .into_response()
}

async fn get_order(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(order_id): Path<String>,
) -> Response {
    with_faults(&state, Operation::GetOrder, conn, || {
        match state.engine().get_by_order_id(&order_id) {
            Some(o) => Json(o).into_response(),
            None => not_found("this order_id"),
        }
    })
    .await
}

async fn get_by_client_id(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(client_order_id): Path<String>,
) -> Response {
    with_faults(&state, Operation::GetOrderByClientId, conn, || {
        let engine = state.engine();
        match engine.get_by_client_id(&client_order_id) {
            Some(o) => Json(o).into_response(),
            None if engine.is_tombstoned(&client_order_id) => not_found(
                "this client_order_id (it is tombstoned: cancelled before any order was placed)",
            ),
            None => not_found("this client_order_id"),
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    page_token: Option<String>,
    limit: Option<usize>,
}

async fn list_executions(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(order_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "validation",
                format!("bad query: {}", e.body_text()),
            )
            .into_response()
        }
    };
    with_faults(&state, Operation::ListExecutions, conn, || {
        match state
            .engine()
            .executions(&order_id, q.page_token.as_deref(), q.limit)
        {
            Ok(page) => Json(page).into_response(),
            Err(PageError::NotFound) => not_found("this order_id"),
            Err(e @ PageError::BadToken) => {
                Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string()).into_response()
            }
        }
    })
    .await
}

/// `DELETE /v1/orders:by-client-id/{id}`: cancels, or tombstones an unknown id.
async fn cancel(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(client_order_id): Path<String>,
) -> Response {
    // Same rule as on place, so junk never becomes a tombstone.
    let valid = !client_order_id.is_empty()
        && client_order_id.len() <= MAX_CLIENT_ORDER_ID_LEN
        && client_order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !valid {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            "validation",
            "`client_order_id` is not a valid id",
        )
        .into_response();
    }
    with_faults(&state, Operation::Cancel, conn, || {
        let now = state.now_ms();
        Json(state.engine().cancel_by_client_id(&client_order_id, now)).into_response()
    })
    .await
}

async fn quote(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(symbol): Path<String>,
) -> Response {
    with_faults(&state, Operation::Quote, conn, || {
        let now = state.now_ms();
        match state.engine().quote(&symbol, now) {
            Some(q) => Json(q).into_response(),
            None => Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-symbol",
                "this symbol is not listed",
            )
            .into_response(),
        }
    })
    .await
}

/// `GET /admin/audit`.
#[derive(Debug, Serialize)]
pub struct Audit {
    #[serde(flatten)]
    pub engine: EngineAudit,
    pub faults: FaultCounters,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub at: u64,
}

async fn audit(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine().audit();
    let faults = state.faults().counters().clone();
    Json(Audit {
        engine,
        faults,
        at: state.now_ms(),
    })
    .into_response()
}

#[derive(Debug, Serialize)]
struct FaultsView {
    config: FaultConfig,
    /// Webhook outage end (Unix ms), 0 when none.
    outage_until_ms: u64,
}

async fn get_faults(State(state): State<Arc<AppState>>) -> Response {
    let f = state.faults();
    Json(FaultsView {
        config: f.config().clone(),
        outage_until_ms: f.outage_until_ms(),
    })
    .into_response()
}

async fn put_faults(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let bytes = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let config: FaultConfig = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                format!("not a fault configuration: {e}"),
            )
            .into_response()
        }
    };
    let now = state.now_ms();
    let mut f = state.faults();
    match f.set(config, now) {
        Ok(()) => Json(FaultsView {
            config: f.config().clone(),
            outage_until_ms: f.outage_until_ms(),
        })
        .into_response(),
        Err(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string()).into_response()
        }
    }
}

/// `POST /admin/heal`: no faults from now on, any webhook outage ended.
async fn heal(State(state): State<Arc<AppState>>) -> Response {
    state.faults().heal();
    StatusCode::NO_CONTENT.into_response()
}
