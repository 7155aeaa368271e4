//! The reconciler (EventBridge schedule, every minute; it may be invoked
//! twice for one time, or skipped: runs are safe to overlap and to miss).
//!
//! Each run reads the due part of the sparse, sharded open-order index from
//! each shard's cursor (reads grow with the orders that carry a signal,
//! never with healthy resting orders or history), drives each due order
//! with recovery's powers, and reschedules what still carries a condition.
//! Every shard gets its share of a time budget below the Lambda deadline.
//! Once a trading day has closed, the same runs compare every open order
//! with the venue's list of the day (see `app::orders::end_of_day`).

use app::balances::Balances;
use app::exchange::Exchange;
use app::order_store::OrderStore;
use app::orders::{Orders, ReconcileBudget, ReconcileReport};
use app::Clock;
use serde::Serialize;

mod settings;

pub use settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub examined: usize,
    pub closed: usize,
    pub healthy: usize,
    pub rescheduled: usize,
    pub newly_flagged: usize,
    pub errors: usize,
    pub shards_done: u32,
    pub budget_exhausted: bool,
    /// End-of-day reconciliation, when a slice of it ran.
    pub end_of_day: Option<EndOfDaySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndOfDaySummary {
    pub trade_date: String,
    pub examined: usize,
    pub concluded_not_placed: usize,
    pub corrected: usize,
    pub flagged: usize,
    pub foreign: usize,
    pub done: bool,
}

impl From<&ReconcileReport> for RunSummary {
    fn from(r: &ReconcileReport) -> Self {
        RunSummary {
            examined: r.examined,
            closed: r.closed,
            healthy: r.healthy,
            rescheduled: r.rescheduled,
            newly_flagged: r.newly_flagged,
            errors: r.errors,
            shards_done: r.shards_done,
            budget_exhausted: r.budget_exhausted,
            end_of_day: r.end_of_day.as_ref().map(|e| EndOfDaySummary {
                trade_date: e.trade_date.clone(),
                examined: e.examined,
                concluded_not_placed: e.concluded_not_placed,
                corrected: e.corrected,
                flagged: e.flagged,
                foreign: e.foreign,
                done: e.done,
            }),
        }
    }
}

/// One scheduled run. `time_left_ms`: how long the invocation may still run.
pub async fn run_once<S, B, E, C>(
    orders: &Orders<S, B, E, C>,
    settings: &Settings,
    time_left_ms: u64,
) -> RunSummary
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    let budget = ReconcileBudget {
        // Stop starting new orders well before the invocation is cut off.
        time_budget_ms: time_left_ms
            .saturating_sub(settings.safety_margin_ms)
            .min(settings.max_run_ms),
        page_size: settings.page_size,
    };
    let report = orders.reconcile(&budget).await;
    let summary = RunSummary::from(&report);
    tracing::info!(?summary, "reconciler run");
    // Embedded Metric Format: CloudWatch turns this stdout line into metrics.
    println!("{}", metrics_line(&summary));
    summary
}

/// One CloudWatch Embedded Metric Format line with the run's counts.
pub fn metrics_line(summary: &RunSummary) -> String {
    let eod = summary.end_of_day.as_ref();
    let count = |n: usize| n as u64;
    aws_adapters::metrics::line(
        "reconciler",
        &[
            ("OrdersExamined", count(summary.examined)),
            ("OrdersClosed", count(summary.closed)),
            ("OrdersRescheduled", count(summary.rescheduled)),
            ("OrdersFlagged", count(summary.newly_flagged)),
            ("RecoveryErrors", count(summary.errors)),
            (
                "ReconcilerBudgetExhausted",
                u64::from(summary.budget_exhausted),
            ),
            (
                "EndOfDayNotPlaced",
                eod.map_or(0, |e| count(e.concluded_not_placed)),
            ),
            ("EndOfDayCorrected", eod.map_or(0, |e| count(e.corrected))),
            (
                "EndOfDayFlagged",
                eod.map_or(0, |e| count(e.flagged + e.foreign)),
            ),
        ],
    )
}
