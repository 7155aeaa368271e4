//! Lambda's SQS event source mapping, on the local stack: receive a batch,
//! hand it to the function as an `SqsEvent`, delete what succeeded, and leave
//! the failures named in the `SqsBatchResponse` to the visibility timeout,
//! after which SQS delivers them again, until the queue's redrive policy moves
//! them to the dead-letter queue.

use std::future::Future;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

/// Largest batch Lambda hands a function from a standard queue by default.
pub const MAX_BATCH_SIZE: i32 = 10;

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
    pub async fn poll_once<F, Fut>(&self, function: F) -> Result<Polled, PollError>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let received = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
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
        for message in &messages {
            let mut record = SqsMessage::default();
            record.message_id = message.message_id.clone();
            record.receipt_handle = message.receipt_handle.clone();
            record.body = message.body.clone();
            record.md5_of_body = message.md5_of_body.clone();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(self.queue_arn.clone());
            record.aws_region = Some("us-east-1".into());
            for (name, value) in message.attributes().into_iter().flatten() {
                record
                    .attributes
                    .insert(name.as_str().to_owned(), value.clone());
            }
            event.records.push(record);
        }
        let response = function(event).await;
        let failed: Vec<&str> = response
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
