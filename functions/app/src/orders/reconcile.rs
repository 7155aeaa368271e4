//! The reconciler's use case: find open orders that are due through the
//! sparse, sharded open-order index and drive each with recovery's powers
//! (look unknown outcomes up by key, pull news that did not arrive).
//!
//! Bounded per run (a page size and a time budget); what is left waits for
//! the next run. A lease keeps overlapping runs off the same order, but
//! nothing depends on it: every write is conditional on the order's version.

use domain::order::{Driver, OrderId, OPEN_INDEX_SHARDS};
use futures::StreamExt;

use super::{OrderError, Orders};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::OrderStore;

/// Orders one run works at the same time.
const RECONCILE_CONCURRENCY: usize = 8;

/// Limits of one reconciler run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileBudget {
    /// Most orders worked in one run.
    pub max_orders: usize,
    /// Stop starting new orders after this long (keep it below the Lambda timeout).
    pub time_budget_ms: u64,
}

/// Retry policy of recovery, per order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long a run holds an order it works.
    pub lease_ms: u64,
    /// Wait before the next look: `base * 2^(attempts-1)`, at most `max`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// After this many runs an unfinished order is flagged for an operator
    /// (and still retried, at the longest backoff).
    pub flag_after_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            lease_ms: 60_000,
            backoff_base_ms: 60_000,
            backoff_max_ms: 15 * 60_000,
            flag_after_attempts: 10,
        }
    }
}

impl RetryPolicy {
    pub fn backoff_ms(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(20);
        self.backoff_base_ms
            .saturating_mul(1 << doublings)
            .min(self.backoff_max_ms)
    }
}

/// What one run did, for its log line and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub examined: usize,
    pub closed: usize,
    pub still_open: usize,
    /// Leased by another run right now.
    pub skipped: usize,
    pub newly_flagged: usize,
    pub errors: usize,
    /// The budget ran out with due orders left.
    pub budget_exhausted: bool,
}

enum Claimed {
    Mine,
    Leased,
    Closed,
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub async fn reconcile(
        &self,
        budget: &ReconcileBudget,
        policy: &RetryPolicy,
    ) -> ReconcileReport {
        let started = self.now_ms();
        let mut report = ReconcileReport::default();
        'shards: for shard in 0..OPEN_INDEX_SHARDS {
            let left = budget.max_orders.saturating_sub(report.examined);
            let due = match self.store.due_orders(shard, started, left).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::error!(shard, %error, "open-order index unreadable");
                    report.errors += 1;
                    continue;
                }
            };
            let due: Vec<OrderId> = due.into_iter().take(left).collect();
            // Several orders at a time (each mostly waits on other services);
            // none is started once the time budget is spent.
            let outcomes = futures::stream::iter(due.iter().map(|id| async move {
                let in_budget = self.now_ms().saturating_sub(started) < budget.time_budget_ms;
                (
                    id,
                    if in_budget {
                        Some(self.recover(id, policy).await)
                    } else {
                        None
                    },
                )
            }))
            .buffer_unordered(RECONCILE_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
            for (id, outcome) in outcomes {
                let Some(outcome) = outcome else {
                    report.budget_exhausted = true;
                    continue;
                };
                report.examined += 1;
                match outcome {
                    Ok(Recovered::Closed) => report.closed += 1,
                    Ok(Recovered::Open { newly_flagged }) => {
                        report.still_open += 1;
                        report.newly_flagged += usize::from(newly_flagged);
                    }
                    Ok(Recovered::Skipped) => report.skipped += 1,
                    Err(error) => {
                        tracing::error!(order_id = %id, %error, "recovery failed; next run retries");
                        report.errors += 1;
                    }
                }
            }
            if report.examined >= budget.max_orders {
                report.budget_exhausted = true;
            }
            if report.budget_exhausted {
                break 'shards;
            }
        }
        report
    }

    /// Claims the order for this run (lease, attempt count, next look), then drives it.
    async fn recover(&self, id: &OrderId, policy: &RetryPolicy) -> Result<Recovered, OrderError> {
        let now = self.now_ms();
        let mut claimed = Claimed::Leased;
        let order = self
            .update(id, |o| {
                claimed = if o.is_closed() {
                    Claimed::Closed
                } else if o.recovery.lease_until_ms > now {
                    Claimed::Leased
                } else {
                    o.recovery.attempts += 1;
                    o.recovery.lease_until_ms = now + policy.lease_ms;
                    o.recovery.next_attempt_at_ms = now + policy.backoff_ms(o.recovery.attempts);
                    Claimed::Mine
                };
                matches!(claimed, Claimed::Mine)
            })
            .await?;
        match claimed {
            Claimed::Closed => return Ok(Recovered::Closed),
            Claimed::Leased => return Ok(Recovered::Skipped),
            Claimed::Mine => {}
        }
        let order = match self.drive(id, Driver::Recovery).await {
            Ok(order) => order,
            Err(error) => {
                tracing::warn!(order_id = %id, %error, attempts = order.recovery.attempts, "recovery stopped");
                order
            }
        };
        if order.is_closed() {
            return Ok(Recovered::Closed);
        }
        let stuck = order.recovery.attempts >= policy.flag_after_attempts
            && order.recovery.flagged.is_none();
        if stuck {
            let reason = format!(
                "not finished after {} recovery attempts",
                order.recovery.attempts
            );
            self.flag(id, reason).await?;
        }
        Ok(Recovered::Open {
            newly_flagged: stuck,
        })
    }
}

enum Recovered {
    Closed,
    Open { newly_flagged: bool },
    Skipped,
}
