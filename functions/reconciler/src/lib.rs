//! The reconciler (EventBridge schedule, every minute; it may be invoked
//! twice for one time, or skipped: runs are safe to overlap and to miss).
//!
//! Each run reads the due part of the sparse, sharded open-order index (its
//! reads grow with open orders, never with history), and drives each order
//! with recovery's powers, within a page size and a time budget below the
//! Lambda timeout. Per order: a lease against overlapping runs, exponential
//! backoff, and a flag for an operator after a number of attempts (visible in
//! `GET /orders/{id}` and in the `OrdersFlagged` metric).

use app::balances::Balances;
use app::exchange::Exchange;
use app::order_store::OrderStore;
use app::orders::{Orders, ReconcileBudget, ReconcileReport};
use app::Clock;
use serde::Serialize;

mod settings;

pub use settings::Settings;

/// Metrics namespace of the platform (CloudWatch Embedded Metric Format).
pub const METRICS_NAMESPACE: &str = "TradingPlatform";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    pub examined: usize,
    pub closed: usize,
    pub still_open: usize,
    pub skipped: usize,
    pub newly_flagged: usize,
    pub errors: usize,
    pub budget_exhausted: bool,
}

impl From<&ReconcileReport> for RunSummary {
    fn from(r: &ReconcileReport) -> Self {
        RunSummary {
            examined: r.examined,
            closed: r.closed,
            still_open: r.still_open,
            skipped: r.skipped,
            newly_flagged: r.newly_flagged,
            errors: r.errors,
            budget_exhausted: r.budget_exhausted,
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
        max_orders: settings.max_orders_per_run,
        // Stop starting new orders well before the invocation is cut off.
        time_budget_ms: time_left_ms
            .saturating_sub(settings.safety_margin_ms)
            .min(settings.max_run_ms),
    };
    let report = orders.reconcile(&budget, &settings.retry).await;
    let summary = RunSummary::from(&report);
    tracing::info!(?summary, "reconciler run");
    // Embedded Metric Format: CloudWatch turns this stdout line into metrics.
    println!("{}", metrics_line(&summary, orders.now()));
    summary
}

/// One CloudWatch Embedded Metric Format line with the run's counts.
pub fn metrics_line(summary: &RunSummary, now_ms: u64) -> String {
    let metric = |name: &str| serde_json::json!({"Name": name, "Unit": "Count"});
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [metric("OrdersExamined"), metric("OrdersClosed"), metric("OrdersFlagged"), metric("RecoveryErrors")],
            }],
        },
        "Function": "reconciler",
        "OrdersExamined": summary.examined,
        "OrdersClosed": summary.closed,
        "OrdersFlagged": summary.newly_flagged,
        "RecoveryErrors": summary.errors,
    })
    .to_string()
}
