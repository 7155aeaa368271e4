//! The ports as one invocation sees them: the in-memory adapters, the
//! Balances service and the exchange engine behind the seeded fault plan.
//! Each records what it touched, for the oracle's per-step checks. Two
//! deliberate bugs that have no hook in the platform's code are wrapper
//! behaviour here (see [`crate::mutants`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use app::balances::{Balances, BalancesCallError};
use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use app::{Applied, LedgerStore};
use domain::order::{ExecId, Execution, FillRecord, FlagReason, Order, OrderId, VenueRules};
use domain::{
    AccountId, Asset, Balance, Failure, IdempotencyKey, Operation, OperationRecord, Outcome, Price,
    Side, Symbol,
};

use crate::faults::{Call, Fault, Invocation};
use crate::mutants::Mutant;
use crate::network::Held;
use crate::sim_exchange::EngineExchange;
use crate::world::SimBalancesService;

fn unavailable(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

pub struct SimStore {
    pub inner: MemoryOrderStore,
    pub invocation: Arc<Invocation>,
}

impl SimStore {
    fn touch(&self, id: &OrderId) {
        self.invocation.shared().touch(id);
    }

    async fn call<T>(
        &self,
        call: Call,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.invocation
            .call(call, work, unavailable, unavailable)
            .await
    }

    /// What a reconciler's write shows the oracle: progress (a drive's
    /// write: the order changed, its recovery record did not; the write
    /// that ends a look changes that record, and may carry what loading
    /// the order tidied), or a new `Stuck` flag with the last progress
    /// recovery had made on the order by then.
    fn observe_recovery(&self, before: &Order, after: &Order) {
        let shared = self.invocation.shared();
        let now = shared.now_ms();
        let mut seen = shared.seen();
        if before.recovery == after.recovery {
            if before != after {
                seen.recovered_at.insert(after.id.clone(), now);
            }
        } else if after.recovery.flags.contains(&FlagReason::Stuck)
            && !before.recovery.flags.contains(&FlagReason::Stuck)
        {
            let progress = seen.recovered_at.get(&after.id).copied();
            seen.stuck_flagged.insert(after.id.clone(), (now, progress));
        }
    }
}

impl OrderStore for SimStore {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.call(Call::ClaimKey, self.inner.claim_key(record, now_ms))
            .await
    }

    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        self.touch(&order.id);
        self.call(Call::Insert, self.inner.insert(order)).await
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        self.call(Call::Load, self.inner.load(id)).await
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        self.touch(&order.id);
        let reconciler = self.invocation.name.starts_with("reconciler");
        let before = if reconciler {
            self.inner.load(&order.id).await.ok().flatten()
        } else {
            None
        };
        let saved = self
            .call(Call::Save, self.inner.save(order, expected_version))
            .await?;
        if let (Some(before), Saved::Saved { .. }) = (before, &saved) {
            self.observe_recovery(&before.value, order);
        }
        Ok(saved)
    }

    async fn fill(&self, id: &OrderId, exec_id: &ExecId) -> Result<Option<FillRecord>, StoreError> {
        let found = self.call(Call::Fill, self.inner.fill(id, exec_id)).await?;
        if self.invocation.shared().mutant == Some(Mutant::FillsNotDeduplicated) {
            // The bug: the record of an execution is not looked at.
            return Ok(None);
        }
        Ok(found)
    }

    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        self.touch(id);
        self.call(
            Call::PutFill,
            self.inner.put_fill(id, record, remove_waiting),
        )
        .await
    }

    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        self.call(Call::NextWaiting, self.inner.next_waiting(id))
            .await
    }

    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        self.call(Call::Fills, self.inner.fills(id, after, limit))
            .await
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        self.call(
            Call::ListForAccount,
            self.inner.list_for_account(account, after, limit),
        )
        .await
    }

    async fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.call(
            Call::DueOrders,
            self.inner.due_orders(shard, after, until_ms, limit),
        )
        .await
    }

    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        self.call(Call::Cursor, self.inner.cursor(name)).await
    }

    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        self.call(
            Call::SaveCursor,
            self.inner.save_cursor(name, value, expected_version),
        )
        .await
    }
}

pub struct SimBalances {
    pub inner: Arc<SimBalancesService>,
    /// The service's ledger, for the deliberate bug that refuses a settlement.
    pub ledger: MemoryLedgerStore,
    pub invocation: Arc<Invocation>,
}

/// The order a Balances key belongs to (`<order id>:<step>`).
pub fn order_of_key(key: &IdempotencyKey) -> Option<OrderId> {
    key.as_str()
        .get(..36)
        .and_then(|id| OrderId::parse(id).ok())
}

impl SimBalances {
    /// The deliberate bug "refuse beyond the reservation": a settlement
    /// that costs more than the order's reservation covers is refused (and
    /// the refusal stored, as the service stores every outcome).
    async fn refuse_beyond_reservation(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Option<OperationRecord> {
        let Operation::Settle {
            side,
            symbol,
            from_reserved_units,
            ..
        } = operation
        else {
            return None;
        };
        let cost = operation.cost_units().ok()?;
        if cost <= *from_reserved_units {
            return None;
        }
        let paying = match side {
            Side::Buy => Asset::Cash,
            Side::Sell => Asset::Shares(symbol.clone()),
        };
        let record = OperationRecord {
            account: account.clone(),
            key: key.clone(),
            operation: operation.clone(),
            fingerprint: operation.fingerprint(account),
            outcome: Outcome::Failed(Failure::InsufficientFunds { asset: paying }),
            recorded_at_ms: self.invocation.shared().now_ms(),
        };
        match self.ledger.record_refusal(&record).await {
            Ok(Applied::AlreadyExists(existing)) => Some(existing),
            _ => Some(record),
        }
    }
}

impl Balances for SimBalances {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let shared = self.invocation.shared();
        if let Some(id) = order_of_key(key) {
            shared.touch(&id);
        }
        shared.seen().keys.insert((account.clone(), key.clone()));
        let call = match operation {
            Operation::Reserve { .. } => Call::Reserve,
            Operation::Release { .. } => Call::Release,
            Operation::Settle { .. } | Operation::Deposit { .. } => Call::Settle,
        };
        let refuse = shared.mutant == Some(Mutant::RefuseBeyondReservation);
        let work = async {
            if refuse {
                if let Some(refusal) = self
                    .refuse_beyond_reservation(account, key, operation)
                    .await
                {
                    return Ok(refusal);
                }
            }
            Balances::execute(&*self.inner, account, key, operation).await
        };
        self.invocation
            .call(
                call,
                work,
                BalancesCallError::Unavailable,
                BalancesCallError::OutcomeUnknown,
            )
            .await
    }

    /// Not called by the order flow (lookups are by `execute` repeats);
    /// passed through without faults.
    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        Balances::lookup(&*self.inner, account, key).await
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        Balances::balances(&*self.inner, account).await
    }
}

pub struct SimExchange {
    pub inner: Arc<EngineExchange>,
    pub invocation: Arc<Invocation>,
}

impl SimExchange {
    async fn call<T>(
        &self,
        call: Call,
        work: impl std::future::Future<Output = Result<T, ExchangeError>>,
    ) -> Result<T, ExchangeError> {
        self.invocation
            .call(
                call,
                work,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }

    /// A request that may be held in the network: the caller times out,
    /// the request lands later.
    async fn send<T>(
        &self,
        call: Call,
        held: Held,
        work: impl std::future::Future<Output = Result<T, ExchangeError>>,
    ) -> Result<T, ExchangeError> {
        let fault = match self.invocation.enter(call).await {
            Ok(fault) => fault,
            Err(gone) => return Err(ExchangeError::Unavailable(gone)),
        };
        if let Fault::InFlight { delay_ms } = fault {
            self.invocation.shared().hold(delay_ms, held);
            return Err(ExchangeError::OutcomeUnknown(format!(
                "{} timed out (the request is still on its way)",
                call.name()
            )));
        }
        self.invocation
            .perform(
                call,
                fault,
                work,
                ExchangeError::Unavailable,
                ExchangeError::OutcomeUnknown,
            )
            .await
    }
}

impl Exchange for SimExchange {
    fn rules(&self) -> VenueRules {
        self.inner.rules()
    }

    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let shared = self.invocation.shared();
        let id = &request.client_order_id;
        shared.touch(id);
        let event = shared.event();
        shared.seen().first_send.entry(id.clone()).or_insert(event);
        self.send(
            Call::Place,
            Held::Place(request.clone()),
            self.inner.place(request),
        )
        .await
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        self.call(Call::Order, self.inner.order(client_order_id))
            .await
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        self.call(Call::Executions, self.inner.executions(exchange_order_id))
            .await
    }

    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        self.invocation.shared().touch(client_order_id);
        let held = Held::Cancel {
            client_order_id: client_order_id.clone(),
            venue_order_id: exchange_order_id.map(str::to_owned),
        };
        self.send(
            Call::Cancel,
            held,
            self.inner.cancel(client_order_id, exchange_order_id),
        )
        .await
    }

    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        self.call(Call::ReferencePrice, self.inner.reference_price(symbol))
            .await
    }

    /// The venue's clock as measured: off by the scenario's error (within
    /// the margin the policy allows for).
    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        let measured = self.invocation.shared().measured_clock;
        self.call(Call::Clock, async move { Ok(measured) }).await
    }

    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        self.call(Call::DayOrders, self.inner.day_orders(trade_date))
            .await
    }
}
