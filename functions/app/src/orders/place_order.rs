//! `POST /orders`: claim the idempotency key, record the order with
//! `reserve: processing`, then drive it (reserve, place) as far as it goes.

use domain::order::{Driver, Order, OrderRequest, Recovery, Step};
use domain::{AccountId, IdempotencyKey, Side};

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::{Claim, IdempotencyRecord, Inserted, OrderStore};

/// The order as it stands after the request, and whether the request was a
/// replay of an earlier one with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub async fn place(
        &self,
        account: AccountId,
        key: IdempotencyKey,
        request: OrderRequest,
    ) -> Result<Placed, OrderError> {
        let fingerprint = request.fingerprint(&account);
        // Priced before anything is recorded, so a failure leaves nothing behind.
        let reference_price = match (request.side, request.limit_price) {
            (Side::Buy, None) => self.exchange.reference_price(&request.symbol).await?,
            (_, Some(limit)) => limit,
            (Side::Sell, None) => {
                domain::Price::from_cents(1).map_err(|e| OrderError::Invalid(e.to_string()))?
            }
        };
        let reservation = request
            .reservation(reference_price, self.settings.market_collar_bps)
            .map_err(|e| OrderError::Invalid(format!("the order's value is out of range: {e}")))?;

        let now = self.now_ms();
        let claim = IdempotencyRecord {
            account: account.clone(),
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            order_id: (self.new_order_id)(),
            expires_at_ms: now + self.settings.key_ttl_ms,
        };
        let order_id = match self.store.claim_key(&claim, now).await? {
            Claim::Claimed => claim.order_id,
            Claim::Taken(existing) if existing.fingerprint != fingerprint => {
                return Err(OrderError::KeyReused)
            }
            // The same request again. Its order normally exists; if the first
            // request stopped between claiming the key and recording the order,
            // this one records it (the insert below decides who does).
            Claim::Taken(existing) => existing.order_id,
        };

        let order = Order {
            id: order_id,
            account,
            idempotency_key: key,
            request,
            reservation,
            created_at_ms: now,
            place_deadline_ms: now + self.settings.placement_window_ms,
            reserve: Step::processing(now),
            place: None,
            exchange_order_id: None,
            fills: Vec::new(),
            final_report: None,
            cancel_requested_at_ms: None,
            release: None,
            closed_at_ms: None,
            recovery: Recovery {
                attempts: 0,
                next_attempt_at_ms: now + self.settings.recovery.quiet_after_ms,
                lease_until_ms: 0,
                flagged: None,
            },
        };
        match self.store.insert(&order).await? {
            // Only the request whose insert won drives the order; a concurrent
            // duplicate answers with the order as it stands.
            Inserted::Exists(existing) => Ok(Placed {
                order: existing.value,
                replayed: true,
            }),
            Inserted::New(_) => {
                tracing::info!(order_id = %order.id, key = %order.idempotency_key, "order recorded");
                let order = self.drive(&order.id, Driver::Handler).await?;
                Ok(Placed {
                    order,
                    replayed: false,
                })
            }
        }
    }
}
