use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::order::{Order, OrderId};
use domain::{AccountId, IdempotencyKey};

use crate::order_store::{
    Claim, IdempotencyRecord, Inserted, OrderPage, OrderStore, Saved, StoreError, Versioned,
};

#[derive(Debug, Default)]
struct Tables {
    keys: HashMap<(AccountId, IdempotencyKey), IdempotencyRecord>,
    orders: BTreeMap<OrderId, Versioned<Order>>,
}

/// The trading table in a mutex: each method is atomic, as one conditional
/// write is. Clones share the same table.
#[derive(Debug, Clone, Default)]
pub struct MemoryOrderStore(Arc<Mutex<Tables>>);

impl MemoryOrderStore {
    fn lock(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.0
            .lock()
            .map_err(|_| StoreError::Unavailable("order table lock poisoned".into()))
    }

    /// Every order, for test oracles.
    pub fn orders(&self) -> Vec<Order> {
        self.lock()
            .map(|t| t.orders.values().map(|v| v.value.clone()).collect())
            .unwrap_or_default()
    }
}

impl OrderStore for MemoryOrderStore {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        let mut tables = self.lock()?;
        let slot = (record.account.clone(), record.key.clone());
        match tables.keys.get(&slot) {
            Some(existing) if existing.expires_at_ms > now_ms => Ok(Claim::Taken(existing.clone())),
            _ => {
                tables.keys.insert(slot, record.clone());
                Ok(Claim::Claimed)
            }
        }
    }

    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        let mut tables = self.lock()?;
        if let Some(existing) = tables.orders.get(&order.id) {
            return Ok(Inserted::Exists(existing.clone()));
        }
        let stored = Versioned {
            value: order.clone(),
            version: 1,
        };
        tables.orders.insert(order.id.clone(), stored.clone());
        Ok(Inserted::New(stored))
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        Ok(self.lock()?.orders.get(id).cloned())
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let mut tables = self.lock()?;
        match tables.orders.get_mut(&order.id) {
            Some(stored) if stored.version == expected_version => {
                *stored = Versioned {
                    value: order.clone(),
                    version: expected_version + 1,
                };
                Ok(Saved::Saved {
                    version: expected_version + 1,
                })
            }
            _ => Ok(Saved::Conflict),
        }
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let tables = self.lock()?;
        // Order ids are time-ordered (UUIDv7): descending id is newest first.
        let mut matching = tables
            .orders
            .values()
            .rev()
            .map(|v| &v.value)
            .filter(|o| &o.account == account && after.is_none_or(|cursor| &o.id < cursor));
        let orders: Vec<Order> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    async fn due_orders(
        &self,
        shard: u32,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let tables = self.lock()?;
        let mut due: Vec<(u64, OrderId)> = tables
            .orders
            .values()
            .map(|v| &v.value)
            .filter(|o| {
                !o.is_closed()
                    && o.open_index_shard() == shard
                    && o.recovery.next_attempt_at_ms <= now_ms
            })
            .map(|o| (o.recovery.next_attempt_at_ms, o.id.clone()))
            .collect();
        due.sort();
        Ok(due.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}
