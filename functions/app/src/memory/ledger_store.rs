use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{AccountId, Asset, AssetChange, Balance, IdempotencyKey, OperationRecord};

use crate::ledger_store::{Applied, LedgerStore, StoreError};

#[derive(Debug, Default)]
struct Ledger {
    balances: BTreeMap<(AccountId, Asset), Balance>,
    operations: HashMap<(AccountId, IdempotencyKey), OperationRecord>,
}

/// The ledger in a mutex: each method is atomic, as one DynamoDB transaction
/// is. Clones share the same ledger.
#[derive(Debug, Clone, Default)]
pub struct MemoryLedgerStore(Arc<Mutex<Ledger>>);

impl MemoryLedgerStore {
    fn lock(&self) -> Result<MutexGuard<'_, Ledger>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Unavailable("ledger lock poisoned".into()))
    }

    /// Every operation record, for test oracles.
    pub fn operations(&self) -> Vec<OperationRecord> {
        self.lock()
            .map(|l| l.operations.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn operation_key(record: &OperationRecord) -> (AccountId, IdempotencyKey) {
    (record.account.clone(), record.key.clone())
}

impl LedgerStore for MemoryLedgerStore {
    async fn apply(
        &self,
        record: &OperationRecord,
        changes: &[AssetChange],
    ) -> Result<Applied, StoreError> {
        let mut ledger = self.lock()?;
        if let Some(existing) = ledger.operations.get(&operation_key(record)) {
            return Ok(Applied::AlreadyExists(existing.clone()));
        }
        // Compute every new balance first; write only if all are valid.
        let mut updated = Vec::with_capacity(changes.len());
        for change in changes {
            let slot = (record.account.clone(), change.asset.clone());
            let current = ledger.balances.get(&slot).copied().unwrap_or_default();
            match change.apply(current) {
                Ok(balance) => updated.push((slot, balance)),
                Err(_) => return Ok(Applied::Insufficient(change.asset.clone())),
            }
        }
        ledger.balances.extend(updated);
        ledger
            .operations
            .insert(operation_key(record), record.clone());
        Ok(Applied::Stored)
    }

    async fn record_refusal(&self, record: &OperationRecord) -> Result<Applied, StoreError> {
        let mut ledger = self.lock()?;
        if let Some(existing) = ledger.operations.get(&operation_key(record)) {
            return Ok(Applied::AlreadyExists(existing.clone()));
        }
        ledger
            .operations
            .insert(operation_key(record), record.clone());
        Ok(Applied::Stored)
    }

    async fn operation(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, StoreError> {
        Ok(self
            .lock()?
            .operations
            .get(&(account.clone(), key.clone()))
            .cloned())
    }

    async fn balances(&self, account: &AccountId) -> Result<BTreeMap<Asset, Balance>, StoreError> {
        let ledger = self.lock()?;
        Ok(ledger
            .balances
            .iter()
            .filter(|((owner, _), _)| owner == account)
            .map(|((_, asset), balance)| (asset.clone(), *balance))
            .collect())
    }
}
