//! The fill processor (SQS event source, `ReportBatchItemFailures`).
//!
//! Each message is one exchange report. It is applied to its order exactly
//! once (the order's record of executions is where a duplicate stops), then
//! the order is driven on: the fill is settled at Balances with key
//! `<order>:fill:<exec_id>`, and a finished order releases what is left of
//! its reservation and closes. Only the failed messages of a batch are
//! reported, so one bad message never holds back the others; a message that
//! can never apply (unknown order, a fill beyond the order) fails every time
//! and reaches the dead-letter queue after the queue's `maxReceiveCount`,
//! with its reason in the logs.
//!
//! Standard queue, not FIFO: de-duplication happens in the order record,
//! which is permanent (FIFO's lasts 5 minutes), and fills of one order may
//! arrive in any order because the order record, not the arrival order,
//! decides what is left to do. FIFO would add a per-group throughput cap and
//! let one slow order block its group, for no safety gained.

use app::balances::Balances;
use app::exchange::Exchange;
use app::order_store::OrderStore;
use app::orders::{Orders, ReportError, ReportOutcome};
use app::Clock;
use aws_adapters::sqs::parse_report;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::BTreeMap;

use futures::future::join_all;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageResult {
    Applied,
    Duplicate,
    /// Retry later (the message stays on the queue).
    Retry(String),
    /// Can never apply: it will reach the dead-letter queue.
    Poison(String),
}

/// Handles one batch; the answer names only the messages to deliver again.
pub async fn handle_batch<S, B, E, C>(
    orders: &Orders<S, B, E, C>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    // Orders in parallel, each order's messages one after another: messages
    // of one order would only contend for its record.
    let mut by_order: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, message) in event.records.iter().enumerate() {
        let order = message
            .body
            .as_deref()
            .and_then(|b| parse_report(b).ok())
            .map(|r| r.client_order_id().to_string());
        by_order
            .entry(order.unwrap_or_default())
            .or_default()
            .push(index);
    }
    let records = &event.records;
    let groups = by_order.into_values().map(|indexes| async move {
        let mut results = Vec::with_capacity(indexes.len());
        for index in indexes {
            results.push((index, handle_message(orders, &records[index]).await));
        }
        results
    });
    let mut results: Vec<(usize, MessageResult)> =
        join_all(groups).await.into_iter().flatten().collect();
    results.sort_by_key(|(index, _)| *index);
    let mut response = SqsBatchResponse::default();
    for (message, (_, result)) in event.records.iter().zip(results) {
        let id = message.message_id.clone().unwrap_or_default();
        match result {
            MessageResult::Applied | MessageResult::Duplicate => {}
            MessageResult::Retry(reason) => {
                tracing::warn!(message_id = %id, %reason, "fill not finished; will be delivered again");
                response.batch_item_failures.push(failure(id));
            }
            MessageResult::Poison(reason) => {
                tracing::error!(message_id = %id, %reason, "poison fill message; bound for the dead-letter queue");
                response.batch_item_failures.push(failure(id));
            }
        }
    }
    response
}

fn failure(item_identifier: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = item_identifier;
    failure
}

pub async fn handle_message<S, B, E, C>(
    orders: &Orders<S, B, E, C>,
    message: &SqsMessage,
) -> MessageResult
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    let body = message.body.as_deref().unwrap_or_default();
    let report = match parse_report(body) {
        Ok(report) => report,
        Err(error) => return MessageResult::Poison(format!("unreadable report: {error}")),
    };
    let span = tracing::info_span!("fill", order_id = %report.client_order_id());
    let _entered = span.enter();
    match orders.apply_report(&report).await {
        Ok(ReportOutcome::Applied(order)) => {
            unfinished(&order).map_or(MessageResult::Applied, MessageResult::Retry)
        }
        // A repeat whose first delivery left the settlement unfinished has
        // just finished it; if it still could not, deliver it again.
        Ok(ReportOutcome::Duplicate(order)) => {
            unfinished(&order).map_or(MessageResult::Duplicate, MessageResult::Retry)
        }
        Err(error @ (ReportError::UnknownOrder(_) | ReportError::Refused(_))) => {
            MessageResult::Poison(error.to_string())
        }
        Err(error) => MessageResult::Retry(error.to_string()),
    }
}

/// A settlement or release left `processing` (Balances did not answer): the
/// message is delivered again, and its repeat finishes it with the same key.
fn unfinished(order: &domain::order::Order) -> Option<String> {
    let settling = order
        .fills
        .iter()
        .filter(|f| f.settle.is_processing())
        .count();
    let releasing = order.release.as_ref().is_some_and(|r| r.is_processing());
    let stuck = (settling > 0 || releasing) && order.recovery.flagged.is_none();
    stuck.then(|| format!("{settling} settlement(s) unfinished, release unfinished: {releasing}"))
}
