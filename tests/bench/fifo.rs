//! One order's fills through the real FIFO fill queue with concurrent
//! fill-processor invocations, then a Balances outage during fills
//! (issue 17), on the local stack:
//!
//! ```text
//! cargo run -p system-tests --bin bench-fifo -- [--fills 1000] [--invocations 4] [--outage-fills 200] [--outage-s 60]
//! ```
//!
//! 1. A limit buy of `--fills` shares, which the exchange simulator fills in
//!    `--fills` executions. Each execution's webhook (then the final status)
//!    goes to the fill webhook, signed as the venue signs it, which queues
//!    it on the FIFO queue (message group: the order). Meanwhile
//!    `--invocations` pollers, each standing for one concurrent Lambda
//!    invocation of Lambda's event source mapping (batches of 10, delete
//!    what succeeded, failures back after the visibility timeout), hand
//!    batches to `fill_processor::handle_batch`. Must hold: no message
//!    retried (no `Busy`), none on the dead-letter queue, each execution
//!    applied and settled once.
//! 2. The same with Balances refusing every connection for `--outage-s`
//!    seconds while `--outage-fills` executions arrive, and the reconciler
//!    running on its schedule. Production's 30 minutes are scaled down 30
//!    times: the queue's visibility timeout 180 s -> 6 s (so the redrive
//!    window, 10 receives, is 60 s instead of 30 min), the outage 30 min ->
//!    60 s, the recovery policy's "flag after" 30 min -> 60 s and its
//!    backoffs to ≤ 1 s (the test settings), the reconciler's schedule
//!    1 min -> 2 s. Must hold: none on the dead-letter queue, every fill
//!    settled once after the outage.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_adapters::dynamodb::DynamoOrderStore;
use aws_adapters::sqs::SqsFillQueue;
use aws_sdk_sqs::types::QueueAttributeName;
use domain::order::OrderId;
use domain::{AccountId, Asset};
use fill_processor::handle_batch;
use system_tests::bench::{
    arg, limit_buy, ms, place, queue_depth, run_header, spawn_metered_with,
    wait_until_done_at_exchange, webhook_events, BenchPlatform, Conflicts, CountingStore,
    FifoPoller, Webhook,
};
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::faulty_proxy::Mode;
use system_tests::platform::{PlatformOptions, StackOrders};
use system_tests::sim_exchange::fast_fills;

type Processor = app::orders::Orders<
    CountingStore<DynamoOrderStore>,
    aws_adapters::balances_http::HttpBalances,
    aws_adapters::exchange_http::HttpExchange,
    app::clock::OffsetClock,
>;

/// Production's visibility timeout (`template.yaml`), and the scale of phase 2.
const VISIBILITY_TIMEOUT_S: u64 = 180;
const TIME_SCALE: u64 = 30;
/// An invocation's time (`template.yaml`: the fill processor's timeout).
const INVOCATION_MS: u64 = 30_000;
/// Longest a phase may take before the bench gives up.
const PHASE_BOUND: Duration = Duration::from_secs(30 * 60);

/// What the pollers saw, together.
#[derive(Debug, Default, Clone)]
struct Seen {
    batches: u64,
    messages: u64,
    applied: u64,
    duplicates: u64,
    set_aside: u64,
    /// Handed back (not recorded now; `Busy` among them).
    retried: u64,
    /// Batches of one message group in flight at once, at most (FIFO: 1).
    max_group_overlap: u64,
    in_flight: BTreeMap<String, u64>,
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One concurrent invocation: polls until told to stop.
async fn invocation(
    poller: FifoPoller,
    processor: Arc<Processor>,
    set_aside: SqsFillQueue,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        poller
            .poll_once(|event| async {
                let groups: HashSet<String> = event
                    .records
                    .iter()
                    .filter_map(|r| r.attributes.get("MessageGroupId").cloned())
                    .collect();
                {
                    let mut s = lock(&seen);
                    s.batches += 1;
                    s.messages += event.records.len() as u64;
                    for g in &groups {
                        let n = s.in_flight.entry(g.clone()).or_default();
                        *n += 1;
                        let n = *n;
                        s.max_group_overlap = s.max_group_overlap.max(n);
                    }
                }
                let deadline = processor.now() + INVOCATION_MS;
                let (response, summary) =
                    handle_batch(&*processor, &set_aside, event, deadline).await;
                let mut s = lock(&seen);
                s.applied += summary.applied;
                s.duplicates += summary.duplicates;
                s.set_aside += summary.set_aside;
                s.retried += summary.retried;
                for g in &groups {
                    if let Some(n) = s.in_flight.get_mut(g) {
                        *n -= 1;
                    }
                }
                response
            })
            .await?;
    }
    Ok(())
}

struct Phase {
    name: &'static str,
    fills: usize,
    seen: Seen,
    conflicts: u64,
    dead_letters: (u64, u64),
    wall: Duration,
    /// From the end of the outage to the order closed.
    after_outage: Option<Duration>,
    reconciler_runs: usize,
    flags: Vec<domain::order::FlagReason>,
}

struct Setup {
    bp: BenchPlatform,
    webhook: Webhook,
    account: AccountId,
    start_cents: u64,
}

/// Every execution recorded once and settled, the reservation back to zero,
/// cash and shares moved by exactly what the exchange executed.
async fn check_settled_once(setup: &Setup, ids: &[OrderId]) -> anyhow::Result<()> {
    let platform = &setup.bp.platform;
    let mut executed_cents = 0;
    let mut shares = 0;
    for id in ids {
        let order = platform.order(id).await;
        anyhow::ensure!(order.is_closed(), "order {id} closed: {order:?}");
        let at_exchange = platform.reports_from_audit(id).len() - 1;
        let recorded = platform.executions(id).await;
        anyhow::ensure!(
            recorded.len() == at_exchange,
            "each execution of {id} recorded once"
        );
        anyhow::ensure!(
            recorded.iter().all(|r| r.is_settled()),
            "every execution settled"
        );
        let engine = platform.exchange.state.engine();
        let at = engine
            .get_by_client_id(id.as_str())
            .ok_or_else(|| anyhow::anyhow!("at the exchange"))?;
        executed_cents += at
            .executions
            .iter()
            .map(|e| e.price.cents() * e.quantity.shares())
            .sum::<u64>();
        shares += at.cum_quantity.shares();
    }
    let cash = balance_of(&platform.balances, &setup.account, &Asset::Cash).await;
    anyhow::ensure!(cash.reserved == 0, "reservations back to zero: {cash:?}");
    anyhow::ensure!(
        cash.available == setup.start_cents - executed_cents,
        "cash moved by exactly the executions"
    );
    let aapl = domain::Catalog::us_equities().asset("AAPL")?;
    anyhow::ensure!(
        balance_of(&platform.balances, &setup.account, &aapl)
            .await
            .available
            == shares,
        "shares moved by exactly the executions"
    );
    Ok(())
}

async fn run_phase(
    setup: &Setup,
    name: &'static str,
    quantity: u64,
    invocations: usize,
    outage: Option<Duration>,
) -> anyhow::Result<(Phase, OrderId)> {
    let platform = &setup.bp.platform;
    let id = place(
        platform,
        &setup.account,
        name,
        &limit_buy(quantity, "500.00"),
    )
    .await;
    wait_until_done_at_exchange(
        platform,
        std::slice::from_ref(&id),
        Duration::from_secs(300),
    )
    .await;
    let events = webhook_events(platform, &id);
    let conflicts = Conflicts::default();
    let processor: Arc<Processor> =
        Arc::new(platform.orders_with(|s, b, e| (CountingStore::new(s, conflicts.clone()), b, e)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = FifoPoller::new(&setup.bp.sqs, setup.bp.queue_url(), 10, 1);
    let tasks: Vec<_> = (0..invocations)
        .map(|_| {
            tokio::spawn(invocation(
                poller.clone(),
                processor.clone(),
                setup.bp.fill_queue(),
                seen.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    if outage.is_some() {
        platform.balances_proxy.set(Mode::Refuse);
    }
    // The executions arrive over the first half of an outage, at once otherwise.
    let spacing = outage.map_or(Duration::ZERO, |o| o / 2 / events.len().max(1) as u32);
    let reconciler: StackOrders = platform.orders();
    let mut runs = 0;
    let mut next_run = Instant::now();
    let run_every = Duration::from_millis(60_000 / TIME_SCALE);
    let mut healed_at = None;
    for event in &events {
        let status = setup.webhook.deliver(event).await;
        anyhow::ensure!(status.is_success(), "webhook answered {status}");
        if !spacing.is_zero() {
            tokio::time::sleep(spacing).await;
        }
        if outage.is_some() && Instant::now() >= next_run {
            reconciler::run_once(&reconciler, &platform.reconciler_settings(), 30_000).await;
            runs += 1;
            next_run = Instant::now() + run_every;
        }
    }
    loop {
        if let Some(o) = outage {
            if healed_at.is_none() && started.elapsed() >= o {
                platform.balances_proxy.set(Mode::Pass);
                healed_at = Some(Instant::now());
            }
            if Instant::now() >= next_run {
                reconciler::run_once(&reconciler, &platform.reconciler_settings(), 30_000).await;
                runs += 1;
                next_run = Instant::now() + run_every;
            }
        }
        let (visible, in_flight) = queue_depth(&setup.bp.sqs, setup.bp.queue_url()).await?;
        let closed = platform.stored(&id).await.is_closed();
        if closed && visible + in_flight == 0 && (outage.is_none() || healed_at.is_some()) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < PHASE_BOUND,
            "{name}: not done after {PHASE_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = Instant::now();
    let wall = done - started;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await??;
    }
    let dead_letters = queue_depth(&setup.bp.sqs, setup.bp.dead_letter_queue_url()).await?;
    let flags = platform.stored(&id).await.recovery.flags;
    let phase = Phase {
        name,
        fills: events.len() - 1,
        seen: lock(&seen).clone(),
        conflicts: conflicts.get(),
        dead_letters,
        wall,
        after_outage: healed_at.map(|h| done - h),
        reconciler_runs: runs,
        flags,
    };
    Ok((phase, id))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let fills = arg("--fills", 1_000);
    let invocations = arg("--invocations", 4);
    let outage_fills = arg("--outage-fills", 200);
    let outage_s = arg("--outage-s", 60) as u64;
    let options = PlatformOptions {
        engine: exchange_sim::EngineConfig {
            min_chunks: u32::try_from(fills.max(outage_fills))?,
            max_chunks: u32::try_from(fills.max(outage_fills))?,
            fill_interval_min_ms: 0,
            fill_interval_max_ms: 1,
            ..fast_fills(system_tests::platform::rand_seed())
        },
        ..PlatformOptions::default()
    };
    let bp = spawn_metered_with("bench-fifo", options).await;
    let start_cents = 100_000 * (fills + outage_fills) as u64;
    let account = funded_account(&bp.platform.balances, "fifo", start_cents).await;
    let webhook = Webhook::serve(&bp).await;
    let setup = Setup {
        bp,
        webhook,
        account,
        start_cents,
    };

    let (first, first_id) = run_phase(&setup, "fifo", fills as u64, invocations, None).await?;
    check_settled_once(&setup, std::slice::from_ref(&first_id)).await?;
    eprintln!("phase 1 done in {:.0} s", first.wall.as_secs_f64());

    // Phase 2: production's timings scaled down.
    setup
        .bp
        .sqs
        .set_queue_attributes()
        .queue_url(setup.bp.queue_url())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            (VISIBILITY_TIMEOUT_S / TIME_SCALE).to_string(),
        )
        .send()
        .await?;
    let outage = Duration::from_secs(outage_s);
    let (second, second_id) = run_phase(
        &setup,
        "outage",
        outage_fills as u64,
        invocations,
        Some(outage),
    )
    .await?;
    check_settled_once(&setup, &[first_id, second_id]).await?;

    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-fifo -- --fills {fills} --invocations {invocations} --outage-fills {outage_fills} --outage-s {outage_s}"
        ))
    );
    println!("| phase | fills | invocations | batches | messages received | applied | duplicates | set aside | retried (Busy included) | conflicting writes | batches of one group at once (max) | dead-letter queue | reconciler runs | wall s | settled after the outage ended, s | flags |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in [&first, &second] {
        println!(
            "| {} | {} | {invocations} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {:?} |",
            p.name,
            p.fills,
            p.seen.batches,
            p.seen.messages,
            p.seen.applied,
            p.seen.duplicates,
            p.seen.set_aside,
            p.seen.retried,
            p.conflicts,
            p.seen.max_group_overlap,
            p.dead_letters.0 + p.dead_letters.1,
            p.reconciler_runs,
            p.wall.as_secs_f64(),
            p.after_outage.map_or("–".into(), |d| format!("{:.1}", d.as_secs_f64())),
            p.flags,
        );
    }
    println!(
        "\nEach execution recorded and settled once, reservations back to zero, balances equal to the exchange's executions: checked. \
         Phase 1: {:.1} fills/s through the queue ({} ms a fill).",
        first.fills as f64 / first.wall.as_secs_f64(),
        ms(first.wall / first.fills.max(1) as u32)
    );
    let clean = |p: &Phase| p.seen.retried == 0 && p.dead_letters == (0, 0);
    anyhow::ensure!(
        clean(&first) && clean(&second),
        "messages retried or dead-lettered"
    );
    Ok(())
}
