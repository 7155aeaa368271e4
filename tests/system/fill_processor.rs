//! The fill processor on the local stack: repeated, reordered and poison
//! deliveries, crashes around settlement, partial fills, and the real queue
//! with its redrive to the dead-letter queue.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use domain::order::{
    ExchangeReport, ExecId, Execution, FinalReport, FinalStatus, Order, OrderId, OrderStatus,
};
use domain::{AccountId, Asset, Price, Quantity};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use fill_processor::{handle_batch, handle_message, MessageResult};
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::faulty_proxy::Mode;
use system_tests::platform::Platform;

fn limit_buy(quantity: u64, price: &str) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": price})
}

async fn place(
    platform: &Platform,
    account: &AccountId,
    key: &str,
    body: &serde_json::Value,
) -> OrderId {
    let body: serde_json::Value = platform
        .post_order(account, key, body)
        .await
        .json()
        .await
        .expect("json");
    let id = body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an order, got {body}"));
    OrderId::parse(id).expect("order id")
}

fn message(n: usize, report: &ExchangeReport) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(format!("m-{n}"));
    message.body = Some(serde_json::to_string(report).expect("json"));
    message
}

fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

/// Cash an order's executions cost at the exchange.
fn executed_cents(platform: &Platform, id: &OrderId) -> u64 {
    let audit = platform.exchange.state.engine().audit();
    audit
        .orders
        .iter()
        .filter(|o| o.client_order_id == id.as_str())
        .flat_map(|o| o.executions.iter())
        .map(|e| e.price.cents() * e.quantity.shares())
        .sum()
}

async fn assert_settled_once(
    platform: &Platform,
    account: &AccountId,
    id: &OrderId,
    start_cents: u64,
) -> Order {
    let order = platform.order(id).await;
    assert!(order.is_closed(), "{order:?}");
    assert_eq!(order.status(), OrderStatus::Filled);
    let cash = balance_of(&platform.balances, account, &Asset::Cash).await;
    assert_eq!(cash.reserved, 0);
    assert_eq!(
        cash.available,
        start_cents - executed_cents(platform, id),
        "balances equal the exchange's executions"
    );
    let aapl = domain::Catalog::us_equities()
        .asset("AAPL")
        .expect("listed");
    assert_eq!(
        balance_of(&platform.balances, account, &aapl)
            .await
            .available,
        order.request.quantity.shares()
    );
    order
}

/// Every report delivered 1, 2 and 5 times, forwards, backwards and
/// interleaved, in batches of different sizes: each execution applied once.
#[tokio::test]
async fn repeated_and_reordered_deliveries_apply_each_fill_once() {
    let platform = Platform::spawn("fills-repeat").await;
    for copies in [1, 2, 5] {
        for arrangement in ["forward", "backward", "interleaved"] {
            let start = 1_000_000;
            let account = funded_account(&platform.balances, "rep", start).await;
            let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
            let reports = platform.exchange_finished(&id).await;
            assert!(reports.len() >= 3, "several executions and a final status");
            let mut deliveries: Vec<&ExchangeReport> =
                (0..copies).flat_map(|_| reports.iter()).collect();
            match arrangement {
                "backward" => deliveries.reverse(),
                "interleaved" => deliveries.sort_by_key(|r| format!("{r:?}").len() % 3),
                _ => {}
            }
            let processor = platform.orders();
            for (n, chunk) in deliveries.chunks(3 + copies).enumerate() {
                let messages = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, r)| message(n * 100 + i, r))
                    .collect();
                let response = handle_batch(&processor, batch(messages)).await;
                assert!(
                    response.batch_item_failures.is_empty(),
                    "{copies}x {arrangement}: {response:?}"
                );
            }
            let order = assert_settled_once(&platform, &account, &id, start).await;
            assert_eq!(
                order.fills.len(),
                reports.len() - 1,
                "{copies}x {arrangement}"
            );
        }
    }
}

/// A crash between recording the fill and settling it (Balances never
/// reached), and between settling and recording that (its answer lost):
/// the message comes back, and its repeat finishes the settlement once.
#[tokio::test]
async fn a_repeat_finishes_an_interrupted_settlement() {
    let platform = Platform::spawn("fills-crash").await;
    for mode in [Mode::Refuse, Mode::LoseResponse] {
        let start = 1_000_000;
        let account = funded_account(&platform.balances, "crash", start).await;
        let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
        let reports = platform.exchange_finished(&id).await;
        let processor = platform.orders();
        platform.balances_proxy.set(mode);
        let first = handle_message(&processor, &message(0, &reports[0])).await;
        assert!(
            matches!(first, MessageResult::Retry(_)),
            "{mode:?}: {first:?}"
        );
        let recorded = platform.order(&id).await;
        assert!(
            recorded.fills[0].settle.is_processing(),
            "the fill is recorded, its settlement is not"
        );
        platform.balances_proxy.set(Mode::Pass);
        for (n, report) in reports.iter().enumerate() {
            let result = handle_message(&processor, &message(n, report)).await;
            assert!(
                matches!(result, MessageResult::Applied | MessageResult::Duplicate),
                "{result:?}"
            );
        }
        assert_settled_once(&platform, &account, &id, start).await;
    }
}

/// The final status arrives before the executions, and the executions before
/// the placement was recorded (its answer was lost): the order still ends
/// filled, placed by the evidence of its fills.
#[tokio::test]
async fn out_of_order_reports_and_fills_before_placement() {
    let platform = Platform::spawn("fills-order").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "ooo", start).await;
    let faults = OpFaults {
        fail_after_5xx: 1.0,
        ..OpFaults::default()
    };
    platform.set_exchange_faults(FaultConfig {
        operations: [(SimOperation::Place, faults)].into(),
        ..FaultConfig::healthy()
    });
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    platform.heal_exchange();
    assert!(platform
        .order(&id)
        .await
        .place
        .as_ref()
        .is_some_and(|p| p.is_processing()));
    let mut reports = platform.exchange_finished(&id).await;
    reports.rotate_right(1); // the final status first
    let processor = platform.orders();
    for (n, report) in reports.iter().enumerate() {
        let result = handle_message(&processor, &message(n, report)).await;
        assert!(matches!(result, MessageResult::Applied), "{result:?}");
    }
    let order = assert_settled_once(&platform, &account, &id, start).await;
    assert!(order.exchange_order_id.is_some());
}

/// A partial fill, then the exchange cancels: the rest of the reservation is
/// released exactly once, even when the final status is delivered three times.
#[tokio::test]
async fn partial_fill_then_cancel_releases_the_rest_once() {
    let platform = Platform::spawn("fills-partial").await;
    let account = funded_account(&platform.balances, "part", 1_000_000).await;
    // Far below the market: it rests unfilled at the exchange.
    let id = place(&platform, &account, "k", &limit_buy(10, "1.00")).await;
    let order = platform.order(&id).await;
    let exchange_order_id = order.exchange_order_id.clone().expect("placed");
    let partial = ExchangeReport::Execution {
        client_order_id: id.clone(),
        execution: Execution {
            exec_id: ExecId::parse("partial-1").expect("id"),
            exchange_order_id: exchange_order_id.clone(),
            quantity: Quantity::new(4).expect("q"),
            price: Price::parse("0.99").expect("p"),
        },
    };
    let cancelled = ExchangeReport::Final {
        client_order_id: id.clone(),
        exchange_order_id,
        report: FinalReport {
            status: FinalStatus::Cancelled,
            cum_quantity: 4,
        },
    };
    let processor = platform.orders();
    for (n, report) in [&cancelled, &partial, &cancelled, &cancelled]
        .into_iter()
        .enumerate()
    {
        handle_message(&processor, &message(n, report)).await;
    }
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert!(order.is_closed());
    let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
    assert_eq!(
        cash,
        domain::Balance {
            available: 1_000_000 - 4 * 99,
            reserved: 0
        }
    );
    let release = app::Balances::lookup(&platform.balances, &account, &id.release_key())
        .await
        .expect("lookup")
        .expect("released");
    assert_eq!(
        release.operation,
        domain::Operation::Release {
            asset: Asset::Cash,
            amount: domain::Amount::new(1_000 - 4 * 99).expect("amount")
        }
    );
}

/// Poison messages fail alone: an unknown order, an impossible quantity, an
/// unreadable body. The rest of the batch is applied.
#[tokio::test]
async fn poison_messages_fail_alone() {
    let platform = Platform::spawn("fills-poison").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "poison", start).await;
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    let reports = platform.exchange_finished(&id).await;
    let unknown = ExchangeReport::Final {
        client_order_id: system_tests::orders::new_order_id(),
        exchange_order_id: "X".into(),
        report: FinalReport {
            status: FinalStatus::Filled,
            cum_quantity: 1,
        },
    };
    let overfill = ExchangeReport::Execution {
        client_order_id: id.clone(),
        execution: Execution {
            exec_id: ExecId::parse("too-much").expect("id"),
            exchange_order_id: "X".into(),
            quantity: Quantity::new(11).expect("q"),
            price: Price::parse("1.00").expect("p"),
        },
    };
    let mut messages: Vec<SqsMessage> = reports
        .iter()
        .enumerate()
        .map(|(n, r)| message(n, r))
        .collect();
    messages.push(message(90, &unknown));
    messages.push(message(91, &overfill));
    let mut unreadable = SqsMessage::default();
    unreadable.message_id = Some("m-92".into());
    unreadable.body = Some("{not json".into());
    messages.push(unreadable);
    let response = handle_batch(&platform.orders(), batch(messages)).await;
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(failed, ["m-90", "m-91", "m-92"]);
    let order = assert_settled_once(&platform, &account, &id, start).await;
    assert!(
        order.recovery.flagged.is_some(),
        "the impossible fill was flagged for an operator"
    );
}

/// On the real queue, with Lambda's event source mapping emulated: good
/// messages are deleted, a poison message is delivered again until the
/// redrive policy moves it to the dead-letter queue.
#[tokio::test]
async fn poison_on_the_real_queue_reaches_the_dead_letter_queue() {
    use app::fill_queue::FillQueue;
    let platform = Platform::spawn("fills-sqs").await;
    let stack = local_stack::Stack::ensure_running().await.expect("stack");
    let resources = stack
        .create_resources(&local_stack::unique_prefix("fills-sqs"))
        .await
        .expect("queues");
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config());
    let (queue, dlq) = (
        &resources.queues["FillQueue"],
        &resources.queues["FillDeadLetterQueue"],
    );
    // Short visibility timeout so redelivery is quick in a test.
    sqs.set_queue_attributes()
        .queue_url(&queue.url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .send()
        .await
        .expect("visibility");
    let fill_queue = aws_adapters::sqs::SqsFillQueue::new(sqs.clone(), &queue.url, &dlq.url);
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "sqs", start).await;
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    for report in platform.exchange_finished(&id).await {
        fill_queue.send(&report).await.expect("sent");
    }
    let poison = ExchangeReport::Final {
        client_order_id: system_tests::orders::new_order_id(),
        exchange_order_id: "X".into(),
        report: FinalReport {
            status: FinalStatus::Filled,
            cum_quantity: 1,
        },
    };
    fill_queue.send(&poison).await.expect("sent");

    let mapping =
        local::sqs_poller::EventSourceMapping::new(sqs.clone(), &queue.url, &queue.arn, 10, 1);
    let processor = platform.orders();
    let mut in_dead_letters = 0;
    let started = std::time::Instant::now();
    // Each poll waits on the queue; the poison needs maxReceiveCount receives.
    while started.elapsed() < system_tests::WAIT_BOUND {
        mapping
            .poll_once(|event| handle_batch(&processor, event))
            .await
            .expect("poll");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&dlq.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("attributes");
        in_dead_letters = attributes
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        if in_dead_letters > 0 {
            break;
        }
    }
    assert_eq!(
        in_dead_letters, 1,
        "the poison message reached the dead-letter queue"
    );
    assert_settled_once(&platform, &account, &id, start).await;
}
