//! Reads of one reconciler run against the size of the order history:
//!
//! ```text
//! cargo run -p system-tests --bin bench-reconciler -- [--max-closed 100000]
//! ```
//!
//! The trading table first holds 10 orders closed through the real flow. For
//! each history size (10, 1,000, 10,000, 100,000 closed orders, up to
//! `--max-closed`), copies of a real closed order item (new id, no
//! `open_shard`/`due_at`) are written straight into the table with
//! `BatchWriteItem`; then 10 orders are placed and left open (the simulator
//! sends no webhooks), the clock is moved past their quiet time so all 10 are
//! due, and one `reconciler::run_once` runs on the metered client. Its reads
//! must not grow with the closed orders.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_adapters::dynamodb::format_half_units;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use system_tests::bench::{
    arg, limit_buy, place, spawn_metered, wait_until_done_at_exchange, Metering,
};
use system_tests::conformance::balances::funded_account;
use system_tests::orders::new_order_id;
use system_tests::platform::Platform;

type Item = HashMap<String, AttributeValue>;

/// A copy of the closed order `template` under a fresh id.
fn closed_copy(template: &Item) -> Item {
    let id = new_order_id();
    let mut item = template.clone();
    item.insert("pk".into(), AttributeValue::S(format!("ORDER#{id}")));
    item.insert("created_sk".into(), AttributeValue::S(id.to_string()));
    if let Some(AttributeValue::M(order)) = item.get_mut("order") {
        order.insert("id".into(), AttributeValue::S(id.to_string()));
    }
    item
}

/// Writes `count` closed orders with `BatchWriteItem`, 25 at a time.
async fn load_closed(client: &Client, table: &str, template: &Item, count: usize) {
    let mut left = count;
    while left > 0 {
        let size = left.min(25);
        let mut pending: Vec<WriteRequest> = (0..size)
            .map(|_| {
                let put = PutRequest::builder()
                    .set_item(Some(closed_copy(template)))
                    .build()
                    .expect("put request");
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        while !pending.is_empty() {
            let output = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .expect("batch write");
            pending = output
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
        }
        left -= size;
    }
}

/// Places 10 orders and leaves them open and due for recovery.
async fn ten_due_orders(platform: &Platform, account: &domain::AccountId, round: usize) {
    let mut ids = Vec::new();
    for n in 0..10 {
        let key = format!("r{round}-{n}");
        ids.push(place(platform, account, &key, &limit_buy(10, "500.00")).await);
    }
    wait_until_done_at_exchange(platform, &ids, Duration::from_secs(30)).await;
    platform.clock.advance_ms(platform.step_past_recovery_ms());
}

struct Row {
    closed: usize,
    examined: usize,
    closed_by_run: usize,
    read_half_units: u64,
    query_calls: u64,
    query_half_units: u64,
    get_calls: u64,
    calls: u64,
    write_units: u64,
}

async fn measure(platform: &Platform, metering: &Metering, closed: usize) -> Row {
    metering.take();
    let summary = platform.reconcile().await;
    let (usage, calls) = metering.take();
    let queries: Vec<_> = calls.iter().filter(|c| c.operation == "Query").collect();
    Row {
        closed,
        examined: summary.examined,
        closed_by_run: summary.closed,
        read_half_units: usage.read_half_units,
        query_calls: queries.len() as u64,
        query_half_units: queries.iter().map(|c| c.usage.read_half_units).sum(),
        get_calls: usage.calls.get("GetItem").copied().unwrap_or(0),
        calls: usage.total_calls(),
        write_units: usage.write_units,
    }
}

#[tokio::main]
async fn main() {
    let max_closed = arg("--max-closed", 100_000);
    let (platform, metering) = spawn_metered("bench-reconciler").await;
    let stack = local_stack::Stack::ensure_running().await.expect("stack");
    let plain = Client::new(&stack.sdk_config());
    let account = funded_account(&platform.balances, "recon", 1_000_000_000).await;

    // 10 orders closed by the real flow; the first is the template of the rest.
    ten_due_orders(&platform, &account, 0).await;
    platform.reconcile_until_quiet(10).await;
    let closed_orders = plain
        .scan()
        .table_name(&platform.trading_table)
        .filter_expression("begins_with(pk, :order) AND attribute_not_exists(open_shard)")
        .expression_attribute_values(":order", AttributeValue::S("ORDER#".into()))
        .send()
        .await
        .expect("scan");
    let template = closed_orders
        .items()
        .first()
        .expect("a closed order")
        .clone();
    assert_eq!(closed_orders.items().len(), 10, "10 closed orders");

    let mut rows = Vec::new();
    let mut closed = 10;
    for (round, size) in [10, 1_000, 10_000, 100_000]
        .into_iter()
        .filter(|s| *s <= max_closed)
        .enumerate()
    {
        let started = Instant::now();
        load_closed(&plain, &platform.trading_table, &template, size - closed).await;
        eprintln!(
            "loaded {} closed orders in {:.1} s",
            size - closed,
            started.elapsed().as_secs_f64()
        );
        closed = size;
        ten_due_orders(&platform, &account, round + 1).await;
        rows.push(measure(&platform, &metering, closed).await);
        // Whatever the run left open is finished before the next size.
        platform.reconcile_until_quiet(10).await;
        closed += 10;
    }

    println!("\n## One reconciler run with 10 open due orders\n");
    println!("| closed orders in the table | examined | closed by the run | RRU | index Query calls | index Query RRU | GetItem calls | calls | WRU |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.closed,
            r.examined,
            r.closed_by_run,
            format_half_units(r.read_half_units),
            r.query_calls,
            format_half_units(r.query_half_units),
            r.get_calls,
            r.calls,
            r.write_units
        );
    }
}
