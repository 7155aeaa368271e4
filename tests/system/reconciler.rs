//! The reconciler on the local stack with the exchange simulator (which
//! sends no webhooks here: every fill must come from recovery's pulls).

use std::collections::BTreeMap;

use app::exchange::{Exchange, PlaceOutcome};
use app::order_store::OrderStore;
use app::Balances;
use domain::order::{ExchangeReport, FlagReason, Order, OrderId, OrderStatus};
use domain::{AccountId, Asset, Catalog};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use futures::future::join_all;
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::platform::Platform;

/// A market buy: it ends in seconds, so recovery asks about it when its
/// webhooks do not come (none come in these tests).
fn market_buy(quantity: u64) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": quantity.to_string()})
}

fn limit_buy(quantity: u64, price: &str) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": price})
}

async fn place(
    platform: &Platform,
    account: &AccountId,
    key: &str,
    body: &serde_json::Value,
) -> OrderId {
    let response = platform.post_order(account, key, body).await;
    let body: serde_json::Value = response.json().await.expect("json");
    let id = body["id"]
        .as_str()
        .or_else(|| body["order"]["id"].as_str())
        .expect("an order id");
    OrderId::parse(id).expect("order id")
}

fn fail_placements(platform: &Platform, faults: OpFaults) {
    let config = FaultConfig {
        operations: BTreeMap::from([(SimOperation::Place, faults)]),
        ..FaultConfig::healthy()
    };
    platform.set_exchange_faults(config);
}

/// Checks DESIGN §7 for one order against the exchange's audit and Balances:
/// one exchange order at most, every execution applied exactly once and
/// settled, nothing left reserved, and the order closed with a reason.
async fn assert_finished(platform: &Platform, account: &AccountId, id: &OrderId) -> Order {
    let order = platform.order(id).await;
    assert!(order.is_closed(), "order closed: {order:?}");
    let audit = platform.exchange.state.engine().audit();
    let at_exchange: Vec<_> = audit
        .orders
        .iter()
        .filter(|o| o.client_order_id == id.as_str())
        .collect();
    assert!(at_exchange.len() <= 1, "at most one exchange order");
    let executions: Vec<String> = at_exchange
        .iter()
        .flat_map(|o| o.executions.iter().map(|e| e.exec_id.clone()))
        .collect();
    let records = platform.executions(id).await;
    let mut applied: Vec<String> = records
        .iter()
        .map(|f| f.exec_id.as_str().to_owned())
        .collect();
    applied.sort();
    let mut expected = executions.clone();
    expected.sort();
    assert_eq!(applied, expected, "every execution applied exactly once");
    for fill in &records {
        let settled = platform
            .balances
            .lookup(account, &id.settle_key(&fill.exec_id))
            .await
            .expect("lookup");
        assert!(settled.is_some(), "fill {} settled", fill.exec_id.as_str());
        assert!(fill.is_settled(), "{fill:?}");
    }
    assert_eq!(
        balance_of(&platform.balances, account, &Asset::Cash)
            .await
            .reserved,
        0,
        "nothing left reserved"
    );
    order
}

/// Scenario 1, the placement took effect and its answer was lost: the
/// reconciler finds it, pulls its executions, settles, releases, closes.
#[tokio::test]
async fn lost_placement_answer_is_found_and_finished() {
    let platform = Platform::spawn("rec-found").await;
    let account = funded_account(&platform.balances, "ann", 10_000_000).await;
    fail_placements(
        &platform,
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
    );
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    platform.heal_exchange();
    platform.exchange_finished(&id).await;
    let runs = platform.reconcile_until_quiet(10).await;
    let order = assert_finished(&platform, &account, &id).await;
    assert_eq!(order.status(), OrderStatus::Filled);
    assert!(runs <= 4, "finished within {runs} runs");
}

/// Scenario 1, the placement never arrives (every send is lost before the
/// exchange): recovery sends it again inside the placement window, concludes
/// nothing before the window and the in-flight bound pass; after them, a
/// tombstone, "not placed", the whole reservation back.
#[tokio::test]
async fn placement_that_never_arrived_is_released_after_the_deadline() {
    let platform = Platform::spawn("rec-never").await;
    let account = funded_account(&platform.balances, "ben", 10_000_000).await;
    fail_placements(
        &platform,
        OpFaults {
            fail_before_reset: 1.0,
            ..OpFaults::default()
        },
    );
    let id = place(&platform, &account, "k", &limit_buy(10, "500.00")).await;
    // Runs inside the window send again and ask; they conclude nothing.
    platform.clock.advance_ms(1_000);
    platform.reconcile().await;
    let order = platform.order(&id).await;
    assert!(!order.is_closed(), "{order:?}");
    assert!(
        order.place.as_ref().is_some_and(|p| p.sends >= 2),
        "{order:?}"
    );
    let runs = platform.reconcile_until_quiet(20).await;
    let order = assert_finished(&platform, &account, &id).await;
    assert_eq!(order.status(), OrderStatus::Failed);
    assert_eq!(platform.exchange_orders_for(&id), 0);
    assert!(runs <= 10, "finished within {runs} runs");
}

/// The in-flight race: a copy of a placement request still on its way lands
/// after the platform acted. Every send carries the same client order id,
/// so a copy landing after a send that worked cannot open a second order;
/// one landing after "not placed" was concluded bounces off the tombstone.
#[tokio::test]
async fn placement_arriving_late_is_never_lost_nor_doubled() {
    let platform = Platform::spawn("rec-race").await;
    let account = funded_account(&platform.balances, "cy", 10_000_000).await;
    let exchange = aws_adapters::exchange_http::HttpExchange::new(
        &platform.exchange_url,
        Catalog::us_equities(),
        system_tests::platform::EXCHANGE_CALL_TIMEOUT,
    )
    .expect("client");

    // `early`: placed (by a later send); the first send, delayed in the
    // network, lands after it and must not open a second order.
    let early = place(&platform, &account, "early", &market_buy(5)).await;
    platform.reconcile_until_closed(&early).await;
    let landed = exchange
        .place(&app::orders::place_request(&platform.order(&early).await))
        .await
        .expect("answered");
    assert_eq!(platform.exchange_orders_for(&early), 1, "{landed:?}");
    assert_eq!(
        assert_finished(&platform, &account, &early).await.status(),
        OrderStatus::Filled
    );

    // `late`: every send is lost until the window has passed; recovery
    // concludes "not placed" behind a tombstone; the delayed copy bounces.
    fail_placements(
        &platform,
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
    );
    let late = place(&platform, &account, "late", &market_buy(5)).await;
    platform.reconcile_until_closed(&late).await;
    platform.heal_exchange();
    assert_eq!(
        assert_finished(&platform, &account, &late).await.status(),
        OrderStatus::Failed
    );
    let bounced = exchange
        .place(&app::orders::place_request(&platform.order(&late).await))
        .await
        .expect("answered");
    assert!(
        matches!(bounced, PlaceOutcome::Rejected { .. }),
        "{bounced:?}"
    );
    assert_eq!(platform.exchange_orders_for(&late), 0);
}

/// Scenario 2 while webhooks deliver the same fills: the reconciler's pulls
/// and the fill processor's reports meet on the same order; each execution
/// is applied and settled once.
#[tokio::test]
async fn pulls_and_webhook_fills_together_apply_each_fill_once() {
    let platform = Platform::spawn("rec-both").await;
    let account = funded_account(&platform.balances, "di", 10_000_000).await;
    let ids: Vec<OrderId> = join_all((0..4).map(|i| {
        let platform = &platform;
        let account = &account;
        async move { place(platform, account, &format!("k{i}"), &limit_buy(8, "500.00")).await }
    }))
    .await;
    for id in &ids {
        platform.exchange_finished(id).await;
    }
    // What the webhooks would carry, delivered twice, while two reconciler runs go.
    let audit = platform.exchange.state.engine().audit();
    let mut reports = Vec::new();
    for order in audit
        .orders
        .iter()
        .filter(|o| ids.iter().any(|id| id.as_str() == o.client_order_id))
    {
        for execution in &order.executions {
            reports.push(ExchangeReport::Execution {
                client_order_id: OrderId::parse(&order.client_order_id).expect("id"),
                execution: domain::order::Execution {
                    exec_id: domain::order::ExecId::parse(&execution.exec_id).expect("exec id"),
                    exchange_order_id: order.order_id.clone(),
                    quantity: domain::Quantity::new(execution.quantity.shares()).expect("quantity"),
                    price: domain::Price::from_cents(execution.price.cents()).expect("price"),
                    cum_quantity: Some(execution.cum_quantity.shares()),
                },
            });
        }
    }
    platform.clock.advance_ms(platform.step_past_recovery_ms());
    let processor = platform.orders();
    let deliveries = reports
        .iter()
        .chain(reports.iter())
        .map(|r| processor.apply_report(r));
    let (_, _, _) = tokio::join!(
        join_all(deliveries),
        platform.reconcile(),
        platform.reconcile()
    );
    platform.reconcile_until_quiet(20).await;
    for id in &ids {
        assert_eq!(
            assert_finished(&platform, &account, id).await.status(),
            OrderStatus::Filled
        );
    }
}

/// Two runs at once on the same orders, and runs overlapping the next
/// scheduled one: the conditional writes alone keep each order finished
/// exactly once.
#[tokio::test]
async fn overlapping_runs_finish_each_order_once() {
    {
        let platform = Platform::spawn("rec-overlap").await;
        let account = funded_account(&platform.balances, "eve", 10_000_000).await;
        fail_placements(
            &platform,
            OpFaults {
                fail_after_reset: 1.0,
                ..OpFaults::default()
            },
        );
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                place(
                    &platform,
                    &account,
                    &format!("k{i}"),
                    &limit_buy(3, "500.00"),
                )
                .await,
            );
        }
        platform.heal_exchange();
        for id in &ids {
            platform.exchange_finished(id).await;
        }
        let settings = platform.reconciler_settings();
        for _ in 0..6 {
            platform.clock.advance_ms(platform.step_past_recovery_ms());
            let (one, other) = (platform.orders(), platform.orders());
            let (first, second) = tokio::join!(
                reconciler::run_once(&one, &settings, 30_000),
                reconciler::run_once(&other, &settings, 30_000)
            );
            assert_eq!(first.errors + second.errors, 0, "{first:?} {second:?}");
        }
        for id in &ids {
            assert_finished(&platform, &account, id).await;
            assert_eq!(platform.exchange_orders_for(id), 1);
        }
        // Reserved back to zero and cash conserved: 5 orders' fills, nothing twice.
        let spent: u64 = join_all(ids.iter().map(|id| platform.order(id)))
            .await
            .iter()
            .map(|o| o.consumed_units())
            .sum();
        let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
        assert_eq!(cash.available, 10_000_000 - spent, "cash conserved");
    }
}

/// An order that cannot be finished (Balances unreachable) is retried with
/// backoff and flagged for an operator once its condition outlives
/// `flag_after_ms`; recovery keeps trying.
#[tokio::test]
async fn unfinishable_orders_are_flagged_not_dropped() {
    let platform = Platform::spawn("rec-flag").await;
    let account = funded_account(&platform.balances, "fox", 10_000_000).await;
    platform
        .balances_proxy
        .set(system_tests::faulty_proxy::Mode::Refuse);
    let id = place(&platform, &account, "k", &market_buy(1)).await;
    let mut flagged_in = 0;
    let step_ms = platform.settings.recovery.flag_after_ms / 4;
    for _ in 0..10 {
        platform.clock.advance_ms(step_ms);
        flagged_in += platform.reconcile().await.newly_flagged;
    }
    assert_eq!(flagged_in, 1, "flagged once");
    let order = platform.order(&id).await;
    assert!(
        order.recovery.flags.contains(&FlagReason::Stuck),
        "{:?}",
        order.recovery
    );
    assert!(!order.is_closed());
    // Once Balances is back, the next runs finish it.
    platform
        .balances_proxy
        .set(system_tests::faulty_proxy::Mode::Pass);
    platform.reconcile_until_closed(&id).await;
    assert_finished(&platform, &account, &id).await;
}

/// Reads of a run grow with open orders, not with history: closed orders are
/// not in the open-order index at all.
#[tokio::test]
async fn closed_orders_are_not_in_the_open_index() {
    let platform = Platform::spawn("rec-index").await;
    let account = funded_account(&platform.balances, "gil", 10_000_000).await;
    let store = platform.orders();
    let now = app::Clock::now_ms(&platform.clock);
    for _ in 0..20 {
        let mut closed = system_tests::orders::sample_order(&account, now, now);
        closed.closed_at_ms = Some(now);
        store.store().insert(&closed).await.expect("insert");
    }
    platform.clock.advance_ms(10_000);
    let summary = platform.reconcile().await;
    assert_eq!(
        summary.examined, 0,
        "closed orders cost the reconciler nothing"
    );
}

/// A crash of the reconciler at each of its writes and external calls, before
/// the effect or right after it (answer lost): the next runs finish the
/// order, with every invariant holding. Runs N = 1, 2, ... until a run
/// completes without reaching its crash point, so every point is hit.
#[tokio::test]
async fn a_crash_anywhere_in_a_run_is_finished_by_the_next_runs() {
    use system_tests::crash::{CrashPlan, CrashPoints, Crashing};

    let platform = Platform::spawn("rec-crash").await;
    let account = funded_account(&platform.balances, "hal", 100_000_000).await;
    let mut points = CrashPoints::default();
    let mut runs = 0;
    // (faults on the placement, how far to move the clock before the
    // crashing run): found and filled, pulled once silent; never arrived,
    // concluded behind a tombstone once the window has passed.
    let found = (
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
        platform.step_past_recovery_ms(),
        true,
    );
    let never_arrived = (
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
        platform.step_past_recovery_ms(),
        false,
    );
    for (faults, advance_ms, reaches_exchange) in [found, never_arrived] {
        for after_effect in [false, true] {
            for n in 1..=80 {
                fail_placements(&platform, faults.clone());
                let id = place(
                    &platform,
                    &account,
                    &format!("k-{after_effect}-{n}-{reaches_exchange}"),
                    &market_buy(3),
                )
                .await;
                if reaches_exchange {
                    platform.heal_exchange();
                    platform.exchange_finished(&id).await;
                }
                platform.clock.advance_ms(advance_ms);
                platform.heal_exchange();

                let plan = CrashPlan::at(n, after_effect);
                let crashing = platform.orders_with(|store, balances, exchange| {
                    (
                        Crashing {
                            inner: store,
                            plan: plan.clone(),
                        },
                        Crashing {
                            inner: balances,
                            plan: plan.clone(),
                        },
                        Crashing {
                            inner: exchange,
                            plan: plan.clone(),
                        },
                    )
                });
                reconciler::run_once(&crashing, &platform.reconciler_settings(), 30_000).await;
                runs += 1;
                points.record(&plan);
                platform.reconcile_until_closed(&id).await;
                assert_finished(&platform, &account, &id).await;
                if plan.crashed_at().is_none() {
                    break;
                }
            }
        }
    }
    eprintln!("{runs} crashing runs; crash points hit: {:#?}", points.0);
    for point in [
        "store.save",
        "exchange.order",
        "exchange.executions",
        "exchange.cancel",
        "balances.settle",
        "balances.release",
    ] {
        assert!(
            points.0.keys().any(|k| k.ends_with(point)),
            "crash point {point} never hit: {:?}",
            points.0
        );
    }
}
