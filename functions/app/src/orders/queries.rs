//! `GET /orders/{id}`, `GET /orders`, `GET /orders/{id}/executions`: an
//! account only ever sees its own orders.

use domain::order::{ExecId, Order, OrderId};
use domain::AccountId;

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::{FillPage, OrderPage, OrderStore};

/// Most orders (or executions) one page lists.
pub const MAX_PAGE_SIZE: usize = 100;

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    /// The account's order; another account's order is "not found", so ids cannot be probed.
    pub async fn get(&self, account: &AccountId, id: &OrderId) -> Result<Order, OrderError> {
        match self.load(id).await {
            Ok(current) if &current.value.account == account => Ok(current.value),
            Ok(_) | Err(OrderError::NotFound) => Err(OrderError::NotFound),
            Err(other) => Err(other),
        }
    }

    pub async fn list(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, OrderError> {
        Ok(self
            .store
            .list_for_account(account, after, limit.clamp(1, MAX_PAGE_SIZE))
            .await?)
    }

    /// A page of the order's execution records, by `exec_id`.
    pub async fn executions(
        &self,
        account: &AccountId,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<(Order, FillPage), OrderError> {
        let order = self.get(account, id).await?;
        let page = self.all_executions(&order, after, limit).await?;
        Ok((order, page))
    }

    /// A page of the order's executions: their own records, and on the
    /// first page the one in the settling slot whose record is not written
    /// yet (still settling, or the last one of a closed order).
    pub async fn all_executions(
        &self,
        order: &Order,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, OrderError> {
        let mut page = self
            .store
            .fills(&order.id, after, limit.clamp(1, MAX_PAGE_SIZE))
            .await?;
        if let Some(slot) = order.settling.as_ref() {
            let listed = page.fills.iter().any(|r| r.exec_id == slot.exec_id);
            if after.is_none() && !listed && !slot.archived {
                let mut record = domain::order::FillRecord::settled(slot);
                if slot.settle.is_processing() {
                    record.state = domain::order::FillState::Recorded;
                }
                page.fills.insert(0, record);
            }
        }
        Ok(page)
    }
}
