//! The fill processor on the local stack: repeated, reordered and
//! contradicting deliveries, crashes and outages around settlement, partial
//! fills, an order with a thousand executions, and the real FIFO queue.

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use domain::order::{
    ExchangeReport, ExecId, Execution, FinalReport, FinalStatus, FlagReason, Order, OrderId,
    OrderStatus,
};
use domain::{AccountId, Asset, Price, Quantity};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use fill_processor::{handle_batch, handle_message, MessageResult};
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::faulty_proxy::Mode;
use system_tests::platform::{Platform, PlatformOptions};

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
    // A rejected order comes inside its problem.
    let id = body["id"]
        .as_str()
        .or_else(|| body["order"]["id"].as_str())
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

async fn deliver(platform: &Platform, n: usize, report: &ExchangeReport) -> MessageResult {
    handle_message(&platform.orders(), &platform.set_aside, &message(n, report)).await
}

fn execution(id: &OrderId, exec: &str, venue_id: &str, shares: u64, price: &str) -> ExchangeReport {
    ExchangeReport::Execution {
        client_order_id: id.clone(),
        execution: Execution {
            exec_id: ExecId::parse(exec).expect("id"),
            exchange_order_id: venue_id.into(),
            quantity: Quantity::new(shares).expect("q"),
            price: Price::parse(price).expect("p"),
            cum_quantity: None,
        },
    }
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

/// The order closed filled, its executions recorded once each, and the
/// account's cash and shares moved by exactly what the exchange executed.
async fn assert_settled_once(
    platform: &Platform,
    account: &AccountId,
    id: &OrderId,
    start_cents: u64,
) -> Order {
    let order = platform.order(id).await;
    assert!(order.is_closed(), "{order:?}");
    assert_eq!(order.status(), OrderStatus::Filled);
    let at_exchange = platform.reports_from_audit(id).len() - 1;
    let recorded = platform.executions(id).await;
    assert_eq!(recorded.len(), at_exchange, "each execution recorded once");
    assert!(recorded.iter().all(|r| r.is_settled()));
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
                let (response, _) =
                    handle_batch(&processor, &platform.set_aside, batch(messages), u64::MAX).await;
                assert!(
                    response.batch_item_failures.is_empty(),
                    "{copies}x {arrangement}: {response:?}"
                );
            }
            assert_settled_once(&platform, &account, &id, start).await;
            assert!(platform.set_aside.set_aside_messages().is_empty());
        }
    }
}

/// Balances is unreachable (nothing happens) or loses its answer (the
/// settlement happens): either way the execution is recorded and the
/// message acknowledged, never retried; a repeat, or recovery, finishes the
/// settlement with the same key, once.
#[tokio::test]
async fn an_interrupted_settlement_is_recorded_and_finished_once() {
    let platform = Platform::spawn("fills-crash").await;
    for mode in [Mode::Refuse, Mode::LoseResponse] {
        let start = 1_000_000;
        let account = funded_account(&platform.balances, "crash", start).await;
        let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
        let reports = platform.exchange_finished(&id).await;
        platform.balances_proxy.set(mode);
        let first = deliver(&platform, 0, &reports[0]).await;
        assert!(
            matches!(first, MessageResult::Applied(_)),
            "{mode:?}: recorded, acknowledged: {first:?}"
        );
        let recorded = platform.stored(&id).await;
        let slot = recorded.settling.as_ref().expect("in the settling slot");
        assert!(
            slot.settle.is_processing(),
            "its settlement is not recorded"
        );
        assert!(
            recorded.recovery.due_at_ms > app::Clock::now_ms(&platform.clock),
            "recovery will come back to it"
        );
        platform.balances_proxy.set(Mode::Pass);
        for (n, report) in reports.iter().enumerate() {
            let result = deliver(&platform, n, report).await;
            assert!(
                matches!(result, MessageResult::Applied(_) | MessageResult::Duplicate),
                "{result:?}"
            );
        }
        assert_settled_once(&platform, &account, &id, start).await;
    }
}

/// Balances down while a burst of executions arrives: every one is recorded
/// (the first in the slot, the rest waiting) and acknowledged; nothing is
/// retried or dead-lettered. Once Balances is back, recovery settles each once.
#[tokio::test]
async fn a_balances_outage_delays_settlement_and_loses_nothing() {
    let platform = Platform::spawn("fills-outage").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "outage", start).await;
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    let reports = platform.exchange_finished(&id).await;
    platform.balances_proxy.set(Mode::Refuse);
    let processor = platform.orders();
    let messages = reports
        .iter()
        .enumerate()
        .map(|(n, r)| message(n, r))
        .collect();
    let (response, summary) =
        handle_batch(&processor, &platform.set_aside, batch(messages), u64::MAX).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.applied as usize, reports.len());
    let stored = platform.stored(&id).await;
    assert!(stored.backlog, "executions wait their turn: {stored:?}");
    assert_eq!(
        platform.executions(&id).await.len(),
        reports.len() - 1,
        "every execution is recorded"
    );
    platform.balances_proxy.set(Mode::Pass);
    platform.reconcile_until_closed(&id).await;
    assert_settled_once(&platform, &account, &id, start).await;
}

/// The final status arrives before the executions, and the executions before
/// the placement was recorded (its answer was lost): the exchange confirms
/// them (its REST API), so they are applied, and the order ends filled.
#[tokio::test]
async fn out_of_order_reports_and_fills_before_placement() {
    let platform = Platform::spawn("fills-order").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "ooo", start).await;
    let faults = OpFaults {
        fail_after_5xx: 1.0,
        ..OpFaults::default()
    };
    // Lookups fail too, so the handler cannot settle the placement itself.
    platform.set_exchange_faults(FaultConfig {
        operations: [
            (SimOperation::Place, faults.clone()),
            (SimOperation::GetOrderByClientId, faults),
        ]
        .into(),
        ..FaultConfig::healthy()
    });
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    platform.heal_exchange();
    assert!(platform
        .order(&id)
        .await
        .place
        .as_ref()
        .is_some_and(|p| p.step.is_processing()));
    let mut reports = platform.exchange_finished(&id).await;
    reports.rotate_right(1); // the final status first
    for (n, report) in reports.iter().enumerate() {
        let result = deliver(&platform, n, report).await;
        assert!(matches!(result, MessageResult::Applied(_)), "{result:?}");
    }
    let order = assert_settled_once(&platform, &account, &id, start).await;
    assert!(order.exchange_order_id.is_some());
    assert!(order.recovery.flags.is_empty(), "{:?}", order.recovery);
}

/// A partial fill, then the exchange cancels: the rest of the reservation is
/// returned with the last settlement, exactly once, even when the final
/// status is delivered three times.
#[tokio::test]
async fn partial_fill_then_cancel_releases_the_rest_once() {
    let platform = Platform::spawn("fills-partial").await;
    let account = funded_account(&platform.balances, "part", 1_000_000).await;
    // Far below the market: it rests unfilled at the exchange.
    let id = place(&platform, &account, "k", &limit_buy(10, "1.00")).await;
    let order = platform.order(&id).await;
    let venue_id = order.exchange_order_id.clone().expect("placed");
    let partial = execution(&id, "partial-1", &venue_id, 4, "0.99");
    let cancelled = ExchangeReport::Final {
        client_order_id: id.clone(),
        exchange_order_id: venue_id,
        report: FinalReport {
            status: FinalStatus::Cancelled,
            cum_quantity: 4,
        },
    };
    for (n, report) in [&cancelled, &partial, &cancelled, &cancelled]
        .into_iter()
        .enumerate()
    {
        deliver(&platform, n, report).await;
    }
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert!(order.is_closed());
    let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
    assert_eq!(
        cash,
        domain::Balance {
            available: 1_000_000 - 4 * 99,
            reserved: 0,
            owed: 0,
        }
    );
    // One Balances call settled the fill and returned the rest.
    let settled = app::Balances::lookup(
        &platform.balances,
        &account,
        &id.settle_key(&ExecId::parse("partial-1").expect("id")),
    )
    .await
    .expect("lookup")
    .expect("settled");
    assert!(matches!(
        settled.operation,
        domain::Operation::Settle {
            release_units: 604,
            ..
        }
    ));
    let separate = app::Balances::lookup(&platform.balances, &account, &id.release_key())
        .await
        .expect("lookup");
    assert_eq!(separate, None, "no release on its own");
}

/// Reports that contradict the records, each checked with the exchange's
/// REST API before anything is applied: an order nobody has (set aside), an
/// execution under another venue id that the exchange does not confirm (set
/// aside, the order flagged), an unreadable body (set aside). All are
/// acknowledged with their reason; the good reports are applied.
#[tokio::test]
async fn reports_the_exchange_does_not_confirm_are_set_aside_with_their_reason() {
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
    let invented = execution(&id, "too-much", "X", 11, "1.00");
    let before = platform.snapshot().await;
    let mut messages: Vec<SqsMessage> = vec![message(90, &unknown), message(91, &invented)];
    let mut unreadable = SqsMessage::default();
    unreadable.message_id = Some("m-92".into());
    unreadable.body = Some("{not json".into());
    messages.push(unreadable);
    let (response, summary) = handle_batch(
        &platform.orders(),
        &platform.set_aside,
        batch(messages),
        u64::MAX,
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(summary.set_aside, 3);
    let set_aside = platform.set_aside.set_aside_messages();
    let reasons: Vec<&str> = set_aside.iter().map(|(_, r)| r.as_str()).collect();
    let has = |text: &str| reasons.iter().any(|r| r.contains(text));
    assert!(has("no order"), "{reasons:?}");
    assert!(has("holds it as"), "{reasons:?}");
    assert!(has("unreadable"), "{reasons:?}");
    // Nothing applied: only the flag on the order moved.
    let order = platform.order(&id).await;
    assert_eq!(order.recovery.flags, vec![FlagReason::UnconfirmedReport]);
    assert_eq!(platform.executions(&id).await.len(), 0);
    let after = platform.snapshot().await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "only the order item (its flag): {changed:?}"
    );
    // The real reports still apply.
    for (n, report) in reports.iter().enumerate() {
        deliver(&platform, n, report).await;
    }
    assert_settled_once(&platform, &account, &id, start).await;
}

/// The same `exec_id` again with another quantity or price: never applied
/// twice, the order flagged, the report set aside.
#[tokio::test]
async fn an_exec_id_reused_with_other_terms_is_never_applied_twice() {
    let platform = Platform::spawn("fills-reused").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "reused", start).await;
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    let reports = platform.exchange_finished(&id).await;
    for (n, report) in reports.iter().enumerate() {
        deliver(&platform, n, report).await;
    }
    let ExchangeReport::Execution { execution, .. } = &reports[0] else {
        panic!("an execution first")
    };
    let altered = ExchangeReport::Execution {
        client_order_id: id.clone(),
        execution: Execution {
            quantity: Quantity::new(execution.quantity.shares() + 1).expect("q"),
            ..execution.clone()
        },
    };
    let result = deliver(&platform, 99, &altered).await;
    assert!(matches!(result, MessageResult::SetAside(_)), "{result:?}");
    let order = assert_settled_once(&platform, &account, &id, start).await;
    assert!(order
        .recovery
        .flags
        .contains(&FlagReason::ConflictingExecution));
}

/// The venue's altered second report of an execution is the only one that
/// arrives (the true one went to the dead-letter queue): its terms are
/// settled, since nothing told them apart. Recovery, pulling the exchange's
/// own list for the shares the final status says are missing, finds the
/// contradiction: the order is flagged, and closes instead of waiting
/// forever for shares that will never come.
#[tokio::test]
async fn a_contradiction_found_by_recovery_is_flagged_and_the_order_closes() {
    let platform = Platform::spawn("fills-contradicted").await;
    let start = 1_000_000;
    let account = funded_account(&platform.balances, "contradicted", start).await;
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    let reports = platform.exchange_finished(&id).await;
    let (n, true_execution) = reports
        .iter()
        .enumerate()
        .find_map(|(n, r)| match r {
            ExchangeReport::Execution { execution, .. } if execution.quantity.shares() > 1 => {
                Some((n, execution.clone()))
            }
            _ => None,
        })
        .expect("10 shares in 2 to 5 executions: one has more than one share");
    let altered = ExchangeReport::Execution {
        client_order_id: id.clone(),
        execution: Execution {
            quantity: Quantity::new(true_execution.quantity.shares() - 1).expect("q"),
            ..true_execution.clone()
        },
    };
    for (m, report) in reports.iter().enumerate() {
        let report = if m == n { &altered } else { report };
        let result = deliver(&platform, m, report).await;
        assert!(matches!(result, MessageResult::Applied(_)), "{result:?}");
    }
    let order = platform.order(&id).await;
    assert_eq!(order.missing_quantity(), 1, "the final status says 10");
    assert!(!order.is_closed());

    let order = platform
        .orders()
        .drive(&id, domain::order::Driver::Recovery)
        .await
        .expect("drive");
    assert!(order.is_closed(), "{order:?}");
    assert!(order.contradicted);
    assert_eq!(order.filled_quantity(), 9, "settled as reported");
    let flag = order.recovery.flag_detail.clone().unwrap_or_default();
    assert!(
        order
            .recovery
            .flags
            .contains(&FlagReason::ConflictingExecution)
            && flag.contains(&true_execution.exec_id.to_string()),
        "{:?}",
        order.recovery
    );
    let recorded = platform.executions(&id).await;
    assert_eq!(recorded.len(), reports.len() - 1, "each execution once");
    let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
    assert_eq!(cash.reserved, 0, "the reservation is returned");
    let paid_less = true_execution.price.cents();
    assert_eq!(
        cash.available,
        start - (executed_cents(&platform, &id) - paid_less),
        "the altered terms, as settled"
    );
}

/// A validly signed execution for an order still reserving (its placement
/// never sent): the exchange holds no such order, so nothing is applied —
/// the placement is not recorded from it, nothing is settled — and the
/// report is set aside. The order then places and fills normally.
#[tokio::test]
async fn an_execution_for_an_order_never_sent_is_not_applied() {
    let platform = Platform::spawn("fills-never-sent").await;
    let account = funded_account(&platform.balances, "never", 1_000_000).await;
    platform.balances_proxy.set(Mode::Refuse);
    let id = place(&platform, &account, "k", &limit_buy(3, "500.00")).await;
    assert!(platform.order(&id).await.reserve.is_processing());
    let invented = execution(&id, "ghost-1", "GHOST", 1, "1.00");
    let result = deliver(&platform, 0, &invented).await;
    assert!(matches!(result, MessageResult::SetAside(_)), "{result:?}");
    let order = platform.order(&id).await;
    assert!(
        order.place.is_none(),
        "not marked placed by an invented report"
    );
    assert_eq!(order.filled_quantity(), 0);
    platform.balances_proxy.set(Mode::Pass);
    let placed = platform
        .orders()
        .drive(&id, domain::order::Driver::Recovery)
        .await
        .expect("drive");
    assert!(placed.is_placed());
    assert_ne!(placed.exchange_order_id.as_deref(), Some("GHOST"));
}

/// A validly signed execution and final status for an order rejected for
/// lack of funds: not confirmed by the exchange, so nothing is recorded;
/// the order stays rejected and closed, with nothing filled.
#[tokio::test]
async fn reports_for_a_rejected_order_are_checked_and_set_aside() {
    let platform = Platform::spawn("fills-rejected").await;
    let account = funded_account(&platform.balances, "broke", 100).await;
    let id = place(&platform, &account, "k", &limit_buy(3, "500.00")).await;
    let rejected = platform.order(&id).await;
    assert_eq!(rejected.status(), OrderStatus::Rejected);
    let fill = execution(&id, "ghost-1", "GHOST", 5, "1.00");
    let done = ExchangeReport::Final {
        client_order_id: id.clone(),
        exchange_order_id: "GHOST".into(),
        report: FinalReport {
            status: FinalStatus::Filled,
            cum_quantity: 5,
        },
    };
    for (n, report) in [&fill, &done].into_iter().enumerate() {
        let result = deliver(&platform, n, report).await;
        assert!(matches!(result, MessageResult::SetAside(_)), "{result:?}");
    }
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Rejected);
    assert!(order.is_closed());
    assert_eq!(order.filled_quantity(), 0);
    assert_eq!(order.final_report, None);
    assert!(order
        .recovery
        .flags
        .contains(&FlagReason::UnconfirmedReport));
}

/// One order filled in a thousand executions, delivered through the
/// processor: it closes, every execution recorded and settled once, the
/// reservation back to zero, and the order's own record stays small.
#[tokio::test]
async fn an_order_with_a_thousand_executions_closes() {
    let engine = exchange_sim::EngineConfig {
        min_chunks: 1_000,
        max_chunks: 1_000,
        fill_interval_min_ms: 0,
        fill_interval_max_ms: 1,
        ..system_tests::sim_exchange::fast_fills(system_tests::platform::rand_seed())
    };
    let platform = Platform::spawn_with(
        "fills-thousand",
        PlatformOptions {
            engine,
            ..PlatformOptions::default()
        },
    )
    .await;
    let start = 100_000_000;
    let account = funded_account(&platform.balances, "big", start).await;
    let id = place(&platform, &account, "k", &limit_buy(1_000, "500.00")).await;
    let reports = platform.exchange_finished(&id).await;
    assert_eq!(
        reports.len(),
        1_001,
        "a thousand executions and a final status"
    );
    let processor = platform.orders();
    for (n, chunk) in reports.chunks(10).enumerate() {
        let messages = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| message(n * 10 + i, r))
            .collect();
        let (response, _) =
            handle_batch(&processor, &platform.set_aside, batch(messages), u64::MAX).await;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    assert_settled_once(&platform, &account, &id, start).await;
    let item = aws_adapters::dynamodb::DynamoOrderStore::order_item(&platform.stored(&id).await, 1)
        .expect("item");
    let bytes = aws_adapters::dynamodb::item_size(&item);
    assert!(
        bytes < 1_024,
        "the order item stays under 1 KB: {bytes} bytes"
    );
}
