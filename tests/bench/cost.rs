//! DynamoDB capacity per placed order (DESIGN §8), on the local stack:
//!
//! ```text
//! cargo run -p system-tests --bin bench-cost -- [--orders 50]
//! ```
//!
//! Places `--orders` limit buys of 1 share (the exchange fills them in one
//! execution) and as many of 10 shares (2 to 5 executions) through
//! `POST /orders`, waits for the exchange to fill them, then delivers every
//! report of the exchange's audit once to `fill_processor::handle_batch` (one
//! message per batch) and then once more (duplicates). Every DynamoDB call of
//! the trading and Balances tables is metered (both services share one
//! metered client). Prints capacity per step, per order, and the calls of
//! the first order one by one.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_adapters::dynamodb::{format_half_units, Usage};
use domain::order::{ExchangeReport, OrderId};
use fill_processor::handle_batch;
use system_tests::bench::{
    accumulate, arg, batch, limit_buy, message, place, spawn_metered, table_write_units,
    wait_until_done_at_exchange, Call, Metering,
};
use system_tests::conformance::balances::funded_account;
use system_tests::platform::Platform;

/// What one metered step was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Placement,
    Fill,
    LastFill,
    FinalStatus,
    DuplicateFill,
    DuplicateFinalStatus,
}

impl Step {
    fn label(self) -> &'static str {
        match self {
            Step::Placement => "placement (POST /orders)",
            Step::Fill => "fill, order not yet filled",
            Step::LastFill => "fill that completes the order",
            Step::FinalStatus => "final status report",
            Step::DuplicateFill => "duplicate fill delivery",
            Step::DuplicateFinalStatus => "duplicate final status delivery",
        }
    }
}

/// Capacity counted per step kind, and per order.
#[derive(Default)]
struct Tally {
    steps: BTreeMap<Step, (u64, Usage)>,
    /// Per order: executions, and first-delivery capacity (placement, fills,
    /// final status).
    orders: BTreeMap<String, (usize, Usage)>,
    /// The calls of the first order, step by step.
    first_order: Vec<(Step, Vec<Call>)>,
}

struct Bench {
    platform: Platform,
    metering: Metering,
    trading: String,
    balances: String,
    tally: Tally,
    first_order: Option<OrderId>,
}

impl Bench {
    fn record(&mut self, step: Step, id: &OrderId) {
        let (usage, calls) = self.metering.take();
        let entry = self.tally.steps.entry(step).or_default();
        entry.0 += 1;
        accumulate(&mut entry.1, &usage);
        if !matches!(step, Step::DuplicateFill | Step::DuplicateFinalStatus) {
            let order = self.tally.orders.entry(id.to_string()).or_default();
            accumulate(&mut order.1, &usage);
            if matches!(step, Step::Fill | Step::LastFill) {
                order.0 += 1;
            }
        }
        if self.first_order.as_ref() == Some(id) {
            self.tally.first_order.push((step, calls));
        }
    }

    async fn deliver(&mut self, n: usize, report: &ExchangeReport, step: Step) {
        let processor = self.platform.orders();
        let response = handle_batch(
            &processor,
            &self.platform.set_aside,
            batch(vec![message(n, report)]),
            u64::MAX,
        )
        .await
        .0;
        assert!(
            response.batch_item_failures.is_empty(),
            "delivery failed: {response:?}"
        );
        let id = report.client_order_id().clone();
        self.record(step, &id);
    }

    fn short(&self, table: &str) -> &'static str {
        if table == self.trading {
            "Trading"
        } else if table == self.balances {
            "Balances"
        } else {
            "other"
        }
    }
}

fn per(units: u64, count: u64) -> String {
    format!("{:.2}", units as f64 / count.max(1) as f64)
}

fn rru(half_units: u64, count: u64) -> String {
    format!("{:.2}", half_units as f64 / 2.0 / count.max(1) as f64)
}

#[tokio::main]
async fn main() {
    let orders_per_kind = arg("--orders", 50);
    let (platform, metering) = spawn_metered("bench-cost").await;
    let account = funded_account(&platform.balances, "cost", 1_000_000_000).await;
    let mut bench = Bench {
        trading: platform.trading_table.clone(),
        balances: platform.balances_table.clone(),
        platform,
        metering,
        tally: Tally::default(),
        first_order: None,
    };
    bench.metering.take();

    // 1. Placement, one order at a time.
    let mut ids = Vec::new();
    for (n, quantity) in std::iter::repeat_n(1, orders_per_kind)
        .chain(std::iter::repeat_n(10, orders_per_kind))
        .enumerate()
    {
        let body = limit_buy(quantity, "500.00");
        let id = place(&bench.platform, &account, &format!("k-{n}"), &body).await;
        bench.first_order.get_or_insert(id.clone());
        bench.record(Step::Placement, &id);
        ids.push(id);
    }
    wait_until_done_at_exchange(&bench.platform, &ids, Duration::from_secs(60)).await;
    bench.metering.take();

    // 2. Every report once, then 3. every report again.
    let reports: Vec<Vec<ExchangeReport>> = ids
        .iter()
        .map(|id| bench.platform.reports_from_audit(id))
        .collect();
    for duplicate in [false, true] {
        for order_reports in &reports {
            let executions = order_reports
                .iter()
                .filter(|r| matches!(r, ExchangeReport::Execution { .. }))
                .count();
            for (i, report) in order_reports.iter().enumerate() {
                let step = match (report, duplicate) {
                    (ExchangeReport::Execution { .. }, true) => Step::DuplicateFill,
                    (ExchangeReport::Execution { .. }, false) if i + 1 == executions => {
                        Step::LastFill
                    }
                    (ExchangeReport::Execution { .. }, false) => Step::Fill,
                    (_, true) => Step::DuplicateFinalStatus,
                    (_, false) => Step::FinalStatus,
                };
                bench.deliver(i, report, step).await;
            }
        }
    }

    // Sanity: every order closed with every execution applied once.
    for (id, order_reports) in ids.iter().zip(&reports) {
        let order = bench.platform.order(id).await;
        assert!(order.is_closed(), "order {id} closed");
        assert_eq!(
            order.fill_count() as usize + 1,
            order_reports.len(),
            "fills of {id}"
        );
    }
    print_report(&bench);
}

fn print_report(bench: &Bench) {
    let tally = &bench.tally;
    let mut indexes: Vec<String> = tally
        .steps
        .values()
        .flat_map(|(_, u)| u.tables.values())
        .flat_map(|t| t.index_write_units.keys().cloned())
        .collect();
    indexes.sort();
    indexes.dedup();

    println!("\n## Capacity per step (average per delivery; WRU include index writes)\n");
    let index_columns: String = indexes.iter().map(|i| format!(" of which {i} |")).collect();
    println!(
        "| step | count | WRU | Trading WRU |{index_columns} Balances WRU | RRU | Trading RRU | Balances RRU | calls | failed conditions |"
    );
    println!(
        "|---|---:|---:|---:|{}---:|---:|---:|---:|---:|---:|",
        "---:|".repeat(indexes.len())
    );
    for (step, (count, usage)) in &tally.steps {
        let count = *count;
        let table = |name: &str| usage.tables.get(name).cloned().unwrap_or_default();
        let trading = table(&bench.trading);
        let balances = table(&bench.balances);
        let index_cells: String = indexes
            .iter()
            .map(|i| {
                let units = trading.index_write_units.get(i).copied().unwrap_or(0);
                format!(" {} |", per(units, count))
            })
            .collect();
        println!(
            "| {} | {count} | {} | {} |{index_cells} {} | {} | {} | {} | {} | {} |",
            step.label(),
            per(usage.write_units, count),
            per(table_write_units(usage, &bench.trading), count),
            per(table_write_units(usage, &bench.balances), count),
            rru(usage.read_half_units, count),
            rru(trading.read_half_units, count),
            rru(balances.read_half_units, count),
            per(usage.total_calls(), count),
            per(usage.failed_conditions, count),
        );
    }

    // Per order: the first delivery of everything it needed.
    println!("\n## Capacity per order (placement + each fill once + final status once)\n");
    println!("| executions | orders | WRU per order | Trading WRU | Balances WRU | RRU per order | §8 target WRU |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut by_fills: BTreeMap<usize, (u64, Usage)> = BTreeMap::new();
    for (fills, usage) in tally.orders.values() {
        let entry = by_fills.entry(*fills).or_default();
        entry.0 += 1;
        accumulate(&mut entry.1, usage);
    }
    for (fills, (count, usage)) in &by_fills {
        let target = 16 + 8 * (*fills as u64).saturating_sub(1);
        println!(
            "| {fills} | {count} | {} | {} | {} | {} | ≤ {target} |",
            per(usage.write_units, *count),
            per(table_write_units(usage, &bench.trading), *count),
            per(table_write_units(usage, &bench.balances), *count),
            rru(usage.read_half_units, *count),
        );
    }

    println!("\n## The calls of one order (1 share, 1 execution), in order\n");
    println!(
        "| step | # | operation | items | put bytes | WRU | index WRU | RRU | failed condition |"
    );
    println!("|---|---:|---|---|---:|---:|---:|---:|---:|");
    for (step, calls) in &tally.first_order {
        for (n, call) in calls.iter().enumerate() {
            let tables: Vec<&str> = call.usage.tables.keys().map(|t| bench.short(t)).collect();
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
                format_half_units(call.usage.read_half_units),
                call.usage.failed_conditions,
            );
        }
    }
}
