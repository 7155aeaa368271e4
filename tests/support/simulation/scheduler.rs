//! One step of the run, chosen by the seed: a client request (new, retried
//! with its key, or a key reused for another body), a cancel, the exchange's
//! webhooks reaching the queue, a batch delivered to the fill processor, a
//! reconciler run (or two overlapping), two invocations interleaved, or time
//! passing.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::order::{OrderRequest, OrderType};
use domain::{Price, Quantity, Side};
use fill_webhook::payload::{parse, Parsed};
use futures::future::join;
use rand::Rng;
use tokio::runtime::Runtime;

use super::queue::{Message, MAX_BATCH};
use super::world::{ClientRequest, World, SYMBOLS};
use app::exchange::Exchange;
use app::orders::OrderError;

/// A client gives up on a request after this many attempts (the order, if
/// any, is still finished by recovery).
pub const MAX_CLIENT_ATTEMPTS: u32 = 4;
/// Largest order, in shares.
pub const MAX_ORDER_SHARES: u64 = 40;
/// Limit prices within this many basis points of the quote, either way.
pub const LIMIT_SPREAD_BPS: u64 = 300;
/// Time passing in one small step, at most.
pub const SMALL_STEP_MS: u64 = 2_000;
/// Time passing in one big step, at most (past deadlines and backoffs).
pub const BIG_STEP_MS: u64 = 180_000;
/// Chances of webhook delivery faults, while faults are on.
const WEBHOOK_DUPLICATE: f64 = 0.1;
const WEBHOOK_LOST: f64 = 0.03;
/// Chance that SQS delivers a processed message again.
const SQS_REDELIVER: f64 = 0.05;
/// Chance that two batches are processed at the same time.
const CONCURRENT_BATCHES: f64 = 0.4;

/// What a step found wrong with an answer a client saw.
pub type Findings = Vec<String>;

pub fn step(world: &mut World, rt: &Runtime) -> Findings {
    match world.rng.gen_range(0..100) {
        0..=17 => new_request(world, rt),
        18..=27 => retry_request(world, rt),
        28..=29 => reuse_key(world, rt),
        30..=34 => cancel(world, rt),
        35..=49 => webhooks(world),
        50..=64 => deliver(world, rt),
        65..=71 => reconcile(world, rt, 1),
        72..=74 => reconcile(world, rt, 2),
        75..=79 => interleaved(world, rt),
        80..=89 => pass_time(world, SMALL_STEP_MS),
        90..=95 => jump_to_next_fill(world),
        _ => pass_time(world, BIG_STEP_MS),
    }
}

fn random_request(world: &mut World, rt: &Runtime) -> OrderRequest {
    let symbol = world.rng.gen_range(0..SYMBOLS.len());
    let symbol = world.catalog.symbol(SYMBOLS[symbol]).expect("listed");
    let side = if world.rng.gen_bool(0.5) {
        Side::Buy
    } else {
        Side::Sell
    };
    let quantity = Quantity::new(world.rng.gen_range(1..=MAX_ORDER_SHARES)).expect("positive");
    if world.rng.gen_bool(0.4) {
        return OrderRequest::new(symbol, side, OrderType::Market, quantity, None)
            .expect("a market order");
    }
    let quote = rt
        .block_on(world.exchange.reference_price(&symbol))
        .expect("a listed symbol has a quote")
        .cents();
    let spread = quote * LIMIT_SPREAD_BPS / 10_000;
    let cents = quote - spread + world.rng.gen_range(0..=2 * spread);
    let limit = Price::from_cents(cents).expect("positive");
    OrderRequest::new(symbol, side, OrderType::Limit, quantity, Some(limit)).expect("a limit order")
}

fn new_request(world: &mut World, rt: &Runtime) -> Findings {
    let account = world.accounts[world.rng.gen_range(0..world.accounts.len())].clone();
    world.next_key += 1;
    let key = domain::IdempotencyKey::parse(&format!("client-key-{}", world.next_key))
        .expect("valid key");
    let request = random_request(world, rt);
    let pending = ClientRequest {
        account,
        key,
        request,
        attempts: 0,
    };
    send(world, rt, pending)
}

fn retry_request(world: &mut World, rt: &Runtime) -> Findings {
    if world.pending.is_empty() {
        return Vec::new();
    }
    let index = world.rng.gen_range(0..world.pending.len());
    let pending = world.pending.remove(index);
    send(world, rt, pending)
}

/// Sends a request; without an answer the client keeps it to retry.
fn send(world: &mut World, rt: &Runtime, mut pending: ClientRequest) -> Findings {
    pending.attempts += 1;
    let (orders, invocation) = world.invocation("api");
    world.note(format!(
        "{} POST /orders {} key {} {:?} {:?} {} x{} limit {:?} (attempt {})",
        invocation.name,
        pending.account,
        pending.key.as_str(),
        pending.request.side,
        pending.request.order_type,
        pending.request.symbol,
        pending.request.quantity.shares(),
        pending.request.limit_price.map(Price::cents),
        pending.attempts
    ));
    let result = rt.block_on(orders.place(
        pending.account.clone(),
        pending.key.clone(),
        pending.request.clone(),
    ));
    let mut findings = Vec::new();
    match result {
        // A crashed invocation's answer never reaches the client.
        _ if invocation.crashed() => keep_trying(world, pending),
        Ok(placed) => {
            world.note(format!(
                "  -> {} {:?} replayed {}",
                placed.order.id,
                placed.order.status(),
                placed.replayed
            ));
            let slot = (pending.account.clone(), pending.key.clone());
            match world.answered.get(&slot) {
                Some(earlier) if earlier != &placed.order.id => findings.push(format!(
                    "key {} answered with order {earlier} and then {}",
                    pending.key.as_str(),
                    placed.order.id
                )),
                _ => {
                    world.answered.insert(slot, placed.order.id);
                }
            }
        }
        Err(OrderError::KeyReused) => findings.push(format!(
            "key {} refused as reused for the same request",
            pending.key.as_str()
        )),
        Err(error) => {
            world.note(format!("  -> error: {error}"));
            keep_trying(world, pending);
        }
    }
    findings
}

fn keep_trying(world: &mut World, pending: ClientRequest) {
    if pending.attempts < MAX_CLIENT_ATTEMPTS {
        world.pending.push(pending);
    }
}

/// The same key with another body: refused, never a second order.
fn reuse_key(world: &mut World, rt: &Runtime) -> Findings {
    let Some(((account, key), id)) = world
        .answered
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return Vec::new();
    };
    let mut request = random_request(world, rt);
    request.quantity = Quantity::new(MAX_ORDER_SHARES + 1).expect("positive"); // surely different
    let (orders, invocation) = world.invocation("api-reuse");
    world.note(format!(
        "{} POST /orders reusing key {}",
        invocation.name,
        key.as_str()
    ));
    match rt.block_on(orders.place(account, key.clone(), request)) {
        Ok(placed) if !invocation.crashed() => vec![format!(
            "key {} reused for another request gave {} (first: {id})",
            key.as_str(),
            placed.order.id
        )],
        _ => Vec::new(),
    }
}

fn cancel(world: &mut World, rt: &Runtime) -> Findings {
    if world.answered.is_empty() {
        return Vec::new();
    }
    let index = world.rng.gen_range(0..world.answered.len());
    let Some(((account, _), id)) = world
        .answered
        .iter()
        .nth(index)
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return Vec::new();
    };
    let (orders, invocation) = world.invocation("api-cancel");
    world.note(format!("{} DELETE /orders/{id}", invocation.name));
    let result = rt.block_on(orders.cancel(&account, &id));
    world.note(format!("  -> {:?}", result.map(|o| o.status())));
    Vec::new()
}

/// The exchange's webhooks, through the receiver's parser, onto the queue;
/// sometimes twice, now and then lost (the exchange gave up retrying).
pub fn webhooks(world: &mut World) -> Findings {
    let mut findings = Vec::new();
    let faults = world.plan.enabled();
    for event in world.exchange.take_events() {
        let body = serde_json::to_vec(&event).expect("an event serialises");
        let report = match parse(&body) {
            Ok(Parsed::Report(report)) => report,
            Ok(Parsed::NotFinal { .. }) => continue,
            Err(error) => {
                findings.push(format!("webhook refused: {error}"));
                continue;
            }
        };
        if faults && world.rng.gen_bool(WEBHOOK_LOST) {
            world.note(format!("webhook {} lost", event.event_id));
            continue;
        }
        let copies = if faults && world.rng.gen_bool(WEBHOOK_DUPLICATE) {
            2
        } else {
            1
        };
        let message = serde_json::to_string(&report).expect("a report serialises");
        for _ in 0..copies {
            world.queue.send(message.clone(), world.now_ms());
        }
        world.note(format!("webhook {} queued x{copies}", event.event_id));
    }
    findings
}

/// One batch to the fill processor, or two at once (the event source runs
/// several pollers: fills of one order may be processed side by side). A
/// crash loses the whole answer: every message of that batch comes back
/// after its visibility timeout.
pub fn deliver(world: &mut World, rt: &Runtime) -> Findings {
    let now = world.now_ms();
    let concurrent = world.plan.enabled() && world.rng.gen_bool(CONCURRENT_BATCHES);
    // Batches of any size, so that two side by side share the messages.
    let size = if concurrent {
        world.rng.gen_range(1..=MAX_BATCH)
    } else {
        MAX_BATCH
    };
    let first = world.queue.receive(now, size, &mut world.rng);
    if first.is_empty() {
        return Vec::new();
    }
    let second = if concurrent {
        world.queue.receive(now, size, &mut world.rng)
    } else {
        Vec::new()
    };
    let (a, a_run) = world.invocation("fills");
    let (b, b_run) = world.invocation("fills");
    let ids = |batch: &[Message]| batch.iter().map(|m| m.id).collect::<Vec<u64>>();
    world.note(format!(
        "{} batch {:?}, {} batch {:?}",
        a_run.name,
        ids(&first),
        b_run.name,
        ids(&second)
    ));
    let (x, y) = rt.block_on(join(
        fill_processor::handle_batch(&a, sqs_event(&first)),
        fill_processor::handle_batch(&b, sqs_event(&second)),
    ));
    settle_batch(world, &first, &x, a_run.crashed());
    settle_batch(world, &second, &y, b_run.crashed());
    Vec::new()
}

/// Deletes what the processor acknowledged; the rest comes back later.
fn settle_batch(world: &mut World, batch: &[Message], response: &SqsBatchResponse, crashed: bool) {
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for message in batch {
        if crashed || failed.contains(&message.id.to_string().as_str()) {
            world.queue.failed(message.id);
        } else {
            let chance = if world.plan.enabled() {
                SQS_REDELIVER
            } else {
                0.0
            };
            world.queue.delete(message.id, &mut world.rng, chance);
        }
    }
    if !batch.is_empty() {
        world.note(format!("  -> failed {failed:?} crashed {crashed}"));
    }
}

fn sqs_event(batch: &[Message]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = batch
        .iter()
        .map(|m| {
            let mut message = SqsMessage::default();
            message.message_id = Some(m.id.to_string());
            message.body = Some(m.body.clone());
            message
        })
        .collect();
    event
}

/// One scheduled run, or two overlapping (EventBridge may invoke twice).
pub fn reconcile(world: &mut World, rt: &Runtime, runs: usize) -> Findings {
    let (first, a) = world.invocation("reconciler");
    let settings = world.reconciler.clone();
    let time_left_ms = 60_000;
    if runs == 1 {
        world.note(format!("{} run", a.name));
        let summary = rt.block_on(reconciler::run_once(&first, &settings, time_left_ms));
        world.note(format!("  -> {summary:?}"));
    } else {
        let (second, b) = world.invocation("reconciler");
        world.note(format!("{} and {} run together", a.name, b.name));
        let (x, y) = rt.block_on(join(
            reconciler::run_once(&first, &settings, time_left_ms),
            reconciler::run_once(&second, &settings, time_left_ms),
        ));
        world.note(format!("  -> {x:?} / {y:?}"));
    }
    Vec::new()
}

/// A fill batch and a reconciler run at the same time, interleaved at the
/// port calls that yield.
fn interleaved(world: &mut World, rt: &Runtime) -> Findings {
    let now = world.now_ms();
    let batch = world.queue.receive(now, MAX_BATCH, &mut world.rng);
    let (fills, a) = world.invocation("fills");
    let (recovery, b) = world.invocation("reconciler");
    let settings = world.reconciler.clone();
    world.note(format!(
        "{} (batch of {}) with {}",
        a.name,
        batch.len(),
        b.name
    ));
    let (response, _) = rt.block_on(join(
        fill_processor::handle_batch(&fills, sqs_event(&batch)),
        reconciler::run_once(&recovery, &settings, 60_000),
    ));
    settle_batch(world, &batch, &response, a.crashed());
    Vec::new()
}

pub fn pass_time(world: &mut World, most_ms: u64) -> Findings {
    let delta = world.rng.gen_range(1..=most_ms);
    world.clock.advance_ms(delta);
    world.note(format!("time passes {delta} ms"));
    Vec::new()
}

fn jump_to_next_fill(world: &mut World) -> Findings {
    if let Some(due) = world.exchange.next_due_ms() {
        let now = world.now_ms();
        if due > now {
            world.clock.advance_ms(due - now);
            world.note(format!("time jumps {} ms to the next fill", due - now));
        }
    }
    Vec::new()
}
