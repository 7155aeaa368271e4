//! The ports as one invocation sees them: the in-memory adapters and the
//! exchange engine behind the seeded fault plan, plus the test-side mutants
//! (deliberate bugs expressed as wrapper behaviour).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use app::balances::{Balances, BalancesCallError};
use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use app::{BalancesService, ManualClock};
use domain::order::{ExecId, Execution, FillRecord, Order, OrderId, VenueRules};
use domain::{
    AccountId, Asset, Balance, IdempotencyKey, Operation, OperationRecord, Price, Symbol,
};

use super::faults::Invocation;
use super::invariants::only_grew;
use super::mutants::Mutant;
use crate::sim_exchange::EngineExchange;

pub type SimBalancesService = BalancesService<MemoryLedgerStore, ManualClock>;

fn store_error(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

pub struct SimStore {
    pub inner: MemoryOrderStore,
    pub invocation: Arc<Invocation>,
    pub mutant: Option<Mutant>,
    /// Where a write that would lose a record is reported (checked per step).
    pub findings: Findings,
}

/// Violations seen inside a step, shared by every invocation of a run.
pub type Findings = Arc<Mutex<Vec<String>>>;

impl SimStore {
    fn last_writer_wins(&self) -> bool {
        self.mutant == Some(Mutant::LastWriterWins)
    }
}

impl OrderStore for SimStore {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        let call = self.inner.claim_key(record, now_ms);
        self.invocation
            .call("store.claim_key", true, call, store_error, store_error)
            .await
    }

    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        let call = self.inner.insert(order);
        self.invocation
            .call("store.insert", true, call, store_error, store_error)
            .await
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        let call = self.inner.load(id);
        self.invocation
            .call("store.load", false, call, store_error, store_error)
            .await
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        // Runs when the write lands (after any yield), so it sees what is
        // stored at that moment.
        let write = async {
            let current = self.inner.load(&order.id).await?;
            let mut expected = expected_version;
            if self.last_writer_wins() {
                // The mutant's write is unconditional: it overwrites whatever is there.
                expected = current.as_ref().map_or(expected, |c| c.version);
            }
            // A write that lands must keep every record already stored: a
            // step outcome, a fill, a close is never lost. Checked per write,
            // as a lost record could be re-made within the same step.
            if let Some(current) = current.filter(|c| c.version == expected) {
                let mut lost = Vec::new();
                only_grew(&current.value, order, &mut lost);
                let lost = lost
                    .into_iter()
                    .map(|l| format!("{}: {l}", self.invocation.name));
                self.findings
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(lost);
            }
            self.inner.save(order, expected).await
        };
        self.invocation
            .call("store.save", true, write, store_error, store_error)
            .await
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let call = self.inner.list_for_account(account, after, limit);
        self.invocation
            .call(
                "store.list_for_account",
                false,
                call,
                store_error,
                store_error,
            )
            .await
    }

    async fn fill(&self, id: &OrderId, exec_id: &ExecId) -> Result<Option<FillRecord>, StoreError> {
        let call = self.inner.fill(id, exec_id);
        self.invocation
            .call("store.fill", false, call, store_error, store_error)
            .await
    }

    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        let call = self.inner.put_fill(id, record, remove_waiting);
        self.invocation
            .call("store.put_fill", true, call, store_error, store_error)
            .await
    }

    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        let call = self.inner.next_waiting(id);
        self.invocation
            .call("store.next_waiting", false, call, store_error, store_error)
            .await
    }

    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        let call = self.inner.fills(id, after, limit);
        self.invocation
            .call("store.fills", false, call, store_error, store_error)
            .await
    }

    async fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let call = self.inner.due_orders(shard, after, until_ms, limit);
        self.invocation
            .call("store.due_orders", false, call, store_error, store_error)
            .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        let call = self.inner.cursor(name);
        self.invocation
            .call("store.cursor", false, call, store_error, store_error)
            .await
    }

    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        let call = self.inner.save_cursor(name, value, expected_version);
        self.invocation
            .call("store.save_cursor", true, call, store_error, store_error)
            .await
    }
}

pub struct SimBalances {
    pub inner: Arc<SimBalancesService>,
    pub invocation: Arc<Invocation>,
    pub mutant: Option<Mutant>,
    /// Counts releases, so the mutant can use a fresh key for each.
    pub releases: Arc<AtomicU64>,
}

impl Balances for SimBalances {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let mut key = key.clone();
        let fresh_keys = self.mutant == Some(Mutant::ReleaseWithFreshKey);
        if fresh_keys && matches!(operation, Operation::Release { .. }) {
            // The mutant: every attempt of a release is a new request.
            let n = self.releases.fetch_add(1, Ordering::SeqCst);
            key = IdempotencyKey::parse(&format!("{}:{n}", key.as_str())).expect("valid key");
        }
        let point = format!("balances.{}", operation.kind());
        let call = Balances::execute(&*self.inner, account, &key, operation);
        self.invocation
            .call(
                &point,
                true,
                call,
                BalancesCallError::Unavailable,
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        let call = Balances::lookup(&*self.inner, account, key);
        self.invocation
            .call(
                "balances.lookup",
                false,
                call,
                BalancesCallError::Unavailable,
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        let call = Balances::balances(&*self.inner, account);
        self.invocation
            .call(
                "balances.balances",
                false,
                call,
                BalancesCallError::Unavailable,
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }
}

pub struct SimExchange {
    pub inner: Arc<EngineExchange>,
    pub invocation: Arc<Invocation>,
}

impl Exchange for SimExchange {
    fn rules(&self) -> VenueRules {
        self.inner.rules()
    }

    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let call = self.inner.place(request);
        self.invocation
            .call(
                "exchange.place",
                true,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        let call = self.inner.order(client_order_id);
        self.invocation
            .call(
                "exchange.order",
                false,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        let call = self.inner.executions(exchange_order_id);
        self.invocation
            .call(
                "exchange.executions",
                false,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        let call = self.inner.cancel(client_order_id, exchange_order_id);
        self.invocation
            .call(
                "exchange.cancel",
                true,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let call = self.inner.reference_price(symbol);
        self.invocation
            .call(
                "exchange.reference_price",
                false,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        let call = self.inner.clock();
        self.invocation
            .call(
                "exchange.clock",
                false,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        let call = self.inner.day_orders(trade_date);
        self.invocation
            .call(
                "exchange.day_orders",
                false,
                call,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
}
