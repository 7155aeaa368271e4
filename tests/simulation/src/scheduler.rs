//! One step of a run, chosen by the seed: a client's request (new, sent
//! again with its key, a key reused for another body, a cancel, a read),
//! the venue's webhooks, fill batches (one, or two side by side), a
//! reconciler run (or two overlapping), invocations interleaved at their
//! port calls, or time passing. After each step, what the venue reported
//! becomes webhooks and late requests land.

use app::orders::{ReconcileBudget, ReconcileReport};
use domain::order::{OrderId, OrderStatus};
use futures::executor::block_on;
use futures::future::join;
use http::{Method, StatusCode};
use place_order::wire::OrderBody;
use place_order::Problem;
use rand::Rng;

use crate::clients::{self, AcceptedCancel, Post, MAX_ATTEMPTS};
use crate::queue::{self, QueueClient, MAX_BATCH};
use crate::webhooks;
use crate::world::{ready, World};

/// Time passing in one small step, at most.
pub const SMALL_STEP_MS: u64 = 3_000;
/// Time passing in one big step, at most (past deadlines and backoffs).
pub const BIG_STEP_MS: u64 = 240_000;
/// Longest a client's request copy takes to land.
pub const MAX_LATE_REQUEST_MS: u64 = 30_000;
/// How long a Lambda invocation may run (the reconciler's and processor's deadline).
pub const INVOCATION_MS: u64 = 60_000;
/// Crowd orders placed per step while the crowd has some left.
const CROWD_BURST: usize = 150;
/// Chance that SQS loses a delete while faults run (the message comes back).
const LOST_DELETE: f64 = 0.03;

pub fn step(world: &mut World) {
    let crowd = world.clients.crowd_left > 0;
    match world.rng.gen_range(0..100) {
        _ if crowd && world.rng.gen_bool(0.5) => crowd_burst(world),
        0..=15 => new_order(world),
        16..=21 => retry_post(world),
        22 => reuse_key(world),
        23..=28 => cancel(world),
        29..=31 => read(world),
        32..=45 => deliver_webhooks(world),
        46..=59 => {
            process_batches(world);
        }
        60..=65 => {
            reconcile(world, 1);
        }
        66..=67 => {
            reconcile(world, 2);
        }
        68..=72 => interleaved(world),
        73..=83 => {
            let delta = world.rng.gen_range(1..=SMALL_STEP_MS);
            pass_time(world, delta);
        }
        84..=91 => jump_to_venue_event(world),
        _ => {
            let delta = world.rng.gen_range(1..=BIG_STEP_MS);
            pass_time(world, delta);
        }
    }
    after_step(world);
}

/// What follows every step: planned cancels fall due, late requests land,
/// the venue's news becomes webhooks.
pub fn after_step(world: &mut World) {
    let now = world.now_ms();
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut world.clients.planned_cancels)
        .into_iter()
        .partition(|(at, _, _)| *at <= now);
    world.clients.planned_cancels = later;
    for (_, account, id) in due {
        send_delete(world, &account, &id, 0);
    }
    while let Some(post) = world.clients.next_late(world.now_ms()) {
        land_late_copy(world, post);
    }
    world.collect_venue_events();
}

pub fn pass_time(world: &mut World, delta_ms: u64) {
    world.pass_ms(delta_ms);
    world.note(|| format!("time passes {delta_ms} ms"));
}

/// Straight to the venue's next fill or expiry (at most a few minutes on).
fn jump_to_venue_event(world: &mut World) {
    let now = world.now_ms();
    let Some(due) = world.shared.exchange.next_due_ms() else {
        return;
    };
    let to = due.clamp(now, now + BIG_STEP_MS);
    world.pass_to(to);
    world.note(|| format!("time jumps {} ms to the venue's next event", to - now));
}

/// The quote (bid, ask) in cents, as a client sees it before ordering.
fn quote_of(world: &World, symbol: &domain::Symbol) -> (u64, u64) {
    let exchange = &*world.shared.exchange;
    let mid = ready(app::exchange::Exchange::reference_price(exchange, symbol))
        .expect("a listed symbol has a quote")
        .cents();
    let half_spread = exchange_sim::quotes::HALF_SPREAD_CENTS;
    (mid.saturating_sub(half_spread).max(1), mid + half_spread)
}

fn new_order(world: &mut World) {
    let accounts = world.clients.accounts.len();
    let account = world.clients.accounts[world.rng.gen_range(0..accounts)].clone();
    let symbol = world.clients.symbols[world.rng.gen_range(0..world.clients.symbols.len())].clone();
    let quote = quote_of(world, &symbol);
    let big = world.rng.gen_bool(world.scenario.workload.big_share);
    let body = clients::order_body(&mut world.rng, &symbol, quote, big);
    let key = world.clients.new_key();
    send_post(
        world,
        Post {
            account,
            key,
            body,
            attempts: 0,
        },
    );
}

fn crowd_burst(world: &mut World) {
    let Some(account) = world.clients.crowd.clone() else {
        return;
    };
    let burst = world.clients.crowd_left.min(CROWD_BURST);
    world.clients.crowd_left -= burst;
    world.note(|| format!("the crowd places {burst} resting orders"));
    for _ in 0..burst {
        let symbol =
            world.clients.symbols[world.rng.gen_range(0..world.clients.symbols.len())].clone();
        let (bid, _) = quote_of(world, &symbol);
        let body = clients::crowd_body(&mut world.rng, &symbol, bid);
        let key = world.clients.new_key();
        send_post(
            world,
            Post {
                account: account.clone(),
                key,
                body,
                attempts: 0,
            },
        );
    }
}

fn retry_post(world: &mut World) {
    if world.clients.pending.is_empty() {
        return;
    }
    let index = world.rng.gen_range(0..world.clients.pending.len());
    let post = world.clients.pending.swap_remove(index);
    send_post(world, post);
}

fn keep_trying(world: &mut World, post: Post) {
    if post.attempts < MAX_ATTEMPTS {
        world.clients.pending.push(post);
    }
}

/// `POST /orders`. Without an answer the client keeps the request to send
/// again with the same key; sometimes the request itself is late and lands
/// after the client gave up waiting.
fn send_post(world: &mut World, mut post: Post) {
    post.attempts += 1;
    let faults = world.shared.plan().enabled();
    let late = world.scenario.workload.late_request;
    if faults && late > 0.0 && world.rng.gen_bool(late) {
        let at = world.now_ms() + world.rng.gen_range(1..=MAX_LATE_REQUEST_MS);
        world.note(|| format!("POST key {} is slow on its way", post.key));
        world.clients.land_late(at, post.clone());
        keep_trying(world, post);
        return;
    }
    let (orders, invocation) = world.orders("post");
    let router = place_order::router(orders, world.catalog.clone());
    let body = serde_json::to_vec(&post.body).expect("a body serialises");
    let request = clients::request(
        Method::POST,
        "/orders",
        &post.account,
        Some(&post.key),
        Some(body),
    );
    let answer = block_on(clients::call(router, request));
    world.note(|| {
        format!(
            "{} POST key {} {:?} (attempt {}) -> {}{}",
            invocation.name,
            post.key,
            post.body,
            post.attempts,
            answer.status,
            if invocation.crashed() {
                " (crashed: no answer)"
            } else {
                ""
            }
        )
    });
    if invocation.crashed() {
        keep_trying(world, post);
        return;
    }
    match answer.status {
        StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED => {
            match serde_json::from_slice::<OrderBody>(&answer.body) {
                Ok(order) => answered(world, &post, &order),
                Err(error) => world.finding(format!("POST answered an unreadable order: {error}")),
            }
        }
        StatusCode::UNPROCESSABLE_ENTITY => match serde_json::from_slice::<Problem>(&answer.body) {
            Ok(problem) if problem.problem_type == place_order::problem_type::KEY_REUSED => {
                world.finding(format!(
                    "key {} of {} refused as reused, for the very same request",
                    post.key, post.account
                ));
            }
            Ok(Problem {
                order: Some(order), ..
            }) => answered(world, &post, &order),
            other => world.finding(format!("POST answered 422 without its order: {other:?}")),
        },
        StatusCode::SERVICE_UNAVAILABLE => keep_trying(world, post),
        status => world.finding(format!(
            "POST key {} answered {status}: {}",
            post.key,
            String::from_utf8_lossy(&answer.body)
        )),
    }
}

fn answered(world: &mut World, post: &Post, order: &OrderBody) {
    let Ok(id) = OrderId::parse(&order.id) else {
        world.finding(format!("POST answered an order id {:?}", order.id));
        return;
    };
    if let Err(text) = world.clients.answered(post, &id) {
        world.finding(text);
    }
    // An order still pending at the venue when answered: some clients
    // replace it at once (while its placement may still be on its way).
    let on_ack = world.scenario.workload.cancel_on_ack;
    if order.status == OrderStatus::Pending && on_ack > 0.0 && world.rng.gen_bool(on_ack) {
        let now = world.now_ms();
        world
            .clients
            .planned_cancels
            .push((now, post.account.clone(), id));
        return;
    }
    // Some clients change their minds at once, around the placement's deadline.
    let quick = world.scenario.workload.quick_cancel;
    if quick > 0.0 && world.rng.gen_bool(quick) {
        let s = &world.scenario.settings;
        let around =
            s.placement_window_ms + s.recovery.clock_skew_margin_ms + s.recovery.max_in_flight_ms;
        let at = world.now_ms() + world.rng.gen_range(0..=around);
        world
            .clients
            .planned_cancels
            .push((at, post.account.clone(), id));
    }
}

/// A request copy the client gave up on lands now; its answer goes nowhere.
fn land_late_copy(world: &mut World, post: Post) {
    let (orders, invocation) = world.orders("late-post");
    let router = place_order::router(orders, world.catalog.clone());
    let body = serde_json::to_vec(&post.body).expect("a body serialises");
    let request = clients::request(
        Method::POST,
        "/orders",
        &post.account,
        Some(&post.key),
        Some(body),
    );
    let answer = block_on(clients::call(router, request));
    world.note(|| {
        format!(
            "{} late copy of POST key {} lands -> {}",
            invocation.name, post.key, answer.status
        )
    });
    if answer.status == StatusCode::UNPROCESSABLE_ENTITY && !invocation.crashed() {
        if let Ok(problem) = serde_json::from_slice::<Problem>(&answer.body) {
            if problem.problem_type == place_order::problem_type::KEY_REUSED {
                world.finding(format!(
                    "a late copy of key {} was refused as a reused key",
                    post.key
                ));
            }
        }
    }
}

/// The same key with another body: refused, never a second order.
fn reuse_key(world: &mut World) {
    if world.clients.answered.is_empty() {
        return;
    }
    let index = world.rng.gen_range(0..world.clients.answered.len());
    let Some(((account, key), first)) = world
        .clients
        .answered
        .iter()
        .nth(index)
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return;
    };
    let symbol = world.clients.symbols[0].clone();
    let quote = quote_of(world, &symbol);
    let mut body = clients::order_body(&mut world.rng, &symbol, quote, false);
    body.quantity = (clients::MAX_BIG_SHARES + 7).to_string(); // surely another request
    let (orders, invocation) = world.orders("post-reused-key");
    let router = place_order::router(orders, world.catalog.clone());
    let request = clients::request(
        Method::POST,
        "/orders",
        &account,
        Some(&key),
        Some(serde_json::to_vec(&body).expect("a body serialises")),
    );
    let answer = block_on(clients::call(router, request));
    world.note(|| {
        format!(
            "{} POST reusing key {key} -> {}",
            invocation.name, answer.status
        )
    });
    if invocation.crashed() {
        return;
    }
    match answer.status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::SERVICE_UNAVAILABLE => {}
        status => world.finding(format!(
            "key {key} (order {first}) reused for another request was answered {status}: {}",
            String::from_utf8_lossy(&answer.body)
        )),
    }
}

fn cancel(world: &mut World) {
    if !world.clients.cancel_retries.is_empty() && world.rng.gen_bool(0.3) {
        let index = world.rng.gen_range(0..world.clients.cancel_retries.len());
        let (account, id, attempts) = world.clients.cancel_retries.swap_remove(index);
        send_delete(world, &account, &id, attempts);
        return;
    }
    let known = world.clients.known.len();
    if known == 0 {
        return;
    }
    // Mostly recent orders: those still being placed or working.
    let from = known.saturating_sub(10);
    let index = if world.rng.gen_bool(0.7) {
        world.rng.gen_range(from..known)
    } else {
        world.rng.gen_range(0..known)
    };
    let (account, id) = world.clients.known[index].clone();
    send_delete(world, &account, &id, 0);
}

/// `DELETE /orders/{id}`: accepted (`200`/`202`) means the intent is
/// recorded; without an answer the client sends it again.
fn send_delete(world: &mut World, account: &domain::AccountId, id: &OrderId, attempts: u32) {
    let requested = world.shared.event();
    let (orders, invocation) = world.orders("delete");
    let router = place_order::router(orders, world.catalog.clone());
    let request = clients::request(
        Method::DELETE,
        &format!("/orders/{id}"),
        account,
        None,
        None,
    );
    let answer = block_on(clients::call(router, request));
    world.note(|| {
        format!(
            "{} DELETE {id} -> {}{}",
            invocation.name,
            answer.status,
            if invocation.crashed() {
                " (crashed: no answer)"
            } else {
                ""
            }
        )
    });
    let retry = |world: &mut World| {
        if attempts + 1 < MAX_ATTEMPTS {
            world
                .clients
                .cancel_retries
                .push((account.clone(), id.clone(), attempts + 1));
        }
    };
    if invocation.crashed() {
        retry(world);
        return;
    }
    match answer.status {
        StatusCode::OK | StatusCode::ACCEPTED => {
            let now = world.now_ms();
            world
                .clients
                .cancels
                .entry(id.clone())
                .or_insert(AcceptedCancel {
                    requested_event: requested,
                    answered_ms: now,
                });
        }
        StatusCode::SERVICE_UNAVAILABLE => retry(world),
        status => world.finding(format!(
            "DELETE of order {id} (answered to its client) was answered {status}: {}",
            String::from_utf8_lossy(&answer.body)
        )),
    }
}

/// A read: never changes anything.
fn read(world: &mut World) {
    let known = world.clients.known.len();
    if known == 0 {
        return;
    }
    let (account, id) = world.clients.known[world.rng.gen_range(0..known)].clone();
    let path = match world.rng.gen_range(0..3) {
        0 => format!("/orders/{id}"),
        1 => format!("/orders/{id}/executions"),
        _ => "/orders?limit=5".to_owned(),
    };
    let (orders, invocation) = world.orders("get");
    let router = place_order::router(orders, world.catalog.clone());
    let request = clients::request(Method::GET, &path, &account, None, None);
    let answer = block_on(clients::call(router, request));
    world.note(|| format!("{} GET {path} -> {}", invocation.name, answer.status));
    if invocation.writes() > 0 {
        world.finding(format!("GET {path} wrote {} times", invocation.writes()));
    }
    if invocation.crashed() {
        return;
    }
    match answer.status {
        StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE => {}
        status => world.finding(format!(
            "GET {path} of an order answered to its client was answered {status}: {}",
            String::from_utf8_lossy(&answer.body)
        )),
    }
}

/// The venue delivers every webhook that is due.
pub fn deliver_webhooks(world: &mut World) {
    let now = world.now_ms();
    let due = world.webhooks.take_due(now);
    let faults = world.shared.plan().enabled();
    for delivery in due {
        if faults && world.webhooks.loses_attempt(&mut world.rng) {
            world.note(|| format!("webhook {} lost on its way", delivery.event.event_id));
            world.webhooks.retry(delivery, now, &mut world.rng);
            continue;
        }
        let (_, invocation) = world.orders("webhook");
        let queue = QueueClient {
            queue: world.queue.clone(),
            invocation: invocation.clone(),
        };
        let router = fill_webhook::router(
            queue,
            world.shared.clock.clone(),
            fill_webhook::FixedKeys::new(vec![webhooks::secret()]),
            webhooks::tolerance(),
        );
        let venue_now = world.shared.exchange.venue_now();
        let status = block_on(webhooks::post(router, &delivery.event, venue_now));
        world.note(|| {
            format!(
                "{} webhook {} ({:?} {}) attempt {} -> {status}",
                invocation.name,
                delivery.event.event_id,
                delivery.event.event_type,
                delivery.event.client_order_id,
                delivery.attempt
            )
        });
        let now = world.now_ms();
        if invocation.crashed() || status.is_server_error() {
            world.webhooks.retry(delivery, now, &mut world.rng);
        } else if status.is_success() {
            world.webhooks.delivered(&delivery, now, &mut world.rng);
            if faults && world.webhooks.duplicates(&mut world.rng) {
                world.webhooks.again(delivery, now, &mut world.rng);
            }
        } else {
            world.finding(format!(
                "the receiver refused webhook {} with {status}",
                delivery.event.event_id
            ));
        }
    }
}

/// The event source mapping hands one batch to the processor, or two at
/// once (other message groups). A crashed batch is not acknowledged: its
/// messages come back after the visibility timeout. Answers whether there
/// was anything to hand out.
pub fn process_batches(world: &mut World) -> bool {
    let now = world.now_ms();
    let faults = world.shared.plan().enabled();
    let two = faults && world.rng.gen_bool(0.4);
    let size = if two {
        world.rng.gen_range(1..=MAX_BATCH)
    } else {
        MAX_BATCH
    };
    let first = world.queue.receive(now, size);
    if first.is_empty() {
        return false;
    }
    let second = if two {
        world.queue.receive(now, size)
    } else {
        Vec::new()
    };
    let (a, a_run) = world.orders("fills");
    let (b, b_run) = world.orders("fills");
    let deadline = now + INVOCATION_MS;
    let a_queue = QueueClient {
        queue: world.queue.clone(),
        invocation: a_run.clone(),
    };
    let b_queue = QueueClient {
        queue: world.queue.clone(),
        invocation: b_run.clone(),
    };
    world.note(|| {
        format!(
            "{} batch {:?}, {} batch {:?}",
            a_run.name,
            first.iter().map(|m| m.id).collect::<Vec<_>>(),
            b_run.name,
            second.iter().map(|m| m.id).collect::<Vec<_>>()
        )
    });
    let ((x, _), (y, _)) = block_on(join(
        fill_processor::handle_batch(&a, &a_queue, queue::SimQueue::event(&first), deadline),
        fill_processor::handle_batch(&b, &b_queue, queue::SimQueue::event(&second), deadline),
    ));
    acknowledge(world, &first, &x, a_run.crashed());
    acknowledge(world, &second, &y, b_run.crashed());
    true
}

/// Deletes what the processor acknowledged; the rest comes back later.
fn acknowledge(
    world: &mut World,
    batch: &[queue::Message],
    response: &aws_lambda_events::event::sqs::SqsBatchResponse,
    crashed: bool,
) {
    if crashed {
        return;
    }
    let lose = if world.shared.plan().enabled() {
        LOST_DELETE
    } else {
        0.0
    };
    for message in batch {
        let id = queue::message_id(message.id);
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id);
        if !failed {
            world.queue.delete(message.id, lose);
        }
    }
}

/// The reconciler's budget, as `reconciler::run_once` computes it.
pub fn budget(settings: &reconciler::Settings, time_left_ms: u64) -> ReconcileBudget {
    ReconcileBudget {
        time_budget_ms: time_left_ms
            .saturating_sub(settings.safety_margin_ms)
            .min(settings.max_run_ms),
        page_size: settings.page_size,
    }
}

/// One scheduled run, or two overlapping (EventBridge may invoke twice).
/// Answers whether a run left work for the next (its budget ran out, or
/// the end-of-day check is not through).
pub fn reconcile(world: &mut World, runs: usize) -> bool {
    reconcile_runs(world, runs).iter().any(unfinished)
}

/// A run left work for the next: its budget ran out, or the end-of-day
/// check is not through.
pub fn unfinished(report: &ReconcileReport) -> bool {
    report.budget_exhausted || report.end_of_day.as_ref().is_some_and(|e| !e.done)
}

/// One scheduled run, or two overlapping: their reports.
pub fn reconcile_runs(world: &mut World, runs: usize) -> Vec<ReconcileReport> {
    let budget = budget(&world.scenario.reconciler, INVOCATION_MS);
    let (first, a) = world.orders("reconciler");
    if runs == 1 {
        let report = block_on(first.reconcile(&budget));
        note_run(world, &a.name, &report);
        return vec![report];
    }
    let (second, b) = world.orders("reconciler");
    let (x, y) = block_on(join(first.reconcile(&budget), second.reconcile(&budget)));
    note_run(world, &a.name, &x);
    note_run(world, &b.name, &y);
    vec![x, y]
}

fn note_run(world: &World, name: &str, report: &ReconcileReport) {
    world.note(|| format!("{name} run: {report:?}"));
}

/// A fill batch and a reconciler run at the same time, or a client's
/// placement beside a reconciler run, interleaved at the port calls that yield.
fn interleaved(world: &mut World) {
    let now = world.now_ms();
    let budget = budget(&world.scenario.reconciler, INVOCATION_MS);
    let (recovery, r_run) = world.orders("reconciler");
    if world.rng.gen_bool(0.5) && !world.clients.pending.is_empty() {
        let index = world.rng.gen_range(0..world.clients.pending.len());
        let mut post = world.clients.pending.swap_remove(index);
        post.attempts += 1;
        let (orders, p_run) = world.orders("post");
        let router = place_order::router(orders, world.catalog.clone());
        let request = clients::request(
            Method::POST,
            "/orders",
            &post.account,
            Some(&post.key),
            Some(serde_json::to_vec(&post.body).expect("a body serialises")),
        );
        world.note(|| format!("{} POST key {} beside {}", p_run.name, post.key, r_run.name));
        let (answer, report) = block_on(join(
            clients::call(router, request),
            recovery.reconcile(&budget),
        ));
        note_run(world, &r_run.name, &report);
        if p_run.crashed() {
            keep_trying(world, post);
            return;
        }
        match serde_json::from_slice::<OrderBody>(&answer.body) {
            Ok(order) if answer.status.is_success() => answered(world, &post, &order),
            _ => keep_trying(world, post),
        }
        return;
    }
    let batch = world.queue.receive(now, MAX_BATCH);
    let (fills, f_run) = world.orders("fills");
    let queue = QueueClient {
        queue: world.queue.clone(),
        invocation: f_run.clone(),
    };
    world.note(|| {
        format!(
            "{} (batch of {}) beside {}",
            f_run.name,
            batch.len(),
            r_run.name
        )
    });
    let ((response, _), report) = block_on(join(
        fill_processor::handle_batch(
            &fills,
            &queue,
            queue::SimQueue::event(&batch),
            now + INVOCATION_MS,
        ),
        recovery.reconcile(&budget),
    ));
    note_run(world, &r_run.name, &report);
    acknowledge(world, &batch, &response, f_run.crashed());
}
