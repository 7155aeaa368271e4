//! The `Exchange` port's contract. Each check uses fresh client order ids and
//! accounts, so checks can share one exchange and run in parallel.
//!
//! A check needs more than the port: the exchange's clock (deadlines are set
//! from it) and a way to let time pass so fills fall due. [`ExchangeUnderTest`]
//! gives both: an in-process engine advances its manual clock, a server on
//! the system clock sleeps.
//!
//! Reference prices: a listed symbol has a positive price; a symbol the
//! exchange does not list is an error (`Protocol`: the platform's catalog and
//! the exchange disagree, which is configuration, not market data), never a
//! made-up price.

use std::collections::HashSet;
use std::future::Future;

use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, ExchangeOrderStatus, PlaceOutcome,
    PlaceRequest,
};
use domain::order::{AbsenceProof, OrderId, OrderType, TimeInForce};
use domain::{Catalog, Price, Quantity, Side, Symbol};

use crate::new_account;

/// Most times a check asks again while waiting for the exchange.
pub const MAX_POLLS: usize = 200;
/// Exchange time let pass between two polls.
pub const POLL_STEP_MS: u64 = 25;
/// A deadline comfortably ahead of any check.
const DEADLINE_AHEAD_MS: u64 = 60_000;

/// An adapter of the port with the exchange's clock.
pub trait ExchangeUnderTest: Sync {
    type Port: Exchange;

    fn exchange(&self) -> &Self::Port;

    /// The exchange's time (its own clock), Unix milliseconds.
    fn now_ms(&self) -> u64;

    /// The platform's time, Unix milliseconds (the exchange's clock may be off it).
    fn platform_now_ms(&self) -> u64;

    /// Lets `ms` of the exchange's time pass.
    fn pass_ms(&self, ms: u64) -> impl Future<Output = ()> + Send;
}

/// A fresh client order id (a v7 UUID, lower-case with hyphens).
pub fn new_order_id() -> OrderId {
    OrderId::parse(&uuid::Uuid::now_v7().hyphenated().to_string())
        .expect("a v7 UUID is an order id")
}

pub fn aapl() -> Symbol {
    Catalog::us_equities().symbol("AAPL").expect("listed")
}

fn shares(n: u64) -> Quantity {
    Quantity::new(n).expect("positive")
}

/// A market buy of `n` AAPL shares, with a deadline a minute ahead on
/// venues that take one.
pub fn market_buy<U: ExchangeUnderTest>(under_test: &U, n: u64) -> PlaceRequest {
    let takes_deadline = under_test.exchange().rules().request_deadline;
    PlaceRequest {
        client_order_id: new_order_id(),
        account: new_account("xchg"),
        symbol: aapl(),
        side: Side::Buy,
        order_type: OrderType::Market,
        quantity: shares(n),
        limit_price: None,
        time_in_force: TimeInForce::Day,
        deadline_ms: takes_deadline.then(|| under_test.now_ms() + DEADLINE_AHEAD_MS),
    }
}

pub fn limit_buy<U: ExchangeUnderTest>(under_test: &U, n: u64, limit: Price) -> PlaceRequest {
    PlaceRequest {
        order_type: OrderType::Limit,
        limit_price: Some(limit),
        ..market_buy(under_test, n)
    }
}

pub async fn accepted<E: Exchange>(exchange: &E, request: &PlaceRequest) -> ExchangeOrder {
    match exchange.place(request).await {
        Ok(PlaceOutcome::Accepted(order)) => order,
        other => panic!("expected the order to be accepted, got {other:?}"),
    }
}

async fn look_up<E: Exchange>(exchange: &E, id: &OrderId) -> Option<ExchangeOrder> {
    exchange.order(id).await.expect("lookup answered")
}

/// Polls the order, letting time pass, until it can execute no more.
pub async fn until_final<U: ExchangeUnderTest>(under_test: &U, id: &OrderId) -> ExchangeOrder {
    for _ in 0..MAX_POLLS {
        let order = look_up(under_test.exchange(), id).await.expect("placed");
        if order.status.is_final() {
            return order;
        }
        under_test.pass_ms(POLL_STEP_MS).await;
    }
    panic!("order {id} still open after {MAX_POLLS} polls");
}

/// A placed order is found by its client order id.
pub async fn place_then_look_up<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 10);
    let placed = accepted(exchange, &request).await;
    assert_eq!(placed.client_order_id, request.client_order_id.as_str());
    assert!(!placed.order_id.is_empty());
    let found = look_up(exchange, &request.client_order_id)
        .await
        .expect("found");
    assert_eq!(
        (found.order_id, found.client_order_id),
        (placed.order_id, request.client_order_id.to_string())
    );
}

/// The same request twice is one order: what makes a retried place safe.
pub async fn identical_place_is_the_same_order<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 10);
    let first = accepted(exchange, &request).await;
    under_test.pass_ms(POLL_STEP_MS).await;
    let again = accepted(exchange, &request).await;
    assert_eq!(again.order_id, first.order_id);
}

/// The same id with another request is not a rejection (the exchange does
/// hold an order under it) and leaves the first order as it was.
pub async fn reused_id_is_not_rejected<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 10);
    let first = accepted(exchange, &request).await;
    let other = PlaceRequest {
        quantity: shares(11),
        ..request.clone()
    };
    let result = exchange.place(&other).await;
    assert!(
        matches!(result, Err(ExchangeError::Protocol(_))),
        "{result:?}"
    );
    let found = look_up(exchange, &request.client_order_id)
        .await
        .expect("found");
    assert_eq!(found.order_id, first.order_id);
}

pub async fn unknown_id_is_none<U: ExchangeUnderTest>(under_test: &U) {
    assert_eq!(look_up(under_test.exchange(), &new_order_id()).await, None);
}

/// A cancel of an id never seen: a tombstone where the venue keeps one (a
/// placement arriving later is rejected, so a late request can never
/// land); "not found", storing nothing, where it does not; refused without
/// the venue's own id where it cancels only by that.
pub async fn cancel_of_unknown_id_follows_the_venue<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 10);
    let id = &request.client_order_id;
    let rules = exchange.rules();
    if !rules.cancel_by_client_id {
        let result = exchange.cancel(id, None).await;
        assert!(
            matches!(result, Err(ExchangeError::Protocol(_))),
            "{result:?}"
        );
        assert_eq!(
            exchange.cancel(id, Some("no-such-venue-id")).await,
            Ok(CancelOutcome::NotFound)
        );
        accepted(exchange, &request).await;
        return;
    }
    match rules.absence {
        AbsenceProof::Tombstone => {
            assert_eq!(
                exchange.cancel(id, None).await,
                Ok(CancelOutcome::Tombstoned)
            );
            assert_eq!(
                exchange.cancel(id, None).await,
                Ok(CancelOutcome::Tombstoned)
            );
            let late = exchange.place(&request).await.expect("answered");
            assert!(matches!(late, PlaceOutcome::Rejected { .. }), "{late:?}");
            assert_eq!(look_up(exchange, id).await, None);
        }
        _ => {
            assert_eq!(exchange.cancel(id, None).await, Ok(CancelOutcome::NotFound));
            // Nothing was stored: the placement still lands.
            accepted(exchange, &request).await;
        }
    }
}

/// A cancel of an open order cancels it; a repeat answers the same order.
pub async fn cancel_of_open_order_is_known<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    // Far below the market: it stays open.
    let request = limit_buy(under_test, 10, Price::from_cents(1).expect("a cent"));
    let placed = accepted(exchange, &request).await;
    let id = &request.client_order_id;
    for _ in 0..2 {
        let outcome = exchange
            .cancel(id, Some(&placed.order_id))
            .await
            .expect("answered");
        let CancelOutcome::Known(order) = outcome else {
            panic!("expected the order, got {outcome:?}");
        };
        assert_eq!(order.order_id, placed.order_id);
        assert_eq!(
            (order.status, order.cum_quantity),
            (ExchangeOrderStatus::Cancelled, 0)
        );
    }
    let found = look_up(exchange, id).await.expect("found");
    assert_eq!(found.status, ExchangeOrderStatus::Cancelled);
}

/// A request after its deadline is rejected and stores nothing, on venues
/// that enforce one; a venue without request deadlines refuses one sent.
pub async fn place_after_deadline_is_rejected<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = PlaceRequest {
        deadline_ms: Some(under_test.now_ms() - 1_000),
        ..market_buy(under_test, 10)
    };
    let outcome = exchange.place(&request).await.expect("answered");
    assert!(
        matches!(outcome, PlaceOutcome::Rejected { .. }),
        "{outcome:?}"
    );
    assert_eq!(look_up(exchange, &request.client_order_id).await, None);
}

/// The venue's list of a trading day holds the orders accepted into it.
pub async fn the_days_list_holds_the_days_orders<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 3);
    let placed = accepted(exchange, &request).await;
    let calendar = app::orders::TradingCalendar::default();
    let day = calendar.trade_day(under_test.now_ms());
    let date = app::orders::TradingCalendar::date(day);
    let listed = exchange.day_orders(&date).await.expect("day list");
    assert!(
        listed.iter().any(|o| o.order_id == placed.order_id
            && o.client_order_id == request.client_order_id.as_str()),
        "{date}: {} orders, ours missing",
        listed.len()
    );
    let yesterday = app::orders::TradingCalendar::date(day - 1);
    let before = exchange.day_orders(&yesterday).await.expect("day list");
    assert!(!before.iter().any(|o| o.order_id == placed.order_id));
}

/// The venue's clock against ours is measured, with a bound on its error.
pub async fn the_venues_clock_is_measured<U: ExchangeUnderTest>(under_test: &U) {
    let clock = under_test.exchange().clock().await.expect("measured");
    let ours = under_test.platform_now_ms();
    let implied = ours.saturating_add_signed(clock.offset_ms);
    let error = implied.abs_diff(under_test.now_ms());
    // The measurement and this comparison are a few milliseconds apart;
    // 5 s bounds that even on a loaded machine.
    assert!(
        error <= clock.uncertainty_ms + 5_000,
        "offset {} ms, uncertainty {} ms, off by {error} ms",
        clock.offset_ms,
        clock.uncertainty_ms
    );
}

/// The executions of a finished order add up to its filled quantity, each
/// with its own id: what fills are de-duplicated and checked on.
pub async fn executions_add_up_to_the_filled_quantity<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let request = market_buy(under_test, 10);
    accepted(exchange, &request).await;
    let order = until_final(under_test, &request.client_order_id).await;
    assert_eq!(
        (order.status, order.cum_quantity),
        (ExchangeOrderStatus::Filled, 10)
    );
    let executions = exchange
        .executions(&order.order_id)
        .await
        .expect("executions");
    let total: u64 = executions.iter().map(|e| e.quantity.shares()).sum();
    assert_eq!(total, order.cum_quantity);
    let ids: HashSet<_> = executions.iter().map(|e| e.exec_id.clone()).collect();
    assert_eq!(ids.len(), executions.len(), "exec ids are unique");
    assert!(executions
        .iter()
        .all(|e| e.exchange_order_id == order.order_id));
    // Asking again gives the same list: executions are append-only.
    assert_eq!(exchange.executions(&order.order_id).await, Ok(executions));
}

/// A limit buy never executes above its limit; one far below the market does
/// not execute at all.
pub async fn limit_buy_never_executes_above_its_limit<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let reference = exchange.reference_price(&aapl()).await.expect("price");
    // Ten cents above the last price: marketable unless the market runs away.
    let limit = Price::from_cents(reference.cents() + 10).expect("price");
    let near = limit_buy(under_test, 10, limit);
    let far = limit_buy(
        under_test,
        10,
        Price::from_cents(reference.cents() / 2).expect("price"),
    );
    let near_order = accepted(exchange, &near).await;
    let far_order = accepted(exchange, &far).await;
    for _ in 0..20 {
        under_test.pass_ms(POLL_STEP_MS).await;
    }
    let executions = exchange
        .executions(&near_order.order_id)
        .await
        .expect("executions");
    // Marketable with a one-cent half spread: not filling at all would make
    // the price check below say nothing.
    assert!(!executions.is_empty(), "a marketable limit buy executes");
    assert!(
        executions.iter().all(|e| e.price <= limit),
        "{executions:?} above {limit}"
    );
    assert_eq!(exchange.executions(&far_order.order_id).await, Ok(vec![]));
}

/// A listed symbol has a positive reference price; an unlisted one is an
/// error, not a guess.
pub async fn reference_price_of_listed_and_unlisted<U: ExchangeUnderTest>(under_test: &U) {
    let exchange = under_test.exchange();
    let price = exchange.reference_price(&aapl()).await.expect("price");
    assert!(price.cents() > 0);
    let unlisted = Catalog::new(&[("ZZZZ", 1)])
        .expect("catalog")
        .symbol("ZZZZ")
        .expect("symbol");
    let result = exchange.reference_price(&unlisted).await;
    assert!(
        matches!(result, Err(ExchangeError::Protocol(_))),
        "{result:?}"
    );
}

/// Runs every check of the suite as a `#[tokio::test]` against one adapter;
/// `$make` builds an [`ExchangeUnderTest`] (it may `.await`).
#[macro_export]
macro_rules! exchange_conformance {
    ($make:expr) => {
        $crate::exchange_conformance!(@tests $make;
            place_then_look_up, identical_place_is_the_same_order,
            reused_id_is_not_rejected, unknown_id_is_none,
            cancel_of_unknown_id_follows_the_venue, cancel_of_open_order_is_known,
            place_after_deadline_is_rejected, executions_add_up_to_the_filled_quantity,
            limit_buy_never_executes_above_its_limit, reference_price_of_listed_and_unlisted,
            the_days_list_holds_the_days_orders, the_venues_clock_is_measured);
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let under_test = $make;
                $crate::conformance::exchange::$check(&under_test).await;
            }
        )*
    };
}
