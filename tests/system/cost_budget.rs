//! DESIGN §8's cost budget, asserted on the metering layer's counts: an
//! order with one fill costs at most 20 WRU and 12 RRU across both tables,
//! each further fill at most 8 WRU, a duplicate delivery nothing. Capacity
//! counts requests and item sizes, not time, so these are exact on any
//! machine; `bench-cost` prints the same figures call by call.
//!
//! RRU include what DynamoDB bills for the keys a `BatchGetItem` finds
//! missing (the call log of `system_tests::bench` adds them).

use std::time::Duration;

use aws_adapters::dynamodb::Usage;
use domain::order::{ExchangeReport, OrderId};
use fill_processor::handle_batch;
use system_tests::bench::{
    batch, limit_buy, message, place, spawn_metered_with, wait_until_done_at_exchange,
    BenchPlatform,
};
use system_tests::conformance::balances::funded_account;
use system_tests::platform::PlatformOptions;

const ONE_FILL_WRU: u64 = 20;
const ONE_FILL_RRU_HALVES: u64 = 2 * 12;
const FURTHER_FILL_WRU: u64 = 8;

/// A metered platform whose exchange fills every order in exactly
/// `executions` executions (fewer only if it has fewer shares).
async fn platform_filling_in(label: &str, executions: u32) -> BenchPlatform {
    let engine = exchange_sim::EngineConfig {
        min_chunks: executions,
        max_chunks: executions,
        ..system_tests::sim_exchange::fast_fills(system_tests::platform::rand_seed())
    };
    spawn_metered_with(
        label,
        PlatformOptions {
            engine,
            ..PlatformOptions::default()
        },
    )
    .await
}

/// Places a limit buy, waits for the exchange to fill it; the capacity of
/// the placement and the reports the webhooks would carry.
async fn placed_and_filled(
    bench: &BenchPlatform,
    shares: u64,
) -> (OrderId, Usage, Vec<ExchangeReport>) {
    let account = funded_account(&bench.platform.balances, "budget", 100_000_000).await;
    bench.metering.take();
    let id = place(
        &bench.platform,
        &account,
        "budget",
        &limit_buy(shares, "500.00"),
    )
    .await;
    let (placement, _) = bench.metering.take();
    wait_until_done_at_exchange(
        &bench.platform,
        std::slice::from_ref(&id),
        Duration::from_secs(60),
    )
    .await;
    let reports = bench.platform.reports_from_audit(&id);
    bench.metering.take();
    (id, placement, reports)
}

/// Delivers one report to the fill processor as its own batch; its capacity.
async fn deliver(bench: &BenchPlatform, n: usize, report: &ExchangeReport) -> Usage {
    let processor = bench.platform.orders();
    let (response, summary) = handle_batch(
        &processor,
        &bench.platform.set_aside,
        batch(vec![message(n, report)]),
        u64::MAX,
    )
    .await;
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    assert_eq!(summary.applied + summary.duplicates, 1, "{summary:?}");
    bench.metering.take().0
}

#[tokio::test]
async fn an_order_with_one_fill_costs_at_most_20_wru_and_12_rru() {
    // GIVEN an order the exchange fills in one execution
    let bench = platform_filling_in("budget-one", 1).await;
    let (id, placement, reports) = placed_and_filled(&bench, 1).await;
    assert_eq!(reports.len(), 2, "one execution and the final status");

    // WHEN each report is delivered once
    let mut total = placement.clone();
    for (n, report) in reports.iter().enumerate() {
        let usage = deliver(&bench, n, report).await;
        system_tests::bench::accumulate(&mut total, &usage);
    }

    // THEN the order is closed, within the budget
    assert!(bench.platform.order(&id).await.is_closed());
    assert!(
        total.write_units <= ONE_FILL_WRU,
        "{} WRU (placement {})",
        total.write_units,
        placement.write_units
    );
    assert!(
        total.read_half_units <= ONE_FILL_RRU_HALVES,
        "{} RRU",
        total.read_units()
    );

    // AND a second delivery of each report writes nothing
    for (n, report) in reports.iter().enumerate() {
        let usage = deliver(&bench, 100 + n, report).await;
        assert_eq!(usage.write_units, 0, "duplicate of {report:?}");
    }
}

#[tokio::test]
async fn each_further_fill_costs_at_most_8_wru() {
    // GIVEN an order the exchange fills in four executions
    let bench = platform_filling_in("budget-further", 4).await;
    let (id, placement, reports) = placed_and_filled(&bench, 4).await;
    let executions = reports.len() - 1;
    assert_eq!(executions, 4);

    // WHEN each report is delivered once
    let mut total = placement.write_units;
    for (n, report) in reports.iter().enumerate() {
        let usage = deliver(&bench, n, report).await;
        total += usage.write_units;
        // THEN an execution that leaves the order open costs at most 8 WRU
        // (the last one also closes the order, a cost every order has once)
        if n + 1 < executions {
            assert!(
                usage.write_units <= FURTHER_FILL_WRU,
                "execution {} cost {} WRU",
                n + 1,
                usage.write_units
            );
        }
    }

    // AND the order as a whole stays within 20 + 8 per further fill
    assert!(bench.platform.order(&id).await.is_closed());
    let budget = ONE_FILL_WRU + FURTHER_FILL_WRU * (executions as u64 - 1);
    assert!(
        total <= budget,
        "{total} WRU for {executions} fills, budget {budget}"
    );

    // AND duplicates write nothing
    for (n, report) in reports.iter().enumerate() {
        assert_eq!(deliver(&bench, 100 + n, report).await.write_units, 0);
    }
}
