//! Storage port of the trading table.
//!
//! An order is one record with a version ([`OrderStore::save`] is
//! conditional on it, so concurrent handlers never overwrite each other:
//! the loser re-reads and re-derives), plus one record per execution in the
//! order's partition, written once (the `exec_id` is where a duplicate
//! stops). Executions that wait for the settling slot have records of their
//! own kind, so the next one is found without reading the settled ones.

use std::future::Future;

use domain::order::{ExecId, FillRecord, Order, OrderId};
use domain::{AccountId, IdempotencyKey};

pub use crate::ledger_store::StoreError;

/// `(account, Idempotency-Key)` of a placement, pointing at its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub account: AccountId,
    pub key: IdempotencyKey,
    /// Digest of the request body, to tell a replay from a reuse.
    pub fingerprint: String,
    pub order_id: OrderId,
    /// After this the key may be used again (Unix ms); the order stays.
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Claimed,
    /// A live record holds the key.
    Taken(IdempotencyRecord),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New(Versioned<Order>),
    /// An order with this id exists already.
    Exists(Versioned<Order>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Saved {
        version: u64,
    },
    /// Someone else saved first: reload and derive again.
    Conflict,
}

/// A page of an account's orders, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass back to continue after the last order of this page.
    pub next: Option<OrderId>,
}

/// A page of an order's execution records, by `exec_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillPage {
    pub fills: Vec<FillRecord>,
    pub next: Option<ExecId>,
}

/// One entry of the open-order index: when the order is due, and which.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DueEntry {
    pub due_at_ms: u64,
    pub id: OrderId,
}

/// Where the written record of an execution went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillWritten {
    Written,
    /// A record of this `exec_id` exists already (as it is).
    Exists(FillRecord),
}

pub trait OrderStore: Send + Sync + 'static {
    /// Claims `(account, key)` unless a record that has not expired at
    /// `now_ms` holds it.
    fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    fn insert(&self, order: &Order) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    fn load(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<Versioned<Order>>, StoreError>> + Send;

    /// Replaces the order if it is still at `expected_version`.
    fn save(
        &self,
        order: &Order,
        expected_version: u64,
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;

    /// The record of one execution of the order, settled or waiting.
    fn fill(
        &self,
        id: &OrderId,
        exec_id: &ExecId,
    ) -> impl Future<Output = Result<Option<FillRecord>, StoreError>> + Send;

    /// Writes an execution's record (settled, or waiting for the slot)
    /// unless one of this state and `exec_id` exists. With
    /// `remove_waiting`, a settled record also removes the waiting record of
    /// the same execution (it came from the waiting list).
    fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> impl Future<Output = Result<FillWritten, StoreError>> + Send;

    /// The waiting execution that has waited longest, if any.
    fn next_waiting(
        &self,
        id: &OrderId,
    ) -> impl Future<Output = Result<Option<FillRecord>, StoreError>> + Send;

    /// A page of the order's execution records (settled and waiting), by `exec_id`.
    fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> impl Future<Output = Result<FillPage, StoreError>> + Send;

    fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> impl Future<Output = Result<OrderPage, StoreError>> + Send;

    /// Open orders of one shard of the open-order index with a due time in
    /// `(after, until_ms]`, ascending. Reads grow with the due orders only.
    fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueEntry>, StoreError>> + Send;

    /// A small named record of the reconciler's own progress (a cursor).
    fn cursor(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Versioned<String>>, StoreError>> + Send;

    /// Replaces the cursor if it is still at `expected_version` (0: absent).
    fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> impl Future<Output = Result<Saved, StoreError>> + Send;
}
