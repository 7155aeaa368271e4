//! The queue between the webhook receiver and the fill processor. Delivery is
//! at least once and unordered; the processor makes that harmless.

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
    fn send(&self, report: &ExchangeReport) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Keeps a message that can never be processed (a well-signed webhook
    /// whose payload is malformed) where an operator looks: the dead-letter
    /// queue, with the reason.
    fn set_aside(
        &self,
        payload: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
}
