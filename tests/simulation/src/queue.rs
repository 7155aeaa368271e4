//! The fill queue as SQS FIFO behaves: one message group per order,
//! delivered in order, a group held back while a message of it is in
//! flight, a retry of the same delivery dropped within the de-duplication
//! window, a message not deleted coming back after the visibility timeout,
//! and moved to the dead-letter queue after `MAX_RECEIVES` receives. Also
//! where the fill processor sets reports aside.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use app::fill_queue::{FillQueue, QueueError};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use domain::order::ExchangeReport;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::faults::{Call, Invocation};

/// How long a received message stays hidden (the queue's visibility timeout).
pub const VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// Receives before a message moves to the dead-letter queue (`maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;
/// Largest batch the event source mapping hands the processor.
pub const MAX_BATCH: usize = 10;
/// SQS FIFO drops a message whose de-duplication id it took this recently.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60_000;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub group: String,
    pub body: String,
    pub receives: u32,
    pub visible_at_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    /// In the order they were sent.
    messages: Vec<Message>,
    dedup: HashMap<String, u64>,
    /// Moved after too many receives.
    dead_letters: Vec<Message>,
    /// Set aside by the webhook or the processor: (payload, reason).
    set_aside: Vec<(String, String)>,
    set_aside_ids: BTreeSet<String>,
    next_id: u64,
}

/// The queue, shared by the webhook receivers and the processors. Clones share it.
#[derive(Clone)]
pub struct SimQueue {
    state: Arc<Mutex<State>>,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl SimQueue {
    pub fn new(rng: ChaCha8Rng) -> Self {
        SimQueue {
            state: Arc::default(),
            rng: Arc::new(Mutex::new(rng)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends unless the same delivery was taken within the window.
    fn send(&self, group: &str, body: String, delivery_id: &str, now_ms: u64) {
        let mut state = self.lock();
        if let Some(at) = state.dedup.get(delivery_id) {
            if now_ms < at + DEDUP_WINDOW_MS {
                return;
            }
        }
        state.dedup.insert(delivery_id.to_owned(), now_ms);
        state.next_id += 1;
        let id = state.next_id;
        state.messages.push(Message {
            id,
            group: group.to_owned(),
            body,
            receives: 0,
            visible_at_ms: now_ms,
        });
    }

    fn keep_aside(&self, payload: &str, reason: &str, delivery_id: &str) {
        let mut state = self.lock();
        if state.set_aside_ids.insert(delivery_id.to_owned()) {
            state
                .set_aside
                .push((payload.to_owned(), reason.to_owned()));
        }
    }

    /// Up to `max` messages as FIFO hands them out: per group, in order,
    /// none of a group with a message in flight. A message received too
    /// often moves to the dead-letter queue instead.
    pub fn receive(&self, now_ms: u64, max: usize) -> Vec<Message> {
        let mut state = self.lock();
        let mut redriven = Vec::new();
        state.messages.retain(|m| {
            let dead = m.visible_at_ms <= now_ms && m.receives >= MAX_RECEIVES;
            if dead {
                redriven.push(m.clone());
            }
            !dead
        });
        state.dead_letters.extend(redriven);
        let mut blocked: BTreeSet<String> = BTreeSet::new();
        let mut taken = Vec::new();
        for message in state.messages.iter_mut() {
            if taken.len() >= max {
                break;
            }
            if blocked.contains(&message.group) {
                continue;
            }
            if message.visible_at_ms > now_ms {
                // In flight: nothing behind it in its group goes out.
                blocked.insert(message.group.clone());
                continue;
            }
            message.receives += 1;
            message.visible_at_ms = now_ms + VISIBILITY_TIMEOUT_MS;
            taken.push(message.clone());
        }
        taken
    }

    /// Deletes a processed message; now and then the delete is lost and
    /// the message comes back after its timeout (at least once).
    pub fn delete(&self, id: u64, lose_chance: f64) {
        let lost = lose_chance > 0.0
            && self
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .gen_bool(lose_chance);
        if !lost {
            self.lock().messages.retain(|m| m.id != id);
        }
    }

    /// When the next message can be received (the head of its group
    /// visible), if any is waiting.
    pub fn next_visible_ms(&self) -> Option<u64> {
        let state = self.lock();
        let mut heads: BTreeMap<&str, u64> = BTreeMap::new();
        for message in &state.messages {
            heads
                .entry(message.group.as_str())
                .or_insert(message.visible_at_ms);
        }
        heads.into_values().min()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().messages.is_empty()
    }

    /// What an operator does when the dead-letter alarm fires (the
    /// runbook's `dead-letters --redrive`): every dead letter goes back to
    /// the end of its group, as a new message. Answers how many.
    pub fn redrive(&self, now_ms: u64) -> usize {
        let mut state = self.lock();
        let dead = std::mem::take(&mut state.dead_letters);
        let count = dead.len();
        for message in dead {
            state.next_id += 1;
            let id = state.next_id;
            state.messages.push(Message {
                id,
                receives: 0,
                visible_at_ms: now_ms,
                ..message
            });
        }
        count
    }

    pub fn dead_letters(&self) -> Vec<Message> {
        self.lock().dead_letters.clone()
    }

    pub fn set_aside(&self) -> Vec<(String, String)> {
        self.lock().set_aside.clone()
    }

    /// A batch as the event source mapping hands it to the processor.
    pub fn event(batch: &[Message]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = batch
            .iter()
            .map(|m| {
                let mut message = SqsMessage::default();
                message.message_id = Some(message_id(m.id));
                message.body = Some(m.body.clone());
                message.attributes = HashMap::from([("MessageGroupId".into(), m.group.clone())]);
                message
            })
            .collect();
        event
    }

    /// Per group, how many messages wait (for the trace).
    pub fn depth(&self) -> BTreeMap<String, usize> {
        let mut depth = BTreeMap::new();
        for message in &self.lock().messages {
            *depth.entry(message.group.clone()).or_default() += 1;
        }
        depth
    }
}

pub fn message_id(id: u64) -> String {
    format!("m{id}")
}

/// The queue as one invocation (the webhook receiver, the processor) sees it.
pub struct QueueClient {
    pub queue: SimQueue,
    pub invocation: Arc<Invocation>,
}

fn unavailable(message: String) -> QueueError {
    QueueError::Unavailable(message)
}

impl FillQueue for QueueClient {
    async fn send(&self, report: &ExchangeReport, delivery_id: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(report)
            .map_err(|e| QueueError::Unavailable(format!("cannot serialise the report: {e}")))?;
        let group = report.client_order_id().to_string();
        let now = self.invocation.shared().now_ms();
        let work = async {
            self.queue.send(&group, body, delivery_id, now);
            Ok(())
        };
        self.invocation
            .call(Call::QueueSend, work, unavailable, unavailable)
            .await
    }

    async fn set_aside(
        &self,
        payload: &str,
        reason: &str,
        delivery_id: &str,
    ) -> Result<(), QueueError> {
        let work = async {
            self.queue.keep_aside(payload, reason, delivery_id);
            Ok(())
        };
        self.invocation
            .call(Call::QueueSetAside, work, unavailable, unavailable)
            .await
    }
}
