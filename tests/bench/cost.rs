//! DynamoDB capacity of an order, step by step, against DESIGN §8's budget
//! (issue 14), on the local stack:
//!
//! ```text
//! cargo run -p system-tests --bin bench-cost -- [--orders 20]
//! ```
//!
//! Every order goes the whole way: `POST /orders` (idempotency key, record,
//! reserve at Balances, place at the exchange simulator), then each webhook
//! the exchange sends for it (every execution, then the final status),
//! signed as the venue signs it, through the fill webhook onto the real FIFO
//! fill queue, received by an event-source-mapping poller and applied by
//! `fill_processor::handle_batch` (settle, release with the last
//! settlement, close). Then each report again: once as the venue's retry
//! within five minutes (same webhook id: SQS de-duplicates it) and once as a
//! redelivery past that window (new message: the processor must find the
//! duplicate and write nothing).
//!
//! `--orders` limit buys of 1 share (one execution) and as many of 5 shares
//! (1 to 5 executions) run one at a time, so each DynamoDB call of the
//! trading and Balances tables (one metered client) is attributed to its
//! step. Prints the calls of the first 1-share order one by one, capacity
//! per step, per order by execution count with the cost of each further
//! execution, and the verdict against the budget.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use aws_adapters::dynamodb::Usage;
use aws_adapters::sqs::SqsFillQueue;
use domain::ids::MAX_ACCOUNT_ID_LEN;
use domain::order::{
    Cancel, ExchangeReport, FlagReason, Order, OrderId, Step as StepRecord, StepState,
    MAX_DETAIL_CHARS,
};
use domain::AccountId;
use exchange_sim::ExchangeEvent;
use fill_processor::handle_batch;
use system_tests::bench::{
    accumulate, arg, limit_buy, order_item_bytes, place, rru, run_header, short_table,
    spawn_metered_with, table_read_half_units, table_write_units, wait_until_done_at_exchange,
    webhook_events, BenchPlatform, Call, FifoPoller, Webhook,
};
use system_tests::conformance::balances::funded_account;
use system_tests::platform::{PlatformOptions, StackOrders};
use system_tests::sim_exchange::fast_fills;

/// DESIGN §8: an order with one fill, across both tables.
const BUDGET_ONE_FILL_WRU: u64 = 20;
const BUDGET_ONE_FILL_RRU: u64 = 12;
/// DESIGN §8: each further fill, at any fill count.
const BUDGET_FURTHER_FILL_WRU: u64 = 8;
/// How long a receive waits on the queue before an empty answer counts.
const RECEIVE_WAIT_S: i32 = 1;
/// Most receives for one expected message (a slow emulator under load).
const MAX_RECEIVES: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Placement,
    Webhook,
    Fill,
    LastFill,
    FinalStatus,
    VenueRetry,
    DuplicateFill,
    DuplicateFinalStatus,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::Placement => "placement (POST /orders: record, reserve, place)",
            Step::Webhook => "webhook received, verified, queued (each report)",
            Step::Fill => "fill applied and settled, order not yet filled",
            Step::LastFill => "last fill: applied, settled with the release, order closed",
            Step::FinalStatus => "final status report",
            Step::VenueRetry => "venue retries a webhook at once (same webhook id)",
            Step::DuplicateFill => "duplicate fill delivered again later",
            Step::DuplicateFinalStatus => "duplicate final status delivered again later",
        }
    }

    fn is_duplicate(self) -> bool {
        matches!(
            self,
            Step::VenueRetry | Step::DuplicateFill | Step::DuplicateFinalStatus
        )
    }
}

#[derive(Default)]
struct Tally {
    /// Per step kind: deliveries, capacity.
    steps: BTreeMap<Step, (u64, Usage)>,
    /// Per order: executions, first-delivery capacity (placement, each
    /// report once).
    orders: BTreeMap<String, (usize, Usage)>,
    /// Capacity of each first delivery of an execution (not the last of its order).
    further_fills: Vec<Usage>,
    /// The calls of the first 1-share order, step by step.
    first_order: Vec<(Step, Usage, Vec<Call>)>,
}

struct Bench {
    bp: BenchPlatform,
    webhook: Webhook,
    poller: FifoPoller,
    processor: StackOrders,
    set_aside: SqsFillQueue,
    tally: Tally,
    traced: Option<OrderId>,
}

impl Bench {
    fn record(&mut self, step: Step, id: &OrderId) {
        let (usage, calls) = self.bp.metering.take();
        let entry = self.tally.steps.entry(step).or_default();
        entry.0 += 1;
        accumulate(&mut entry.1, &usage);
        if !step.is_duplicate() {
            let order = self.tally.orders.entry(id.to_string()).or_default();
            accumulate(&mut order.1, &usage);
            if matches!(step, Step::Fill | Step::LastFill) {
                order.0 += 1;
            }
        }
        if step == Step::Fill {
            self.tally.further_fills.push(usage.clone());
        }
        if self.traced.as_ref() == Some(id) {
            self.tally.first_order.push((step, usage, calls));
        }
    }

    /// Receives until one message came and was handled; `expect_none`:
    /// one empty receive proves nothing is queued.
    async fn receive_and_apply(&self, expect_none: bool) -> anyhow::Result<usize> {
        for _ in 0..MAX_RECEIVES {
            let polled = self
                .poller
                .poll_once(|event| async {
                    let deadline = self.processor.now() + 30_000;
                    handle_batch(&self.processor, &self.set_aside, event, deadline)
                        .await
                        .0
                })
                .await?;
            anyhow::ensure!(polled.failed == 0, "a delivery failed: {polled:?}");
            if polled.received > 0 || expect_none {
                return Ok(polled.received);
            }
        }
        anyhow::bail!("nothing arrived on the fill queue after {MAX_RECEIVES} receives")
    }

    /// One report the whole way: webhook, queue, processor.
    async fn deliver(
        &mut self,
        event: &ExchangeEvent,
        step: Step,
        id: &OrderId,
    ) -> anyhow::Result<()> {
        let status = self.webhook.deliver(event).await;
        anyhow::ensure!(status.is_success(), "webhook answered {status}");
        self.record(Step::Webhook, id);
        let received = self.receive_and_apply(false).await?;
        anyhow::ensure!(received == 1, "one message per report, got {received}");
        self.record(step, id);
        Ok(())
    }

    /// The venue sends the same webhook again at once. In AWS, SQS drops it
    /// (same de-duplication id within five minutes, even after the first
    /// was deleted); the emulator de-duplicates only against messages still
    /// queued, so there the retry reaches the processor as a duplicate.
    /// Answers whether it reached the processor.
    async fn venue_retry(&mut self, event: &ExchangeEvent, id: &OrderId) -> anyhow::Result<bool> {
        let status = self.webhook.deliver(event).await;
        anyhow::ensure!(status.is_success(), "webhook answered {status}");
        let received = self.receive_and_apply(true).await?;
        self.record(Step::VenueRetry, id);
        Ok(received > 0)
    }

    /// The report queued again as a new message (a redelivery after SQS's
    /// five minutes): the processor meets it as a duplicate.
    async fn redeliver(
        &mut self,
        report: &ExchangeReport,
        n: usize,
        step: Step,
    ) -> anyhow::Result<()> {
        app::fill_queue::FillQueue::send(&self.set_aside, report, &format!("redelivery-{n}"))
            .await
            .context("queue")?;
        let received = self.receive_and_apply(false).await?;
        anyhow::ensure!(received == 1, "one message per redelivery, got {received}");
        self.record(step, report.client_order_id());
        Ok(())
    }
}

fn per(units: u64, count: u64) -> String {
    format!("{:.2}", units as f64 / count.max(1) as f64)
}

fn rru_per(half_units: u64, count: u64) -> String {
    format!("{:.2}", half_units as f64 / 2.0 / count.max(1) as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders_per_kind = arg("--orders", 20);
    // One execution for a 1-share order, 1 to 5 for a 5-share order.
    let options = PlatformOptions {
        engine: exchange_sim::EngineConfig {
            min_chunks: 1,
            max_chunks: 5,
            ..fast_fills(system_tests::platform::rand_seed())
        },
        ..PlatformOptions::default()
    };
    let bp = spawn_metered_with("bench-cost", options).await;
    let account = funded_account(&bp.platform.balances, "cost", 1_000_000_000).await;
    let webhook = Webhook::serve(&bp).await;
    let poller = FifoPoller::new(&bp.sqs, bp.queue_url(), 10, RECEIVE_WAIT_S);
    let mut bench = Bench {
        processor: bp.platform.orders(),
        set_aside: bp.fill_queue(),
        webhook,
        poller,
        bp,
        tally: Tally::default(),
        traced: None,
    };
    bench.bp.metering.take();

    let sizes =
        std::iter::repeat_n(1, orders_per_kind).chain(std::iter::repeat_n(5, orders_per_kind));
    let mut redeliveries = 0;
    // Venue retries the emulator let through (see `Bench::venue_retry`).
    let mut retries_through = 0;
    for (n, quantity) in sizes.enumerate() {
        let body = limit_buy(quantity, "500.00");
        let id = place(&bench.bp.platform, &account, &format!("k-{n}"), &body).await;
        bench.traced.get_or_insert(id.clone());
        bench.record(Step::Placement, &id);
        wait_until_done_at_exchange(
            &bench.bp.platform,
            std::slice::from_ref(&id),
            Duration::from_secs(60),
        )
        .await;
        bench.bp.metering.take();

        let events = webhook_events(&bench.bp.platform, &id);
        let reports = bench.bp.platform.reports_from_audit(&id);
        anyhow::ensure!(events.len() == reports.len(), "one report per webhook");
        let executions = events.len() - 1;
        for (i, event) in events.iter().enumerate() {
            let step = match i {
                i if i == executions => Step::FinalStatus,
                i if i + 1 == executions => Step::LastFill,
                _ => Step::Fill,
            };
            bench.deliver(event, step, &id).await?;
        }
        // Retries within the window cost a receive wait each: the traced order only.
        if bench.traced.as_ref() == Some(&id) {
            for event in &events {
                retries_through += usize::from(bench.venue_retry(event, &id).await?);
            }
        }
        for report in &reports {
            let step = match report {
                ExchangeReport::Execution { .. } => Step::DuplicateFill,
                ExchangeReport::Final { .. } => Step::DuplicateFinalStatus,
            };
            redeliveries += 1;
            bench.redeliver(report, redeliveries, step).await?;
        }
        let order = bench.bp.platform.order(&id).await;
        anyhow::ensure!(order.is_closed(), "order {id} closed");
        anyhow::ensure!(
            order.fill_count() as usize == executions,
            "each execution of {id} applied once"
        );
        // The checks' own reads are no step's.
        bench.bp.metering.take();
        eprintln!(
            "order {}/{}: {executions} executions",
            n + 1,
            2 * orders_per_kind
        );
    }
    print_report(&bench, orders_per_kind);
    if let Some(id) = bench.traced.clone() {
        print_headroom(&bench.bp.platform.stored(&id).await)?;
    }
    println!(
        "\nVenue retries within 5 minutes that reached the processor: {retries_through} (the emulator de-duplicates only against messages still queued; SQS keeps the id for 5 minutes)."
    );
    Ok(())
}

fn print_report(bench: &Bench, orders_per_kind: usize) {
    let trading = &bench.bp.platform.trading_table;
    let balances = &bench.bp.platform.balances_table;
    let tally = &bench.tally;
    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-cost -- --orders {orders_per_kind}"
        ))
    );
    println!("RRU include the BatchGetItem keys found missing (billed by DynamoDB, not by the metering layer); the 'of which missed' column shows them.\n");

    // 1. One order, call by call.
    println!("## The calls of one order (1 share, 1 execution), in order\n");
    println!("| step | # | operation | items | put bytes | WRU | of which index | RRU | of which missed keys |");
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|");
    let mut one = Usage::default();
    for (step, usage, calls) in &tally.first_order {
        if !step.is_duplicate() {
            accumulate(&mut one, usage);
        }
        if calls.is_empty() {
            println!(
                "| {} | – | no DynamoDB call | | | 0 | 0 | 0 | 0 |",
                step.label()
            );
        }
        for (n, call) in calls.iter().enumerate() {
            let tables: Vec<String> = call.usage.tables.keys().map(|t| short_table(t)).collect();
            println!(
                "| {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
                step.label(),
                n + 1,
                call.operation,
                tables.join("+"),
                call.items.join(", "),
                call.put_bytes,
                call.usage.write_units,
                call.usage.index_write_units,
                rru(call.usage.read_half_units),
                rru(call.missed_read_half_units),
            );
        }
    }
    println!(
        "\nThat order end to end (placement + each report once): **{} WRU** (Trading {}, Balances {}), **{} RRU** (Trading {}, Balances {}); budget ≤ {BUDGET_ONE_FILL_WRU} WRU, ≤ {BUDGET_ONE_FILL_RRU} RRU.",
        one.write_units,
        table_write_units(&one, trading),
        table_write_units(&one, balances),
        rru(one.read_half_units),
        rru(table_read_half_units(&one, trading)),
        rru(table_read_half_units(&one, balances)),
    );

    // 2. Per step, every order.
    let mut indexes: Vec<String> = tally
        .steps
        .values()
        .flat_map(|(_, u)| u.tables.values())
        .flat_map(|t| t.index_write_units.keys().cloned())
        .collect();
    indexes.sort();
    indexes.dedup();
    println!("\n## Capacity per step (average per delivery, every order)\n");
    let index_columns: String = indexes.iter().map(|i| format!(" of which {i} |")).collect();
    println!("| step | count | WRU | Trading WRU |{index_columns} Balances WRU | RRU | Trading RRU | Balances RRU | calls | failed conditions |");
    println!(
        "|---|---:|---:|---:|{}---:|---:|---:|---:|---:|---:|",
        "---:|".repeat(indexes.len())
    );
    for (step, (count, usage)) in &tally.steps {
        let count = *count;
        let index_cells: String = indexes
            .iter()
            .map(|i| {
                let units = usage
                    .tables
                    .get(trading)
                    .and_then(|t| t.index_write_units.get(i))
                    .copied()
                    .unwrap_or(0);
                format!(" {} |", per(units, count))
            })
            .collect();
        println!(
            "| {} | {count} | {} | {} |{index_cells} {} | {} | {} | {} | {} | {} |",
            step.label(),
            per(usage.write_units, count),
            per(table_write_units(usage, trading), count),
            per(table_write_units(usage, balances), count),
            rru_per(usage.read_half_units, count),
            rru_per(table_read_half_units(usage, trading), count),
            rru_per(table_read_half_units(usage, balances), count),
            per(usage.total_calls(), count),
            per(usage.failed_conditions, count),
        );
    }

    // 3. Per order, by executions.
    println!("\n## Capacity per order (placement + each report once), by executions\n");
    println!("| executions | orders | WRU per order | Trading WRU | Balances WRU | RRU per order | WRU above a 1-execution order, per further execution | budget WRU |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut by_fills: BTreeMap<usize, (u64, Usage)> = BTreeMap::new();
    for (fills, usage) in tally.orders.values() {
        let entry = by_fills.entry(*fills).or_default();
        entry.0 += 1;
        accumulate(&mut entry.1, usage);
    }
    let one_fill = by_fills
        .get(&1)
        .map(|(count, usage)| usage.write_units as f64 / *count as f64);
    let mut worst_marginal: f64 = 0.0;
    let mut one_fill_mean = (0u64, 0u64);
    for (fills, (count, usage)) in &by_fills {
        let mean = usage.write_units as f64 / *count as f64;
        let marginal = match (one_fill, *fills) {
            (Some(base), n) if n > 1 => {
                let m = (mean - base) / (n - 1) as f64;
                worst_marginal = worst_marginal.max(m);
                format!("{m:.2}")
            }
            _ => "–".into(),
        };
        if *fills == 1 {
            one_fill_mean = (usage.write_units / count, usage.read_half_units / count);
        }
        let budget =
            BUDGET_ONE_FILL_WRU + BUDGET_FURTHER_FILL_WRU * (*fills as u64).saturating_sub(1);
        println!(
            "| {fills} | {count} | {} | {} | {} | {} | {marginal} | ≤ {budget} |",
            per(usage.write_units, *count),
            per(table_write_units(usage, trading), *count),
            per(table_write_units(usage, balances), *count),
            rru_per(usage.read_half_units, *count),
        );
    }

    // 4. Verdict.
    let max_further = tally
        .further_fills
        .iter()
        .map(|u| u.write_units)
        .max()
        .unwrap_or(0);
    let duplicate_wru: u64 = tally
        .steps
        .iter()
        .filter(|(s, _)| s.is_duplicate())
        .map(|(_, (_, u))| u.write_units)
        .sum();
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    println!("\n## Against DESIGN §8\n");
    println!(
        "- one fill end to end: {} WRU (≤ {BUDGET_ONE_FILL_WRU}) {}; {} RRU (≤ {BUDGET_ONE_FILL_RRU}) {}",
        one.write_units,
        verdict(one.write_units <= BUDGET_ONE_FILL_WRU),
        rru(one.read_half_units),
        verdict(one.read_half_units <= 2 * BUDGET_ONE_FILL_RRU),
    );
    println!(
        "- mean over every 1-execution order: {} WRU, {} RRU",
        one_fill_mean.0,
        rru(one_fill_mean.1)
    );
    println!(
        "- each further fill: at most {max_further} WRU for an execution that does not finish its order, {worst_marginal:.2} WRU per further execution on average per order (≤ {BUDGET_FURTHER_FILL_WRU}) {}",
        verdict(max_further <= BUDGET_FURTHER_FILL_WRU && worst_marginal <= BUDGET_FURTHER_FILL_WRU as f64 + 1e-9),
    );
    println!(
        "- duplicate deliveries: {duplicate_wru} WRU in all (0) {}",
        verdict(duplicate_wru == 0)
    );
}

/// A change to an order (one of the variants of [`print_headroom`]).
type Change<'a> = &'a dyn Fn(&mut Order);

/// How close the order item comes to 1 KB (a save of 1 WRU) for orders
/// this run did not make: the closed 1-execution order as stored, then with
/// what other orders carry (the longest account id, the totals of 10,000
/// executions, a cancel, a flag), each alone and all together.
fn print_headroom(closed: &Order) -> anyhow::Result<()> {
    let now = closed.closed_at_ms.unwrap_or(closed.created_at_ms);
    let longest_account = AccountId::parse(&"a".repeat(MAX_ACCOUNT_ID_LEN))?;
    let variants: [(&str, Change); 4] = [
        ("the longest account id (64 characters)", &|o| {
            o.account = longest_account.clone();
        }),
        ("the totals of 10,000 executions", &|o| {
            o.fills.count = 10_000;
            o.fills.quantity = 10_000;
            o.fills.notional_cents = 10_000 * 50_000;
            o.fills.from_reserved_units = 10_000 * 50_000;
            o.reported_cum = 10_001;
        }),
        ("a cancel, confirmed", &|o| {
            o.cancel = Some(Cancel {
                requested_at_ms: now,
                step: Some(StepRecord::done(StepState::Succeeded, now)),
            });
        }),
        ("a flag with the longest detail (96 characters)", &|o| {
            o.recovery
                .flag(FlagReason::Stuck, &"x".repeat(MAX_DETAIL_CHARS), now);
        }),
    ];
    println!("\n## Order item size: headroom under 1 KB\n");
    println!("| order item | bytes | WRU per save |");
    println!("|---|---:|---:|");
    let row = |name: &str, order: &Order| {
        let bytes = order_item_bytes(order);
        println!("| {name} | {bytes} | {} |", bytes.div_ceil(1024).max(1));
    };
    row("as measured (closed, 1 execution)", closed);
    let mut all = closed.clone();
    for (name, change) in variants {
        let mut order = closed.clone();
        change(&mut order);
        change(&mut all);
        row(&format!("as measured + {name}"), &order);
    }
    row("as measured + all four", &all);
    println!(
        "\nThe closed order's stored JSON (attribute `o`):\n\n```json\n{}\n```",
        aws_adapters::dynamodb::shorten(closed)?
    );
    Ok(())
}
