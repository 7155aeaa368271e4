//! Storage port of the trading table. An order and all its step records are
//! one stored value with a version: every write is conditional on the
//! version it read, so concurrent handlers never overwrite each other's
//! records (the loser re-reads and re-derives).

use std::future::Future;

use domain::order::{Order, OrderId};
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

    fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> impl Future<Output = Result<OrderPage, StoreError>> + Send;

    /// Open orders of one shard of the open-order index whose next look is
    /// due at `now_ms`, oldest due first. Reads grow with open orders only.
    fn due_orders(
        &self,
        shard: u32,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OrderId>, StoreError>> + Send;
}
