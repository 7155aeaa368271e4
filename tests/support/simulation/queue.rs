//! The fill queue as SQS behaves: at-least-once, unordered, a failed message
//! comes back after its visibility timeout, and moves to the dead-letter
//! queue after `MAX_RECEIVES` receives.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How long a received message stays hidden (the queue's visibility timeout).
pub const VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// Receives before a message moves to the dead-letter queue (`maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;
/// Largest batch the event source mapping hands the processor.
pub const MAX_BATCH: usize = 10;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub body: String,
    pub receives: u32,
    pub visible_at_ms: u64,
}

#[derive(Debug, Default)]
pub struct SimQueue {
    messages: Vec<Message>,
    pub dead_letters: Vec<Message>,
    next_id: u64,
}

impl SimQueue {
    pub fn send(&mut self, body: String, now_ms: u64) {
        self.next_id += 1;
        self.messages.push(Message {
            id: self.next_id,
            body,
            receives: 0,
            visible_at_ms: now_ms,
        });
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn visible(&self, now_ms: u64) -> usize {
        self.messages
            .iter()
            .filter(|m| m.visible_at_ms <= now_ms)
            .count()
    }

    /// Up to `max` visible messages, in a random order; they are hidden
    /// until the visibility timeout passes.
    pub fn receive(&mut self, now_ms: u64, max: usize, rng: &mut ChaCha8Rng) -> Vec<Message> {
        let mut visible: Vec<usize> = (0..self.messages.len())
            .filter(|&i| self.messages[i].visible_at_ms <= now_ms)
            .collect();
        visible.shuffle(rng);
        visible.truncate(max);
        visible
            .into_iter()
            .map(|i| {
                let message = &mut self.messages[i];
                message.receives += 1;
                message.visible_at_ms = now_ms + VISIBILITY_TIMEOUT_MS;
                message.clone()
            })
            .collect()
    }

    /// Deletes a processed message, except that now and then SQS delivers
    /// it again anyway (at-least-once).
    pub fn delete(&mut self, id: u64, rng: &mut ChaCha8Rng, redeliver_chance: f64) {
        if rng.gen_bool(redeliver_chance) {
            return;
        }
        self.messages.retain(|m| m.id != id);
    }

    /// A failed message stays hidden until its timeout, or is dead-lettered.
    pub fn failed(&mut self, id: u64) {
        if let Some(i) = self.messages.iter().position(|m| m.id == id) {
            if self.messages[i].receives >= MAX_RECEIVES {
                let message = self.messages.remove(i);
                self.dead_letters.push(message);
            }
        }
    }
}
