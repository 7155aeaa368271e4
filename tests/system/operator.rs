//! The operator commands of docs/runbook.md against the local stack: the
//! dead-letter queue listed page by page with every message's reason, and
//! a flagged order resolved through `resolve`.

use app::fill_queue::FillQueue;
use app::order_store::OrderStore;
use aws_adapters::dynamodb::DynamoOrderStore;
use aws_adapters::sqs::SqsFillQueue;
use domain::order::{Decision, ExchangeReport, ExecId, Execution, FlagReason, OrderId};
use domain::{AccountId, Price, Quantity};
use local::operator;
use local_stack::{unique_prefix, Resources, Stack};
use system_tests::conformance::balances::funded_account;
use system_tests::faulty_proxy::Mode;
use system_tests::platform::Platform;

/// A fresh set of the template's tables and queues, and an SQS client.
async fn queues(label: &str) -> (aws_sdk_sqs::Client, Resources) {
    let stack = Stack::ensure_running().await.expect("local stack");
    let resources = stack
        .create_resources(&unique_prefix(label))
        .await
        .expect("resources");
    (aws_sdk_sqs::Client::new(&stack.sdk_config()), resources)
}

fn execution_report(n: usize) -> ExchangeReport {
    ExchangeReport::Execution {
        client_order_id: system_tests::orders::new_order_id(),
        execution: Execution {
            exec_id: ExecId::parse(&format!("exec-{n}")).expect("exec id"),
            exchange_order_id: format!("X-{n}"),
            quantity: Quantity::new(1).expect("quantity"),
            price: Price::parse("187.25").expect("price"),
            cum_quantity: Some(1),
        },
    }
}

#[tokio::test]
async fn an_empty_dead_letter_queue_says_it_is_empty() {
    let (sqs, resources) = queues("op-dlq-empty").await;
    let dlq = resources.queue_url("FillDeadLetterQueue");

    let text = operator::dead_letters(&sqs, dlq).await.expect("listed");

    assert!(text.starts_with("the dead-letter queue is empty"), "{text}");
    assert!(text.contains(dlq), "names the queue it read: {text}");
}

/// More messages than one receive returns (10): every one is listed once,
/// with its reason, and all are left on the queue for the next person.
/// Reports moved by the fill queue's redrive policy keep their order's
/// message group, so each is in a group of its own here, as in production.
#[tokio::test]
async fn a_dead_letter_queue_of_more_than_ten_messages_is_listed_whole_with_reasons() {
    let (sqs, resources) = queues("op-dlq-pages").await;
    let dlq = resources.queue_url("FillDeadLetterQueue");
    // What the redrive policy moves: the report as the webhook queued it.
    let moved = SqsFillQueue::new(sqs.clone(), dlq, dlq);
    const MOVED: usize = 23;
    let mut orders = Vec::new();
    for n in 0..MOVED {
        let report = execution_report(n);
        orders.push(report.client_order_id().to_string());
        moved
            .send(&report, &format!("delivery-{n}"))
            .await
            .expect("sent");
    }
    // And what the functions set aside, each with its reason.
    let set_aside = SqsFillQueue::new(sqs.clone(), "", dlq);
    let unconfirmed = "not confirmed by the exchange: no such execution";
    set_aside
        .set_aside(
            &serde_json::to_string(&execution_report(100)).expect("json"),
            unconfirmed,
            "delivery-100",
        )
        .await
        .expect("set aside");
    let unreadable = "unreadable report: missing field `exec_id`";
    set_aside
        .set_aside("{\"not\": \"a report\"}", unreadable, "delivery-101")
        .await
        .expect("set aside");
    let total = MOVED + 2;

    let (letters, depth) = operator::list_dead_letters(&sqs, dlq)
        .await
        .expect("listed");
    assert_eq!(depth, total as u64, "SQS counts every message");
    assert_eq!(letters.len(), total, "every message listed: {letters:#?}");
    let mut ids: Vec<&str> = letters.iter().map(|l| l.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), total, "each listed once");
    let redriven = "not recorded after the fill queue's maxReceiveCount deliveries";
    for order in &orders {
        let letter = letters
            .iter()
            .find(|l| l.client_order_id.as_deref() == Some(order.as_str()))
            .unwrap_or_else(|| panic!("order {order} listed"));
        assert!(letter.reason.starts_with(redriven), "{letter:?}");
        assert_eq!(letter.kind, "execution");
    }
    assert!(letters
        .iter()
        .any(|l| l.reason == unconfirmed && l.kind == "set_aside"));
    assert!(letters.iter().any(|l| l.reason == unreadable));

    let text = operator::dead_letters(&sqs, dlq).await.expect("listed");
    assert!(
        text.starts_with(&format!("{total} message(s) on the dead-letter queue")),
        "{text}"
    );
    assert!(text.contains(&format!("{MOVED:>5}  {redriven}")), "{text}");
    assert!(
        text.contains(unconfirmed) && text.contains(unreadable),
        "{text}"
    );
    // Listing twice sees the same: nothing was consumed or hidden.
    assert_eq!(
        operator::queue_depth(&sqs, dlq).await.expect("depth"),
        total as u64
    );
}

/// A FIFO queue hands out a group's later messages only once its earlier
/// ones are deleted; each set-aside message has a group of its own, so a
/// listing pages through all of them, and one `--redrive` leaves in place
/// hides nothing.
#[tokio::test]
async fn more_than_ten_set_aside_messages_are_all_listed() {
    let (sqs, resources) = queues("op-dlq-group").await;
    let dlq = resources.queue_url("FillDeadLetterQueue");
    let set_aside = SqsFillQueue::new(sqs.clone(), "", dlq);
    const SET_ASIDE: usize = 15;
    for n in 0..SET_ASIDE {
        set_aside
            .set_aside("{}", &format!("unreadable report #{n}"), &format!("d-{n}"))
            .await
            .expect("set aside");
    }

    let (letters, depth) = operator::list_dead_letters(&sqs, dlq)
        .await
        .expect("listed");

    assert_eq!(depth, SET_ASIDE as u64);
    assert_eq!(letters.len(), SET_ASIDE, "{letters:#?}");
}

/// An order recovery cannot finish (Balances unreachable) is flagged; the
/// operator's decision is recorded on it with its evidence, clears its
/// flags, takes it off the flagged-orders index, and shows in its timeline.
#[tokio::test]
async fn a_flagged_order_resolved_records_the_decision_with_its_evidence() {
    let platform = Platform::spawn("op-resolve").await;
    let account: AccountId = funded_account(&platform.balances, "ops", 10_000_000).await;
    let store = DynamoOrderStore::new(platform.dynamodb.clone(), platform.trading_table.clone());
    platform.balances_proxy.set(Mode::Refuse);
    let response = platform
        .post_order(
            &account,
            "k",
            &serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"}),
        )
        .await;
    let body: serde_json::Value = response.json().await.expect("json");
    let id = OrderId::parse(
        body["id"]
            .as_str()
            .or_else(|| body["order"]["id"].as_str())
            .expect("an order id"),
    )
    .expect("order id");
    // Recovery retries with backoff and flags the order once the condition
    // outlives its bound.
    let step_ms = platform.settings.recovery.flag_after_ms / 4;
    for _ in 0..10 {
        platform.clock.advance_ms(step_ms);
        platform.reconcile().await;
    }
    let listed = operator::flagged_orders(&store, 100).await.expect("listed");
    assert!(listed.contains(id.as_str()), "{listed}");
    assert!(listed.contains(FlagReason::Stuck.as_str()), "{listed}");

    platform.balances_proxy.set(Mode::Pass);
    let evidence = "INC-4711: Balances unreachable 12:00-12:30 UTC, restored";
    let orders = platform.orders();
    let text = operator::resolve_order(&orders, id.as_str(), Decision::Acknowledged, evidence)
        .await
        .expect("recorded");

    assert!(
        text.starts_with(&format!("recorded: acknowledged — {evidence}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "operator decision: acknowledged — {evidence} (cleared stuck)"
        )),
        "the timeline shows the decision: {text}"
    );
    let order = store
        .load(&id)
        .await
        .expect("read")
        .expect("the order")
        .value;
    let decision = order.recovery.resolved.as_ref().expect("a decision");
    assert_eq!(decision.decision, Decision::Acknowledged);
    assert_eq!(decision.evidence, evidence);
    assert_eq!(decision.cleared, vec![FlagReason::Stuck]);
    assert!(!order.recovery.is_flagged(), "{:?}", order.recovery);
    let listed = operator::flagged_orders(&store, 100).await.expect("listed");
    assert!(!listed.contains(id.as_str()), "off the index: {listed}");
    // The order itself goes on, and recovery finishes it.
    platform.reconcile_until_closed(&id).await;
    let timeline = operator::order_timeline(
        &store,
        id.as_str(),
        &platform.settings.recovery,
        app::Clock::now_ms(&platform.clock),
        false,
    )
    .await
    .expect("timeline");
    assert!(
        timeline.contains(&format!("operator decision: acknowledged — {evidence}")),
        "{timeline}"
    );
}
