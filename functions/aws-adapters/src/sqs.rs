//! The SQS `FillQueue`: reports go to the FIFO fill queue as JSON, one
//! message group per order (`MessageGroupId` = client order id), so one
//! order's reports are applied one at a time and in the order received,
//! while different orders run in parallel; the venue's delivery id is the
//! `MessageDeduplicationId`, so a webhook retried within five minutes is
//! queued once (the permanent de-duplication is the execution's record).
//! What must not be applied goes to the dead-letter queue with its reason.
//!
//! A send counts only when SQS answered with a `MessageId`; anything else is
//! `Unavailable`, so the webhook answers `503` and the exchange retries.

use app::fill_queue::{FillQueue, QueueError};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use domain::order::ExchangeReport;
use serde::Serialize;

/// Message attribute naming the order a report is about (for operators
/// browsing the queue; the processor reads the body).
pub const ATTRIBUTE_CLIENT_ORDER_ID: &str = "client_order_id";
/// Message attribute naming what the message is: `execution`, `final` or `set_aside`.
pub const ATTRIBUTE_KIND: &str = "kind";
/// Message attribute of a set-aside message: why it was set aside.
pub const ATTRIBUTE_REASON: &str = "reason";
/// Message groups of set-aside messages on the (FIFO) dead-letter queue
/// start with this; each message has a group of its own, so one an operator
/// leaves in place never hides the others behind it.
pub const SET_ASIDE_GROUP: &str = "set-aside";
/// Longest reason kept in a message attribute.
const MAX_REASON_CHARS: usize = 256;
/// Most characters of a set-aside payload kept. JSON may escape a character
/// into six bytes; 32 Ki of them stay inside SQS's 256 KiB message limit.
pub const MAX_SET_ASIDE_PAYLOAD_CHARS: usize = 32 * 1024;

#[derive(Debug, Clone)]
pub struct SqsFillQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_queue_url: String,
}

/// What `set_aside` puts on the dead-letter queue.
#[derive(Debug, Serialize)]
struct SetAsideBody<'a> {
    set_aside: SetAside<'a>,
}

#[derive(Debug, Serialize)]
struct SetAside<'a> {
    reason: &'a str,
    payload: &'a str,
    /// Set when the payload was cut to [`MAX_SET_ASIDE_PAYLOAD_CHARS`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

impl<'a> SetAside<'a> {
    fn new(reason: &'a str, payload: &'a str) -> Self {
        let cut = payload
            .char_indices()
            .nth(MAX_SET_ASIDE_PAYLOAD_CHARS)
            .map(|(at, _)| at);
        SetAside {
            reason,
            payload: cut.map_or(payload, |at| &payload[..at]),
            truncated: cut.is_some(),
        }
    }
}

impl SqsFillQueue {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dead_letter_queue_url: impl Into<String>,
    ) -> Self {
        SqsFillQueue {
            client,
            queue_url: queue_url.into(),
            dead_letter_queue_url: dead_letter_queue_url.into(),
        }
    }

    async fn send_message(
        &self,
        queue_url: &str,
        body: String,
        group: &str,
        deduplication: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String, QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(deduplication_id(deduplication));
        for (name, value) in attributes {
            request = request.message_attributes(*name, string_attribute(value)?);
        }
        let output = request.send().await.map_err(|e| {
            QueueError::Unavailable(format!("SendMessage failed: {}", DisplayErrorContext(&e)))
        })?;
        // No MessageId means SQS did not say it stored the message.
        output.message_id().map(str::to_owned).ok_or_else(|| {
            QueueError::Unavailable("SendMessage answered without a MessageId".into())
        })
    }
}

/// SQS takes at most 128 characters of a restricted set: a digest fits any id.
fn deduplication_id(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(format!("message attribute: {e}")))
}

fn kind(report: &ExchangeReport) -> &'static str {
    match report {
        ExchangeReport::Execution { .. } => "execution",
        ExchangeReport::Final { .. } => "final",
    }
}

/// Reads a message body written by [`SqsFillQueue::send`] (for the processor).
pub fn parse_report(body: &str) -> Result<ExchangeReport, serde_json::Error> {
    serde_json::from_str(body)
}

impl FillQueue for SqsFillQueue {
    async fn send(&self, report: &ExchangeReport, delivery_id: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(report)
            .map_err(|e| QueueError::Unavailable(format!("cannot serialise the report: {e}")))?;
        let order = report.client_order_id().as_str();
        let attributes = [
            (ATTRIBUTE_CLIENT_ORDER_ID, order),
            (ATTRIBUTE_KIND, kind(report)),
        ];
        let message_id = self
            .send_message(&self.queue_url, body, order, delivery_id, &attributes)
            .await?;
        tracing::debug!(%message_id, client_order_id = %report.client_order_id(), "report queued");
        Ok(())
    }

    async fn set_aside(
        &self,
        payload: &str,
        reason: &str,
        delivery_id: &str,
    ) -> Result<(), QueueError> {
        // JSON escapes control characters, so any payload makes a valid SQS body.
        let body = serde_json::to_string(&SetAsideBody {
            set_aside: SetAside::new(reason, payload),
        })
        .map_err(|e| QueueError::Unavailable(format!("cannot serialise the message: {e}")))?;
        let reason_attribute: String = reason.chars().take(MAX_REASON_CHARS).collect();
        let attributes = [
            (ATTRIBUTE_KIND, "set_aside"),
            (ATTRIBUTE_REASON, reason_attribute.as_str()),
        ];
        let group = format!("{SET_ASIDE_GROUP}-{}", &deduplication_id(delivery_id)[..32]);
        let message_id = self
            .send_message(
                &self.dead_letter_queue_url,
                body.clone(),
                &group,
                delivery_id,
                &attributes,
            )
            .await?;
        tracing::debug!(%message_id, reason, "payload set aside");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::order::{ExecId, Execution, FinalReport, FinalStatus, OrderId};
    use domain::{Price, Quantity};

    fn order_id() -> OrderId {
        OrderId::parse("0190a6e4-5b7e-7c2a-9f1e-3b2c4d5e6f70").expect("order id")
    }

    #[test]
    fn reports_round_trip_through_the_message_body() {
        let reports = [
            ExchangeReport::Execution {
                client_order_id: order_id(),
                execution: Execution {
                    exec_id: ExecId::parse("exec-1").expect("exec id"),
                    exchange_order_id: "x-1".into(),
                    quantity: Quantity::new(7).expect("quantity"),
                    price: Price::parse("187.25").expect("price"),
                    cum_quantity: Some(7),
                },
            },
            ExchangeReport::Final {
                client_order_id: order_id(),
                exchange_order_id: "x-1".into(),
                report: FinalReport {
                    status: FinalStatus::Cancelled,
                    cum_quantity: 0,
                },
            },
        ];
        for report in reports {
            let body = serde_json::to_string(&report).expect("serialise");
            assert_eq!(parse_report(&body).expect("parse"), report);
        }
    }

    #[test]
    fn deduplication_ids_fit_sqs_whatever_the_delivery_id() {
        let id = deduplication_id(&"webhook id with spaces and ✓".repeat(20));
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            id,
            deduplication_id(&"webhook id with spaces and ✓".repeat(20))
        );
    }

    #[test]
    fn a_set_aside_body_keeps_any_payload_as_text() {
        let payload = "not json \u{0}\n\"quoted\"";
        let body = serde_json::to_string(&SetAsideBody {
            set_aside: SetAside::new("bad", payload),
        })
        .expect("serialise");
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["set_aside"]["payload"], payload);
        assert_eq!(value["set_aside"]["reason"], "bad");
        assert_eq!(value["set_aside"].get("truncated"), None);
        assert!(!body.contains('\u{0}'));
    }

    #[test]
    fn a_set_aside_body_stays_inside_the_sqs_limit() {
        // The worst case: every character escaped as `\u0000`.
        let payload = "\u{1}".repeat(64 * 1024);
        let body = serde_json::to_string(&SetAsideBody {
            set_aside: SetAside::new("bad", &payload),
        })
        .expect("serialise");
        assert!(body.len() < 256 * 1024, "{} bytes", body.len());
        let value: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(value["set_aside"]["truncated"], true);
        let kept = value["set_aside"]["payload"].as_str().expect("text");
        assert_eq!(kept.chars().count(), MAX_SET_ASIDE_PAYLOAD_CHARS);
    }
}
