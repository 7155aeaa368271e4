//! `POST /orders`: price the order (a market order's protective limit and
//! reservation), claim the idempotency key, record the order with
//! `reserve: processing`, then drive it (reserve, place) as far as it goes.

use domain::order::{absence_final_at_ms, Driver, Order, OrderRequest, OrderType, Recovery, Step};
use domain::{AccountId, IdempotencyKey};

use super::drive::Current;
use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::{Claim, IdempotencyRecord, Inserted, OrderStore, Versioned};

/// The order as it stands after the request, and whether the request was a
/// replay of an earlier one with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

/// The first look recovery takes at a new order (a crash between its
/// steps): just after "not placed" could first be concluded.
const FIRST_LOOK_AFTER_MS: u64 = 1_000;

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
        let tick = self
            .settings
            .catalog
            .instrument(request.symbol.as_str())
            .map_err(|e| OrderError::Invalid(e.to_string()))?
            .tick_cents;
        let reference = match (request.order_type, request.limit_price) {
            (OrderType::Market, _) => self.exchange.reference_price(&request.symbol).await?,
            (OrderType::Limit, Some(limit)) => limit,
            (OrderType::Limit, None) => {
                return Err(OrderError::Invalid("a limit order needs a limit".into()))
            }
        };
        let pricing = request
            .pricing(reference, self.settings.market_collar_bps, tick)
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

        let mut order = Order {
            id: order_id,
            account,
            request,
            protection: pricing.protection,
            reservation: pricing.reservation,
            created_at_ms: now,
            // Until the placement starts, the latest time it may start.
            place_deadline_ms: now + self.settings.submit_window_ms,
            reserve: Step::processing(now),
            place: None,
            exchange_order_id: None,
            fills: Default::default(),
            settling: None,
            backlog: false,
            reported_cum: 0,
            final_report: None,
            contradicted: false,
            cancel: None,
            release: None,
            released_units: 0,
            release_units: 0,
            closed_at_ms: None,
            recovery: Recovery::default(),
        };
        // Recovery's first look, in case this invocation stops half-way: when
        // a placement started now could first be concluded.
        let placing_now = Order {
            place_deadline_ms: now + self.settings.placement_window_ms,
            ..order.clone()
        };
        order.recovery.due_at_ms =
            absence_final_at_ms(&placing_now, &self.settings.recovery) + FIRST_LOOK_AFTER_MS;
        match self.store.insert(&order).await? {
            // Only the request whose insert won drives the order; a concurrent
            // duplicate answers with the order as it stands.
            Inserted::Exists(existing) => {
                let mut existing = existing;
                self.resolve_slot(&mut existing.value).await?;
                Ok(Placed {
                    order: existing.value,
                    replayed: true,
                })
            }
            Inserted::New(stored) => {
                tracing::info!(order_id = %order.id, key = %key, "order recorded");
                let current: Current = Versioned {
                    value: stored.value,
                    version: stored.version,
                };
                let current = self.drive_from(current, Driver::Handler).await?;
                let current = self.leave_signal(current).await?;
                Ok(Placed {
                    order: current.value,
                    replayed: false,
                })
            }
        }
    }
}
