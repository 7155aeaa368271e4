//! A store wrapper that runs a test's code around one chosen write, to force
//! an interleaving two handlers could produce (a cancel landing between a
//! placement's read and its write, say) on any `OrderStore` adapter.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use domain::order::{ExecId, FillRecord, Order, OrderId};
use domain::AccountId;

pub type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Chooses the write to interleave with (by the order about to be saved)
/// and returns what to run there.
pub type Hook = Box<dyn FnMut(&Order) -> Option<HookFuture> + Send>;

/// When the hook's code runs relative to the chosen save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// After the caller read the order, before its save reaches the store:
    /// the save then finds another writer was first.
    BeforeSave,
    /// Right after the save took effect, before the caller goes on.
    AfterSave,
}

/// `inner` with `hook` run once, at the first save it chooses.
#[derive(Clone)]
pub struct Hooked<S> {
    pub inner: S,
    hook: Arc<Mutex<Option<Hook>>>,
    when: When,
}

impl<S> Hooked<S> {
    pub fn new(inner: S, when: When, hook: Hook) -> Self {
        Hooked {
            inner,
            hook: Arc::new(Mutex::new(Some(hook))),
            when,
        }
    }

    /// Whether the hook has run.
    pub fn fired(&self) -> bool {
        self.hook.lock().map(|h| h.is_none()).unwrap_or(true)
    }

    fn take_run(&self, order: &Order) -> Option<HookFuture> {
        let mut slot = self.hook.lock().ok()?;
        let run = slot.as_mut()?(order)?;
        *slot = None;
        Some(run)
    }
}

impl<S: OrderStore> OrderStore for Hooked<S> {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.inner.claim_key(record, now_ms).await
    }
    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        self.inner.insert(order).await
    }
    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        self.inner.load(id).await
    }
    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let run = self.take_run(order);
        if self.when == When::BeforeSave {
            if let Some(run) = run {
                run.await;
            }
            return self.inner.save(order, expected_version).await;
        }
        let saved = self.inner.save(order, expected_version).await;
        if let Some(run) = run {
            run.await;
        }
        saved
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
        self.inner.put_fill(id, record, remove_waiting).await
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
    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        self.inner.list_for_account(account, after, limit).await
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
        self.inner.save_cursor(name, value, expected_version).await
    }
}
