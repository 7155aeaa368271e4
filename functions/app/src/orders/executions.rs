//! Recording an execution exactly once, wherever it comes from (a webhook
//! through the fill processor, or a REST pull by recovery).
//!
//! An execution takes the order's settling slot when it is free (one write
//! to the order, which also folds the previous, settled execution into the
//! totals); while the slot is busy with a settlement that cannot finish
//! now (Balances is down, say), the execution waits in a record of its own
//! and the order is marked, so nothing is lost and no message needs to be
//! retried. Duplicates stop at the slot or at the execution's own record;
//! a repeat of an `exec_id` with other terms is never applied and is flagged.

use std::collections::HashMap;

use domain::money::{Price, Quantity};
use domain::order::{ExecId, Execution, FillRecord, FlagReason, Taken};

use super::drive::{Current, Progress};
use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::{FillWritten, OrderStore};

/// Times recording re-decides after another writer changed the slot.
const MAX_RECORD_ATTEMPTS: usize = 8;

/// What recording one execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// New: in the slot (settled next), or waiting its turn.
    New,
    /// Recorded before, with the same terms: nothing changed.
    Duplicate,
    /// Recorded before with other terms: not applied again.
    Conflicting(String),
}

fn compare(recorded_same: bool, execution: &Execution) -> Recorded {
    if recorded_same {
        Recorded::Duplicate
    } else {
        Recorded::Conflicting(format!(
            "execution {} reported again with other terms ({} at {})",
            execution.exec_id, execution.quantity, execution.price
        ))
    }
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub(crate) async fn record_execution(
        &self,
        mut current: Current,
        execution: &Execution,
    ) -> Result<(Current, Recorded), OrderError> {
        let id = current.value.id.clone();
        for _ in 0..MAX_RECORD_ATTEMPTS {
            if let Some(slot) = &current.value.settling {
                if slot.exec_id == execution.exec_id {
                    let same = slot.quantity == execution.quantity && slot.price == execution.price;
                    return Ok((current, compare(same, execution)));
                }
            }
            if let Some(record) = self.store.fill(&id, &execution.exec_id).await? {
                return Ok((current, compare(record.same_trade(execution), execution)));
            }
            let busy = current
                .value
                .settling
                .as_ref()
                .is_some_and(|f| f.settle.is_processing());
            if !busy {
                match self.take_into_slot(current, execution, false).await? {
                    (next, Some(taken)) => {
                        let next = self.flag_taken(next, taken).await?;
                        return Ok((next, Recorded::New));
                    }
                    // The slot changed under us: decide again on the fresh record.
                    (next, None) => {
                        current = next;
                        continue;
                    }
                }
            }
            // The slot is busy: finish its settlement first, if Balances answers.
            let (next, _) = self.settle_slot(current).await?;
            current = next;
            let still_busy = current
                .value
                .settling
                .as_ref()
                .is_some_and(|f| f.settle.is_processing());
            if !still_busy {
                continue;
            }
            // It cannot finish now: this execution waits in its own record.
            // The mark goes first, so a waiting record is never unmarked.
            let current = self.mark_backlog(current).await?;
            let now = self.now_ms();
            return match self
                .store
                .put_fill(&id, &FillRecord::recorded(execution, now), false)
                .await?
            {
                FillWritten::Written => Ok((current, Recorded::New)),
                FillWritten::Exists(record) => {
                    let verdict = compare(record.same_trade(execution), execution);
                    Ok((current, verdict))
                }
            };
        }
        Err(OrderError::Busy)
    }

    /// Marks the order as having executions waiting in their own records.
    async fn mark_backlog(&self, current: Current) -> Result<Current, OrderError> {
        self.update(current, |o| {
            let unmarked = !o.backlog;
            o.backlog = true;
            unmarked
        })
        .await
    }

    /// Puts the execution into the free (or settled) slot in one write,
    /// folding a settled predecessor into the totals. `None`: the slot
    /// changed meanwhile (another writer took it); the fresh record is returned.
    async fn take_into_slot(
        &self,
        mut current: Current,
        execution: &Execution,
        waited: bool,
    ) -> Result<(Current, Option<Taken>), OrderError> {
        // A settled slot leaves the order only once its own record exists
        // (the close path settles into the order item alone).
        if let Some(slot) = current.value.settling.clone() {
            if !slot.archived {
                self.store
                    .put_fill(&current.value.id, &FillRecord::settled(&slot), slot.waited)
                    .await?;
                if let Some(slot) = current.value.settling.as_mut() {
                    slot.archived = true;
                }
            }
        }
        let expected = current.value.settling.as_ref().map(|f| f.exec_id.clone());
        let now = self.now_ms();
        let mut taken = None;
        let mut changed_under_us = false;
        let next = self
            .update(current, |o| {
                taken = None;
                let slot = o.settling.as_ref().map(|f| f.exec_id.clone());
                if slot != expected
                    || o.settling
                        .as_ref()
                        .is_some_and(|f| f.settle.is_processing())
                {
                    changed_under_us = true;
                    return false;
                }
                changed_under_us = false;
                if let Some(fill) = o.settling.as_mut() {
                    // Archived above (or by the settlement's own write).
                    fill.archived = true;
                }
                #[cfg(feature = "mutants")]
                if domain::order::mutants::active(domain::order::mutants::Mutant::FillCap)
                    && o.fill_count() >= 20
                {
                    return false; // the bug: a cap refuses what the exchange executed
                }
                if o.fold_settled().is_err() {
                    return false;
                }
                match o.take_fill(execution, now) {
                    Ok(t) => {
                        if let Some(fill) = o.settling.as_mut() {
                            fill.waited = waited;
                        }
                        taken = Some(t);
                        true
                    }
                    Err(_) => false,
                }
            })
            .await?;
        if changed_under_us {
            return Ok((next, None));
        }
        Ok((next, taken))
    }

    async fn flag_taken(&self, mut current: Current, taken: Taken) -> Result<Current, OrderError> {
        for (reason, text) in taken.flags {
            current = self.flag(current, reason, &text).await?;
        }
        Ok(current)
    }

    /// Settles the slot (if it is processing) and reports the order after.
    pub(crate) async fn settle_slot(
        &self,
        current: Current,
    ) -> Result<(Current, Progress), OrderError> {
        if current
            .value
            .settling
            .as_ref()
            .is_some_and(|f| f.settle.is_processing())
        {
            return self.settle_now(current).await;
        }
        Ok((current, Progress::Advanced))
    }

    /// Takes the next waiting execution into the slot, or clears the mark
    /// when none is left.
    pub(crate) async fn drain_backlog(
        &self,
        current: Current,
    ) -> Result<(Current, Progress), OrderError> {
        let id = current.value.id.clone();
        let Some(record) = self.store.next_waiting(&id).await? else {
            let current = self
                .update(current, |o| {
                    let marked = o.backlog;
                    o.backlog = false;
                    marked
                })
                .await?;
            // A writer may have marked the order just before the clear and
            // written its record just after the read above: look once more.
            if self.store.next_waiting(&id).await?.is_some() {
                let current = self.mark_backlog(current).await?;
                return Ok((current, Progress::Advanced));
            }
            return Ok((current, Progress::Advanced));
        };
        // Settled already (a crash between its two writes): tidy up, go on.
        if let Some(settled) = self
            .store
            .fill(&id, &record.exec_id)
            .await?
            .filter(FillRecord::is_settled)
        {
            self.store.put_fill(&id, &settled, true).await?;
            return Ok((current, Progress::Advanced));
        }
        let exchange_id = current.value.exchange_order_id.clone().unwrap_or_default();
        let execution = Execution {
            exec_id: record.exec_id.clone(),
            exchange_order_id: exchange_id,
            quantity: record.quantity,
            price: record.price,
            cum_quantity: None,
        };
        let (current, taken) = self.take_into_slot(current, &execution, true).await?;
        let current = match taken {
            Some(taken) => self.flag_taken(current, taken).await?,
            None => current,
        };
        Ok((current, Progress::Advanced))
    }

    /// Pulls the order's status and executions over REST and records what
    /// is missing, through the same path as a webhook's execution.
    pub(crate) async fn pull_executions(
        &self,
        current: Current,
    ) -> Result<(Current, Progress), OrderError> {
        let id = current.value.id.clone();
        let view = match self.exchange.order(&id).await {
            Ok(Some(view)) => view,
            Ok(None) if current.value.is_placed() => {
                let text = "placed, yet unknown to the exchange";
                let current = self
                    .flag(current, FlagReason::UnknownToExchange, text)
                    .await?;
                return Ok((current, Progress::Waiting));
            }
            Ok(None) | Err(_) => return Ok((current, Progress::Waiting)),
        };
        let Ok(executions) = self.exchange.executions(&view.order_id).await else {
            return Ok((current, Progress::Waiting));
        };
        let now = self.now_ms();
        let before = current.version;
        let mut current = self
            .update(current, |o| {
                super::drive::record_exchange_view(o, &view, now)
            })
            .await?;
        let venue_total: u64 = executions.iter().map(|e| e.quantity.shares()).sum();
        let complete = !current.value.backlog && current.value.filled_quantity() >= venue_total;
        let mut recorded = 0;
        if !complete {
            let (known, waiting) = self.recorded_executions(&current).await?;
            // A waiting record the order does not know of (a clear that
            // raced a writer): mark it, so that it is drained.
            if waiting && !current.value.backlog {
                current = self.mark_backlog(current).await?;
            }
            let mut contradicted = Vec::new();
            for execution in &executions {
                match known.get(&execution.exec_id) {
                    Some(terms) if *terms == (execution.quantity, execution.price) => {}
                    Some(terms) => contradicted.push(format!(
                        "execution {} recorded as {} at {}, listed by the exchange as {} at {}",
                        execution.exec_id, terms.0, terms.1, execution.quantity, execution.price
                    )),
                    None => {
                        let (next, outcome) = self.record_execution(current, execution).await?;
                        current = next;
                        if outcome == Recorded::New {
                            recorded += 1;
                        }
                    }
                }
            }
            if !contradicted.is_empty() {
                current = self.contradicted(current, &contradicted.join("; ")).await?;
            }
        }
        let progress = if recorded > 0 || current.version != before {
            Progress::Advanced
        } else {
            Progress::Waiting
        };
        Ok((current, progress))
    }

    /// The exchange listed, for an order it finished, executions recorded
    /// here with other terms than it lists now: a venue that contradicted
    /// itself (the first report was settled; correcting it is an
    /// operator's call). Flagged; with its final report in, nothing else is
    /// missing, so the order can close.
    async fn contradicted(&self, current: Current, text: &str) -> Result<Current, OrderError> {
        let finished = current.value.final_report.is_some();
        let current = self
            .update(current, |o| {
                let first = finished && !o.contradicted;
                o.contradicted |= finished;
                first
            })
            .await?;
        self.flag(current, FlagReason::ConflictingExecution, text)
            .await
    }

    /// The terms of every execution recorded for the order (the slot and
    /// every record), and whether any record still waits to be settled:
    /// read only when the exchange reports more than the totals hold.
    async fn recorded_executions(
        &self,
        current: &Current,
    ) -> Result<(HashMap<ExecId, (Quantity, Price)>, bool), OrderError> {
        let id = &current.value.id;
        let mut known: HashMap<_, _> = current
            .value
            .settling
            .iter()
            .map(|f| (f.exec_id.clone(), (f.quantity, f.price)))
            .collect();
        let slot = current.value.settling.as_ref().map(|f| f.exec_id.clone());
        let mut waiting = false;
        let mut after = None;
        loop {
            let page = self.store.fills(id, after.as_ref(), FILL_PAGE).await?;
            for record in page.fills {
                waiting |= !record.is_settled() && slot.as_ref() != Some(&record.exec_id);
                known
                    .entry(record.exec_id)
                    .or_insert((record.quantity, record.price));
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok((known, waiting)),
            }
        }
    }
}

/// Execution records read per page.
const FILL_PAGE: usize = 500;
