//! HTTP tests: the router through `oneshot` with a manual clock, and real
//! loopback servers for resets, timeouts and webhook delivery. Every wait is
//! bounded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use exchange_sim::app::{self, Running, Settings};
use exchange_sim::engine::{Engine, EngineConfig};
use exchange_sim::faults::{FaultConfig, FaultInjector, OpFaults, Operation};
use exchange_sim::http::{router, AppState, MAX_BODY_BYTES};
use exchange_sim::signature::{self, Secret};
use exchange_sim::time::{format_rfc3339_ms, Clock, ManualClock, SystemClock};
use exchange_sim::webhooks::WebhookConfig;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const T0: u64 = 1_709_294_400_000;
/// Upper bound of any wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

fn fast_engine(seed: u64) -> EngineConfig {
    EngineConfig {
        seed,
        fill_interval_min_ms: 5,
        fill_interval_max_ms: 20,
        cancel_probability: 0.0,
        expire_probability: 0.0,
        ..EngineConfig::default()
    }
}

fn oneshot_app(
    engine: EngineConfig,
    faults: FaultConfig,
    clock: Arc<ManualClock>,
) -> (Router, Arc<AppState>) {
    let now = clock.now_ms();
    let f = Arc::new(Mutex::new(
        FaultInjector::new(faults, engine.seed, now).expect("faults"),
    ));
    let state = AppState::new(Engine::new(engine).expect("engine"), f, clock, None);
    (router(state.clone()), state)
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, Value, http::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, headers)
}

fn order_json(id: &str, qty: &str, expire_at_ms: u64) -> Value {
    json!({"client_order_id": id, "account": "acc-1", "symbol": "AAPL", "side": "buy",
           "type": "market", "quantity": qty, "expire_at": format_rfc3339_ms(expire_at_ms)})
}

async fn audit(app: &Router) -> Value {
    call(app, Method::GET, "/admin/audit", None).await.1
}

fn count(v: &Value, key: &str) -> usize {
    v[key].as_array().map(Vec::len).unwrap_or(usize::MAX)
}

#[tokio::test]
async fn the_same_place_twenty_times_gives_one_order() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock.clone());
    let body = order_json("c-1", "100", T0 + 5_000).to_string();
    let (status, first, _) = call(&app, Method::POST, "/v1/orders", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    for _ in 0..19 {
        clock.advance(1);
        let (status, again, _) = call(&app, Method::POST, "/v1/orders", Some(body.clone())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["order_id"], first["order_id"]);
    }
    assert_eq!(count(&audit(&app).await, "orders"), 1);
}

#[tokio::test]
async fn concurrent_identical_places_over_loopback_give_one_order() {
    let server = spawn(Settings::new(fast_engine(2))).await;
    let client = reqwest::Client::new();
    let body = order_json("c-conc", "100", SystemClock.now_ms() + 60_000);
    let calls = (0..20).map(|_| {
        let req = client
            .post(format!("{}/v1/orders", server.url()))
            .json(&body);
        async move { req.send().await }
    });
    let results = futures::future::join_all(calls).await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for r in results {
        let r = r.expect("response");
        created += usize::from(r.status() == StatusCode::CREATED);
        assert!(r.status().is_success());
        let v: Value = r.json().await.expect("json");
        ids.insert(v["order_id"].as_str().map(str::to_string));
    }
    assert_eq!((created, ids.len()), (1, 1));
    let a: Value = client
        .get(format!("{}/admin/audit", server.url()))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(count(&a, "orders"), 1);
}

#[tokio::test]
async fn reusing_an_id_with_another_payload_is_422_and_keeps_the_first() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    let first = order_json("c-1", "100", T0 + 5_000).to_string();
    call(&app, Method::POST, "/v1/orders", Some(first)).await;
    let other = order_json("c-1", "101", T0 + 5_000).to_string();
    let (status, problem, headers) = call(&app, Method::POST, "/v1/orders", Some(other)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        problem["type"],
        "urn:exchange-sim:problem:idempotency-mismatch"
    );
    let (_, order, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(order["quantity"], "100");
}

#[tokio::test]
async fn a_request_after_its_deadline_is_refused_and_leaves_nothing() {
    let clock = Arc::new(ManualClock::new(T0 + 5_001));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    let late = order_json("c-late", "100", T0 + 5_000).to_string();
    let (status, problem, _) = call(&app, Method::POST, "/v1/orders", Some(late)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["type"], "urn:exchange-sim:problem:deadline-passed");
    let (status, _, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-late", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let a = audit(&app).await;
    assert_eq!((count(&a, "orders"), count(&a, "tombstones")), (0, 0));
}

#[tokio::test]
async fn a_cancel_of_an_unknown_id_tombstones_it() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    let (status, v, _) = call(
        &app,
        Method::DELETE,
        "/v1/orders:by-client-id/c-ghost",
        None,
    )
    .await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (StatusCode::OK, Some("tombstoned"))
    );
    let body = order_json("c-ghost", "100", T0 + 5_000).to_string();
    let (status, problem, _) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        problem["type"],
        "urn:exchange-sim:problem:client-order-id-tombstoned"
    );
    let (status, problem, _) =
        call(&app, Method::GET, "/v1/orders:by-client-id/c-ghost", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(problem["detail"]
        .as_str()
        .unwrap_or("")
        .contains("tombstoned"));
    let a = audit(&app).await;
    assert_eq!(
        (
            count(&a, "orders"),
            count(&a, "tombstones"),
            count(&a, "rejected_requests")
        ),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn cancelling_an_open_order_returns_it_cancelled() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    call(
        &app,
        Method::POST,
        "/v1/orders",
        Some(order_json("c-1", "100", T0 + 5_000).to_string()),
    )
    .await;
    let (status, v, _) = call(&app, Method::DELETE, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["outcome"], "cancelled");
    assert_eq!(v["order"]["status"], "cancelled");
    let (_, v, _) = call(&app, Method::DELETE, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(v["outcome"], "already_terminal");
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_creates_nothing() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    let with = |key: &str, value: Value| {
        let mut v = order_json("c-bad", "100", T0 + 5_000);
        v[key] = value;
        v.to_string()
    };
    let without = |key: &str| {
        let mut v = order_json("c-bad", "100", T0 + 5_000);
        v.as_object_mut().map(|m| m.remove(key));
        v.to_string()
    };
    let limit = |price: Value| {
        let mut v = order_json("c-bad", "100", T0 + 5_000);
        v["type"] = json!("limit");
        v["limit_price"] = price;
        v.to_string()
    };
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "malformed json",
            "{\"client_order_id\": ".into(),
            StatusCode::BAD_REQUEST,
            "not a valid order",
        ),
        (
            "not an object",
            "[1,2]".into(),
            StatusCode::BAD_REQUEST,
            "not a valid order",
        ),
        (
            "empty body",
            String::new(),
            StatusCode::BAD_REQUEST,
            "not a valid order",
        ),
        (
            "unknown field",
            with("colour", json!("red")),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            "missing symbol",
            without("symbol"),
            StatusCode::BAD_REQUEST,
            "`symbol` is required",
        ),
        (
            "missing quantity",
            without("quantity"),
            StatusCode::BAD_REQUEST,
            "`quantity` is required",
        ),
        (
            "missing expire_at",
            without("expire_at"),
            StatusCode::BAD_REQUEST,
            "`expire_at` is required",
        ),
        (
            "negative quantity",
            with("quantity", json!("-5")),
            StatusCode::BAD_REQUEST,
            "negative",
        ),
        (
            "zero quantity",
            with("quantity", json!("0")),
            StatusCode::BAD_REQUEST,
            "greater than zero",
        ),
        (
            "huge quantity",
            with("quantity", json!("1000001")),
            StatusCode::BAD_REQUEST,
            "maximum",
        ),
        (
            "fractional quantity",
            with("quantity", json!(2.5)),
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            "unknown symbol",
            with("symbol", json!("ZZZZ")),
            StatusCode::BAD_REQUEST,
            "not listed",
        ),
        (
            "bad side",
            with("side", json!("short")),
            StatusCode::BAD_REQUEST,
            "`side`",
        ),
        (
            "price with 3 decimals",
            limit(json!("187.255")),
            StatusCode::BAD_REQUEST,
            "more than 2 decimals",
        ),
        (
            "price as a number",
            limit(json!(187.25)),
            StatusCode::BAD_REQUEST,
            "decimal string",
        ),
        (
            "negative price",
            limit(json!("-1.00")),
            StatusCode::BAD_REQUEST,
            "negative",
        ),
        (
            "missing limit price",
            limit(Value::Null),
            StatusCode::BAD_REQUEST,
            "required for a limit order",
        ),
        (
            "huge price",
            limit(json!("99999999.99")),
            StatusCode::BAD_REQUEST,
            "maximum",
        ),
        (
            "bad id",
            with("client_order_id", json!("a/b")),
            StatusCode::BAD_REQUEST,
            "client_order_id",
        ),
        (
            "oversized body",
            with("account", json!("x".repeat(MAX_BODY_BYTES))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "16384 bytes",
        ),
    ];
    for (name, body, want, detail) in cases {
        let (status, problem, headers) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
        assert_eq!(status, want, "{name}: {problem}");
        assert_eq!(
            headers["content-type"], "application/problem+json",
            "{name}"
        );
        let text = problem["detail"].as_str().unwrap_or("");
        assert!(text.contains(detail), "{name}: {text}");
    }
    let a = audit(&app).await;
    assert_eq!(
        (count(&a, "orders"), count(&a, "rejected_requests")),
        (0, 0)
    );
}

#[tokio::test]
async fn lookups_executions_pages_and_quotes() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = EngineConfig {
        min_chunks: 5,
        max_chunks: 5,
        ..fast_engine(4)
    };
    let (app, _) = oneshot_app(engine, FaultConfig::healthy(), clock.clone());
    let (_, placed, _) = call(
        &app,
        Method::POST,
        "/v1/orders",
        Some(order_json("c-1", "50", T0 + 5_000).to_string()),
    )
    .await;
    assert_eq!(placed["status"], "new");
    let id = placed["order_id"].as_str().expect("order id").to_string();
    clock.advance(1_000); // past every fill of a fast engine
    let (status, order, _) = call(&app, Method::GET, &format!("/v1/orders/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (order["status"].as_str(), order["cum_quantity"].as_str()),
        (Some("filled"), Some("50"))
    );
    assert_eq!(order["leaves_quantity"], "0");
    assert!(order["average_price"]
        .as_str()
        .is_some_and(|p| p.contains('.')));
    let (_, by_client, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(by_client, order);

    let mut seen = Vec::new();
    let mut uri = format!("/v1/orders/{id}/executions?limit=2");
    for _ in 0..5 {
        let (status, page, _) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(page["executions"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) => uri = format!("/v1/orders/{id}/executions?limit=2&page_token={t}"),
            None => break,
        }
    }
    assert_eq!(Some(&seen), order["executions"].as_array());
    assert_eq!(seen.len(), 5);
    let (status, _, _) = call(
        &app,
        Method::GET,
        &format!("/v1/orders/{id}/executions?limit=x"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(&app, Method::GET, "/v1/orders/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, q, _) = call(&app, Method::GET, "/v1/quotes/MSFT", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(q["bid"].as_str().is_some() && q["ask"].as_str().is_some());
    let (status, _, _) = call(&app, Method::GET, "/v1/quotes/ZZZZ", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn place_faults(f: OpFaults) -> FaultConfig {
    let mut c = FaultConfig::healthy();
    c.operations.insert(Operation::Place, f);
    c
}

#[tokio::test]
async fn fail_before_takes_no_effect_and_heal_restores_service() {
    let clock = Arc::new(ManualClock::new(T0));
    let faults = place_faults(OpFaults {
        fail_before_5xx: 1.0,
        ..OpFaults::default()
    });
    let (app, _) = oneshot_app(fast_engine(1), faults, clock);
    let body = order_json("c-1", "100", T0 + 5_000).to_string();
    let (status, _, headers) = call(&app, Method::POST, "/v1/orders", Some(body.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["x-exchange-sim-fault"], "5xx");
    let (status, _, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&app, Method::POST, "/admin/heal", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let a = audit(&app).await;
    assert_eq!(a["faults"]["rest"]["place"]["before_5xx"], 1);
}

#[tokio::test]
async fn effect_then_5xx_leaves_an_order_that_lookup_finds() {
    let clock = Arc::new(ManualClock::new(T0));
    let faults = place_faults(OpFaults {
        fail_after_5xx: 1.0,
        ..OpFaults::default()
    });
    let (app, _) = oneshot_app(fast_engine(1), faults, clock);
    let body = order_json("c-1", "100", T0 + 5_000).to_string();
    let (status, _, _) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, order, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(
        (status, order["client_order_id"].as_str()),
        (StatusCode::OK, Some("c-1"))
    );
    let a = audit(&app).await;
    assert_eq!(a["faults"]["rest"]["place"]["after_5xx"], 1);
}

#[tokio::test]
async fn faults_can_be_set_at_run_time_and_bad_ones_are_refused() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(1), FaultConfig::healthy(), clock);
    let cfg = json!({"operations": {"cancel": {"fail_before_5xx": 1.0}}});
    let (status, view, _) = call(&app, Method::PUT, "/admin/faults", Some(cfg.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view["config"]["operations"]["cancel"]["fail_before_5xx"],
        1.0
    );
    let (status, _, _) = call(&app, Method::DELETE, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        count(&audit(&app).await, "tombstones"),
        0,
        "fail-before must not tombstone"
    );
    let bad = json!({"all": {"fail_before_5xx": 2.0}});
    let (status, _, _) = call(&app, Method::PUT, "/admin/faults", Some(bad.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn spawn(settings: Settings) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    app::start(settings, listener, Arc::new(SystemClock))
        .await
        .expect("start")
}

fn with_faults(engine: EngineConfig, faults: FaultConfig) -> Settings {
    Settings {
        faults,
        ..Settings::new(engine)
    }
}

async fn lookup(client: &reqwest::Client, server: &Running, id: &str) -> StatusCode {
    client
        .get(format!("{}/v1/orders:by-client-id/{id}", server.url()))
        .send()
        .await
        .expect("lookup")
        .status()
}

#[tokio::test]
async fn resets_drop_the_connection_before_or_after_the_effect() {
    for (faults, stored) in [
        (
            OpFaults {
                fail_before_reset: 1.0,
                ..OpFaults::default()
            },
            StatusCode::NOT_FOUND,
        ),
        (
            OpFaults {
                fail_after_reset: 1.0,
                ..OpFaults::default()
            },
            StatusCode::OK,
        ),
    ] {
        let server = spawn(with_faults(fast_engine(5), place_faults(faults))).await;
        let client = reqwest::Client::builder()
            .timeout(WAIT)
            .build()
            .expect("client");
        let body = order_json("c-rst", "100", SystemClock.now_ms() + 60_000);
        let err = client
            .post(format!("{}/v1/orders", server.url()))
            .json(&body)
            .send()
            .await
            .expect_err("the connection is reset");
        assert!(!err.is_timeout(), "{err:?}");
        assert_eq!(lookup(&client, &server, "c-rst").await, stored);
    }
}

#[tokio::test]
async fn effect_then_timeout_outlasts_the_caller_and_leaves_the_order() {
    let mut faults = place_faults(OpFaults {
        fail_after_timeout: 1.0,
        ..OpFaults::default()
    });
    faults.timeout_delay_ms = 3_000;
    let server = spawn(with_faults(fast_engine(6), faults)).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let body = order_json("c-slow", "100", SystemClock.now_ms() + 60_000);
    let err = client
        .post(format!("{}/v1/orders", server.url()))
        .json(&body)
        .send()
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(lookup(&client, &server, "c-slow").await, StatusCode::OK);
}

#[tokio::test]
async fn added_latency_delays_the_answer() {
    let mut faults = FaultConfig::healthy();
    faults.all = OpFaults {
        latency_probability: 1.0,
        latency_ms: 300,
        ..OpFaults::default()
    };
    let server = spawn(with_faults(fast_engine(7), faults)).await;
    let client = reqwest::Client::new();
    let start = Instant::now();
    let r = client
        .get(format!("{}/v1/quotes/AAPL", server.url()))
        .send()
        .await
        .expect("quote");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

// ---- webhooks -------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_first: Mutex<u32>,
}

impl Receiver {
    fn all(&self) -> Vec<Received> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }
    fn bodies(&self) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.body).ok())
            .collect()
    }
}

async fn spawn_receiver(fail_first: u32) -> (String, Arc<Receiver>) {
    let rx = Arc::new(Receiver {
        fail_first: Mutex::new(fail_first),
        ..Receiver::default()
    });
    let state = rx.clone();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                state.got.lock().expect("lock").push(Received {
                    headers,
                    body: body.to_vec(),
                    at: Instant::now(),
                });
                let mut left = state.fail_first.lock().expect("lock");
                if *left > 0 {
                    *left -= 1;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

fn secret() -> Secret {
    Secret::from_bytes(vec![42; 32]).expect("secret")
}

fn webhook_settings(url: String, engine: EngineConfig, faults: FaultConfig) -> Settings {
    let mut cfg = WebhookConfig::new(url, secret());
    cfg.initial_backoff_ms = 20;
    cfg.max_backoff_ms = 100;
    cfg.reorder_hold_ms = 200;
    Settings {
        webhook: Some(cfg),
        faults,
        ..Settings::new(engine)
    }
}

async fn place_one(server: &Running, id: &str, qty: &str) -> Value {
    let body = order_json(id, qty, SystemClock.now_ms() + 60_000);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/orders", server.url()))
        .json(&body)
        .send()
        .await
        .expect("place");
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.expect("json")
}

async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < WAIT {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

fn has_terminal(bodies: &[Value]) -> bool {
    bodies.iter().any(|b| b["type"] == "order_status")
}

#[tokio::test]
async fn webhooks_are_signed_unique_and_add_up() {
    let (url, rx) = spawn_receiver(0).await;
    let engine = EngineConfig {
        min_chunks: 3,
        max_chunks: 3,
        ..fast_engine(8)
    };
    let server = spawn(webhook_settings(url, engine, FaultConfig::healthy())).await;
    place_one(&server, "c-wh", "90").await;
    assert!(
        wait_until(|| has_terminal(&rx.bodies())).await,
        "no terminal webhook"
    );
    let now_s = SystemClock.now_ms() / 1000;
    let got = rx.all();
    for r in &got {
        assert_eq!(
            signature::verify(&[secret()], &r.headers, &r.body, now_s, 300),
            Ok(())
        );
        let mut tampered = r.body.clone();
        tampered[0] ^= 1;
        assert!(signature::verify(&[secret()], &r.headers, &tampered, now_s, 300).is_err());
    }
    let bodies = rx.bodies();
    let execs: Vec<&Value> = bodies.iter().filter(|b| b["type"] == "execution").collect();
    let ids: std::collections::HashSet<_> = execs.iter().map(|b| b["exec_id"].clone()).collect();
    assert_eq!((execs.len(), ids.len()), (3, 3));
    let total: u64 = execs
        .iter()
        .filter_map(|b| b["quantity"].as_str()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 90);
    let terminal = bodies
        .iter()
        .find(|b| b["type"] == "order_status")
        .expect("terminal");
    assert_eq!(
        (
            terminal["status"].as_str(),
            terminal["cum_quantity"].as_str()
        ),
        (Some("filled"), Some("90"))
    );
    for r in &got {
        let id = r.headers["webhook-id"].to_str().expect("id");
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["event_id"], id);
    }
}

#[tokio::test]
async fn webhooks_are_retried_with_the_same_id_until_2xx() {
    let (url, rx) = spawn_receiver(2).await;
    let engine = EngineConfig {
        min_chunks: 1,
        max_chunks: 1,
        ..fast_engine(9)
    };
    let server = spawn(webhook_settings(url, engine, FaultConfig::healthy())).await;
    place_one(&server, "c-retry", "10").await;
    // Two events (execution, filled) and two refused attempts: four requests.
    assert!(wait_until(|| rx.all().len() >= 4).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.all();
    assert_eq!(got.len(), 4, "no attempt after a 2xx");
    let mut by_id: std::collections::HashMap<_, Vec<&Received>> = std::collections::HashMap::new();
    for r in &got {
        by_id
            .entry(r.headers["webhook-id"].clone())
            .or_default()
            .push(r);
    }
    assert_eq!(by_id.len(), 2);
    assert!(
        by_id.values().any(|v| v.len() >= 2),
        "a refused delivery was retried"
    );
    for attempts in by_id.values() {
        assert!(
            attempts.iter().all(|r| r.body == attempts[0].body),
            "same id, same body"
        );
    }
    let counters = server.state.faults().counters().webhooks.clone();
    assert_eq!((counters.failed_attempts, counters.delivered), (2, 2));
}

fn webhook_faults(w: exchange_sim::faults::WebhookFaults) -> FaultConfig {
    FaultConfig {
        webhooks: w,
        ..FaultConfig::healthy()
    }
}

#[tokio::test]
async fn dropped_webhooks_never_arrive() {
    let (url, rx) = spawn_receiver(0).await;
    let faults = webhook_faults(exchange_sim::faults::WebhookFaults {
        drop: 1.0,
        ..Default::default()
    });
    let server = spawn(webhook_settings(url, fast_engine(10), faults)).await;
    place_one(&server, "c-drop", "10").await;
    let dropped_all = || {
        let o = server.state.engine().get_by_client_id("c-drop");
        let events = o.map(|o| o.executions.len() as u64 + 1).unwrap_or(0);
        server.state.faults().counters().webhooks.dropped == events
    };
    assert!(wait_until(dropped_all).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.all().is_empty());
}

#[tokio::test]
async fn duplicated_webhooks_arrive_twice_with_one_id() {
    let (url, rx) = spawn_receiver(0).await;
    let faults = webhook_faults(exchange_sim::faults::WebhookFaults {
        duplicate: 1.0,
        ..Default::default()
    });
    let server = spawn(webhook_settings(url, fast_engine(11), faults)).await;
    place_one(&server, "c-dup", "10").await;
    assert!(
        wait_until(|| rx
            .bodies()
            .iter()
            .filter(|b| b["type"] == "order_status")
            .count()
            == 2)
        .await
    );
    let mut counts = std::collections::HashMap::new();
    for r in rx.all() {
        *counts.entry(r.headers["webhook-id"].clone()).or_insert(0) += 1;
    }
    assert!(counts.values().all(|c| *c == 2), "{counts:?}");
}

#[tokio::test]
async fn reordered_webhooks_arrive_after_their_successor() {
    let (url, rx) = spawn_receiver(0).await;
    let engine = EngineConfig {
        min_chunks: 4,
        max_chunks: 4,
        ..fast_engine(12)
    };
    let faults = webhook_faults(exchange_sim::faults::WebhookFaults {
        reorder: 1.0,
        ..Default::default()
    });
    let server = spawn(webhook_settings(url, engine, faults)).await;
    place_one(&server, "c-ord", "40").await;
    assert!(wait_until(|| rx.all().len() == 5).await);
    let cum: Vec<u64> = rx
        .bodies()
        .iter()
        .filter(|b| b["type"] == "execution")
        .filter_map(|b| b["cum_quantity"].as_str()?.parse().ok())
        .collect();
    // Every event is held until the next one overtakes it, so in fill order
    // 1..4 the second arrives before the first and the fourth before the third.
    let mut by_fill = cum.clone();
    by_fill.sort_unstable();
    assert_eq!(by_fill.len(), 4);
    let pos = |c: u64| cum.iter().position(|x| *x == c);
    assert!(pos(by_fill[1]) < pos(by_fill[0]), "{cum:?}");
    assert!(pos(by_fill[3]) < pos(by_fill[2]), "{cum:?}");
}

#[tokio::test]
async fn delayed_webhooks_arrive_late() {
    let (url, rx) = spawn_receiver(0).await;
    let faults = webhook_faults(exchange_sim::faults::WebhookFaults {
        delay: 1.0,
        delay_ms: 500,
        ..Default::default()
    });
    let server = spawn(webhook_settings(url, fast_engine(13), faults)).await;
    let placed_at = Instant::now();
    place_one(&server, "c-late-hook", "10").await;
    assert!(wait_until(|| !rx.all().is_empty()).await);
    let first = rx.all().iter().map(|r| r.at).min().expect("one");
    assert!(first.duration_since(placed_at) >= Duration::from_millis(500));
}

#[tokio::test]
async fn an_outage_holds_webhooks_until_healed() {
    let (url, rx) = spawn_receiver(0).await;
    let server = spawn(webhook_settings(
        url,
        fast_engine(14),
        FaultConfig::healthy(),
    ))
    .await;
    let client = reqwest::Client::new();
    let outage = json!({"webhooks": {"outage_ms": 60000}});
    let r = client
        .put(format!("{}/admin/faults", server.url()))
        .json(&outage)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::OK);
    place_one(&server, "c-out", "10").await;
    let filled = || {
        server
            .state
            .engine()
            .get_by_client_id("c-out")
            .is_some_and(|o| o.status.is_terminal())
    };
    assert!(wait_until(filled).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.all().is_empty(), "nothing is delivered during an outage");
    let r = client
        .post(format!("{}/admin/heal", server.url()))
        .send()
        .await
        .expect("heal");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        wait_until(|| has_terminal(&rx.bodies())).await,
        "delivered after heal"
    );
    assert!(server.state.faults().counters().webhooks.outage_deferred >= 1);
}

// ---- venue profiles, time in force, day lists, clocks, latency, events ----

use exchange_sim::http::ResponseLatency;
use exchange_sim::time::parse_http_date;
use exchange_sim::venue::VenueProfile;

fn venue_engine(venue: VenueProfile, seed: u64) -> EngineConfig {
    EngineConfig {
        venue,
        ..fast_engine(seed)
    }
}

fn without_deadline(mut v: Value) -> Value {
    v.as_object_mut().map(|m| m.remove("expire_at"));
    v
}

fn problem_type(v: &Value) -> &str {
    v["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:exchange-sim:problem:"))
        .unwrap_or("")
}

#[tokio::test]
async fn a_plain_venue_refuses_a_deadline_and_cancels_only_by_order_id() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(
        venue_engine(VenueProfile::Plain, 1),
        FaultConfig::healthy(),
        clock,
    );
    let with_deadline = order_json("c-1", "100", T0 + 5_000).to_string();
    let (status, problem, headers) =
        call(&app, Method::POST, "/v1/orders", Some(with_deadline)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem_type(&problem), "unsupported_field");
    let body = without_deadline(order_json("c-1", "100", 0)).to_string();
    let (status, placed, _) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(placed.get("expire_at").is_none(), "{placed}");
    let id = placed["order_id"].as_str().expect("id").to_string();

    for client_id in ["c-1", "never-seen"] {
        let uri = format!("/v1/orders:by-client-id/{client_id}");
        let (status, problem, headers) = call(&app, Method::DELETE, &uri, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(problem_type(&problem), "cancel_by_order_id_only");
        assert_eq!(headers["allow"], "GET");
    }
    let (status, found, _) = call(&app, Method::GET, "/v1/orders:by-client-id/c-1", None).await;
    assert_eq!(
        (status, found["order_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    let uri = format!("/v1/orders/{id}");
    let (status, v, _) = call(&app, Method::DELETE, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            v["outcome"].as_str(),
            v["client_order_id"].as_str(),
            v["order"]["status"].as_str()
        ),
        (Some("cancelled"), Some("c-1"), Some("cancelled"))
    );
    let (_, v, _) = call(&app, Method::DELETE, &uri, None).await;
    assert_eq!(v["outcome"], "already_terminal");
    let (status, problem, _) = call(&app, Method::DELETE, "/v1/orders/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type(&problem), "unknown_order");
    assert_eq!(count(&audit(&app).await, "tombstones"), 0);
}

#[tokio::test]
async fn a_deadline_venue_answers_404_for_an_unknown_cancel_and_stores_nothing() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(
        venue_engine(VenueProfile::Deadline, 2),
        FaultConfig::healthy(),
        clock,
    );
    let (status, problem, headers) = call(
        &app,
        Method::DELETE,
        "/v1/orders:by-client-id/c-ghost",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(problem_type(&problem), "unknown_order");
    let body = order_json("c-ghost", "100", T0 + 5_000).to_string();
    let (status, _, _) = call(&app, Method::POST, "/v1/orders", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "no tombstone was left");
    let (status, v, _) = call(
        &app,
        Method::DELETE,
        "/v1/orders:by-client-id/c-ghost",
        None,
    )
    .await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, problem, _) = call(
        &app,
        Method::POST,
        "/v1/orders",
        Some(without_deadline(order_json("c-2", "1", 0)).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_type(&problem), "validation");
    let a = audit(&app).await;
    assert_eq!(
        (count(&a, "tombstones"), a["venue"].as_str()),
        (0, Some("deadline"))
    );
}

#[tokio::test]
async fn the_venue_route_names_the_profile_and_its_guarantees() {
    for (venue, want) in [
        (VenueProfile::Tombstone, (true, true, true)),
        (VenueProfile::Deadline, (true, false, true)),
        (VenueProfile::Plain, (false, false, false)),
    ] {
        let clock = Arc::new(ManualClock::new(T0));
        let (app, _) = oneshot_app(venue_engine(venue, 3), FaultConfig::healthy(), clock);
        let (status, v, _) = call(&app, Method::GET, "/v1/venue", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["profile"], venue.as_str());
        let got = (
            v["request_deadline"].as_bool(),
            v["tombstones"].as_bool(),
            v["cancel_by_client_id"].as_bool(),
        );
        assert_eq!(got, (Some(want.0), Some(want.1), Some(want.2)), "{v}");
        assert_eq!(v["cancel_by_order_id"], true);
        assert_eq!(v["time_in_force"], json!(["day", "gtc", "ioc"]));
        assert_eq!(v["session_close_utc_ms"], 72_000_000);
    }
}

#[tokio::test]
async fn orders_carry_their_time_in_force_and_trade_date() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _) = oneshot_app(fast_engine(4), FaultConfig::healthy(), clock);
    let mut gtc = order_json("c-gtc", "10", T0 + 5_000);
    gtc["time_in_force"] = json!("gtc");
    let (status, o, _) = call(&app, Method::POST, "/v1/orders", Some(gtc.to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (o["time_in_force"].as_str(), o["trade_date"].as_str()),
        (Some("gtc"), Some("2024-03-01"))
    );
    assert_eq!(
        o["good_until"], "2024-05-30T20:00:00.000Z",
        "90 days after the close"
    );
    let (_, o, _) = call(
        &app,
        Method::POST,
        "/v1/orders",
        Some(order_json("c-day", "10", T0 + 5_000).to_string()),
    )
    .await;
    assert_eq!(
        (o["time_in_force"].as_str(), o["good_until"].as_str()),
        (Some("day"), Some("2024-03-01T20:00:00.000Z"))
    );
    let mut ioc = order_json("c-ioc", "10", T0 + 5_000);
    ioc["time_in_force"] = json!("ioc");
    let (status, o, _) = call(&app, Method::POST, "/v1/orders", Some(ioc.to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(o["status"], "filled", "a market IOC fills on arrival");
    let mut fok = order_json("c-fok", "10", T0 + 5_000);
    fok["time_in_force"] = json!("fok");
    let (status, problem, _) = call(&app, Method::POST, "/v1/orders", Some(fok.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"]
        .as_str()
        .unwrap_or("")
        .contains("time_in_force"));
}

#[tokio::test]
async fn the_days_orders_and_executions_are_listed_in_pages() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = EngineConfig {
        min_chunks: 2,
        max_chunks: 2,
        ..fast_engine(5)
    };
    let (app, _) = oneshot_app(engine, FaultConfig::healthy(), clock.clone());
    for k in 0..5 {
        let body = order_json(&format!("c-{k}"), "10", T0 + 5_000).to_string();
        call(&app, Method::POST, "/v1/orders", Some(body)).await;
    }
    clock.advance(1_000); // past every fill of a fast engine
    let mut orders = Vec::new();
    let mut uri = "/v1/orders?trade_date=2024-03-01&limit=2".to_string();
    for _ in 0..5 {
        let (status, page, _) = call(&app, Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        orders.extend(page["orders"].as_array().cloned().unwrap_or_default());
        match page["next_page_token"].as_str() {
            Some(t) => uri = format!("/v1/orders?trade_date=2024-03-01&limit=2&page_token={t}"),
            None => break,
        }
    }
    let ids: Vec<_> = orders
        .iter()
        .filter_map(|o| o["client_order_id"].as_str())
        .collect();
    assert_eq!(ids, ["c-0", "c-1", "c-2", "c-3", "c-4"]);
    for o in &orders {
        assert!(
            o.get("executions").is_none(),
            "no executions in the list: {o}"
        );
        assert_eq!(
            (
                o["status"].as_str(),
                o["cum_quantity"].as_str(),
                o["execution_count"].as_u64()
            ),
            (Some("filled"), Some("10"), Some(2))
        );
        assert_eq!(
            (o["trade_date"].as_str(), o["time_in_force"].as_str()),
            (Some("2024-03-01"), Some("day"))
        );
    }
    let (status, page, _) = call(
        &app,
        Method::GET,
        "/v1/executions?trade_date=2024-03-01&limit=500",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let execs = page["executions"].as_array().cloned().unwrap_or_default();
    assert_eq!((execs.len(), page["next_page_token"].is_null()), (10, true));
    assert!(execs.iter().all(|x| x["trade_date"] == "2024-03-01"));
    let (_, other_day, _) = call(&app, Method::GET, "/v1/orders?trade_date=2024-03-02", None).await;
    assert_eq!(other_day["orders"], json!([]));
    for bad in [
        "/v1/orders?limit=2",
        "/v1/orders?trade_date=2024-02-30",
        "/v1/orders?trade_date=2024-03-01&page_token=x",
        "/v1/executions?trade_date=yesterday",
        "/v1/executions?trade_date=2024-03-01&colour=red",
    ] {
        let (status, problem, headers) = call(&app, Method::GET, bad, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json", "{bad}");
    }
}

#[tokio::test]
async fn every_response_carries_the_venue_time_and_v1_time_tells_it() {
    let clock = Arc::new(ManualClock::new(T0 + 250));
    let (app, _) = oneshot_app(fast_engine(6), FaultConfig::healthy(), clock.clone());
    let (status, t, headers) = call(&app, Method::GET, "/v1/time", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        t,
        json!({"now_ms": T0 + 250, "now": "2024-03-01T12:00:00.250Z"})
    );
    assert_eq!(headers["date"], "Fri, 01 Mar 2024 12:00:00 GMT");
    clock.advance(3_600_000);
    for (method, uri) in [
        (Method::GET, "/v1/orders/nope"),
        (Method::GET, "/admin/audit"),
        (Method::GET, "/no/such/route"),
        (Method::POST, "/v1/orders"),
    ] {
        let (_, _, headers) = call(&app, method, uri, None).await;
        assert_eq!(headers["date"], "Fri, 01 Mar 2024 13:00:00 GMT", "{uri}");
    }
}

async fn get_json(client: &reqwest::Client, url: String) -> (Value, Option<u64>) {
    let r = client.get(url).send().await.expect("response");
    let date = r
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .and_then(parse_http_date);
    (r.json().await.expect("json"), date)
}

#[tokio::test]
async fn a_venue_clock_ahead_or_behind_moves_deadlines_times_and_dates() {
    let hour: i64 = 3_600_000;
    // Generous: a loaded machine may take seconds between two lines.
    let slack_ms = 60_000;
    for offset in [hour, -hour] {
        let server = spawn(Settings {
            clock_offset_ms: offset,
            ..Settings::new(fast_engine(7))
        })
        .await;
        let client = reqwest::Client::new();
        let before = SystemClock.now_ms();
        let (t, date) = get_json(&client, format!("{}/v1/time", server.url())).await;
        let venue_now = t["now_ms"].as_u64().expect("now_ms");
        let expected = before.saturating_add_signed(offset);
        assert!(
            venue_now.abs_diff(expected) < slack_ms,
            "{venue_now} vs {expected}"
        );
        assert!(
            date.is_some_and(|d| d.abs_diff(expected) < slack_ms),
            "{date:?}"
        );
        // A deadline 30 s ahead of the platform's clock.
        let body = order_json("c-off", "10", SystemClock.now_ms() + 30_000);
        let r = client
            .post(format!("{}/v1/orders", server.url()))
            .json(&body)
            .send()
            .await
            .expect("place");
        let want = if offset > 0 {
            StatusCode::UNPROCESSABLE_ENTITY // the venue is an hour past it
        } else {
            StatusCode::CREATED
        };
        assert_eq!(r.status(), want, "offset {offset}");
        if offset < 0 {
            let o: Value = r.json().await.expect("json");
            let created = o["created_at"]
                .as_str()
                .and_then(exchange_sim::time::parse_rfc3339_ms);
            assert!(
                created.is_some_and(|c| c.abs_diff(expected) < slack_ms),
                "{o}"
            );
        }
    }
}

#[tokio::test]
async fn venue_latency_makes_a_tight_deadline_pass_on_arrival() {
    let latency = ResponseLatency {
        min_ms: 1_000,
        max_ms: 1_000,
        after: false,
    };
    let server = spawn(Settings {
        latency,
        ..Settings::new(fast_engine(8))
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client");
    let sent = Instant::now();
    let tight = order_json("c-tight", "10", SystemClock.now_ms() + 200);
    let r = client
        .post(format!("{}/v1/orders", server.url()))
        .json(&tight)
        .send()
        .await
        .expect("place");
    assert!(sent.elapsed() >= Duration::from_millis(1_000));
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = r.json().await.expect("json");
    assert_eq!(problem_type(&problem), "deadline-passed");
    let roomy = order_json("c-roomy", "10", SystemClock.now_ms() + 60_000);
    let r = client
        .post(format!("{}/v1/orders", server.url()))
        .json(&roomy)
        .send()
        .await
        .expect("place");
    assert_eq!(r.status(), StatusCode::CREATED);
}

fn injected(client_order_id: &str) -> Value {
    json!({"type": "execution", "client_order_id": client_order_id, "order_id": "o-x",
           "account": "acc-1", "symbol": "AAPL", "side": "buy", "exec_id": "x-1",
           "quantity": "5", "price": "187.25", "cum_quantity": "5", "leaves_quantity": "0",
           "status": "filled"})
}

#[tokio::test]
async fn admin_events_go_out_signed_and_are_audited_as_injected() {
    let (url, rx) = spawn_receiver(0).await;
    let server = spawn(webhook_settings(
        url,
        fast_engine(9),
        FaultConfig::healthy(),
    ))
    .await;
    let client = reqwest::Client::new();
    let mut event = injected("never-sent");
    event["event_id"] = json!("evt_test_1");
    let r = client
        .post(format!("{}/admin/events", server.url()))
        .json(&event)
        .send()
        .await
        .expect("inject");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let echoed: Value = r.json().await.expect("json");
    assert_eq!(echoed["event_id"], "evt_test_1");
    assert!(wait_until(|| !rx.all().is_empty()).await, "delivered");
    let got = rx.all();
    let now_s = SystemClock.now_ms() / 1000;
    assert_eq!(
        signature::verify(&[secret()], &got[0].headers, &got[0].body, now_s, 300),
        Ok(())
    );
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body, echoed);
    assert_eq!(body["client_order_id"], "never-sent");
    let a: Value = client
        .get(format!("{}/admin/audit", server.url()))
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(a["hostile_events"][0]["kind"], "injected");
    assert_eq!(a["hostile_events"][0]["event_ids"], json!(["evt_test_1"]));
    assert_eq!(count(&a, "orders"), 0, "the venue still holds nothing");

    // Without an id one is made; malformed or incomplete events are refused.
    let r = client
        .post(format!("{}/admin/events", server.url()))
        .json(&injected("other"))
        .send()
        .await
        .expect("inject");
    let v: Value = r.json().await.expect("json");
    assert!(v["event_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("evt_injected_")));
    let mut no_exec = injected("x");
    no_exec.as_object_mut().map(|m| m.remove("exec_id"));
    for bad in [no_exec, json!({"type": "execution"}), json!([1])] {
        let r = client
            .post(format!("{}/admin/events", server.url()))
            .json(&bad)
            .send()
            .await
            .expect("inject");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_hostile_venue_reports_a_phantom_that_rest_does_not_know() {
    let (url, rx) = spawn_receiver(0).await;
    let engine = EngineConfig {
        hostile: Some(exchange_sim::hostile::HostileConfig {
            phantom_order: 1.0,
            ..exchange_sim::hostile::HostileConfig::none()
        }),
        ..fast_engine(10)
    };
    let server = spawn(webhook_settings(url, engine, FaultConfig::healthy())).await;
    place_one(&server, "c-real", "10").await;
    let phantom = || {
        rx.bodies()
            .into_iter()
            .find(|b| b["client_order_id"] != "c-real" && b["type"] == "execution")
    };
    assert!(
        wait_until(|| phantom().is_some()).await,
        "a phantom arrives"
    );
    let id = phantom()
        .and_then(|b| b["client_order_id"].as_str().map(str::to_string))
        .expect("id");
    assert_eq!(
        lookup(&reqwest::Client::new(), &server, &id).await,
        StatusCode::NOT_FOUND
    );
    let records = server.state.engine().hostile_events().to_vec();
    assert_eq!(records[0].client_order_id, id);
}
