//! Crash points for any port: wrappers that count the calls that write or go
//! to another system, and at the Nth one stop the invocation there, either
//! before the call takes effect or right after (its answer lost). Run with
//! N = 1, 2, 3, ... until an invocation completes: every crash point is hit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use app::balances::{Balances, BalancesCallError};
use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use domain::order::{ExecId, Execution, FillRecord, Order, OrderId, VenueRules};
use domain::{
    AccountId, Asset, Balance, IdempotencyKey, Operation, OperationRecord, Price, Symbol,
};

#[derive(Default)]
struct Plan {
    calls: AtomicU64,
    crash_at: AtomicU64,
    after_effect: AtomicBool,
    crashed_at: Mutex<Option<String>>,
}

/// Shared by every wrapper of one invocation.
#[derive(Clone, Default)]
pub struct CrashPlan(Arc<Plan>);

impl CrashPlan {
    /// Crash at the `n`th counted call (1-based); `after_effect`: let it take effect first.
    pub fn at(n: u64, after_effect: bool) -> CrashPlan {
        let plan = CrashPlan::default();
        plan.0.crash_at.store(n, Ordering::SeqCst);
        plan.0.after_effect.store(after_effect, Ordering::SeqCst);
        plan
    }

    /// Where it crashed, if it did.
    pub fn crashed_at(&self) -> Option<String> {
        self.0.crashed_at.lock().ok().and_then(|c| c.clone())
    }

    /// Counted calls so far.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(Ordering::SeqCst)
    }

    /// `Some(point)` if this call is the one to crash, and whether before or after it.
    fn arm(&self, point: &str) -> Option<bool> {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let crash_at = self.0.crash_at.load(Ordering::SeqCst);
        let crashed = self.crashed_at().is_some();
        if crashed || n >= crash_at {
            // After the crash the invocation is gone: nothing more happens.
            if !crashed {
                let when = if self.0.after_effect.load(Ordering::SeqCst) {
                    "after"
                } else {
                    "before"
                };
                if let Ok(mut slot) = self.0.crashed_at.lock() {
                    *slot = Some(format!("{when} {point}"));
                }
                return Some(when == "after");
            }
            return Some(false);
        }
        None
    }

    async fn guard<T, E>(
        &self,
        point: &str,
        call: impl std::future::Future<Output = Result<T, E>>,
        crash: impl Fn(String) -> E,
    ) -> Result<T, E> {
        match self.arm(point) {
            None => call.await,
            Some(true) => {
                let _ = call.await; // took effect; the answer is lost with the invocation
                Err(crash(format!("crashed after {point}")))
            }
            Some(false) => Err(crash(format!("crashed before {point}"))),
        }
    }
}

/// Tallies which crash points a run of plans hit.
#[derive(Default)]
pub struct CrashPoints(pub BTreeMap<String, u32>);

impl CrashPoints {
    pub fn record(&mut self, plan: &CrashPlan) {
        if let Some(point) = plan.crashed_at() {
            *self.0.entry(point).or_default() += 1;
        }
    }
}

pub struct Crashing<T> {
    pub inner: T,
    pub plan: CrashPlan,
}

fn store_crash(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

impl<S: OrderStore> OrderStore for Crashing<S> {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.plan
            .guard(
                "store.claim_key",
                self.inner.claim_key(record, now_ms),
                store_crash,
            )
            .await
    }
    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        self.plan
            .guard("store.insert", self.inner.insert(order), store_crash)
            .await
    }
    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        self.inner.load(id).await
    }
    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        self.plan
            .guard(
                "store.save",
                self.inner.save(order, expected_version),
                store_crash,
            )
            .await
    }
    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        self.inner.list_for_account(account, after, limit).await
    }
    async fn fill(&self, id: &OrderId, exec_id: &ExecId) -> Result<Option<FillRecord>, StoreError> {
        self.inner.fill(id, exec_id).await
    }
    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        self.plan
            .guard(
                "store.put_fill",
                self.inner.put_fill(id, record, remove_waiting),
                store_crash,
            )
            .await
    }
    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        self.inner.next_waiting(id).await
    }
    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        self.inner.fills(id, after, limit).await
    }
    async fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.inner.due_orders(shard, after, until_ms, limit).await
    }
    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        self.inner.cursor(name).await
    }
    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        self.plan
            .guard(
                "store.save_cursor",
                self.inner.save_cursor(name, value, expected_version),
                store_crash,
            )
            .await
    }
}

impl<B: Balances> Balances for Crashing<B> {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let point = format!("balances.{}", operation.kind());
        self.plan
            .guard(
                &point,
                self.inner.execute(account, key, operation),
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }
    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        self.plan
            .guard(
                "balances.lookup",
                self.inner.lookup(account, key),
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }
    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        self.inner.balances(account).await
    }
}

impl<E: Exchange> Exchange for Crashing<E> {
    fn rules(&self) -> VenueRules {
        self.inner.rules()
    }
    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        self.plan
            .guard(
                "exchange.place",
                self.inner.place(request),
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        self.plan
            .guard(
                "exchange.order",
                self.inner.order(client_order_id),
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        self.plan
            .guard(
                "exchange.executions",
                self.inner.executions(exchange_order_id),
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        self.plan
            .guard(
                "exchange.cancel",
                self.inner.cancel(client_order_id, exchange_order_id),
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        self.inner.reference_price(symbol).await
    }
    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        self.inner.clock().await
    }
    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        self.plan
            .guard(
                "exchange.day_orders",
                self.inner.day_orders(trade_date),
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
}
