//! Every execution the exchange confirms is accounted for: a protected
//! market order cannot cost more than its reservation; on a venue that
//! ignores limits, an execution beyond the reservation is settled anyway
//! (from available, then as a recorded shortfall), the order is flagged,
//! and cash is conserved counting what is owed.

use app::clock::ManualClock;
use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::{OrderSettings, Orders, ReconcileBudget};
use app::{Balances, BalancesService};
use domain::order::{
    Execution, FlagReason, Order, OrderId, OrderRequest, OrderStatus, OrderType, TimeInForce,
    VenueRules,
};
use domain::{
    AccountId, Amount, Asset, Balance, IdempotencyKey, Operation, Price, Quantity, Side, Symbol,
};
use system_tests::conformance::exchange::aapl;
use system_tests::sim_exchange::{fast_fills, EngineExchange};

/// The venue, with a reference price that lags the market: the price a
/// market order's protection and reservation are sized on is `percent` of
/// the venue's (a quote feed that froze before a gap up).
struct LaggingReference<E> {
    inner: E,
    percent: u64,
}

impl<E: Exchange> Exchange for LaggingReference<E> {
    fn rules(&self) -> VenueRules {
        self.inner.rules()
    }
    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        self.inner.place(request).await
    }
    async fn order(&self, id: &OrderId) -> Result<Option<ExchangeOrder>, ExchangeError> {
        self.inner.order(id).await
    }
    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        self.inner.executions(exchange_order_id).await
    }
    async fn cancel(
        &self,
        id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        self.inner.cancel(id, exchange_order_id).await
    }
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let real = self.inner.reference_price(symbol).await?;
        Price::from_cents(real.cents() * self.percent / 100)
            .map_err(|e| ExchangeError::Protocol(e.to_string()))
    }
    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        self.inner.clock().await
    }
    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        self.inner.day_orders(trade_date).await
    }
}

type MemoryOrders = Orders<
    MemoryOrderStore,
    BalancesService<MemoryLedgerStore, ManualClock>,
    LaggingReference<std::sync::Arc<EngineExchange>>,
    ManualClock,
>;

struct World {
    orders: MemoryOrders,
    balances: BalancesService<MemoryLedgerStore, ManualClock>,
    exchange_audit: Box<dyn Fn() -> u64>,
    clock: ManualClock,
    account: AccountId,
}

/// A venue that honours limits or not, a reference lagging at `percent`,
/// and an account holding `cash_cents`.
async fn world(honours_limits: bool, percent: u64, cash_cents: u64) -> World {
    let clock = ManualClock::at(1_800_000_000_000);
    let mut config = fast_fills(11);
    config.honours_limits = honours_limits;
    let engine = EngineExchange::new(config, clock.clone()).expect("engine");
    let engine = std::sync::Arc::new(engine);
    let audit_engine = engine.clone();
    let exchange_audit = Box::new(move || {
        audit_engine
            .audit()
            .orders
            .iter()
            .flat_map(|o| o.executions.iter())
            .map(|e| e.quantity.shares() * e.price.cents())
            .sum()
    });
    let exchange = LaggingReference {
        inner: engine,
        percent,
    };
    let balances = BalancesService::new(MemoryLedgerStore::default(), clock.clone());
    let account = AccountId::parse("acct-shortfall").expect("account");
    Balances::execute(
        &balances,
        &account,
        &IdempotencyKey::parse("fund").expect("key"),
        &Operation::Deposit {
            asset: Asset::Cash,
            amount: Amount::new(cash_cents).expect("amount"),
        },
    )
    .await
    .expect("funded");
    let mut settings = OrderSettings::default();
    settings.recovery.market_silence_ms = 1_000;
    settings.recovery.gap_grace_ms = 1_000;
    let orders = Orders::new(
        MemoryOrderStore::default(),
        balances.clone(),
        exchange,
        clock.clone(),
        settings,
    );
    World {
        orders,
        balances,
        exchange_audit,
        clock,
        account,
    }
}

impl World {
    async fn market_buy(&self, quantity: u64) -> OrderId {
        let request = OrderRequest {
            symbol: aapl(),
            side: Side::Buy,
            order_type: OrderType::Market,
            quantity: Quantity::new(quantity).expect("quantity"),
            limit_price: None,
            time_in_force: TimeInForce::Day,
        };
        let placed = self
            .orders
            .place(
                self.account.clone(),
                IdempotencyKey::parse("buy").expect("key"),
                request,
            )
            .await
            .expect("placed");
        placed.order.id
    }

    /// Recovery runs, a simulated second apart, until the order closes.
    async fn run_until_closed(&self, id: &OrderId) -> Order {
        let budget = ReconcileBudget {
            time_budget_ms: 60_000,
            page_size: 100,
        };
        for _ in 0..200 {
            self.clock.advance_ms(1_000);
            self.orders.reconcile(&budget).await;
            let order = self.orders.get(&self.account, id).await.expect("order");
            if order.is_closed() {
                return order;
            }
        }
        panic!("{id} did not close");
    }

    async fn cash(&self) -> Balance {
        Balances::balances(&self.balances, &self.account)
            .await
            .expect("balances")
            .into_iter()
            .find(|(asset, _)| *asset == Asset::Cash)
            .map(|(_, balance)| balance)
            .unwrap_or_default()
    }
}

/// With protection, a market buy goes out as a limit at the collar: sized
/// on a reference 2 % stale it fills within its reservation; sized on one
/// half the market, the venue will not fill it through its limit at all.
#[tokio::test]
async fn a_protected_market_buy_never_costs_more_than_its_reservation() {
    for percent in [98, 50] {
        let world = world(true, percent, 100_000_000).await;
        let id = world.market_buy(10).await;
        let placed = world.orders.get(&world.account, &id).await.expect("order");
        let protection = placed.protection.expect("a protective limit");
        assert_eq!(
            placed.reservation.amount.units(),
            protection.cents() * 10,
            "the reservation is quantity x protection"
        );
        if percent == 50 {
            // Resting below the market: cancel it to finish.
            world
                .orders
                .cancel(&world.account, &id)
                .await
                .expect("cancelled");
        }
        let order = world.run_until_closed(&id).await;
        assert!(
            order.consumed_units() <= order.reservation.amount.units(),
            "{percent}%: consumed {} of {}",
            order.consumed_units(),
            order.reservation.amount.units()
        );
        assert!(order.recovery.flags.is_empty(), "{:?}", order.recovery);
        let expected = if percent == 98 {
            OrderStatus::Filled
        } else {
            OrderStatus::Cancelled
        };
        assert_eq!(order.status(), expected);
        let cash = world.cash().await;
        assert_eq!(cash.reserved, 0);
        assert_eq!(cash.available, 100_000_000 - (world.exchange_audit)());
    }
}

/// A venue that fills through the limit: the execution happened, so it is
/// settled. Beyond the reservation it is paid from available; what the
/// account cannot cover is owed (a recorded shortfall), the order is
/// flagged, and cash is conserved counting what is owed.
#[tokio::test]
async fn an_execution_beyond_the_reservation_is_settled_and_the_shortfall_recorded() {
    // Reserved: about half the real cost; available beyond it: 10.00.
    let probe = world(false, 50, 1).await;
    let reference = probe
        .orders
        .exchange()
        .reference_price(&aapl())
        .await
        .expect("reference");
    drop(probe);
    let protection_estimate = reference.cents() * 105 / 100 + 1;
    let cash = protection_estimate * 10 + 1_000;
    let world = world(false, 50, cash).await;
    let id = world.market_buy(10).await;
    let order = world.run_until_closed(&id).await;
    assert_eq!(order.status(), OrderStatus::Filled, "{order:?}");
    let spent = (world.exchange_audit)();
    assert!(
        spent > order.reservation.amount.units(),
        "the venue filled through the limit"
    );
    assert!(
        order.recovery.flags.contains(&FlagReason::Shortfall),
        "{:?}",
        order.recovery
    );
    let balance = world.cash().await;
    assert_eq!(balance.reserved, 0);
    assert_eq!(balance.available, 0, "everything available was used");
    assert_eq!(balance.owed, spent - cash, "the rest is owed");
    // Conserved: deposits - executions = available + reserved - owed.
    assert_eq!(
        cash as i128 - spent as i128,
        balance.available as i128 + balance.reserved as i128 - balance.owed as i128
    );
}
