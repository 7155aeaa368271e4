//! Lambda's SQS event source mapping, on the local stack: receive a batch,
//! hand it to the function as an `SqsEvent` (each record with the system
//! attributes Lambda fills in, `MessageGroupId` of a FIFO queue included,
//! and the message attributes), delete what succeeded, and leave the
//! failures named in the `SqsBatchResponse` to the visibility timeout, after
//! which SQS delivers them again, until the queue's redrive policy moves
//! them to the dead-letter queue.

use std::future::Future;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

/// Largest batch Lambda hands a function from a queue by default.
pub const MAX_BATCH_SIZE: i32 = 10;

/// Region named in the records (the local stack's).
const REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("SQS {operation}: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub failed: usize,
}

/// What a function answers for a batch: the `SqsBatchResponse` alone, or
/// with something of its own beside it (the fill processor's counts).
pub trait BatchAnswer {
    fn response(&self) -> &SqsBatchResponse;
}

impl BatchAnswer for SqsBatchResponse {
    fn response(&self) -> &SqsBatchResponse {
        self
    }
}

impl<T> BatchAnswer for (SqsBatchResponse, T) {
    fn response(&self) -> &SqsBatchResponse {
        &self.0
    }
}

/// The record Lambda builds from one received message: body, ids, the
/// system attributes under their SQS names (`MessageGroupId`,
/// `MessageDeduplicationId`, `SequenceNumber`, `ApproximateReceiveCount`,
/// `SentTimestamp`, ...), and the message attributes.
pub fn lambda_record(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.md5_of_body = message.md5_of_body.clone();
    record.md5_of_message_attributes = message.md5_of_message_attributes.clone();
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    for (name, value) in message.attributes().into_iter().flatten() {
        record
            .attributes
            .insert(name.as_str().to_owned(), value.clone());
    }
    for (name, value) in message.message_attributes().into_iter().flatten() {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some(value.data_type().to_owned());
        attribute.string_value = value.string_value().map(str::to_owned);
        attribute.binary_value = value.binary_value().map(|b| base64_data(b.as_ref()));
        attribute.string_list_values = value.string_list_values().to_vec();
        attribute.binary_list_values = value
            .binary_list_values()
            .iter()
            .map(|b| base64_data(b.as_ref()))
            .collect();
        record.message_attributes.insert(name.clone(), attribute);
    }
    record
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

pub struct EventSourceMapping {
    client: Client,
    queue_url: String,
    queue_arn: String,
    batch_size: i32,
    wait_seconds: i32,
}

impl EventSourceMapping {
    pub fn new(
        client: Client,
        queue_url: &str,
        queue_arn: &str,
        batch_size: i32,
        wait_seconds: i32,
    ) -> Self {
        EventSourceMapping {
            client,
            queue_url: queue_url.to_owned(),
            queue_arn: queue_arn.to_owned(),
            batch_size: batch_size.clamp(1, MAX_BATCH_SIZE),
            wait_seconds,
        }
    }

    /// Receives one batch (long polling) and hands it to `function`.
    pub async fn poll_once<F, Fut, R>(&self, function: F) -> Result<Polled, PollError>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = R>,
        R: BatchAnswer,
    {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| PollError::Sqs {
                operation: "ReceiveMessage",
                message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
            })?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Polled::default());
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| lambda_record(m, &self.queue_arn, REGION))
            .collect();
        let answer = function(event).await;
        let failed: Vec<&str> = answer
            .response()
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| PollError::Sqs {
                    operation: "DeleteMessageBatch",
                    message: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
                })?;
        }
        Ok(Polled {
            received: messages.len(),
            failed: failed.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    #[test]
    fn a_record_carries_the_system_and_message_attributes_as_lambda_does() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("r-1")
            .body("{}")
            .attributes(MessageSystemAttributeName::MessageGroupId, "order-1")
            .attributes(MessageSystemAttributeName::MessageDeduplicationId, "d-1")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("execution")
                    .build()
                    .unwrap(),
            )
            .build();
        let record = lambda_record(&message, "arn:aws:sqs:us-east-1:0:q.fifo", "us-east-1");
        assert_eq!(record.attributes["MessageGroupId"], "order-1");
        assert_eq!(record.attributes["MessageDeduplicationId"], "d-1");
        assert_eq!(record.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            record.message_attributes["kind"].string_value.as_deref(),
            Some("execution")
        );
        assert_eq!(
            record.message_attributes["kind"].data_type.as_deref(),
            Some("String")
        );
        assert_eq!(record.message_id.as_deref(), Some("m-1"));
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:0:q.fifo")
        );
    }
}
