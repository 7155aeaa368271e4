//! `GET /orders/{id}` and `GET /orders`: an account only ever sees its own orders.

use domain::order::{Order, OrderId};
use domain::AccountId;

use super::{OrderError, Orders};
use crate::clock::Clock;
use crate::order_store::{OrderPage, OrderStore};

/// Most orders one page lists.
pub const MAX_PAGE_SIZE: usize = 100;

impl<S: OrderStore, B, E, C: Clock> Orders<S, B, E, C> {
    /// The account's order; another account's order is "not found", so ids cannot be probed.
    pub async fn get(&self, account: &AccountId, id: &OrderId) -> Result<Order, OrderError> {
        match self.store.load(id).await? {
            Some(stored) if &stored.value.account == account => Ok(stored.value),
            _ => Err(OrderError::NotFound),
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
}
