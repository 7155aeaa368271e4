//! `DELETE /orders/{id}`: ask the exchange to cancel; the order then closes
//! through the normal path (its final status and fills arrive as for any order).

use domain::order::{Driver, Order, OrderId, StepFailure};
use domain::AccountId;

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::{CancelOutcome, Exchange};
use crate::order_store::OrderStore;

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    /// Idempotent: cancelling a closed or already cancelled order answers it
    /// as it stands. If the exchange's answer is lost the call fails (503),
    /// so the caller repeats it rather than trusting a cancel that may not have arrived.
    pub async fn cancel(&self, account: &AccountId, id: &OrderId) -> Result<Order, OrderError> {
        let order = self.get(account, id).await?;
        if order.is_closed() {
            return Ok(order);
        }
        let now = self.now_ms();
        let order = self
            .update(id, |o| {
                let first = o.cancel_requested_at_ms.is_none();
                if first {
                    o.cancel_requested_at_ms = Some(now);
                }
                first
            })
            .await?;
        if order.place.is_some() {
            match self.exchange.cancel(id).await {
                // The id never reached the exchange and now never can.
                Ok(CancelOutcome::Tombstoned) => {
                    let detail = "cancelled before it reached the exchange; id tombstoned".into();
                    self.fail_placement(id, StepFailure::NotPlaced { detail })
                        .await?;
                }
                Ok(CancelOutcome::Known(_)) => {}
                // Nothing re-sends a cancel by itself: the caller must learn it
                // may not have arrived, and repeat it (a cancel by client id is idempotent).
                Err(error) => {
                    tracing::warn!(order_id = %id, %error, "cancel outcome unknown; the caller retries");
                    return Err(error.into());
                }
            }
        }
        self.drive(id, Driver::Handler).await
    }
}
