//! Webhook delivery: each event is POSTed to the configured URL, signed per
//! Standard Webhooks, and retried with exponential backoff until a 2xx (up to
//! [`WebhookConfig::max_attempts`]). The `webhook-id` is the event id, the same
//! on every retry and every duplicate; each attempt is signed afresh with its
//! own timestamp.
//!
//! Deliveries run concurrently, so, as with real webhook senders, their order
//! is not guaranteed; the `reorder` fault makes an inversion certain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::faults::{FaultInjector, WebhookDecision};
use crate::order::ExchangeEvent;
use crate::signature::{self, Secret};
use crate::time::Clock;

/// Most deliveries in flight at once; more wait for a slot.
pub const MAX_CONCURRENT_DELIVERIES: usize = 256;
/// How often a delivery waiting out an outage looks again (so a heal takes
/// effect quickly).
const OUTAGE_POLL_MS: u64 = 50;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: Secret,
    /// Attempts per delivery before giving up (counted in the audit).
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Timeout of one attempt.
    pub attempt_timeout_ms: u64,
    /// A reordered event waits at most this long for a successor to overtake it.
    pub reorder_hold_ms: u64,
}

impl WebhookConfig {
    pub fn new(url: String, secret: Secret) -> WebhookConfig {
        WebhookConfig {
            url,
            secret,
            max_attempts: 30,
            initial_backoff_ms: 100,
            max_backoff_ms: 5_000,
            attempt_timeout_ms: 5_000,
            reorder_hold_ms: 1_000,
        }
    }
}

/// Hands events to the delivery task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    tx: mpsc::UnboundedSender<ExchangeEvent>,
}

impl WebhookSender {
    /// Queues an event for delivery; never blocks (the engine lock is held).
    pub fn send(&self, event: ExchangeEvent) {
        if self.tx.send(event).is_err() {
            tracing::warn!("webhook dispatcher has stopped; event not delivered");
        }
    }
}

#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    body: axum::body::Bytes,
    copies: u8,
    delay_ms: u64,
}

struct Shared {
    config: WebhookConfig,
    faults: Arc<Mutex<FaultInjector>>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
}

/// Starts the dispatcher task (needs a Tokio runtime).
pub fn spawn(
    config: WebhookConfig,
    faults: Arc<Mutex<FaultInjector>>,
    clock: Arc<dyn Clock>,
) -> Result<WebhookSender, reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(config.attempt_timeout_ms))
        .build()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        config,
        faults,
        clock,
        client,
    });
    tokio::spawn(dispatch(shared, rx));
    Ok(WebhookSender { tx })
}

async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<ExchangeEvent>) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
    // A reordered delivery waits here for the next one to overtake it.
    let mut held: Option<Delivery> = None;
    let hold = Duration::from_millis(shared.config.reorder_hold_ms);
    loop {
        let next = match held {
            Some(_) => match tokio::time::timeout(hold, rx.recv()).await {
                Ok(ev) => ev,
                Err(_) => {
                    let lone = held.take().into_iter().collect();
                    start(&shared, &slots, lone).await;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(event) = next else {
            start(&shared, &slots, held.take().into_iter().collect()).await;
            return;
        };
        let body = match serde_json::to_vec(&event) {
            Ok(b) => axum::body::Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise webhook event");
                continue;
            }
        };
        let decision = lock(&shared.faults).decide_webhook();
        let WebhookDecision::Deliver {
            copies,
            reorder,
            delay_ms,
        } = decision
        else {
            tracing::info!(event_id = %event.event_id, "webhook dropped by fault injection");
            continue;
        };
        let delivery = Delivery {
            id: event.event_id,
            body,
            copies,
            delay_ms,
        };
        if reorder && held.is_none() {
            held = Some(delivery);
            continue;
        }
        // This one first, then the held one after it has been delivered.
        let mut chain = vec![delivery];
        chain.extend(held.take());
        start(&shared, &slots, chain).await;
    }
}

fn lock(faults: &Mutex<FaultInjector>) -> std::sync::MutexGuard<'_, FaultInjector> {
    // A panic elsewhere must not stop deliveries; the injector stays usable.
    faults.lock().unwrap_or_else(|p| p.into_inner())
}

/// Delivers `chain` one after the other in a task of its own.
async fn start(shared: &Arc<Shared>, slots: &Arc<Semaphore>, chain: Vec<Delivery>) {
    if chain.is_empty() {
        return;
    }
    let Ok(permit) = slots.clone().acquire_owned().await else {
        return;
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        for d in chain {
            if d.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(d.delay_ms)).await;
            }
            for _ in 0..d.copies {
                deliver(&shared, &d).await;
            }
        }
        drop(permit);
    });
}

async fn deliver(shared: &Shared, d: &Delivery) {
    let cfg = &shared.config;
    let mut backoff_ms = cfg.initial_backoff_ms;
    let mut waited_outage = false;
    let mut attempts = 0;
    while attempts < cfg.max_attempts {
        let now_ms = shared.clock.now_ms();
        let outage_until = lock(&shared.faults).outage_until_ms();
        if now_ms < outage_until {
            if !waited_outage {
                lock(&shared.faults).webhook_counters_mut().outage_deferred += 1;
                waited_outage = true;
            }
            let wait = (outage_until - now_ms).min(OUTAGE_POLL_MS);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            continue;
        }
        attempts += 1;
        let ok = attempt(shared, d, now_ms / 1000).await;
        {
            let mut f = lock(&shared.faults);
            let c = f.webhook_counters_mut();
            c.attempts += 1;
            if ok {
                c.delivered += 1;
                return;
            }
            c.failed_attempts += 1;
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = backoff_ms.saturating_mul(2).min(cfg.max_backoff_ms);
    }
    lock(&shared.faults).webhook_counters_mut().gave_up += 1;
    tracing::warn!(webhook_id = %d.id, attempts, "webhook delivery abandoned");
}

async fn attempt(shared: &Shared, d: &Delivery, timestamp_s: u64) -> bool {
    let cfg = &shared.config;
    let sig = signature::sign(&cfg.secret, &d.id, timestamp_s, &d.body);
    let result = shared
        .client
        .post(&cfg.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(signature::HEADER_ID, &d.id)
        .header(signature::HEADER_TIMESTAMP, timestamp_s.to_string())
        .header(signature::HEADER_SIGNATURE, sig)
        .body(d.body.clone())
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            tracing::debug!(webhook_id = %d.id, status = %r.status(), "webhook refused");
            false
        }
        Err(e) => {
            tracing::debug!(webhook_id = %d.id, error = %e, "webhook attempt failed");
            false
        }
    }
}
