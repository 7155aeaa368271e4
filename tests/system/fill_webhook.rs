//! The fill webhook on the local stack: the real SQS fill queue and its
//! dead-letter queue, the signing secrets read from the emulator's Secrets
//! Manager (and rotated there), requests signed by the exchange simulator's
//! reference implementation (so the platform's verifier is checked against
//! it), and one run end to end with the simulator delivering its own webhooks.
//!
//! What must hold: nothing unauthenticated reaches a queue; a `2xx` only
//! after the queue accepted; a well-signed but unreadable webhook is set
//! aside for an operator; every execution the exchange reports arrives; a
//! rotation needs no restart and is seen within the cache period.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::exchange::{Exchange, PlaceOutcome, PlaceRequest};
use app::{Clock, ManualClock, SystemClock};
use aws_adapters::exchange_http::HttpExchange;
use aws_adapters::secrets::SecretsManagerSecret;
use aws_adapters::sqs::{parse_report, SqsFillQueue, ATTRIBUTE_CLIENT_ORDER_ID};
use domain::order::{
    ExchangeReport, ExecId, Execution, FinalStatus, OrderId, OrderType, TimeInForce,
};
use domain::{Catalog, Price, Quantity, Side};
use exchange_sim::signature::{sign, Secret as SimSecret};
use exchange_sim::webhooks::WebhookConfig;
use fill_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use fill_webhook::{CachedKeys, SecretValue, PROBLEM_CONTENT_TYPE, WEBHOOK_PATH};
use local_stack::{unique_prefix, Stack};
use reqwest::StatusCode;
use serde_json::{json, Value};
use system_tests::conformance::exchange::{aapl, new_order_id};
use system_tests::faulty_proxy::{FaultyProxy, Mode};
use system_tests::sim_exchange::fast_fills;
use system_tests::{new_account, serve};

const TOLERANCE: Duration = Duration::from_secs(300);
/// How long the webhook uses the signing secrets it read (the default).
const SECRET_CACHE: Duration = Duration::from_secs(300);
/// Long enough for the emulator to answer a receive; an empty answer after
/// this wait means the queue holds nothing visible.
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Most receive rounds while draining a queue (10 messages each).
const MAX_RECEIVE_ROUNDS: usize = 50;
/// How long the end-to-end run may take for every execution to arrive.
const END_TO_END_BUDGET: Duration = Duration::from_secs(60);

/// A fresh random 32-byte secret in the simulator's form.
fn new_secret() -> SimSecret {
    let bytes = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.as_bytes().to_vec())
        .collect();
    SimSecret::from_bytes(bytes).expect("32 bytes")
}

/// The secret's value listing `secrets`, as an operator stores it.
fn secret_value(secrets: &[&SimSecret]) -> String {
    let texts: Vec<String> = secrets.iter().map(|s| s.to_whsec()).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    SecretValue::json(&texts)
}

fn now_seconds() -> u64 {
    SystemClock.now_ms() / 1000
}

/// The webhook served on a loopback port, in front of fresh queues, its
/// signing secrets in a fresh Secrets Manager secret.
struct Hook {
    url: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_queue_url: String,
    http: reqwest::Client,
    stack: Stack,
    /// The Secrets Manager secret of the signing secrets (its name).
    secret_name: String,
}

/// Where the webhook reads its signing secrets.
enum SecretsAt {
    /// The emulator's Secrets Manager.
    Emulator,
    /// The same, through a proxy a test can break.
    Proxy(FaultyProxy),
    /// A secret id nothing was ever stored under.
    Missing,
}

/// Which queue a hook sends to; the emulator's own unless told otherwise.
enum QueueTarget {
    Emulator,
    MissingQueues,
    ClosedPort,
}

async fn spawn_hook(label: &str, secrets: &[&SimSecret]) -> Hook {
    spawn_hook_with(label, secrets, QueueTarget::Emulator).await
}

async fn spawn_hook_with(label: &str, secrets: &[&SimSecret], target: QueueTarget) -> Hook {
    spawn_hook_on(
        label,
        secrets,
        target,
        SecretsAt::Emulator,
        SystemClock,
        SECRET_CACHE,
    )
    .await
}

/// The webhook on `clock`, reading its signing secrets from `secrets_at`
/// (where `secrets` are stored first) and keeping them for `cache`.
async fn spawn_hook_on<C: Clock + Clone + 'static>(
    label: &str,
    secrets: &[&SimSecret],
    target: QueueTarget,
    secrets_at: SecretsAt,
    clock: C,
    cache: Duration,
) -> Hook {
    let stack = Stack::ensure_running().await.expect("local stack");
    let prefix = unique_prefix(label);
    let resources = stack.create_resources(&prefix).await.expect("resources");
    let secret_name = format!("{prefix}ExchangeWebhookSecret");
    let secret_arn = stack
        .put_secret(&secret_name, &secret_value(secrets))
        .await
        .expect("secret stored");
    let source = match secrets_at {
        SecretsAt::Emulator => SecretsManagerSecret::from_config(&stack.sdk_config(), secret_arn),
        SecretsAt::Proxy(proxy) => {
            let through = Stack::at(&proxy.url()).sdk_config();
            SecretsManagerSecret::from_config(&through, secret_arn)
        }
        SecretsAt::Missing => SecretsManagerSecret::from_config(
            &stack.sdk_config(),
            format!("{secret_name}-never-stored"),
        ),
    };
    let keys = CachedKeys::new(source, clock.clone(), cache);
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config());
    let queue_url = resources.queue_url("FillQueue").to_owned();
    let dead_letter_queue_url = resources.queue_url("FillDeadLetterQueue").to_owned();
    let queue = match target {
        QueueTarget::Emulator => SqsFillQueue::new(sqs.clone(), &queue_url, &dead_letter_queue_url),
        QueueTarget::MissingQueues => {
            let missing = |name: &str| format!("{queue_url}-{name}-does-not-exist");
            SqsFillQueue::new(sqs.clone(), missing("fills"), missing("dlq"))
        }
        QueueTarget::ClosedPort => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let closed = format!("http://{}", listener.local_addr().expect("address"));
            drop(listener); // nothing listens there any more
            let config = aws_sdk_sqs::config::Builder::from(&stack.sdk_config())
                .endpoint_url(closed)
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
                .build();
            let unreachable = aws_sdk_sqs::Client::from_conf(config);
            SqsFillQueue::new(unreachable, &queue_url, &dead_letter_queue_url)
        }
    };
    let router = fill_webhook::router(queue, clock, keys, TOLERANCE);
    let address = serve(router).await;
    Hook {
        url: format!("http://{address}{WEBHOOK_PATH}"),
        sqs,
        queue_url,
        dead_letter_queue_url,
        http: reqwest::Client::new(),
        stack,
        secret_name,
    }
}

/// One delivery as it goes on the wire; fields are changed to tamper with it.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: Option<String>,
    body: Vec<u8>,
}

impl Delivery {
    /// Signed now by `secret`, with a fresh id, as the exchange would send it.
    fn signed(secret: &SimSecret, body: &Value) -> Delivery {
        Delivery::signed_at(secret, body, now_seconds())
    }

    fn signed_at(secret: &SimSecret, body: &Value, timestamp: u64) -> Delivery {
        let body = serde_json::to_vec(body).expect("json");
        Delivery::signed_bytes(secret, body, timestamp)
    }

    fn signed_bytes(secret: &SimSecret, body: Vec<u8>, timestamp: u64) -> Delivery {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        Delivery {
            signature: Some(sign(secret, &id, timestamp, &body)),
            id,
            timestamp: timestamp.to_string(),
            body,
        }
    }
}

/// A queue message: its body and its `client_order_id` attribute.
#[derive(Debug)]
struct Message {
    body: String,
    client_order_id: Option<String>,
}

impl Hook {
    /// Stores a new current value of the signing secrets (a rotation step).
    async fn store_secrets(&self, secrets: &[&SimSecret]) {
        self.stack
            .put_secret(&self.secret_name, &secret_value(secrets))
            .await
            .expect("secret stored");
    }

    async fn post(&self, delivery: &Delivery) -> reqwest::Response {
        let mut request = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_ID, &delivery.id)
            .header(HEADER_TIMESTAMP, &delivery.timestamp)
            .body(delivery.body.clone());
        if let Some(signature) = &delivery.signature {
            request = request.header(HEADER_SIGNATURE, signature);
        }
        request.send().await.expect("the webhook answered")
    }

    async fn status_of(&self, delivery: &Delivery) -> StatusCode {
        self.post(delivery).await.status()
    }

    /// Everything visible on `queue_url`, received until a receive comes back
    /// empty. Each batch is deleted once read: a FIFO queue hands out no more
    /// of a message group while some of it is in flight.
    async fn drain(&self, queue_url: &str) -> Vec<Message> {
        let mut messages = Vec::new();
        for _ in 0..MAX_RECEIVE_ROUNDS {
            let received = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(RECEIVE_WAIT_SECONDS)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            let batch = received.messages();
            if batch.is_empty() {
                return messages;
            }
            for message in batch {
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
            messages.extend(batch.iter().map(|m| {
                Message {
                    body: m.body().unwrap_or_default().to_owned(),
                    client_order_id: m
                        .message_attributes()
                        .and_then(|a| a.get(ATTRIBUTE_CLIENT_ORDER_ID))
                        .and_then(|v| v.string_value())
                        .map(str::to_owned),
                }
            }));
        }
        panic!("{queue_url} did not run dry after {MAX_RECEIVE_ROUNDS} receives");
    }

    async fn queued_reports(&self) -> Vec<ExchangeReport> {
        self.drain(&self.queue_url)
            .await
            .iter()
            .map(|m| parse_report(&m.body).expect("a queued report parses"))
            .collect()
    }

    /// `(reason, payload)` of every message on the dead-letter queue.
    async fn set_aside(&self) -> Vec<(String, String)> {
        self.drain(&self.dead_letter_queue_url)
            .await
            .iter()
            .map(|m| {
                let value: Value = serde_json::from_str(&m.body).expect("set-aside JSON");
                let field = |name: &str| {
                    value["set_aside"][name]
                        .as_str()
                        .unwrap_or_else(|| panic!("set_aside.{name} in {value}"))
                        .to_owned()
                };
                (field("reason"), field("payload"))
            })
            .collect()
    }
}

/// An execution event in the exchange's webhook format.
fn execution_event(order: &OrderId, exec_id: &str) -> Value {
    json!({
        "type": "execution", "event_id": format!("evt-{exec_id}"),
        "client_order_id": order.as_str(), "order_id": "x-1", "account": "acc-1",
        "symbol": "AAPL", "side": "buy", "exec_id": exec_id, "quantity": "30",
        "price": "187.25", "cum_quantity": "30", "leaves_quantity": "70",
        "status": "partially_filled", "occurred_at": "2024-03-01T12:00:01.000Z"
    })
}

/// The report [`execution_event`] must become.
fn execution_report(order: &OrderId, exec_id: &str) -> ExchangeReport {
    ExchangeReport::Execution {
        client_order_id: order.clone(),
        execution: Execution {
            exec_id: ExecId::parse(exec_id).expect("exec id"),
            exchange_order_id: "x-1".into(),
            quantity: Quantity::new(30).expect("quantity"),
            price: Price::parse("187.25").expect("price"),
            cum_quantity: Some(30),
        },
    }
}

fn status_event(order: &OrderId, status: &str, cum_quantity: &str) -> Value {
    json!({
        "type": "order_status", "event_id": format!("evt-{status}"),
        "client_order_id": order.as_str(), "order_id": "x-1", "account": "acc-1",
        "symbol": "AAPL", "side": "buy", "cum_quantity": cum_quantity,
        "leaves_quantity": "0", "status": status,
        "occurred_at": "2024-03-01T12:00:02.000Z"
    })
}

/// GIVEN a signed execution WHEN delivered THEN `2xx` and exactly one message,
/// which reads back as the same report and names the order.
#[tokio::test]
async fn a_signed_execution_is_queued_once_as_the_same_report() {
    let secret = new_secret();
    let hook = spawn_hook("hook-exec", &[&secret]).await;
    let order = new_order_id();

    let status = hook
        .status_of(&Delivery::signed(&secret, &execution_event(&order, "e-1")))
        .await;

    assert!(status.is_success(), "{status}");
    let messages = hook.drain(&hook.queue_url).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        parse_report(&messages[0].body).expect("report"),
        execution_report(&order, "e-1")
    );
    assert_eq!(messages[0].client_order_id.as_deref(), Some(order.as_str()));
    assert!(hook.set_aside().await.is_empty());
}

/// A final status is queued; a status the exchange can still move on from is
/// acknowledged and not queued.
#[tokio::test]
async fn a_final_status_is_queued_and_a_passing_one_is_not() {
    let secret = new_secret();
    let hook = spawn_hook("hook-status", &[&secret]).await;
    let order = new_order_id();

    let fin = hook
        .status_of(&Delivery::signed(
            &secret,
            &status_event(&order, "cancelled", "30"),
        ))
        .await;
    let passing = hook
        .status_of(&Delivery::signed(
            &secret,
            &status_event(&order, "partially_filled", "30"),
        ))
        .await;

    assert!(fin.is_success(), "{fin}");
    assert!(passing.is_success(), "{passing}");
    let reports = hook.queued_reports().await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let ExchangeReport::Final {
        report,
        client_order_id,
        ..
    } = &reports[0]
    else {
        panic!("expected a final report, got {:?}", reports[0]);
    };
    assert_eq!(client_order_id, &order);
    assert_eq!(report.status, FinalStatus::Cancelled);
    assert_eq!(report.cum_quantity, 30);
}

/// Every way of not proving the exchange sent it is `401` problem+json, and
/// nothing reaches either queue.
#[tokio::test]
async fn unauthenticated_deliveries_are_401_and_queue_nothing() {
    let secret = new_secret();
    let hook = spawn_hook("hook-401", &[&secret]).await;
    let order = new_order_id();
    let event = execution_event(&order, "e-1");
    let now = now_seconds();

    // A genuine delivery, captured; the only thing that may be queued.
    let captured = Delivery::signed(&secret, &event);
    assert!(hook.status_of(&captured).await.is_success());

    let mut cases = vec![
        ("forged", Delivery::signed(&new_secret(), &event)),
        (
            "unsigned",
            Delivery {
                signature: None,
                ..Delivery::signed(&secret, &event)
            },
        ),
        (
            "expired",
            Delivery::signed_at(&secret, &event, now - TOLERANCE.as_secs() - 60),
        ),
        (
            "far future",
            Delivery::signed_at(&secret, &event, now + TOLERANCE.as_secs() + 60),
        ),
        (
            "replayed signature on a new body",
            Delivery {
                body: serde_json::to_vec(&execution_event(&order, "e-2")).expect("json"),
                ..captured.clone()
            },
        ),
        (
            "malformed signature header",
            Delivery {
                signature: Some("v1,not base64!".into()),
                ..Delivery::signed(&secret, &event)
            },
        ),
        (
            "signature without a version",
            Delivery {
                signature: Some("garbage".into()),
                ..Delivery::signed(&secret, &event)
            },
        ),
        (
            "timestamp not a number",
            Delivery {
                timestamp: "soon".into(),
                ..Delivery::signed(&secret, &event)
            },
        ),
    ];
    let mut tampered = Delivery::signed(&secret, &event);
    let last = tampered.body.len() - 2; // inside the JSON, before the closing brace
    tampered.body[last] ^= 0x01;
    cases.push(("one byte of the body changed after signing", tampered));

    for (case, delivery) in &cases {
        let response = hook.post(delivery).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE);
        assert_eq!(
            content_type.and_then(|v| v.to_str().ok()),
            Some(PROBLEM_CONTENT_TYPE),
            "{case}"
        );
    }

    assert_eq!(
        hook.queued_reports().await,
        vec![execution_report(&order, "e-1")]
    );
    assert!(hook.set_aside().await.is_empty());
}

/// During a rotation both secrets are configured: either signs; a third does not.
#[tokio::test]
async fn either_secret_is_accepted_during_rotation() {
    let (old, new) = (new_secret(), new_secret());
    let hook = spawn_hook("hook-rotate", &[&old, &new]).await;
    let order = new_order_id();

    let by_old = hook
        .status_of(&Delivery::signed(&old, &execution_event(&order, "e-old")))
        .await;
    let by_new = hook
        .status_of(&Delivery::signed(&new, &execution_event(&order, "e-new")))
        .await;
    let by_other = hook
        .status_of(&Delivery::signed(
            &new_secret(),
            &execution_event(&order, "e-x"),
        ))
        .await;

    assert!(by_old.is_success(), "{by_old}");
    assert!(by_new.is_success(), "{by_new}");
    assert_eq!(by_other, StatusCode::UNAUTHORIZED);
    let mut queued = hook.queued_reports().await;
    queued.sort_by_key(|r| format!("{r:?}"));
    let mut expected = vec![
        execution_report(&order, "e-new"),
        execution_report(&order, "e-old"),
    ];
    expected.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(queued, expected);
}

/// A rotation on Secrets Manager, with no restart: the operator first
/// stores the new secret beside the old one, later the new one alone. Each
/// change is seen within the cache period; while both are listed, either
/// signs; after the second change, the old one is refused.
#[tokio::test]
async fn a_rotation_with_two_versions_live_needs_no_restart() {
    let cache = Duration::from_secs(60);
    let clock = ManualClock::at(SystemClock.now_ms());
    let (old, new) = (new_secret(), new_secret());
    let hook = spawn_hook_on(
        "hook-rotation",
        &[&old],
        QueueTarget::Emulator,
        SecretsAt::Emulator,
        clock.clone(),
        cache,
    )
    .await;
    let order = new_order_id();
    let deliver = |secret: &SimSecret, exec_id: &str| {
        let delivery = Delivery::signed_at(
            secret,
            &execution_event(&order, exec_id),
            clock.now_ms() / 1000,
        );
        let hook = &hook;
        async move { hook.status_of(&delivery).await }
    };

    assert_eq!(deliver(&old, "e-1").await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&new, "e-2").await, StatusCode::UNAUTHORIZED);

    // Step one: both listed. An instance uses what it read until its cache
    // period ends, then sees the change.
    hook.store_secrets(&[&new, &old]).await;
    assert_eq!(deliver(&new, "e-3").await, StatusCode::UNAUTHORIZED);
    clock.advance_ms(cache.as_millis() as u64);
    assert_eq!(deliver(&new, "e-4").await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&old, "e-5").await, StatusCode::ACCEPTED);

    // Step two: the new one alone. The old one is refused within the period.
    hook.store_secrets(&[&new]).await;
    clock.advance_ms(cache.as_millis() as u64);
    assert_eq!(deliver(&old, "e-6").await, StatusCode::UNAUTHORIZED);
    assert_eq!(deliver(&new, "e-7").await, StatusCode::ACCEPTED);

    // Exactly the accepted deliveries were queued; the refused ones, nothing.
    let mut queued = hook.queued_reports().await;
    queued.sort_by_key(|r| format!("{r:?}"));
    let mut expected: Vec<ExchangeReport> = ["e-1", "e-4", "e-5", "e-7"]
        .iter()
        .map(|e| execution_report(&order, e))
        .collect();
    expected.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(queued, expected);
    assert!(hook.set_aside().await.is_empty());
}

/// Secrets Manager unreachable when the cache period ends: the secrets read
/// last stay in use (no delivery is refused for it), and the change made
/// meanwhile is picked up once it answers again.
#[tokio::test]
async fn an_unreachable_secrets_manager_keeps_the_secrets_in_use() {
    let cache = Duration::from_secs(60);
    let clock = ManualClock::at(SystemClock.now_ms());
    let stack = Stack::ensure_running().await.expect("local stack");
    let upstream = stack
        .secrets_manager_endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("the emulator's address");
    let proxy = FaultyProxy::spawn(upstream).await;
    let (current, next) = (new_secret(), new_secret());
    let hook = spawn_hook_on(
        "hook-sm-down",
        &[&current],
        QueueTarget::Emulator,
        SecretsAt::Proxy(proxy.clone()),
        clock.clone(),
        cache,
    )
    .await;
    let order = new_order_id();
    let deliver = |secret: &SimSecret, exec_id: &str| {
        let delivery = Delivery::signed_at(
            secret,
            &execution_event(&order, exec_id),
            clock.now_ms() / 1000,
        );
        let hook = &hook;
        async move { hook.status_of(&delivery).await }
    };
    assert_eq!(deliver(&current, "e-1").await, StatusCode::ACCEPTED);

    proxy.set(Mode::Refuse);
    hook.store_secrets(&[&next]).await;
    clock.advance_ms(cache.as_millis() as u64);
    assert_eq!(deliver(&current, "e-2").await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&next, "e-3").await, StatusCode::UNAUTHORIZED);

    proxy.set(Mode::Pass);
    clock.advance_ms(fill_webhook::secrets::RETRY_AFTER_FAILURE_MS);
    assert_eq!(deliver(&next, "e-4").await, StatusCode::ACCEPTED);
    assert_eq!(deliver(&current, "e-5").await, StatusCode::UNAUTHORIZED);

    let mut queued = hook.queued_reports().await;
    queued.sort_by_key(|r| format!("{r:?}"));
    let mut expected: Vec<ExchangeReport> = ["e-1", "e-2", "e-4"]
        .iter()
        .map(|e| execution_report(&order, e))
        .collect();
    expected.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(queued, expected);
}

/// A delivery over the size limit is `413` problem+json, refused unread, and
/// nothing reaches either queue.
#[tokio::test]
async fn an_oversized_delivery_is_413_and_queues_nothing() {
    let secret = new_secret();
    let hook = spawn_hook("hook-413", &[&secret]).await;
    let body = vec![b' '; fill_webhook::MAX_BODY_BYTES + 1];
    let oversized = Delivery::signed_bytes(&secret, body, now_seconds());
    let response = hook.post(&oversized).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some(PROBLEM_CONTENT_TYPE)
    );
    assert!(hook.queued_reports().await.is_empty());
    assert!(hook.set_aside().await.is_empty());
}

/// No signing secret can be read (nothing stored under the id): a signed
/// delivery is `503` (the exchange delivers again), an unsigned one still
/// `401`, and nothing reaches either queue.
#[tokio::test]
async fn no_stored_secret_is_503_and_queues_nothing() {
    let secret = new_secret();
    let hook = spawn_hook_on(
        "hook-no-secret",
        &[&secret],
        QueueTarget::Emulator,
        SecretsAt::Missing,
        SystemClock,
        SECRET_CACHE,
    )
    .await;
    let order = new_order_id();
    let signed = Delivery::signed(&secret, &execution_event(&order, "e-1"));
    let response = hook.post(&signed).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some(PROBLEM_CONTENT_TYPE)
    );
    let unsigned = Delivery {
        signature: None,
        ..signed
    };
    assert_eq!(hook.status_of(&unsigned).await, StatusCode::UNAUTHORIZED);
    assert!(hook.queued_reports().await.is_empty());
    assert!(hook.set_aside().await.is_empty());
}

/// Signed by the exchange but unreadable: retrying cannot help, so each is
/// acknowledged (`202`, outcome `set_aside`) and set aside on the dead-letter
/// queue with its reason and the payload as received, once however often
/// the exchange repeats the same webhook.
#[tokio::test]
async fn well_signed_malformed_payloads_are_acknowledged_and_set_aside_once() {
    let secret = new_secret();
    let hook = spawn_hook("hook-400", &[&secret]).await;
    let order = new_order_id();
    let with = |field: &str, value: Value| {
        let mut event = execution_event(&order, "e-1");
        event[field] = value;
        serde_json::to_vec(&event).expect("json")
    };
    let mut missing_exec_id = execution_event(&order, "e-1");
    missing_exec_id
        .as_object_mut()
        .expect("object")
        .remove("exec_id");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bad JSON",
            b"{\"type\": \"execution\",".to_vec(),
            "not an exchange event",
        ),
        ("unknown type", with("type", json!("bust")), "bust"),
        (
            "fractional quantity",
            with("quantity", json!("1.5")),
            "quantity",
        ),
        ("negative price", with("price", json!("-187.25")), "price"),
        (
            "missing exec_id",
            serde_json::to_vec(&missing_exec_id).expect("json"),
            "exec_id",
        ),
    ];

    for (case, body, _) in &cases {
        let delivery = Delivery::signed_bytes(&secret, body.clone(), now_seconds());
        for _ in 0..2 {
            let response = hook.post(&delivery).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{case}");
            let answer: Value = response.json().await.expect("json");
            assert_eq!(answer["outcome"], "set_aside", "{case}");
        }
    }

    let set_aside: BTreeMap<String, String> = hook
        .set_aside()
        .await
        .into_iter()
        .map(|(reason, payload)| (payload, reason))
        .collect();
    assert_eq!(set_aside.len(), cases.len(), "{set_aside:?}");
    for (case, body, reason_mentions) in &cases {
        let payload = String::from_utf8(body.clone()).expect("utf-8");
        let reason = set_aside
            .get(&payload)
            .unwrap_or_else(|| panic!("{case} was not set aside"));
        assert!(reason.contains(reason_mentions), "{case}: {reason}");
    }
    assert!(hook.queued_reports().await.is_empty());
}

/// A queue that does not take the message means `503`, so the exchange
/// delivers again: whether the queue is missing or SQS cannot be reached,
/// and for the set-aside path too.
#[tokio::test]
async fn an_unavailable_queue_is_503() {
    let secret = new_secret();
    let order = new_order_id();
    for (label, target) in [
        ("hook-503-missing", QueueTarget::MissingQueues),
        ("hook-503-closed", QueueTarget::ClosedPort),
    ] {
        let hook = spawn_hook_with(label, &[&secret], target).await;
        let execution = Delivery::signed(&secret, &execution_event(&order, "e-1"));
        let malformed = Delivery::signed_bytes(&secret, b"not json".to_vec(), now_seconds());

        assert_eq!(
            hook.status_of(&execution).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{label}"
        );
        assert_eq!(
            hook.status_of(&malformed).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{label}"
        );
        // The real queues of this hook were never written to.
        assert!(hook.queued_reports().await.is_empty(), "{label}");
        assert!(hook.set_aside().await.is_empty(), "{label}");
    }
}

/// The exchange retries what it thinks failed: the same webhook twice is
/// accepted twice and queued once (the queue drops a delivery id it took in
/// the last five minutes); a later retry, or the same execution under
/// another webhook id, is queued again and the processor de-duplicates it
/// on `exec_id`.
#[tokio::test]
async fn a_repeated_webhook_is_accepted_each_time() {
    let secret = new_secret();
    let hook = spawn_hook("hook-repeat", &[&secret]).await;
    let order = new_order_id();
    let delivery = Delivery::signed(&secret, &execution_event(&order, "e-1"));

    let first = hook.status_of(&delivery).await;
    let second = hook.status_of(&delivery).await;
    let other_id = Delivery::signed(&secret, &execution_event(&order, "e-1"));
    let third = hook.status_of(&other_id).await;

    for status in [first, second, third] {
        assert!(status.is_success(), "{status}");
    }
    let reports = hook.queued_reports().await;
    assert_eq!(reports.len(), 2, "one per webhook id: {reports:?}");
    assert!(reports
        .iter()
        .all(|r| r == &execution_report(&order, "e-1")));
}

/// The exchange simulator delivers its own signed webhooks to the served
/// router: every execution it made arrives on the queue, and so does each
/// order's final status.
#[tokio::test]
async fn every_execution_of_the_exchange_reaches_the_queue() {
    let secret = new_secret();
    let hook = spawn_hook("hook-e2e", &[&secret]).await;
    let mut settings = exchange_sim::app::Settings::new(fast_fills(7));
    settings.webhook = Some(WebhookConfig::new(hook.url.clone(), secret.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let server = exchange_sim::app::start(
        settings,
        listener,
        Arc::new(exchange_sim::time::SystemClock),
    )
    .await
    .expect("start the exchange simulator");
    let exchange = HttpExchange::new(
        &server.url(),
        Catalog::us_equities(),
        Duration::from_secs(5),
    )
    .expect("client");

    let mut orders = Vec::new();
    for shares in [40, 75] {
        let request = PlaceRequest {
            client_order_id: new_order_id(),
            account: new_account("hook"),
            symbol: aapl(),
            side: Side::Buy,
            order_type: OrderType::Market,
            quantity: Quantity::new(shares).expect("shares"),
            limit_price: None,
            time_in_force: TimeInForce::Day,
            deadline_ms: Some(SystemClock.now_ms() + 60_000),
        };
        match exchange.place(&request).await {
            Ok(PlaceOutcome::Accepted(_)) => orders.push(request.client_order_id),
            other => panic!("expected the order to be accepted, got {other:?}"),
        }
    }

    // The exchange's truth, once every order is final: (order, exec_id) ->
    // (quantity, price).
    let truth = |orders: &[OrderId]| {
        let engine = server.state.engine();
        let mut executions = BTreeMap::new();
        let mut all_final = true;
        for id in orders {
            let order = engine.get_by_client_id(id.as_str()).expect("placed");
            all_final &= order.status.is_terminal();
            for e in &order.executions {
                executions.insert(
                    (id.clone(), e.exec_id.clone()),
                    (e.quantity.shares(), e.price.cents()),
                );
            }
        }
        all_final.then_some(executions)
    };

    // Duplicates may arrive (delivery is at least once): keep one per exec_id.
    let mut arrived = BTreeMap::new();
    let mut finals = BTreeSet::new();
    let started = Instant::now();
    let expected = loop {
        for report in hook.queued_reports().await {
            match report {
                ExchangeReport::Execution {
                    client_order_id,
                    execution,
                } => {
                    let value = (execution.quantity.shares(), execution.price.cents());
                    arrived.insert(
                        (client_order_id, execution.exec_id.as_str().to_owned()),
                        value,
                    );
                }
                ExchangeReport::Final {
                    client_order_id, ..
                } => {
                    finals.insert(client_order_id);
                }
            }
        }
        if let Some(expected) = truth(&orders) {
            if arrived.len() >= expected.len() && finals.len() == orders.len() {
                break expected;
            }
        }
        assert!(
            started.elapsed() < END_TO_END_BUDGET,
            "after {END_TO_END_BUDGET:?}: {} executions and {} final statuses arrived",
            arrived.len(),
            finals.len()
        );
    };

    assert!(
        expected.len() >= 2 * orders.len(),
        "fast fills come in chunks"
    );
    assert_eq!(arrived, expected);
    assert_eq!(finals, orders.iter().cloned().collect());
}
