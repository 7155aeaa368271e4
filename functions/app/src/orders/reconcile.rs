//! The reconciler's use case: read the due part of the sparse, sharded
//! open-order index and drive each due order with recovery's powers (look
//! unknown outcomes up by key, pull news that did not arrive).
//!
//! - **Only signals make an order due.** A healthy resting order carries
//!   none (see [`pending_condition`]); after its first look it is not read
//!   again until the end-of-day check, whatever its age.
//! - **A cursor per shard.** Each shard's index is read in due order from
//!   where the last run stopped (a small record per shard), so nothing is
//!   read twice and nothing is skipped; an order is rescheduled (its due
//!   time moved into the future) only when it still carries a condition.
//! - **No shard starves.** Every run covers every shard, starting from a
//!   different one each minute, each with its share of the time budget
//!   (time a shard leaves unused passes to the next).
//! - **Attempts count per condition** and reset on progress; an order is
//!   flagged only when one condition stays unresolved past its bound.
//!
//! EventBridge may start two runs at once or skip one: every write is
//! conditional, the cursors included, so nothing relies on being alone.

use domain::order::{
    next_look_ms, pending_condition, silence_due_at_ms, ConditionKind, Driver, FlagReason, OrderId,
    OPEN_INDEX_SHARDS,
};

use super::{EndOfDayReport, OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::{DueEntry, OrderStore, Saved};

/// Orders one run works at the same time (each mostly waits on other services).
const RECONCILE_CONCURRENCY: usize = 8;
/// Drives one look at an order may take while each gains ground (each is
/// bounded too): a backlog of a few hundred fills clears in one run.
const MAX_DRIVES_PER_LOOK: usize = 8;
/// Index entries written this recently may not be visible in the index yet
/// (it is eventually consistent): they are read by the next run. Every due
/// time the platform writes is further ahead than this.
pub const INDEX_LAG_MS: u64 = 5_000;

/// Limits of one reconciler run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileBudget {
    /// Stop starting new orders after this long (below the Lambda timeout).
    pub time_budget_ms: u64,
    /// Index entries read per query.
    pub page_size: usize,
}

/// What one run did, for its log line and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub examined: usize,
    pub closed: usize,
    /// Examined and found carrying no signal: not read again until its end-of-day check.
    pub healthy: usize,
    /// Still carrying a condition: looked at again later.
    pub rescheduled: usize,
    pub newly_flagged: usize,
    pub errors: usize,
    /// Shards whose due entries were all read.
    pub shards_done: u32,
    /// The budget ran out with due entries left.
    pub budget_exhausted: bool,
    pub end_of_day: Option<EndOfDayReport>,
}

enum Recovered {
    Closed,
    Healthy,
    Rescheduled { newly_flagged: bool },
}

fn cursor_name(shard: u32) -> String {
    format!("due#{shard}")
}

fn encode_entry(entry: &DueEntry) -> String {
    format!("{}|{}", entry.due_at_ms, entry.id)
}

fn decode_entry(text: &str) -> Option<DueEntry> {
    let (due, id) = text.split_once('|')?;
    Some(DueEntry {
        due_at_ms: due.parse().ok()?,
        id: OrderId::parse(id).ok()?,
    })
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub async fn reconcile(&self, budget: &ReconcileBudget) -> ReconcileReport {
        let started = self.now_ms();
        let until = started.saturating_sub(INDEX_LAG_MS);
        let mut report = ReconcileReport::default();
        // A different first shard each minute: no shard is always last.
        let first = ((started / 60_000) % u64::from(OPEN_INDEX_SHARDS)) as u32;
        for turn in 0..OPEN_INDEX_SHARDS {
            let shard = (first + turn) % OPEN_INDEX_SHARDS;
            let share_end = started
                + budget.time_budget_ms * u64::from(turn + 1) / u64::from(OPEN_INDEX_SHARDS);
            match self
                .reconcile_shard(shard, until, share_end, budget.page_size, &mut report)
                .await
            {
                Ok(true) => report.shards_done += 1,
                Ok(false) => report.budget_exhausted = true,
                Err(error) => {
                    tracing::error!(shard, %error, "open-order index unreadable");
                    report.errors += 1;
                }
            }
        }
        let eod_deadline = started + budget.time_budget_ms;
        if self.now_ms() < eod_deadline {
            match self.end_of_day(eod_deadline, budget.page_size).await {
                Ok(eod) => report.end_of_day = eod,
                Err(error) => {
                    tracing::error!(%error, "end-of-day reconciliation stopped; the next run goes on");
                    report.errors += 1;
                }
            }
        }
        report
    }

    /// Works the shard's due entries from its cursor until none is left
    /// (`true`) or `deadline_ms` (`false`).
    async fn reconcile_shard(
        &self,
        shard: u32,
        until_ms: u64,
        deadline_ms: u64,
        page_size: usize,
        report: &mut ReconcileReport,
    ) -> Result<bool, OrderError> {
        let name = cursor_name(shard);
        let stored = self.store.cursor(&name).await?;
        let mut version = stored.as_ref().map_or(0, |c| c.version);
        let mut cursor = stored.as_ref().and_then(|c| decode_entry(&c.value));
        loop {
            if self.now_ms() >= deadline_ms {
                return Ok(false);
            }
            let entries = self
                .store
                .due_orders(shard, cursor.as_ref(), until_ms, page_size.max(1))
                .await?;
            if entries.is_empty() {
                return Ok(true);
            }
            let mut advanced = None;
            let mut stopped = false;
            for chunk in entries.chunks(RECONCILE_CONCURRENCY) {
                if self.now_ms() >= deadline_ms {
                    stopped = true;
                    break;
                }
                let outcomes =
                    futures::future::join_all(chunk.iter().map(|entry| self.recover(&entry.id)))
                        .await;
                for (entry, outcome) in chunk.iter().zip(outcomes) {
                    report.examined += 1;
                    match outcome {
                        Ok(Recovered::Closed) => report.closed += 1,
                        Ok(Recovered::Healthy) => report.healthy += 1,
                        Ok(Recovered::Rescheduled { newly_flagged }) => {
                            report.rescheduled += 1;
                            report.newly_flagged += usize::from(newly_flagged);
                        }
                        Err(error) => {
                            tracing::error!(order_id = %entry.id, %error, "recovery failed; the next run retries");
                            report.errors += 1;
                            stopped = true;
                        }
                    }
                    // The cursor passes only what was handled, in order.
                    if !stopped {
                        advanced = Some(entry.clone());
                    }
                }
                if stopped {
                    break;
                }
            }
            if let Some(entry) = advanced {
                match self
                    .store
                    .save_cursor(&name, &encode_entry(&entry), version)
                    .await?
                {
                    Saved::Saved { version: saved } => {
                        version = saved;
                        cursor = Some(entry);
                    }
                    // Another run moved it: carry on from where it is now.
                    Saved::Conflict => {
                        let stored = self.store.cursor(&name).await?;
                        version = stored.as_ref().map_or(0, |c| c.version);
                        cursor = stored.as_ref().and_then(|c| decode_entry(&c.value));
                    }
                }
            }
            if stopped {
                return Ok(false);
            }
        }
    }

    /// Drives one due order with recovery's powers, then reschedules it if
    /// it still carries a condition.
    async fn recover(&self, id: &OrderId) -> Result<Recovered, OrderError> {
        let current = match self.load(id).await {
            Ok(current) => current,
            Err(OrderError::NotFound) => return Ok(Recovered::Closed),
            Err(other) => return Err(other),
        };
        if current.value.is_closed() {
            return Ok(Recovered::Closed);
        }
        let before = current.version;
        let policy = &self.settings.recovery;
        let mut current = current;
        for _ in 0..MAX_DRIVES_PER_LOOK {
            let version = current.version;
            current = match self.drive_from(current.clone(), Driver::Recovery).await {
                Ok(after) => after,
                Err(error) => {
                    tracing::warn!(order_id = %id, %error, "recovery stopped");
                    self.load(id).await?
                }
            };
            // A backlog longer than one drive (fills that queued while
            // settlements failed) is worked on while each drive gains ground.
            let backlog = matches!(
                pending_condition(&current.value, self.now_ms(), policy),
                Some(ConditionKind::Backlog | ConditionKind::Settlement)
            );
            if current.value.is_closed() || current.version == version || !backlog {
                break;
            }
        }
        if current.value.is_closed() {
            return Ok(Recovered::Closed);
        }
        let now = self.now_ms();
        let progress = current.version != before;
        let Some(kind) = pending_condition(&current.value, now, policy) else {
            // Healthy: clear a resolved condition. An order that must end
            // in seconds is looked at again when its silence would say
            // something; any other is not read again before end of day.
            let silence_at = silence_due_at_ms(&current.value, policy);
            self.update(current, |o| {
                if pending_condition(o, now, policy).is_some() {
                    // A report arrived while recovery looked and left its
                    // signal: it stands, ahead of this run's cursor.
                    let soon = now + INDEX_LAG_MS;
                    let moved = o.recovery.due_at_ms < soon;
                    o.recovery.due_at_ms = o.recovery.due_at_ms.max(soon);
                    return moved;
                }
                // The deliberate bug keeps the record of a resolved condition.
                let cleared = !attempts_never_reset() && o.recovery.condition.take().is_some();
                let due = silence_at.map(|at| at.max(now + INDEX_LAG_MS));
                let moved = due.is_some_and(|at| o.recovery.due_at_ms != at);
                if let Some(at) = due {
                    o.recovery.due_at_ms = at;
                }
                cleared || moved
            })
            .await?;
            return Ok(if silence_at.is_some() {
                Recovered::Rescheduled {
                    newly_flagged: false,
                }
            } else {
                Recovered::Healthy
            });
        };
        let mut newly_flagged = false;
        self.update(current, |o| {
            let condition = match o.recovery.condition {
                // The deliberate bug: one count for ever, whatever happens.
                Some(old) if attempts_never_reset() => {
                    let kept = domain::order::Condition {
                        kind,
                        attempts: old.attempts + 1,
                        ..old
                    };
                    o.recovery.condition = Some(kept);
                    kept
                }
                _ => {
                    if progress {
                        o.recovery.condition = None;
                    }
                    // Ground gained since the last record restarts it too
                    // (a handler's, or a look that stopped before this point).
                    let ground = o.ground();
                    o.recovery.attempted(kind, now, ground)
                }
            };
            o.recovery.due_at_ms =
                next_look_ms(o, kind, condition.attempts, now, policy).max(now + INDEX_LAG_MS);
            newly_flagged = false;
            if now.saturating_sub(condition.since_ms) > policy.flag_after_ms {
                let text = format!(
                    "{} unresolved for {} min, {} attempts",
                    kind.as_str(),
                    now.saturating_sub(condition.since_ms) / 60_000,
                    condition.attempts
                );
                newly_flagged = o.recovery.flag(FlagReason::Stuck, &text, now);
            }
            true
        })
        .await?;
        if newly_flagged {
            tracing::error!(order_id = %id, condition = kind.as_str(), "order flagged: a condition is unresolved past its bound");
        }
        Ok(Recovered::Rescheduled { newly_flagged })
    }
}

/// The deliberate bug "attempts never reset" (tests only): a condition's
/// first `since` and its attempts are kept whatever happens to the order.
pub(crate) fn attempts_never_reset() -> bool {
    #[cfg(feature = "mutants")]
    {
        domain::order::mutants::active(domain::order::mutants::Mutant::AttemptsNeverReset)
    }
    #[cfg(not(feature = "mutants"))]
    {
        false
    }
}
