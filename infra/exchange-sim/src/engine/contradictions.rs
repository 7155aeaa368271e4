//! How the engine's events leave it, and the hostile reports that contradict
//! its own records (see [`crate::hostile`]). Every event goes through
//! `emit_execution` / `emit_status`, so the reordering kinds can hold
//! execution events back; every contradiction is recorded for the audit.
//! All draws come from the hostile stream, never the engine's.

use rand::Rng;

use super::{new_id, Engine, Task, MAX_HOSTILE_KEPT};
use crate::hostile::{
    Alteration, HostileConfig, HostileKind, HostileRecord, Reorder, MAX_HELD_EXECUTIONS,
    UNKNOWN_ACCOUNT,
};
use crate::money::{Price, Quantity};
use crate::order::{EventType, ExchangeEvent, OrderStatus, PlaceOrder, Side};
use crate::quotes::{Quote, SYMBOLS};

impl Engine {
    /// True with the configured rate of one kind; false when hostility is
    /// off (and then nothing is drawn).
    fn hostile_roll(&mut self, rate: fn(&HostileConfig) -> f64) -> bool {
        let Some(p) = self.config.hostile.as_ref().map(rate) else {
            return false;
        };
        p > 0.0 && self.hostile_rng.gen_bool(p.min(1.0))
    }

    fn record(&mut self, record: HostileRecord) {
        if self.hostile_log.len() < MAX_HOSTILE_KEPT {
            self.hostile_log.push(record);
        } else {
            self.hostile_dropped += 1;
        }
    }

    /// At acceptance: maybe a phantom order, and how this order's events
    /// will be reordered.
    pub(super) fn plan_contradictions(&mut self, i: usize, quote: &Quote, now_ms: u64) {
        let Some(h) = self.config.hostile.clone() else {
            return;
        };
        if self.hostile_roll(|h| h.phantom_order) {
            self.send_phantom(i, quote, now_ms);
        }
        let roll: f64 = self.hostile_rng.gen();
        self.orders[i].reorder = if roll < h.status_before_executions {
            let window = self.hostile_rng.gen_range(1..=MAX_HELD_EXECUTIONS);
            Some(Reorder::StatusFirst { window })
        } else if roll < h.status_before_executions + h.execution_after_status {
            Some(Reorder::LateExecution)
        } else {
            None
        };
    }

    /// Kind `phantom_order`: an execution and a `filled` status for an order
    /// the venue never held, dressed in the account, symbol and side of the
    /// order just accepted (so it looks plausible to that client).
    fn send_phantom(&mut self, i: usize, quote: &Quote, now_ms: u64) {
        let o = &self.orders[i].order;
        let (account, symbol, side, most) = (
            o.account.clone(),
            o.symbol.clone(),
            o.side,
            o.quantity.shares(),
        );
        let client_order_id = new_id(&mut self.hostile_rng);
        let order_id = new_id(&mut self.hostile_rng);
        let exec_id = new_id(&mut self.hostile_rng);
        let qty = Quantity::from_shares(self.hostile_rng.gen_range(1..=most.max(1)));
        let price = match side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        };
        let base = ExchangeEvent {
            event_type: EventType::Execution,
            event_id: format!("evt_{exec_id}"),
            client_order_id: client_order_id.clone(),
            order_id: order_id.clone(),
            account,
            symbol,
            side,
            exec_id: Some(exec_id.clone()),
            quantity: Some(qty),
            price: Some(price),
            cum_quantity: qty,
            leaves_quantity: Quantity::ZERO,
            status: OrderStatus::Filled,
            occurred_at: now_ms,
        };
        let status = ExchangeEvent {
            event_type: EventType::OrderStatus,
            event_id: format!("evt_{order_id}_filled"),
            exec_id: None,
            quantity: None,
            price: None,
            ..base.clone()
        };
        self.record(HostileRecord {
            kind: HostileKind::PhantomOrder,
            client_order_id,
            order_id,
            exec_ids: vec![exec_id],
            event_ids: vec![base.event_id.clone(), status.event_id.clone()],
            altered: None,
            detail: "execution and final status for an order the venue never held".into(),
            at: now_ms,
        });
        self.outbox.push(base);
        self.outbox.push(status);
    }

    /// Kind `refused_order_fill` for a place the venue refused (`why`).
    pub(super) fn contradict_refused_place(&mut self, req: &PlaceOrder, why: &str, now_ms: u64) {
        if !self.hostile_roll(|h| h.refused_order_fill) {
            return;
        }
        let Some(quote) = self.quotes.quote(&req.symbol, now_ms) else {
            return;
        };
        let most = req.quantity.shares();
        let filled = self.hostile_rng.gen_range(1..=most.max(1));
        let price = match req.side {
            Side::Buy => quote.ask,
            Side::Sell => quote.bid,
        };
        let detail = format!("execution for a place the venue refused ({why})");
        self.send_refused_fill(
            RefusedFill {
                client_order_id: req.client_order_id.clone(),
                account: req.account.clone(),
                symbol: req.symbol.clone(),
                side: req.side,
                filled,
                leaves: most - filled.min(most),
                price,
            },
            detail,
            now_ms,
        );
    }

    /// Kind `refused_order_fill` for a cancel of a client id the venue never
    /// saw: it knows no account, symbol or side, so they are made up.
    pub(super) fn contradict_unknown_cancel(&mut self, client_order_id: &str, now_ms: u64) {
        if !self.hostile_roll(|h| h.refused_order_fill) {
            return;
        }
        let symbol_index = self.hostile_rng.gen_range(0..SYMBOLS.len());
        let side = if self.hostile_rng.gen_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let Some(quote) = self.quotes.quote_at(symbol_index, now_ms) else {
            return;
        };
        let filled = self.hostile_rng.gen_range(1..=100);
        self.send_refused_fill(
            RefusedFill {
                client_order_id: client_order_id.to_string(),
                account: UNKNOWN_ACCOUNT.to_string(),
                symbol: quote.symbol.clone(),
                side,
                filled,
                leaves: 0,
                price: quote.last,
            },
            "execution for a client order id whose cancel found no order".into(),
            now_ms,
        );
    }

    fn send_refused_fill(&mut self, f: RefusedFill, detail: String, now_ms: u64) {
        let order_id = new_id(&mut self.hostile_rng);
        let exec_id = new_id(&mut self.hostile_rng);
        let event = ExchangeEvent {
            event_type: EventType::Execution,
            event_id: format!("evt_{exec_id}"),
            client_order_id: f.client_order_id.clone(),
            order_id: order_id.clone(),
            account: f.account,
            symbol: f.symbol,
            side: f.side,
            exec_id: Some(exec_id.clone()),
            quantity: Some(Quantity::from_shares(f.filled)),
            price: Some(f.price),
            cum_quantity: Quantity::from_shares(f.filled),
            leaves_quantity: Quantity::from_shares(f.leaves),
            status: if f.leaves == 0 {
                OrderStatus::Filled
            } else {
                OrderStatus::PartiallyFilled
            },
            occurred_at: now_ms,
        };
        self.record(HostileRecord {
            kind: HostileKind::RefusedOrderFill,
            client_order_id: f.client_order_id,
            order_id,
            exec_ids: vec![exec_id],
            event_ids: vec![event.event_id.clone()],
            altered: None,
            detail,
            at: now_ms,
        });
        self.outbox.push(event);
    }

    /// Sends (or, for a reordered order, holds back) an execution event, and
    /// maybe repeats its `exec_id` with another quantity or price.
    pub(super) fn emit_execution(&mut self, i: usize, event: ExchangeEvent, now_ms: u64) {
        let window = self.orders[i].reorder.map_or(0, Reorder::window);
        let reuse = self.hostile_roll(|h| h.exec_id_reused);
        let original = reuse.then(|| event.clone());
        if window == 0 {
            self.outbox.push(event);
        } else {
            let held = &mut self.orders[i].held;
            held.push_back(event);
            if held.len() > window {
                let oldest = held.pop_front();
                self.outbox.extend(oldest);
            }
        }
        if let Some(original) = original {
            self.send_altered(original, now_ms);
        }
    }

    /// Kind `exec_id_reused`: the same execution again, one value changed.
    fn send_altered(&mut self, original: ExchangeEvent, now_ms: u64) {
        let (Some(qty), Some(price)) = (original.quantity, original.price) else {
            return;
        };
        let mut altered = original.clone();
        altered.event_id = format!("{}_alt", original.event_id);
        let change = if self.hostile_rng.gen_bool(0.5) {
            let truth = qty.shares();
            let delta = self.hostile_rng.gen_range(1..=truth.max(1));
            let reported = if truth > 1 && self.hostile_rng.gen_bool(0.5) {
                truth - delta.min(truth - 1)
            } else {
                truth + delta
            };
            altered.quantity = Some(Quantity::from_shares(reported));
            Alteration {
                field: "quantity",
                truth: qty.to_string(),
                reported: reported.to_string(),
            }
        } else {
            let truth = price.cents();
            let delta = self.hostile_rng.gen_range(1..=(truth / 50).max(1));
            let reported = if truth > delta && self.hostile_rng.gen_bool(0.5) {
                truth - delta
            } else {
                truth + delta
            };
            let reported = Price::from_cents(reported).unwrap_or(price);
            altered.price = Some(reported);
            Alteration {
                field: "price",
                truth: price.to_string(),
                reported: reported.to_string(),
            }
        };
        self.record(HostileRecord {
            kind: HostileKind::ExecIdReused,
            client_order_id: original.client_order_id.clone(),
            order_id: original.order_id.clone(),
            exec_ids: original.exec_id.clone().into_iter().collect(),
            event_ids: vec![altered.event_id.clone()],
            detail: format!(
                "exec_id sent again with {} {} instead of {}",
                change.field, change.reported, change.truth
            ),
            altered: Some(change),
            at: now_ms,
        });
        self.outbox.push(altered);
    }

    /// Sends a final status event, then whatever executions were held behind
    /// it: at once (`status_before_executions`) or later
    /// (`execution_after_status`).
    pub(super) fn emit_status(&mut self, i: usize, event: ExchangeEvent, now_ms: u64) {
        let status_event_id = event.event_id.clone();
        self.outbox.push(event);
        if self.orders[i].held.is_empty() {
            return;
        }
        match self.orders[i].reorder {
            Some(Reorder::LateExecution) => {
                let late_ms = self
                    .config
                    .hostile
                    .as_ref()
                    .map_or(0, |h| h.late_execution_ms);
                self.insert_task(now_ms.saturating_add(late_ms), Task::Release(i));
            }
            Some(Reorder::StatusFirst { .. }) | None => {
                let held: Vec<ExchangeEvent> = self.orders[i].held.drain(..).collect();
                let o = &self.orders[i].order;
                let record = HostileRecord {
                    kind: HostileKind::StatusBeforeExecutions,
                    client_order_id: o.client_order_id.clone(),
                    order_id: o.order_id.clone(),
                    exec_ids: held.iter().filter_map(|e| e.exec_id.clone()).collect(),
                    event_ids: std::iter::once(status_event_id)
                        .chain(held.iter().map(|e| e.event_id.clone()))
                        .collect(),
                    altered: None,
                    detail: format!(
                        "final status sent before the last {} execution event(s)",
                        held.len()
                    ),
                    at: now_ms,
                };
                self.record(record);
                self.outbox.extend(held);
            }
        }
    }

    /// Sends an order's held-back execution events, after its final status.
    pub(super) fn release_held(&mut self, i: usize, now_ms: u64) {
        let held: Vec<ExchangeEvent> = self.orders[i].held.drain(..).collect();
        if held.is_empty() {
            return;
        }
        let o = &self.orders[i].order;
        let record = HostileRecord {
            kind: HostileKind::ExecutionAfterStatus,
            client_order_id: o.client_order_id.clone(),
            order_id: o.order_id.clone(),
            exec_ids: held.iter().filter_map(|e| e.exec_id.clone()).collect(),
            event_ids: held.iter().map(|e| e.event_id.clone()).collect(),
            altered: None,
            detail: format!(
                "execution event(s) sent after the final status `{}`",
                o.status.as_str()
            ),
            at: now_ms,
        };
        self.record(record);
        self.outbox.extend(held);
    }

    /// Sends `event` exactly as given through the webhook path, whatever the
    /// venue holds (`POST /admin/events`), and records it as `injected`. It
    /// goes out with the next [`Engine::advance`].
    pub fn inject_event(&mut self, event: ExchangeEvent, now_ms: u64) {
        self.injected_total += 1;
        self.record(HostileRecord {
            kind: HostileKind::Injected,
            client_order_id: event.client_order_id.clone(),
            order_id: event.order_id.clone(),
            exec_ids: event.exec_id.clone().into_iter().collect(),
            event_ids: vec![event.event_id.clone()],
            altered: None,
            detail: "sent through POST /admin/events".into(),
            at: now_ms,
        });
        self.outbox.push(event);
    }

    /// An event id for an injected event that came without one; unique per
    /// engine (a counter, so it draws nothing from any stream).
    pub fn next_injected_event_id(&self) -> String {
        format!("evt_injected_{}", self.injected_total + 1)
    }
}

/// What a `refused_order_fill` reports.
struct RefusedFill {
    client_order_id: String,
    account: String,
    symbol: String,
    side: Side,
    filled: u64,
    leaves: u64,
    price: Price,
}
