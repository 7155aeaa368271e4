//! `DELETE /orders/{id}`: the cancel is a durable intent. Once recorded, a
//! placement not yet started never starts (the write that starts one is
//! conditional on there being no cancel), and a placement in flight or done
//! gets a `cancel` step that whichever driver meets the order first sends,
//! again with the same client order id until the exchange reports a final
//! state. The caller never has to repeat it.

use domain::order::{Cancel, Driver, Order, OrderId, Step};
use domain::AccountId;

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::OrderStore;

/// The order after a cancel request, and whether this request recorded the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub order: Order,
    pub first: bool,
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    /// Idempotent: cancelling a closed or already cancelled order answers it
    /// as it stands.
    pub async fn cancel(&self, account: &AccountId, id: &OrderId) -> Result<Cancelled, OrderError> {
        let current = self.load(id).await?;
        if &current.value.account != account {
            return Err(OrderError::NotFound);
        }
        if current.value.is_closed() {
            return Ok(Cancelled {
                order: current.value,
                first: false,
            });
        }
        let now = self.now_ms();
        let mut first = false;
        // The intent and, where there is something to send it to, the
        // cancel step before its call: one write.
        let current = self
            .update(current, |o| {
                first = o.cancel.is_none();
                if first {
                    o.cancel = Some(Cancel {
                        requested_at_ms: now,
                        step: o.place.as_ref().map(|_| Step::processing(now)),
                    });
                }
                first
            })
            .await?;
        let current = self.drive_from(current, Driver::Handler).await?;
        let current = self.leave_signal(current).await?;
        Ok(Cancelled {
            order: current.value,
            first,
        })
    }
}
