//! The queue between the webhook receiver and the fill processor: one
//! order's reports in the order they were received (a message group per
//! order), at least once. The processor applies each once.

use std::future::Future;

use domain::order::ExchangeReport;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue did not accept the message (or did not say it did): the
    /// sender must not acknowledge what it was given.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

pub trait FillQueue: Send + Sync {
    /// Returns only once the queue has durably accepted the report.
    /// `delivery_id` identifies the venue's delivery (its retries repeat it),
    /// so the queue drops a retry it has just taken.
    fn send(
        &self,
        report: &ExchangeReport,
        delivery_id: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Keeps a message that must not be applied where an operator looks
    /// (the dead-letter queue), with the reason: a well-signed webhook whose
    /// payload is malformed, a report the exchange does not confirm.
    /// `delivery_id` (the webhook's id, the queue message's id) keeps it
    /// there once however often it is delivered.
    fn set_aside(
        &self,
        payload: &str,
        reason: &str,
        delivery_id: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
