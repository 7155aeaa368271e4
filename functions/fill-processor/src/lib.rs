//! The fill processor (SQS FIFO event source, `ReportBatchItemFailures`).
//!
//! Each message is one exchange report; its message group is its order, so
//! one order's reports come one at a time and in the order received, while
//! different orders run in parallel. A report is applied once (its
//! execution's own record is where a duplicate stops) and the order is
//! driven on: settled at Balances with key `<order>:fill:<exec_id>`, the
//! rest of the reservation released with the last settlement, closed.
//!
//! What is acknowledged: every report that is recorded, whatever happens to
//! its settlement (a Balances outage leaves the settlement to recovery, not
//! to redelivery, so nothing applied ever reaches the dead-letter queue),
//! and every report set aside with its reason (unreadable, or not confirmed
//! by the exchange). What is retried: only what could not be recorded now
//! (the table or the exchange unreachable), and, FIFO, every later message
//! of the same order with it. Messages left when the invocation's time is
//! nearly up are handed back unstarted.

use std::collections::BTreeMap;

use app::balances::Balances;
use app::exchange::Exchange;
use app::fill_queue::FillQueue;
use app::order_store::OrderStore;
use app::orders::{Orders, ReportOutcome};
use app::Clock;
use aws_adapters::sqs::parse_report;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use domain::order::{Order, OrderStatus};
use futures::future::join_all;
use tracing::Instrument;

/// A message is started only with at least this much of the invocation
/// left: enough for one report's calls at their timeouts.
pub const TIME_PER_MESSAGE_MS: u64 = 10_000;

/// What applying a report did to its order, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// The order closed with this status.
    pub closed: Option<OrderStatus>,
    /// The order carries a flag for an operator (a shortfall, an overfill,
    /// a reopened order, conflicting terms).
    pub flagged: bool,
}

impl Applied {
    fn of(order: &Order) -> Self {
        Applied {
            closed: order.is_closed().then(|| order.status()),
            flagged: order.recovery.is_flagged(),
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageResult {
    Applied(Applied),
    Duplicate,
    /// Kept on the dead-letter queue with its reason; acknowledged here.
    SetAside(String),
    /// Could not be recorded now: delivered again.
    Retry(String),
    /// Not started (time, or an earlier message of its order to be retried first).
    NotStarted,
}

impl MessageResult {
    fn acknowledged(&self) -> bool {
        matches!(
            self,
            MessageResult::Applied(_) | MessageResult::Duplicate | MessageResult::SetAside(_)
        )
    }
}

/// Counts of one batch, for the log line and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub applied: u64,
    /// Orders this batch closed, by status.
    pub filled: u64,
    pub cancelled: u64,
    pub expired: u64,
    pub failed: u64,
    /// Applied reports whose order is flagged for an operator.
    pub flagged: u64,
    pub duplicates: u64,
    pub set_aside: u64,
    pub retried: u64,
}

/// The message group of an SQS message: the order it is about.
fn group_of(message: &SqsMessage) -> String {
    message
        .attributes
        .get("MessageGroupId")
        .cloned()
        .or_else(|| {
            message
                .body
                .as_deref()
                .and_then(|b| parse_report(b).ok())
                .map(|r| r.client_order_id().to_string())
        })
        .unwrap_or_default()
}

/// Handles one batch; the answer names only the messages to deliver again.
/// `deadline_ms`: when the invocation is cut off (the clock's time).
pub async fn handle_batch<S, B, E, C, Q>(
    orders: &Orders<S, B, E, C>,
    set_aside: &Q,
    event: SqsEvent,
    deadline_ms: u64,
) -> (SqsBatchResponse, BatchSummary)
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
    Q: FillQueue,
{
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, message) in event.records.iter().enumerate() {
        groups.entry(group_of(message)).or_default().push(index);
    }
    let records = &event.records;
    let runs = groups.into_values().map(|indexes| async move {
        let mut results = Vec::with_capacity(indexes.len());
        let mut stopped = false;
        for index in indexes {
            let time_left = deadline_ms.saturating_sub(orders.now());
            let result = if stopped || time_left < TIME_PER_MESSAGE_MS {
                MessageResult::NotStarted
            } else {
                handle_message(orders, set_aside, &records[index]).await
            };
            // FIFO: nothing of this order goes ahead of a message handed back.
            stopped |= !result.acknowledged();
            results.push((index, result));
        }
        results
    });
    let mut results: Vec<(usize, MessageResult)> =
        join_all(runs).await.into_iter().flatten().collect();
    results.sort_by_key(|(index, _)| *index);
    let mut response = SqsBatchResponse::default();
    let mut summary = BatchSummary::default();
    for (message, (_, result)) in event.records.iter().zip(results) {
        let id = message.message_id.clone().unwrap_or_default();
        match result {
            MessageResult::Applied(applied) => {
                summary.applied += 1;
                summary.flagged += u64::from(applied.flagged);
                match applied.closed {
                    Some(OrderStatus::Filled) => summary.filled += 1,
                    Some(OrderStatus::Cancelled) => summary.cancelled += 1,
                    Some(OrderStatus::Expired) => summary.expired += 1,
                    Some(OrderStatus::Failed | OrderStatus::Rejected) => summary.failed += 1,
                    _ => {}
                }
            }
            MessageResult::Duplicate => summary.duplicates += 1,
            MessageResult::SetAside(reason) => {
                summary.set_aside += 1;
                tracing::error!(message_id = %id, %reason, "report set aside on the dead-letter queue");
            }
            MessageResult::Retry(reason) => {
                summary.retried += 1;
                tracing::warn!(message_id = %id, %reason, "report not recorded; delivered again");
                response.batch_item_failures.push(failure(id));
            }
            MessageResult::NotStarted => {
                summary.retried += 1;
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    (response, summary)
}

fn failure(item_identifier: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = item_identifier;
    failure
}

pub async fn handle_message<S, B, E, C, Q>(
    orders: &Orders<S, B, E, C>,
    set_aside: &Q,
    message: &SqsMessage,
) -> MessageResult
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
    Q: FillQueue,
{
    let body = message.body.as_deref().unwrap_or_default();
    // A redelivered message keeps its id: set aside once, however often
    // a crash makes the processor repeat it.
    let delivery_id = message.message_id.as_deref().unwrap_or(body);
    let report = match parse_report(body) {
        Ok(report) => report,
        Err(error) => {
            let reason = format!("unreadable report: {error}");
            return keep_aside(set_aside, body, &reason, delivery_id).await;
        }
    };
    // The span is attached to the future (never entered across an await),
    // so every line of this report's work, setting it aside included,
    // carries its order.
    let span = tracing::info_span!("fill", order_id = %report.client_order_id());
    async {
        match orders.apply_report(&report).await {
            Ok(ReportOutcome::Applied(order)) => MessageResult::Applied(Applied::of(&order)),
            Ok(ReportOutcome::Duplicate(_)) => MessageResult::Duplicate,
            Ok(ReportOutcome::SetAside { reason }) => {
                keep_aside(set_aside, body, &reason, delivery_id).await
            }
            Err(error) => MessageResult::Retry(error.to_string()),
        }
    }
    .instrument(span)
    .await
}

async fn keep_aside<Q: FillQueue>(
    queue: &Q,
    body: &str,
    reason: &str,
    delivery_id: &str,
) -> MessageResult {
    match queue.set_aside(body, reason, delivery_id).await {
        Ok(()) => MessageResult::SetAside(reason.to_owned()),
        Err(error) => MessageResult::Retry(format!("could not set it aside: {error}")),
    }
}

/// The batch's counts as one CloudWatch Embedded Metric Format line.
pub fn metrics_line(summary: &BatchSummary) -> String {
    aws_adapters::metrics::line(
        "fill-processor",
        &[
            ("FillsApplied", summary.applied),
            ("OrdersFilled", summary.filled),
            ("OrdersCancelled", summary.cancelled),
            ("OrdersExpired", summary.expired),
            ("OrdersFailed", summary.failed),
            ("OrdersFlagged", summary.flagged),
            ("DuplicateDeliveries", summary.duplicates),
            ("ReportsSetAside", summary.set_aside),
            ("ReportsRetried", summary.retried),
        ],
    )
}
