//! The REST API over the engine (axum). Handlers translate only: request →
//! engine call → response. Every call first advances the engine to "now", so
//! reads see fills that fell due; a background ticker does the same.
//!
//! "Now" is the venue's clock (the clock given to [`AppState`], which
//! [`crate::app::start`] offsets by `clock_offset_ms`): deadlines, trade
//! dates, timestamps and every response's `Date` header use it.
//! `/v1/*` requests first wait the configured response latency (and, if set,
//! again before answering), so a request deadline is checked on arrival =
//! send + latency.
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
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::calendar::TradeDate;
use crate::engine::{CancelError, Engine, EngineAudit, PageError, PlaceError};
use crate::faults::{Failure, FaultConfig, FaultCounters, FaultInjector, Operation, MAX_DELAY_MS};
use crate::money::{Price, Quantity};
use crate::order::{
    EventType, ExchangeEvent, OrderStatus, PlaceOrder, PlaceOrderBody, Side,
    MAX_CLIENT_ORDER_ID_LEN,
};
use crate::server::ConnControl;
use crate::time::{format_http_date, format_rfc3339_ms, parse_rfc3339_ms, Clock};
use crate::venue::VenueCapabilities;
use crate::webhooks::WebhookSender;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Header that names the fault behind a synthetic failure.
pub const FAULT_HEADER: &str = "x-exchange-sim-fault";
const PROBLEM_JSON: &str = "application/problem+json";
/// Mixed into the seed for the latency stream (apart from engine and faults).
const LATENCY_STREAM: u64 = 0x1A7E_1A7E_1A7E_1A7E;

/// How long the venue takes to handle a `/v1/*` request: a uniform draw from
/// `min_ms..=max_ms` waited before the request is processed, and another
/// after it when `after` is set. Zero (the default) adds nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseLatency {
    pub min_ms: u64,
    pub max_ms: u64,
    pub after: bool,
}

impl ResponseLatency {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_ms > self.max_ms || self.max_ms > MAX_DELAY_MS {
            return Err(format!(
                "need latency_ms_min <= latency_ms_max <= {MAX_DELAY_MS}"
            ));
        }
        Ok(())
    }
}

/// Shared by all requests.
pub struct AppState {
    engine: Mutex<Engine>,
    faults: Arc<Mutex<FaultInjector>>,
    clock: Arc<dyn Clock>,
    webhooks: Option<WebhookSender>,
    /// Fixed at start: answered without taking the engine lock.
    venue: VenueCapabilities,
    latency: ResponseLatency,
    latency_rng: Mutex<ChaCha8Rng>,
}

impl AppState {
    /// `clock` is the venue's clock; no response latency.
    pub fn new(
        engine: Engine,
        faults: Arc<Mutex<FaultInjector>>,
        clock: Arc<dyn Clock>,
        webhooks: Option<WebhookSender>,
    ) -> Arc<AppState> {
        AppState::with_latency(engine, faults, clock, webhooks, ResponseLatency::default())
    }

    /// [`AppState::new`] with a response latency.
    pub fn with_latency(
        engine: Engine,
        faults: Arc<Mutex<FaultInjector>>,
        clock: Arc<dyn Clock>,
        webhooks: Option<WebhookSender>,
        latency: ResponseLatency,
    ) -> Arc<AppState> {
        let seed = engine.config().seed ^ LATENCY_STREAM;
        Arc::new(AppState {
            venue: engine.venue(),
            engine: Mutex::new(engine),
            faults,
            clock,
            webhooks,
            latency,
            latency_rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    /// The venue's now, Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn draw_latency_ms(&self) -> u64 {
        let ResponseLatency { min_ms, max_ms, .. } = self.latency;
        if max_ms == 0 {
            return 0;
        }
        let mut rng = self.latency_rng.lock().unwrap_or_else(|p| p.into_inner());
        rng.gen_range(min_ms..=max_ms)
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
    // The venue's API: what a client calls, so it has the venue's latency.
    let venue_api = Router::new()
        .route("/v1/orders", post(place).get(list_orders))
        .route(
            "/v1/orders/{order_id}",
            get(get_order).delete(cancel_by_order_id),
        )
        .route("/v1/orders/{order_id}/executions", get(list_executions))
        .route(
            "/v1/orders:by-client-id/{client_order_id}",
            get(get_by_client_id).delete(cancel),
        )
        .route("/v1/executions", get(list_day_executions))
        .route("/v1/quotes/{symbol}", get(quote))
        .route("/v1/time", get(time))
        .route("/v1/venue", get(venue))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            response_latency,
        ));
    Router::new()
        .merge(venue_api)
        .route("/admin/audit", get(audit))
        .route("/admin/events", post(inject_event))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/heal", post(heal))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), venue_date))
        .with_state(state)
}

/// Waits the venue's latency before the request is processed (and after,
/// if configured).
async fn response_latency(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let before = state.draw_latency_ms();
    if before > 0 {
        tokio::time::sleep(Duration::from_millis(before)).await;
    }
    let response = next.run(request).await;
    if state.latency.after {
        let after = state.draw_latency_ms();
        if after > 0 {
            tokio::time::sleep(Duration::from_millis(after)).await;
        }
    }
    response
}

/// Every response carries the venue's time as its `Date` (hyper keeps a
/// `Date` that is already set), so a client can see the venue's clock.
async fn venue_date(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&format_http_date(state.now_ms())) {
        response.headers_mut().insert(http::header::DATE, v);
    }
    response
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
        PlaceError::UnsupportedField(_) => (StatusCode::BAD_REQUEST, "unsupported_field"),
        PlaceError::DeadlineRequired | PlaceError::UnknownSymbol(_) | PlaceError::BadLimitPrice => {
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
            Err(e) => page_error(e),
        }
    })
    .await
}

fn cancel_error(e: CancelError) -> Response {
    match e {
        CancelError::UnknownOrder => {
            Problem::new(StatusCode::NOT_FOUND, "unknown_order", e.to_string()).into_response()
        }
        CancelError::CancelByOrderIdOnly => {
            let mut r = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "cancel_by_order_id_only",
                e.to_string(),
            )
            .into_response();
            // RFC 9110: a 405 names the methods the resource does allow.
            r.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
            r
        }
    }
}

/// `DELETE /v1/orders:by-client-id/{id}`: cancels; an unknown id is
/// tombstoned (`tombstone` venue) or `404` (`deadline`); `405` at a `plain`
/// venue.
async fn cancel(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(client_order_id): Path<String>,
) -> Response {
    if !state.venue.cancel_by_client_id {
        return cancel_error(CancelError::CancelByOrderIdOnly);
    }
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
        match state.engine().cancel_by_client_id(&client_order_id, now) {
            Ok(result) => Json(result).into_response(),
            Err(e) => cancel_error(e),
        }
    })
    .await
}

/// `DELETE /v1/orders/{order_id}`: cancels by the venue's id (every venue).
async fn cancel_by_order_id(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    Path(order_id): Path<String>,
) -> Response {
    with_faults(&state, Operation::Cancel, conn, || {
        let now = state.now_ms();
        match state.engine().cancel_by_order_id(&order_id, now) {
            Ok(result) => Json(result).into_response(),
            Err(e) => cancel_error(e),
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    trade_date: Option<String>,
    page_token: Option<String>,
    limit: Option<usize>,
}

/// The query of a day's list, or the `400` that explains what is wrong.
fn day_query(
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Result<(TradeDate, DayQuery), Problem> {
    let bad = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "validation", detail);
    let Query(q) = query.map_err(|e| bad(format!("bad query: {}", e.body_text())))?;
    let text = q
        .trade_date
        .as_deref()
        .ok_or_else(|| bad("`trade_date` is required (YYYY-MM-DD)".into()))?;
    let date = TradeDate::parse(text)
        .ok_or_else(|| bad("`trade_date` must be a date such as 2024-03-01".into()))?;
    Ok((date, q))
}

fn page_error(e: PageError) -> Response {
    match e {
        PageError::NotFound => not_found("this order_id"),
        PageError::BadToken => {
            Problem::new(StatusCode::BAD_REQUEST, "validation", e.to_string()).into_response()
        }
    }
}

/// `GET /v1/orders?trade_date=YYYY-MM-DD&page_token=&limit=`: the orders
/// accepted into that session, without their executions.
async fn list_orders(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Response {
    let (date, q) = match day_query(query) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    with_faults(&state, Operation::ListOrders, conn, || {
        match state
            .engine()
            .orders_for_trade_date(date, q.page_token.as_deref(), q.limit)
        {
            Ok(page) => Json(page).into_response(),
            Err(e) => page_error(e),
        }
    })
    .await
}

/// `GET /v1/executions?trade_date=YYYY-MM-DD&page_token=&limit=`: every
/// execution of that session, oldest first.
async fn list_day_executions(
    State(state): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Response {
    let (date, q) = match day_query(query) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    with_faults(&state, Operation::ListDayExecutions, conn, || {
        match state
            .engine()
            .executions_for_trade_date(date, q.page_token.as_deref(), q.limit)
        {
            Ok(page) => Json(page).into_response(),
            Err(e) => page_error(e),
        }
    })
    .await
}

/// `GET /v1/time`.
#[derive(Debug, Serialize)]
struct TimeView {
    now_ms: u64,
    now: String,
}

/// `GET /v1/time`: the venue's clock, so a client can measure its offset.
async fn time(State(state): State<Arc<AppState>>) -> Response {
    let now_ms = state.now_ms();
    Json(TimeView {
        now_ms,
        now: format_rfc3339_ms(now_ms),
    })
    .into_response()
}

/// `GET /v1/venue`: the venue's profile and capabilities.
async fn venue(State(state): State<Arc<AppState>>) -> Response {
    Json(&state.venue).into_response()
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

/// `POST /admin/events`: the webhook payload, `event_id` and `occurred_at`
/// optional (a fresh id and the venue's now when absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectBody {
    #[serde(rename = "type")]
    event_type: EventType,
    event_id: Option<String>,
    client_order_id: String,
    order_id: String,
    account: String,
    symbol: String,
    side: Side,
    exec_id: Option<String>,
    quantity: Option<Quantity>,
    price: Option<Price>,
    cum_quantity: Quantity,
    leaves_quantity: Quantity,
    status: OrderStatus,
    /// RFC 3339 string or Unix ms.
    occurred_at: Option<serde_json::Value>,
}

/// `POST /admin/events`: sends any event through the signed webhook path,
/// whatever the venue holds, and records it in the audit as `injected`.
/// `202` with the event as it will be delivered.
async fn inject_event(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let bytes = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let bad = |status, slug, detail: String| Problem::new(status, slug, detail).into_response();
    let body: InjectBody = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                format!("not an event: {e}"),
            )
        }
    };
    let is_execution = body.event_type == EventType::Execution;
    let complete = body.exec_id.is_some() && body.quantity.is_some() && body.price.is_some();
    if is_execution && !complete {
        return bad(
            StatusCode::BAD_REQUEST,
            "validation",
            "an execution event needs `exec_id`, `quantity` and `price`".into(),
        );
    }
    let now = state.now_ms();
    let occurred_at = match body.occurred_at {
        None | Some(serde_json::Value::Null) => now,
        Some(serde_json::Value::String(s)) => match parse_rfc3339_ms(&s) {
            Some(ms) => ms,
            None => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "validation",
                    "`occurred_at` must be an RFC 3339 UTC time or Unix ms".into(),
                )
            }
        },
        Some(v) => match v.as_u64() {
            Some(ms) => ms,
            None => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "validation",
                    "`occurred_at` must be an RFC 3339 UTC time or Unix ms".into(),
                )
            }
        },
    };
    let event = {
        let mut engine = state.engine();
        let event = ExchangeEvent {
            event_type: body.event_type,
            event_id: body
                .event_id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| engine.next_injected_event_id()),
            client_order_id: body.client_order_id,
            order_id: body.order_id,
            account: body.account,
            symbol: body.symbol,
            side: body.side,
            exec_id: body.exec_id,
            quantity: body.quantity,
            price: body.price,
            cum_quantity: body.cum_quantity,
            leaves_quantity: body.leaves_quantity,
            status: body.status,
            occurred_at,
        };
        engine.inject_event(event.clone(), now);
        event
    };
    // Hand it to the webhook sender now rather than at the next tick.
    drop(state.engine());
    (StatusCode::ACCEPTED, Json(event)).into_response()
}

/// `POST /admin/heal`: no faults from now on, any webhook outage ended.
async fn heal(State(state): State<Arc<AppState>>) -> Response {
    state.faults().heal();
    StatusCode::NO_CONTENT.into_response()
}
