use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use domain::order::{ExecId, FillRecord, FillState, Order, OrderId};
use domain::{AccountId, IdempotencyKey};

use crate::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};

#[derive(Debug, Default)]
struct Tables {
    keys: HashMap<(AccountId, IdempotencyKey), IdempotencyRecord>,
    orders: BTreeMap<OrderId, Versioned<Order>>,
    /// Settled execution records, per order, by `exec_id`.
    fills: HashMap<OrderId, BTreeMap<ExecId, FillRecord>>,
    /// Executions waiting for the slot, per order, in arrival order.
    waiting: HashMap<OrderId, BTreeMap<(u64, ExecId), FillRecord>>,
    /// The open-order index: (shard, due, id) of each open order.
    open: BTreeSet<(u32, DueEntry)>,
    cursors: HashMap<String, Versioned<String>>,
}

impl Tables {
    fn index(&mut self, order: &Order, previous: Option<&Order>) {
        if let Some(previous) = previous {
            self.open.remove(&(
                previous.open_index_shard(),
                DueEntry {
                    due_at_ms: previous.recovery.due_at_ms,
                    id: previous.id.clone(),
                },
            ));
        }
        if !order.is_closed() {
            self.open.insert((
                order.open_index_shard(),
                DueEntry {
                    due_at_ms: order.recovery.due_at_ms,
                    id: order.id.clone(),
                },
            ));
        }
    }
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

    /// Open orders, for test oracles (cheaper than [`Self::orders`]).
    pub fn open_count(&self) -> usize {
        self.lock().map(|t| t.open.len()).unwrap_or(0)
    }

    /// Every execution record of an order (settled and waiting), for test oracles.
    pub fn all_fills(&self, id: &OrderId) -> Vec<FillRecord> {
        self.lock()
            .map(|t| {
                let settled = t.fills.get(id).into_iter().flat_map(|m| m.values());
                let waiting = t.waiting.get(id).into_iter().flat_map(|m| m.values());
                settled.chain(waiting).cloned().collect()
            })
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
        tables.index(order, None);
        Ok(Inserted::New(stored))
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        Ok(self.lock()?.orders.get(id).cloned())
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let mut tables = self.lock()?;
        let previous = match tables.orders.get(&order.id) {
            Some(stored) if stored.version == expected_version => stored.value.clone(),
            _ => return Ok(Saved::Conflict),
        };
        tables.orders.insert(
            order.id.clone(),
            Versioned {
                value: order.clone(),
                version: expected_version + 1,
            },
        );
        tables.index(order, Some(&previous));
        Ok(Saved::Saved {
            version: expected_version + 1,
        })
    }

    async fn fill(&self, id: &OrderId, exec_id: &ExecId) -> Result<Option<FillRecord>, StoreError> {
        let tables = self.lock()?;
        if let Some(settled) = tables.fills.get(id).and_then(|m| m.get(exec_id)) {
            return Ok(Some(settled.clone()));
        }
        Ok(tables
            .waiting
            .get(id)
            .and_then(|m| m.values().find(|r| &r.exec_id == exec_id))
            .cloned())
    }

    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        let mut tables = self.lock()?;
        let waiting_key = tables.waiting.get(id).and_then(|m| {
            m.iter()
                .find(|(_, r)| r.exec_id == record.exec_id)
                .map(|(k, r)| (k.clone(), r.clone()))
        });
        let settled = tables
            .fills
            .get(id)
            .and_then(|m| m.get(&record.exec_id))
            .cloned();
        match (record.state, waiting_key) {
            (FillState::Recorded, Some((_, existing))) => Ok(FillWritten::Exists(existing)),
            (FillState::Recorded, None) => {
                tables.waiting.entry(id.clone()).or_default().insert(
                    (record.received_at_ms, record.exec_id.clone()),
                    record.clone(),
                );
                Ok(FillWritten::Written)
            }
            (FillState::Settled { .. }, waiting) => {
                let written = match settled {
                    Some(existing) => FillWritten::Exists(existing),
                    None => {
                        tables
                            .fills
                            .entry(id.clone())
                            .or_default()
                            .insert(record.exec_id.clone(), record.clone());
                        FillWritten::Written
                    }
                };
                if let (true, Some((key, _))) = (remove_waiting, waiting) {
                    if let Some(m) = tables.waiting.get_mut(id) {
                        m.remove(&key);
                    }
                }
                Ok(written)
            }
        }
    }

    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        Ok(self
            .lock()?
            .waiting
            .get(id)
            .and_then(|m| m.values().next())
            .cloned())
    }

    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        let tables = self.lock()?;
        let mut all: BTreeMap<ExecId, FillRecord> =
            tables.fills.get(id).cloned().unwrap_or_default();
        for record in tables.waiting.get(id).into_iter().flat_map(|m| m.values()) {
            all.entry(record.exec_id.clone())
                .or_insert_with(|| record.clone());
        }
        let mut matching = all
            .into_values()
            .filter(|r| after.is_none_or(|cursor| &r.exec_id > cursor));
        let fills: Vec<FillRecord> = matching.by_ref().take(limit).collect();
        let next = if matching.next().is_some() {
            fills.last().map(|r| r.exec_id.clone())
        } else {
            None
        };
        Ok(FillPage { fills, next })
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
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let tables = self.lock()?;
        let start = match after {
            Some(entry) => std::ops::Bound::Excluded((shard, entry.clone())),
            None => std::ops::Bound::Included((
                shard,
                DueEntry {
                    due_at_ms: 0,
                    id: OrderId::parse("00000000-0000-0000-0000-000000000000")
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                },
            )),
        };
        Ok(tables
            .open
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(s, e)| *s == shard && e.due_at_ms <= until_ms)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        Ok(self.lock()?.cursors.get(name).cloned())
    }

    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        let mut tables = self.lock()?;
        let current = tables.cursors.get(name).map_or(0, |c| c.version);
        if current != expected_version {
            return Ok(Saved::Conflict);
        }
        tables.cursors.insert(
            name.to_owned(),
            Versioned {
                value: value.to_owned(),
                version: current + 1,
            },
        );
        Ok(Saved::Saved {
            version: current + 1,
        })
    }
}
