//! Signals for recovery hold while reports keep arriving: an order whose
//! settlements fail while the venue keeps filling it is looked at by
//! recovery and flagged once its condition outlives `flag_after_ms`, counted
//! from when the condition arose. (In-process adapters and a manual clock:
//! what is tested is when recovery looks, not a store's behaviour.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use app::balances::BalancesCallError;
use app::clock::{Clock, ManualClock};
use app::exchange::Exchange;
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::{OrderSettings, Orders, ReconcileBudget};
use app::{Balances, BalancesService};
use domain::ledger::OperationRecord;
use domain::order::{ExchangeReport, FlagReason, OrderId, OrderRequest, OrderType, TimeInForce};
use domain::{AccountId, Asset, Balance, IdempotencyKey, Operation, Price, Quantity, Side};
use system_tests::conformance::balances::funded_account;
use system_tests::conformance::exchange::aapl;
use system_tests::sim_exchange::{fast_fills, EngineExchange};

/// Balances whose settlements fail (their outcome unknown) while `down`.
#[derive(Clone)]
struct SettlementsDown {
    inner: BalancesService<MemoryLedgerStore, ManualClock>,
    down: Arc<AtomicBool>,
}

impl Balances for SettlementsDown {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        if self.down.load(Ordering::SeqCst) && matches!(operation, Operation::Settle { .. }) {
            return Err(BalancesCallError::OutcomeUnknown("settlements down".into()));
        }
        Balances::execute(&self.inner, account, key, operation).await
    }
    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        Balances::lookup(&self.inner, account, key).await
    }
    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<std::collections::BTreeMap<Asset, Balance>, BalancesCallError> {
        Balances::balances(&self.inner, account).await
    }
}

const SECOND_MS: u64 = 1_000;
const MINUTE_MS: u64 = 60 * SECOND_MS;

/// A limit buy filled one share a second for longer than the flag bound,
/// its settlements failing throughout; the webhook delivers every execution
/// a second after it happens and the reconciler runs every minute.
#[tokio::test]
async fn a_condition_is_flagged_on_time_while_fills_keep_arriving() {
    let clock = ManualClock::at(1_800_000_000_000);
    let shares: u32 = 1_500;
    let config = exchange_sim::EngineConfig {
        min_chunks: shares,
        max_chunks: shares,
        fill_interval_min_ms: SECOND_MS,
        fill_interval_max_ms: SECOND_MS,
        ..fast_fills(17)
    };
    let exchange = Arc::new(EngineExchange::new(config, clock.clone()).expect("engine"));
    let down = Arc::new(AtomicBool::new(false));
    let balances = SettlementsDown {
        inner: BalancesService::new(MemoryLedgerStore::default(), clock.clone()),
        down: down.clone(),
    };
    let account = funded_account(&balances, "signals", 1_000_000_000).await;
    let mut settings = OrderSettings::default();
    settings.recovery.flag_after_ms = 10 * MINUTE_MS;
    let flag_after_ms = settings.recovery.flag_after_ms;
    let orders = Orders::new(
        MemoryOrderStore::default(),
        balances.clone(),
        exchange.clone(),
        clock.clone(),
        settings,
    );
    let request = OrderRequest {
        symbol: aapl(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        quantity: Quantity::new(u64::from(shares)).expect("quantity"),
        limit_price: Some(Price::parse("1000.00").expect("price")),
        time_in_force: TimeInForce::Gtc,
    };
    let id: OrderId = orders
        .place(
            account.clone(),
            IdempotencyKey::parse("buy").expect("key"),
            request,
        )
        .await
        .expect("placed")
        .order
        .id;
    let venue_id = orders
        .get(&account, &id)
        .await
        .expect("order")
        .exchange_order_id
        .expect("accepted by the venue");
    down.store(true, Ordering::SeqCst);
    let failing_since = clock.now_ms();

    let budget = ReconcileBudget {
        time_budget_ms: MINUTE_MS,
        page_size: 100,
    };
    let mut delivered = BTreeSet::new();
    let mut flagged_at = None;
    let until = failing_since + flag_after_ms + 15 * MINUTE_MS;
    while clock.now_ms() < until && flagged_at.is_none() {
        clock.advance_ms(SECOND_MS);
        for execution in exchange.executions(&venue_id).await.expect("executions") {
            if delivered.insert(execution.exec_id.clone()) {
                let report = ExchangeReport::Execution {
                    client_order_id: id.clone(),
                    execution,
                };
                // Settlement fails: the report is taken, its settlement left to recovery.
                let _ = orders.apply_report(&report).await;
            }
        }
        if (clock.now_ms() - failing_since).is_multiple_of(MINUTE_MS) {
            orders.reconcile(&budget).await;
            let order = orders.get(&account, &id).await.expect("order");
            if order.recovery.flags.contains(&FlagReason::Stuck) {
                flagged_at = Some(clock.now_ms());
            }
        }
    }
    let order = orders.get(&account, &id).await.expect("order");
    let flagged_at = flagged_at.unwrap_or_else(|| {
        panic!(
            "not flagged {} min after settlements began to fail: {:?}",
            (until - failing_since) / MINUTE_MS,
            order.recovery
        )
    });
    // Flagged at the first run past the bound, give or take recovery's
    // backoff between two looks (retry_max_ms) and one run's period.
    let late_ms = flagged_at - failing_since;
    assert!(
        delivered.len() as u64 >= late_ms / SECOND_MS - 5,
        "fills kept arriving until the flag: {} delivered in {} s",
        delivered.len(),
        late_ms / SECOND_MS
    );
    let bound_ms = flag_after_ms + OrderSettings::default().recovery.retry_max_ms + MINUTE_MS;
    assert!(
        late_ms <= bound_ms,
        "flagged {} s after the condition arose; bound {} s",
        late_ms / 1_000,
        bound_ms / 1_000
    );
    assert!(
        late_ms > flag_after_ms,
        "not flagged before its bound ({} s)",
        late_ms / 1_000
    );

    // Once settlements work again, recovery settles every delivered fill
    // (hundreds queued) by its next look (at most its longest backoff away)
    // and a few runs more, though no new report arrives.
    down.store(false, Ordering::SeqCst);
    let runs = OrderSettings::default().recovery.retry_max_ms / MINUTE_MS + 10;
    for _ in 0..runs {
        clock.advance_ms(MINUTE_MS);
        orders.reconcile(&budget).await;
    }
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let (_, page) = orders
            .executions(&account, &id, after.as_ref(), 500)
            .await
            .expect("executions");
        records.extend(page.fills);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(
        records.len() >= delivered.len(),
        "every delivered fill recorded"
    );
    assert!(
        records.iter().all(|f| f.is_settled()),
        "all settled: {} of {} not, order {:?}",
        records.iter().filter(|f| !f.is_settled()).count(),
        records.len(),
        orders.get(&account, &id).await.expect("order").recovery
    );
}
