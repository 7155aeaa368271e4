//! Storage port of the Balances service. Each method is one atomic step in
//! the store (one DynamoDB transaction or conditional write).

use std::collections::BTreeMap;
use std::future::Future;

use domain::{AccountId, Asset, AssetChange, Balance, IdempotencyKey, OperationRecord};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer or refused for now (throttling, network,
    /// transaction conflicts past the retry budget). The write may or may not
    /// have happened; repeating it under the same key is safe.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item could not be read back into domain values.
    #[error("stored item is not valid: {0}")]
    Corrupt(String),
}

/// What an attempt to record an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The record was stored (and, for `apply`, every change made).
    Stored,
    /// A record already exists under this account and key; nothing was written.
    AlreadyExists(OperationRecord),
    /// A change would take this asset below zero; nothing was written.
    Insufficient(Asset),
}

pub trait LedgerStore: Send + Sync + 'static {
    /// In one atomic step, unless a record exists under the record's account
    /// and key: make every change (none may leave a balance below zero) and
    /// store the record.
    fn apply(
        &self,
        record: &OperationRecord,
        changes: &[AssetChange],
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Store a record without touching any balance (a refused operation),
    /// unless a record already exists under its key.
    fn record_refusal(
        &self,
        record: &OperationRecord,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    fn operation(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<OperationRecord>, StoreError>> + Send;

    /// Every balance of the account; empty when the account holds nothing and
    /// never did (an unknown account).
    fn balances(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<BTreeMap<Asset, Balance>, StoreError>> + Send;
}
