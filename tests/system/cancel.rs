//! Cancel is a durable intent every driver honours: a cancel that races the
//! placement, meets an unknown outcome, a partial or a full fill, loses its
//! answer, or arrives twice, always ends with the exchange and the ledger
//! agreeing with the order.

use std::sync::Arc;

use app::clock::ManualClock;
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::order_store::OrderStore;
use app::orders::{OrderSettings, Orders};
use app::{Balances, BalancesService, Clock};
use domain::order::{Order, OrderId, OrderRequest, OrderStatus, OrderType, TimeInForce};
use domain::{AccountId, Asset, IdempotencyKey, Operation, Price, Quantity, Side};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use futures::future::join_all;
use reqwest::StatusCode;
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::hooks::{HookFuture, Hooked, When};
use system_tests::platform::{bearer, Platform, PlatformOptions};
use system_tests::sim_exchange::{fast_fills, EngineExchange};

fn limit_buy(quantity: u64, price: &str) -> OrderRequest {
    OrderRequest {
        symbol: system_tests::conformance::exchange::aapl(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        quantity: Quantity::new(quantity).expect("quantity"),
        limit_price: Some(Price::parse(price).expect("price")),
        time_in_force: TimeInForce::Day,
    }
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("key")
}

/// The write that starts the placement (`place: processing`, first send).
fn starts_the_placement(order: &Order) -> bool {
    order
        .place
        .as_ref()
        .is_some_and(|p| p.step.is_processing() && p.sends <= 1)
}

/// The forced interleaving of a cancel and a placement, on any store: the
/// cancel lands between the placement's read and its write (`BeforeSave`:
/// the placement never starts) or right after it (`AfterSave`: the cancel
/// reaches the exchange ahead of the order and leaves a tombstone).
/// Either way the caller's cancel wins, nothing is live at the exchange and
/// the whole reservation comes back.
async fn cancel_racing_the_placement<S, B>(
    store: S,
    balances: B,
    exchange: EngineExchange,
    clock: ManualClock,
    account: AccountId,
    when: When,
) where
    S: OrderStore + Clone + 'static,
    B: Balances + Clone + 'static,
{
    let exchange = Arc::new(exchange);
    let settings = OrderSettings::default();
    let canceller = Arc::new(Orders::new(
        store.clone(),
        balances.clone(),
        exchange.clone(),
        clock.clone(),
        settings.clone(),
    ));
    let cancelling_account = account.clone();
    let hooked = Hooked::new(
        store,
        when,
        Box::new(move |order: &Order| {
            if !starts_the_placement(order) {
                return None;
            }
            let (canceller, account, id) = (
                canceller.clone(),
                cancelling_account.clone(),
                order.id.clone(),
            );
            let run: HookFuture = Box::pin(async move {
                canceller
                    .cancel(&account, &id)
                    .await
                    .expect("cancel recorded");
            });
            Some(run)
        }),
    );
    let placing = Orders::new(
        hooked.clone(),
        balances.clone(),
        exchange.clone(),
        clock,
        settings,
    );
    let placed = placing
        .place(account.clone(), key("race"), limit_buy(5, "500.00"))
        .await
        .expect("answered");
    assert!(hooked.fired(), "{when:?}: the interleaving happened");
    let id = placed.order.id.clone();
    // The caller that placed is told the cancel won.
    assert_eq!(placed.order.status(), OrderStatus::Cancelled, "{when:?}");
    let order = placing.get(&account, &id).await.expect("order");
    assert!(order.is_closed(), "{when:?}: {order:?}");
    assert_eq!(order.status(), OrderStatus::Cancelled);
    let live = exchange.with_engine(|engine| {
        engine
            .get_by_client_id(id.as_str())
            .is_some_and(|o| !o.status.is_terminal())
    });
    assert!(!live, "{when:?}: nothing live at the exchange");
    let cash = balances
        .balances(&account)
        .await
        .expect("balances")
        .into_iter()
        .find(|(asset, _)| *asset == Asset::Cash)
        .expect("cash");
    assert_eq!(cash.1.reserved, 0, "{when:?}: reservation returned");
}

#[tokio::test]
async fn a_cancel_racing_the_placement_wins_on_the_memory_store() {
    for when in [When::BeforeSave, When::AfterSave] {
        let clock = ManualClock::at(1_800_000_000_000);
        let balances = BalancesService::new(MemoryLedgerStore::default(), clock.clone());
        let account = AccountId::parse("race-memory").expect("account");
        Balances::execute(
            &balances,
            &account,
            &key("fund"),
            &Operation::Deposit {
                asset: Asset::Cash,
                amount: domain::Amount::new(10_000_000).expect("amount"),
            },
        )
        .await
        .expect("funded");
        let exchange = EngineExchange::new(fast_fills(7), clock.clone()).expect("engine");
        cancel_racing_the_placement(
            MemoryOrderStore::default(),
            balances,
            exchange,
            clock,
            account,
            when,
        )
        .await;
    }
}

#[tokio::test]
async fn a_cancel_racing_the_placement_wins_on_dynamodb() {
    for when in [When::BeforeSave, When::AfterSave] {
        let platform = Platform::spawn("cancel-race").await;
        let account = funded_account(&platform.balances, "rae", 10_000_000).await;
        let clock = ManualClock::at(platform.clock.now_ms());
        let exchange = EngineExchange::new(fast_fills(7), clock.clone()).expect("engine");
        let store = platform.orders().store().clone();
        cancel_racing_the_placement(
            store,
            platform.balances.clone(),
            exchange,
            clock,
            account,
            when,
        )
        .await;
    }
}

fn fail(operation: SimOperation, faults: OpFaults) -> FaultConfig {
    FaultConfig {
        operations: [(operation, faults)].into_iter().collect(),
        ..FaultConfig::healthy()
    }
}

async fn delete(platform: &Platform, account: &AccountId, id: &str) -> reqwest::Response {
    platform
        .http
        .delete(format!("{}/orders/{id}", platform.orders_url))
        .header("authorization", bearer(account))
        .send()
        .await
        .expect("sent")
}

async fn post(
    platform: &Platform,
    account: &AccountId,
    key: &str,
    body: serde_json::Value,
) -> OrderId {
    let response = platform.post_order(account, key, &body).await;
    let body: serde_json::Value = response.json().await.expect("json");
    OrderId::parse(body["id"].as_str().expect("an order id")).expect("order id")
}

/// The placement's outcome is unknown (its answer lost, the lookups
/// failing): the cancel, by client order id, settles it at once.
#[tokio::test]
async fn a_cancel_settles_a_placement_whose_outcome_is_unknown() {
    let platform = Platform::spawn("cancel-unknown").await;
    let account = funded_account(&platform.balances, "uma", 10_000_000).await;
    let mut faults = fail(
        SimOperation::Place,
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
    );
    faults.operations.insert(
        SimOperation::GetOrderByClientId,
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
    );
    platform.set_exchange_faults(faults);
    let id = post(
        &platform,
        &account,
        "k",
        serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "5", "limit_price": "1.00"}),
    )
    .await;
    assert_eq!(platform.order(&id).await.status(), OrderStatus::Pending);
    let response = delete(&platform, &account, id.as_str()).await;
    assert!(response.status().is_success(), "{}", response.status());
    platform.heal_exchange();
    platform.reconcile_until_closed(&id).await;
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Cancelled, "{order:?}");
    assert_eq!(platform.exchange_orders_for(&id), 1);
    assert_eq!(
        balance_of(&platform.balances, &account, &Asset::Cash)
            .await
            .reserved,
        0
    );
}

/// A slow fill: one execution arrives, then the cancel; the rest of the
/// reservation is released once and the executions are all settled.
#[tokio::test]
async fn a_cancel_after_a_partial_fill_releases_the_rest_once() {
    let mut options = PlatformOptions::default();
    options.engine.min_chunks = 5;
    options.engine.max_chunks = 5;
    options.engine.fill_interval_min_ms = 1_500;
    options.engine.fill_interval_max_ms = 2_000;
    let platform = Platform::spawn_with("cancel-partial", options).await;
    let account = funded_account(&platform.balances, "pia", 10_000_000).await;
    let id = post(
        &platform,
        &account,
        "k",
        serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "limit_price": "500.00"}),
    )
    .await;
    system_tests::wait_until("a first execution", || async {
        platform
            .exchange
            .state
            .engine()
            .get_by_client_id(id.as_str())
            .is_some_and(|o| !o.executions.is_empty())
    })
    .await;
    let response = delete(&platform, &account, id.as_str()).await;
    assert!(response.status().is_success(), "{}", response.status());
    platform.reconcile_until_closed(&id).await;
    let order = platform.order(&id).await;
    let at_exchange = platform
        .exchange
        .state
        .engine()
        .get_by_client_id(id.as_str())
        .expect("at the exchange");
    assert_eq!(order.status(), OrderStatus::Cancelled, "{order:?}");
    let executed: u64 = at_exchange
        .executions
        .iter()
        .map(|e| e.quantity.shares())
        .sum();
    assert!(
        executed > 0 && executed < 10,
        "partially filled: {executed}"
    );
    assert_eq!(order.filled_quantity(), executed);
    let executions = platform.executions(&id).await;
    assert_eq!(executions.len(), at_exchange.executions.len());
    assert!(executions.iter().all(|e| e.is_settled()));
    // What was not spent came back, once.
    assert_eq!(
        order.released_units,
        order.reservation.amount.units() - order.consumed_units()
    );
    let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
    assert_eq!(cash.reserved, 0);
    assert_eq!(cash.available, 10_000_000 - order.consumed_units());
}

/// Cancelling a filled order: the cancel step fails with the exchange's
/// reason and the order stays filled.
#[tokio::test]
async fn a_cancel_of_a_filled_order_fails_and_the_order_stays_filled() {
    let platform = Platform::spawn("cancel-filled").await;
    let account = funded_account(&platform.balances, "fay", 10_000_000).await;
    let id = post(
        &platform,
        &account,
        "k",
        serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "4", "limit_price": "500.00"}),
    )
    .await;
    platform.exchange_finished(&id).await;
    let response = delete(&platform, &account, id.as_str()).await;
    assert!(response.status().is_success(), "{}", response.status());
    platform.reconcile_until_closed(&id).await;
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Filled);
    let cancel = order
        .cancel
        .as_ref()
        .and_then(|c| c.step.as_ref())
        .expect("a cancel step");
    let failure = cancel.failure().expect("the cancel failed");
    assert!(
        format!("{failure:?}").contains("already filled"),
        "{failure:?}"
    );
}

/// Two cancels at once: both answered, one cancel at the exchange's books,
/// the order cancelled once, the reservation back.
#[tokio::test]
async fn two_cancels_at_once_cancel_once() {
    let platform = Platform::spawn("cancel-twice").await;
    let account = funded_account(&platform.balances, "two", 10_000_000).await;
    let id = post(
        &platform,
        &account,
        "k",
        serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "5", "limit_price": "1.00"}),
    )
    .await;
    let answers = join_all((0..2).map(|_| delete(&platform, &account, id.as_str()))).await;
    for answer in &answers {
        assert!(
            [StatusCode::OK, StatusCode::ACCEPTED].contains(&answer.status()),
            "{}",
            answer.status()
        );
    }
    platform.reconcile_until_closed(&id).await;
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert_eq!(platform.exchange_orders_for(&id), 1);
    assert_eq!(
        balance_of(&platform.balances, &account, &Asset::Cash)
            .await
            .reserved,
        0
    );
}
