//! One order filled in many executions (issue 14): capacity and time per
//! fill, and the size of the order's own item, must not grow with the fill
//! count. On the local stack, every call metered:
//!
//! ```text
//! cargo run -p system-tests --bin bench-fill-growth -- [--fills 10000]
//! ```
//!
//! A limit buy of `--fills` shares is placed with `POST /orders`; the
//! exchange simulator fills it in exactly `--fills` executions of one share.
//! Each execution's report then goes through `fill_processor::handle_batch`
//! on its own (one message per batch, so each fill's calls are its own),
//! metered and timed, in the exchange's order; then the final status. Prints
//! fills 1, 10, 100, 1,000, 10,000 one by one, and each decade's range.

use std::time::{Duration, Instant};

use domain::order::ExchangeReport;
use domain::Asset;
use fill_processor::handle_batch;
use system_tests::bench::{
    arg, batch, limit_buy, mean, message, ms, order_item_bytes, percentile, place, rru, run_header,
    spawn_metered_with, table_write_units, wait_until_done_at_exchange, Call,
};
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::platform::PlatformOptions;
use system_tests::sim_exchange::fast_fills;

/// Price of every execution's limit: far above the simulator's AAPL quote,
/// so the order fills at once, one share per execution.
const LIMIT: &str = "500.00";

/// One fill as measured.
struct Sample {
    n: usize,
    write_units: u64,
    trading_write_units: u64,
    read_half_units: u64,
    calls: u64,
    /// The largest order item written by this fill (0: none written).
    order_item_bytes: usize,
    /// The largest execution record written by this fill.
    fill_item_bytes: usize,
    elapsed: Duration,
}

fn largest_put(calls: &[Call], kind: &str) -> usize {
    calls
        .iter()
        .filter(|c| {
            c.items
                .iter()
                .any(|i| i.starts_with("Trading") && i.contains(kind))
        })
        .map(|c| c.put_bytes)
        .max()
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let fills = arg("--fills", 10_000);
    let options = PlatformOptions {
        engine: exchange_sim::EngineConfig {
            min_chunks: u32::try_from(fills)?,
            max_chunks: u32::try_from(fills)?,
            fill_interval_min_ms: 0,
            fill_interval_max_ms: 1,
            ..fast_fills(system_tests::platform::rand_seed())
        },
        ..PlatformOptions::default()
    };
    let bench = spawn_metered_with("bench-fill-growth", options).await;
    let platform = &bench.platform;
    // Twice the reservation: 500.00 a share.
    let start_cents = 100_000 * fills as u64;
    let account = funded_account(&platform.balances, "growth", start_cents).await;
    let id = place(
        platform,
        &account,
        "growth",
        &limit_buy(fills as u64, LIMIT),
    )
    .await;
    wait_until_done_at_exchange(
        platform,
        std::slice::from_ref(&id),
        Duration::from_secs(600),
    )
    .await;
    let reports = platform.reports_from_audit(&id);
    anyhow::ensure!(
        reports.len() == fills + 1,
        "{fills} executions and a final status"
    );
    let placement = order_item_bytes(&platform.stored(&id).await);
    bench.metering.take();

    let processor = platform.orders();
    let mut samples = Vec::with_capacity(fills);
    let started = Instant::now();
    for (n, report) in reports.iter().enumerate() {
        let is_final = matches!(report, ExchangeReport::Final { .. });
        let t0 = Instant::now();
        let (response, summary) = handle_batch(
            &processor,
            &platform.set_aside,
            batch(vec![message(n, report)]),
            u64::MAX,
        )
        .await;
        let elapsed = t0.elapsed();
        anyhow::ensure!(
            // The final status finds the order closed by its last fill: a duplicate.
            response.batch_item_failures.is_empty() && summary.applied + summary.duplicates == 1,
            "fill {} not applied: {summary:?}",
            n + 1
        );
        let (usage, calls) = bench.metering.take();
        if is_final {
            continue;
        }
        samples.push(Sample {
            n: n + 1,
            write_units: usage.write_units,
            trading_write_units: table_write_units(&usage, &platform.trading_table),
            read_half_units: usage.read_half_units,
            calls: usage.total_calls(),
            order_item_bytes: largest_put(&calls, "ORDER#"),
            fill_item_bytes: largest_put(&calls, "FILL#"),
            elapsed,
        });
        if (n + 1) % 500 == 0 {
            eprintln!(
                "{} fills in {:.0} s",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let total = started.elapsed();

    // Everything applied once and settled: the order closed, its records
    // one per execution, the reservation back to zero.
    let order = platform.order(&id).await;
    anyhow::ensure!(order.is_closed(), "the order closed");
    anyhow::ensure!(
        order.fill_count() as usize == fills,
        "{fills} fills recorded"
    );
    let cash = balance_of(&platform.balances, &account, &Asset::Cash).await;
    anyhow::ensure!(cash.reserved == 0, "the reservation is back to zero");
    let aapl = domain::Catalog::us_equities().asset("AAPL")?;
    anyhow::ensure!(
        balance_of(&platform.balances, &account, &aapl)
            .await
            .available
            == fills as u64,
        "one share per execution"
    );
    let closed_bytes = order_item_bytes(&platform.stored(&id).await);

    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-fill-growth -- --fills {fills}"
        ))
    );
    println!("Emulator (moto) throughout, every call metered; time = one `handle_batch` of one message, wall clock.\n");
    println!("## Fill by fill\n");
    println!("| fill # | WRU | Trading WRU | RRU | calls | order item bytes | execution record bytes | ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut checkpoint = 1;
    while checkpoint <= fills {
        let s = &samples[checkpoint - 1];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.n,
            s.write_units,
            s.trading_write_units,
            rru(s.read_half_units),
            s.calls,
            s.order_item_bytes,
            s.fill_item_bytes,
            ms(s.elapsed)
        );
        checkpoint *= 10;
    }
    println!("\n## By decade of fill numbers\n");
    println!("| fills | count | WRU min–max | RRU min–max | order item bytes min–max | mean ms | p50 ms | p99 ms |");
    println!("|---|---:|---|---|---|---:|---:|---:|");
    // Fill 1 alone, then 2–10, 11–100, ...
    let mut bounds = vec![1];
    while let Some(&last) = bounds.last().filter(|b| **b < fills) {
        bounds.push((last * 10).min(fills));
    }
    let mut low = 1;
    for high in bounds {
        let range = &samples[low - 1..high];
        let times: Vec<Duration> = range.iter().map(|s| s.elapsed).collect();
        let span = |f: &dyn Fn(&Sample) -> u64| {
            let min = range.iter().map(f).min().unwrap_or(0);
            let max = range.iter().map(f).max().unwrap_or(0);
            (min, max)
        };
        let (w0, w1) = span(&|s| s.write_units);
        let (r0, r1) = span(&|s| s.read_half_units);
        let (b0, b1) = span(&|s| s.order_item_bytes as u64);
        println!(
            "| {low}–{high} | {} | {w0}–{w1} | {}–{} | {b0}–{b1} | {} | {} | {} |",
            range.len(),
            rru(r0),
            rru(r1),
            ms(mean(&times)),
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 99.0)),
        );
        low = high + 1;
    }
    // Time in blocks of equal size: flat unless something grows with the fills.
    let block = (fills / 10).max(1);
    println!("\n## Time by block of {block} fills\n");
    println!("| fills | mean ms | p50 ms | p90 ms |");
    println!("|---|---:|---:|---:|");
    for (i, chunk) in samples.chunks(block).enumerate() {
        let times: Vec<Duration> = chunk.iter().map(|s| s.elapsed).collect();
        println!(
            "| {}–{} | {} | {} | {} |",
            i * block + 1,
            i * block + chunk.len(),
            ms(mean(&times)),
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 90.0)),
        );
    }
    println!(
        "\nOrder item: {placement} bytes after placement, {closed_bytes} bytes closed after {fills} fills. \
         {fills} fills in {:.0} s ({:.1} fills/s, one order, one at a time).",
        total.as_secs_f64(),
        fills as f64 / total.as_secs_f64()
    );
    Ok(())
}
