//! The reconciler with 100,000 healthy resting orders and two orders whose
//! webhooks were lost (issue 17): each lost order is recovered within two
//! runs of its signal, and a run's reads, writes and time do not grow with
//! the resting orders. On the local stack, every call metered:
//!
//! ```text
//! cargo run -p system-tests --bin bench-reconciler -- [--resting 100000] [--runs 4]
//! ```
//!
//! Production timings throughout (`OrderSettings::default()`, the
//! reconciler's default bounds: pages of 100, 45 s per run), one run per
//! simulated minute (the platform's clock moves 60 s before each run).
//!
//! The resting orders are seeded, not placed: one limit buy is placed for
//! real far below the market (it rests at the exchange), and copies of its
//! item under new ids (an exchange id each, created over the last two
//! hours, due for their first look 53 s after creation, as placement sets
//! it) are written straight into the table with `BatchWriteItem`. The
//! reconciler's progress is seeded as a platform running every minute would
//! have left it: each shard's cursor past its seeded entries (each order had
//! its first look), and the end-of-day check of the current trading day
//! done. The first look and the day's check (one `GetItem` per open order
//! each, once a day) are measured for real by `bench-resting-day`.
//!
//! For each size (1,000, then 100,000 resting orders), two orders are placed
//! for real and their webhooks lost:
//! - a limit buy whose executions were lost but whose final status arrived
//!   (a final status with more executed than recorded: a signal at once);
//! - a market buy of which nothing arrived (silent past the venue's bound
//!   for a market order, 2 minutes: a signal then).
//!
//! Then `--runs` reconciler runs, each metered and timed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::order_store::OrderStore;
use app::orders::TradingCalendar;
use aws_adapters::dynamodb::DynamoOrderStore;
use domain::order::{ExchangeReport, Order, OrderId};
use fill_processor::handle_batch;
use system_tests::bench::{
    arg, batch, batch_put, limit_buy, market_buy, message, ms, place, rru, run_header,
    spawn_metered_with, wait_until_done_at_exchange, BenchPlatform, Call, CountingExchange,
    ExchangeCalls,
};
use system_tests::conformance::balances::funded_account;
use system_tests::orders::new_order_id;
use system_tests::platform::PlatformOptions;

/// The reconciler's production bounds (`reconciler::Settings::from_env`
/// defaults) and its Lambda timeout (`template.yaml`).
const PAGE_SIZE: usize = 100;
const MAX_RUN_MS: u64 = 45_000;
const SAFETY_MARGIN_MS: u64 = 10_000;
const LAMBDA_TIMEOUT_MS: u64 = 60_000;
/// The schedule: one run a minute.
const RUN_EVERY_MS: u64 = 60_000;
/// Seeded orders were created over this long before the run...
const SEEDED_OVER_MS: u64 = 2 * 3_600_000;
/// ...and the youngest this long ago, so each had its first look.
const YOUNGEST_SEEDED_MS: u64 = 10 * 60_000;

/// The cursor records `app::orders::reconcile` keeps per shard: name and value.
fn cursor_name(shard: u32) -> String {
    format!("due#{shard}")
}

fn cursor_value(order: &Order) -> String {
    format!("{}|{}", order.recovery.due_at_ms, order.id)
}

/// What one run did and cost.
struct Row {
    resting: usize,
    run: usize,
    summary: reconciler::RunSummary,
    wall: Duration,
    read_half_units: u64,
    write_units: u64,
    /// The part of the reads spent on the index and the cursors.
    overhead_read_half_units: u64,
    calls: BTreeMap<String, u64>,
    rest: BTreeMap<&'static str, u64>,
    /// Lost orders closed by this run.
    recovered: Vec<&'static str>,
    /// One empty query of the open-order index made directly on the
    /// emulator right after the run (its own speed at this table size).
    raw_query: Duration,
}

/// Times one query of the open-order index that finds nothing, straight on
/// the emulator: the emulator evaluates a query against every item of the
/// index (DynamoDB reads only the key range), which is what a run's wall
/// time grows with here.
async fn raw_index_query(bp: &BenchPlatform) -> anyhow::Result<Duration> {
    let started = Instant::now();
    bp.plain
        .query()
        .table_name(&bp.platform.trading_table)
        .index_name("open-orders")
        .key_condition_expression("os = :shard AND od <= :until")
        .expression_attribute_values(
            ":shard",
            aws_sdk_dynamodb::types::AttributeValue::S("0".into()),
        )
        .expression_attribute_values(
            ":until",
            aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
        )
        .send()
        .await?;
    Ok(started.elapsed())
}

fn is_overhead(call: &Call) -> bool {
    call.items
        .iter()
        .any(|i| i.starts_with("Trading CURSOR#") || i.starts_with("Trading index open-orders"))
}

struct Lost {
    name: &'static str,
    id: OrderId,
    /// When its signal arose (platform clock).
    signal_at_ms: u64,
    closed_at_run: Option<usize>,
    /// Runs that started at or after the signal, up to and including the one that closed it.
    runs_after_signal: usize,
}

/// Seeds `count` copies of `template` (a resting order), created over
/// [`SEEDED_OVER_MS`] before now; returns the last (due, id) of each shard.
async fn seed_resting(
    bp: &BenchPlatform,
    template: &Order,
    version: u64,
    count: usize,
    cursors: &mut BTreeMap<u32, Order>,
) -> anyhow::Result<Duration> {
    let now = bp.platform.orders().now();
    let first_look_ms = template.recovery.due_at_ms - template.created_at_ms;
    let span = SEEDED_OVER_MS - YOUNGEST_SEEDED_MS;
    let oldest = now - SEEDED_OVER_MS;
    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let mut order = template.clone();
        order.id = new_order_id();
        order.exchange_order_id = Some(format!("seeded-{}", order.id));
        order.created_at_ms = oldest + span * i as u64 / count.max(1) as u64;
        order.recovery.due_at_ms = order.created_at_ms + first_look_ms;
        let shard = order.open_index_shard();
        let later = cursors
            .get(&shard)
            .is_none_or(|c| (c.recovery.due_at_ms, &c.id) < (order.recovery.due_at_ms, &order.id));
        items.push(DynamoOrderStore::order_item(&order, version)?);
        if later {
            cursors.insert(shard, order);
        }
    }
    let started = Instant::now();
    batch_put(&bp.plain, &bp.platform.trading_table, items).await?;
    Ok(started.elapsed())
}

/// Writes each shard's cursor past its seeded entries, and marks the
/// end-of-day checks of the days these runs see as done.
async fn seed_progress(
    bp: &BenchPlatform,
    cursors: &BTreeMap<u32, Order>,
    runs: usize,
) -> anyhow::Result<()> {
    let store = bp.plain_store();
    for (shard, last) in cursors {
        let name = cursor_name(*shard);
        let stored = store.cursor(&name).await?;
        // Only forward: runs since the last seeding may have moved it further.
        let behind = stored.as_ref().is_none_or(|c| {
            let due: u64 = c
                .value
                .split('|')
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            due < last.recovery.due_at_ms
        });
        if behind {
            let version = stored.map_or(0, |c| c.version);
            store
                .save_cursor(&name, &cursor_value(last), version)
                .await?;
        }
    }
    let calendar = TradingCalendar::default();
    let now = bp.platform.orders().now();
    for minute in 0..=(runs as u64 + 5) {
        let Some(day) = calendar.last_checkable_day(now + minute * RUN_EVERY_MS) else {
            continue;
        };
        let name = format!("eod#{}", TradingCalendar::date(day));
        if store.cursor(&name).await?.is_none() {
            store.save_cursor(&name, "done", 0).await?;
        }
    }
    Ok(())
}

/// The two orders whose webhooks are lost.
async fn lose_two(
    bp: &BenchPlatform,
    account: &domain::AccountId,
    round: usize,
) -> anyhow::Result<Vec<Lost>> {
    let platform = &bp.platform;
    let limit = place(
        platform,
        account,
        &format!("lost-limit-{round}"),
        &limit_buy(10, "500.00"),
    )
    .await;
    let market = place(
        platform,
        account,
        &format!("lost-market-{round}"),
        &market_buy(10),
    )
    .await;
    wait_until_done_at_exchange(
        platform,
        &[limit.clone(), market.clone()],
        Duration::from_secs(60),
    )
    .await;
    // Only the limit order's final status arrives.
    let final_report = platform
        .reports_from_audit(&limit)
        .into_iter()
        .find(|r| matches!(r, ExchangeReport::Final { .. }))
        .ok_or_else(|| anyhow::anyhow!("a final status"))?;
    let processor = platform.orders();
    let (response, _) = handle_batch(
        &processor,
        &platform.set_aside,
        batch(vec![message(0, &final_report)]),
        u64::MAX,
    )
    .await;
    anyhow::ensure!(
        response.batch_item_failures.is_empty(),
        "final status applied"
    );
    let now = processor.now();
    let placed_at = platform
        .stored(&market)
        .await
        .place
        .map_or(now, |p| p.step.updated_at_ms);
    Ok(vec![
        Lost {
            name: "limit, final status without its executions",
            id: limit,
            signal_at_ms: now,
            closed_at_run: None,
            runs_after_signal: 0,
        },
        Lost {
            name: "market, silent",
            id: market,
            signal_at_ms: placed_at + platform.settings.recovery.market_silence_ms,
            closed_at_run: None,
            runs_after_signal: 0,
        },
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let max_resting = arg("--resting", 100_000);
    let runs = arg("--runs", 4);
    let options = PlatformOptions {
        settings: app::orders::OrderSettings::default(),
        ..PlatformOptions::default()
    };
    let bp = spawn_metered_with("bench-reconciler", options).await;
    let platform = &bp.platform;
    let account = funded_account(&platform.balances, "recon", 1_000_000_000).await;
    let calls = ExchangeCalls::default();
    let orders = platform.orders_with(|s, b, e| (s, b, CountingExchange::new(e, calls.clone())));
    let settings = reconciler::Settings {
        page_size: PAGE_SIZE,
        max_run_ms: MAX_RUN_MS,
        safety_margin_ms: SAFETY_MARGIN_MS,
    };

    // The template: a limit buy far below the market, resting at the exchange.
    let template_id = place(platform, &account, "template", &limit_buy(10, "1.00")).await;
    let template = platform.stored(&template_id).await;
    anyhow::ensure!(
        template.is_placed() && template.fill_count() == 0,
        "the template rests: {template:?}"
    );
    let version = bp
        .plain
        .get_item()
        .table_name(&platform.trading_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("ORDER#{template_id}")),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        )
        .send()
        .await?
        .item
        .and_then(|i| {
            i.get("v")
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1);

    let mut rows = Vec::new();
    let mut losts = Vec::new();
    let mut seeded = 0;
    let mut cursors = BTreeMap::new();
    for (round, size) in [1_000, 100_000]
        .into_iter()
        .filter(|s| *s <= max_resting)
        .chain((max_resting < 1_000).then_some(max_resting))
        .enumerate()
    {
        let took = seed_resting(&bp, &template, version, size - seeded, &mut cursors).await?;
        eprintln!(
            "seeded {} resting orders in {:.1} s ({:.0} items/s)",
            size - seeded,
            took.as_secs_f64(),
            (size - seeded) as f64 / took.as_secs_f64()
        );
        seeded = size;
        seed_progress(&bp, &cursors, runs).await?;
        let mut lost = lose_two(&bp, &account, round).await?;
        bp.metering.take();
        for run in 1..=runs {
            platform.clock.advance_ms(RUN_EVERY_MS);
            let before = calls.snapshot();
            let now = orders.now();
            let started = Instant::now();
            let summary = reconciler::run_once(&orders, &settings, LAMBDA_TIMEOUT_MS).await;
            let wall = started.elapsed();
            let (usage, log) = bp.metering.take();
            let after = calls.snapshot();
            let rest = after
                .iter()
                .map(|(k, v)| (*k, v - before.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect();
            let mut recovered = Vec::new();
            for l in lost.iter_mut().filter(|l| l.closed_at_run.is_none()) {
                if now >= l.signal_at_ms {
                    l.runs_after_signal += 1;
                }
                // Unmetered: the check is not the run's.
                let closed = bp
                    .plain_store()
                    .load(&l.id)
                    .await?
                    .is_some_and(|o| o.value.is_closed());
                if closed {
                    l.closed_at_run = Some(run);
                    recovered.push(l.name);
                }
            }
            let raw_query = raw_index_query(&bp).await?;
            rows.push(Row {
                raw_query,
                resting: size,
                run,
                summary,
                wall,
                read_half_units: usage.read_half_units,
                write_units: usage.write_units,
                overhead_read_half_units: log
                    .iter()
                    .filter(|c| is_overhead(c))
                    .map(|c| c.usage.read_half_units)
                    .sum(),
                calls: usage.calls.clone(),
                rest,
                recovered,
            });
        }
        losts.extend(lost.into_iter().map(|l| (size, l)));
    }

    // Nothing healthy was flagged: the flagged-orders index holds nothing.
    let (flagged, _) = bp.plain_store().flagged(None, 100).await?;

    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-reconciler -- --resting {max_resting} --runs {runs}"
        ))
    );
    println!("## One reconciler run per simulated minute\n");
    println!("| resting orders | run | examined | healthy | rescheduled | closed | newly flagged | RRU | of which index + cursors | WRU | DynamoDB calls | exchange REST calls | wall ms | one raw empty index Query on the emulator, ms | lost order recovered |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|");
    for r in &rows {
        let calls: Vec<String> = r.calls.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let rest: Vec<String> = r.rest.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.resting,
            r.run,
            r.summary.examined,
            r.summary.healthy,
            r.summary.rescheduled,
            r.summary.closed,
            r.summary.newly_flagged,
            rru(r.read_half_units),
            rru(r.overhead_read_half_units),
            r.write_units,
            calls.join(", "),
            if rest.is_empty() {
                "–".into()
            } else {
                rest.join(", ")
            },
            ms(r.wall),
            ms(r.raw_query),
            r.recovered.join("; "),
        );
    }
    println!("\n## The lost orders\n");
    println!("| resting orders | order | closed by run | runs from its signal to its close |");
    println!("|---:|---|---:|---:|");
    let mut all_recovered = true;
    for (size, l) in &losts {
        all_recovered &= l.closed_at_run.is_some() && l.runs_after_signal <= 2;
        println!(
            "| {size} | {} | {} | {} |",
            l.name,
            l.closed_at_run
                .map_or("not closed".into(), |r| r.to_string()),
            l.runs_after_signal
        );
    }
    println!(
        "\nEvery lost order recovered within 2 runs of its signal: {}. Orders flagged: {}.",
        if all_recovered { "yes" } else { "NO" },
        flagged.len()
    );
    Ok(())
}
