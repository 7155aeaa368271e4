//! The venue's webhooks as a real venue sends them: each event is signed
//! (Standard Webhooks) and posted to the platform's receiver, the same
//! `fill_webhook::router` the Lambda serves. An attempt may never arrive or
//! be answered with an error; the venue then tries again later, with
//! backoff, so deliveries overtake each other (reordering). A delivered
//! webhook may come again (the venue never saw the acknowledgement), and
//! now and then the venue gives up on one for good: the platform must then
//! notice what is missing by itself.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use exchange_sim::ExchangeEvent;
use fill_webhook::signature::{Secret, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use http::{Request, StatusCode};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tower::ServiceExt;

use crate::scenario::{Scenario, WebhookFaults};

/// The shared secret of the venue and the receiver (test material only).
pub const SECRET: &str = "whsec_c2ltdWxhdGlvbi13ZWJob29rLXNlY3JldC0zMmJ5dGU=";
/// The venue waits this long before its first retry; it doubles per attempt.
const FIRST_RETRY_MS: u64 = 1_000;
/// ... up to this.
pub const MAX_RETRY_MS: u64 = 10 * 60_000;

pub fn secret() -> Secret {
    Secret::parse(SECRET).expect("a valid test secret")
}

/// One webhook on its way, and how many attempts it took so far.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: ExchangeEvent,
    pub attempt: u32,
}

pub struct Webhooks {
    /// By due time (then by scheduling order).
    pending: BTreeMap<(u64, u64), Delivery>,
    scheduled: u64,
    faults: WebhookFaults,
    /// A venue's second report of an execution with other terms (kind
    /// `exec_id_reused`), held until the true one was delivered: it
    /// contradicts a record the platform holds. Sent first, it would be the
    /// only record, and no receiver can tell it is wrong without asking the
    /// venue about every execution (`SIM_ALTERED_FIRST=1` lets it overtake;
    /// see the simulation's report).
    altered: BTreeMap<String, Delivery>,
    altered_may_overtake: bool,
    /// Webhooks the venue gave up on.
    pub lost_for_good: usize,
}

/// The suffix of the event id the venue gives a second, altered report.
const ALTERED_SUFFIX: &str = "_alt";

impl Webhooks {
    pub fn new(scenario: &Scenario) -> Self {
        Webhooks {
            pending: BTreeMap::new(),
            scheduled: 0,
            faults: scenario.webhooks.clone(),
            altered: BTreeMap::new(),
            altered_may_overtake: std::env::var_os("SIM_ALTERED_FIRST").is_some(),
            lost_for_good: 0,
        }
    }

    fn push(&mut self, due_ms: u64, delivery: Delivery) {
        self.scheduled += 1;
        self.pending.insert((due_ms, self.scheduled), delivery);
    }

    /// The venue's new events (times on its clock, `offset_ms` ahead of
    /// ours) become deliveries.
    pub fn schedule(
        &mut self,
        events: Vec<ExchangeEvent>,
        offset_ms: i64,
        rng: &mut ChaCha8Rng,
        faults: bool,
    ) {
        for event in events {
            if faults && self.faults.give_up > 0.0 && rng.gen_bool(self.faults.give_up) {
                self.lost_for_good += 1;
                continue;
            }
            if !self.altered_may_overtake {
                if let Some(original) = event.event_id.strip_suffix(ALTERED_SUFFIX) {
                    let original = original.to_owned();
                    self.altered
                        .insert(original, Delivery { event, attempt: 0 });
                    continue;
                }
            }
            let ours = event.occurred_at.saturating_add_signed(-offset_ms);
            let due = ours + rng.gen_range(0..=self.faults.max_latency_ms);
            self.push(due, Delivery { event, attempt: 0 });
        }
    }

    /// Every delivery due by `now_ms`, earliest first.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<Delivery> {
        let mut due = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            due.push(entry.remove());
        }
        due
    }

    /// The venue tries again later.
    pub fn retry(&mut self, mut delivery: Delivery, now_ms: u64, rng: &mut ChaCha8Rng) {
        delivery.attempt += 1;
        let backoff = (FIRST_RETRY_MS << delivery.attempt.min(20)).min(MAX_RETRY_MS);
        let due = now_ms + backoff / 2 + rng.gen_range(0..=backoff / 2);
        self.push(due, delivery);
    }

    /// `delivery` reached the platform: an altered report held behind it goes now.
    pub fn delivered(&mut self, delivery: &Delivery, now_ms: u64, rng: &mut ChaCha8Rng) {
        if let Some(altered) = self.altered.remove(&delivery.event.event_id) {
            let due = now_ms + rng.gen_range(0..=self.faults.max_latency_ms);
            self.push(due, altered);
        }
    }

    /// The venue sends it again although it was acknowledged (a lost answer).
    pub fn again(&mut self, delivery: Delivery, now_ms: u64, rng: &mut ChaCha8Rng) {
        let due = now_ms + rng.gen_range(0..=30_000);
        self.push(due, delivery);
    }

    pub fn loses_attempt(&self, rng: &mut ChaCha8Rng) -> bool {
        self.faults.lose_attempt > 0.0 && rng.gen_bool(self.faults.lose_attempt)
    }

    pub fn duplicates(&self, rng: &mut ChaCha8Rng) -> bool {
        self.faults.duplicate > 0.0 && rng.gen_bool(self.faults.duplicate)
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        self.pending.keys().next().map(|(at, _)| *at)
    }

    /// Nothing left to deliver (an altered report whose original never
    /// went out is not sent either).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Posts one signed delivery to `router` at the venue's time `venue_now_ms`.
pub async fn post(router: axum::Router, event: &ExchangeEvent, venue_now_ms: u64) -> StatusCode {
    let body = serde_json::to_vec(event).expect("an event serialises");
    let timestamp = venue_now_ms / 1_000;
    let signature = secret().sign(&event.event_id, timestamp, &body);
    let request = Request::post(fill_webhook::WEBHOOK_PATH)
        .header("content-type", "application/json")
        .header(HEADER_ID, &event.event_id)
        .header(HEADER_TIMESTAMP, timestamp.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(Body::from(body))
        .expect("a valid request");
    match router.oneshot(request).await {
        Ok(response) => response.status(),
        Err(never) => match never {},
    }
}

/// The receiver's tolerance for the venue's timestamps.
pub fn tolerance() -> Duration {
    Duration::from_secs(fill_webhook::signature::DEFAULT_TOLERANCE_SECONDS)
}
