//! Placement latency and fill throughput on the local stack, each beside the
//! emulator's raw speed measured in the same run, interleaved so that both
//! see the same load on a noisy machine:
//!
//! ```text
//! cargo run -p system-tests --bin bench-speed -- [--orders 100]
//! ```
//!
//! 1. One order is placed on a metered platform to learn the DynamoDB calls a
//!    placement makes (operation, table, items, bytes).
//! 2. On a platform with plain clients, `--orders` times: one `POST /orders`
//!    (limit buy of 10 shares), timed; then the same sequence of calls made
//!    directly against the emulator (same operations, tables, item counts and
//!    put sizes, on fresh keys), timed.
//! 3. The executions of those orders go through `fill_processor::handle_batch`
//!    in sequential batches of 10 (one processor instance), each batch
//!    followed by 10 raw 2-item `TransactWriteItems` (as `emulator-bench`),
//!    each side timed on its own.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use domain::order::ExchangeReport;
use fill_processor::handle_batch;
use system_tests::bench::{
    arg, batch, limit_buy, message, ms, percentile, place, spawn_metered,
    wait_until_done_at_exchange, Call,
};
use system_tests::conformance::balances::funded_account;
use system_tests::platform::Platform;

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// An item of about `bytes` bytes under a fresh key.
fn padded(key: &str, bytes: usize) -> Put {
    Put::builder()
        .table_name("placeholder")
        .item("pk", s(key))
        .item("sk", s("RAW"))
        .item(
            "pad",
            s(&"x".repeat(bytes.saturating_sub(key.len() + 12).max(1))),
        )
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .expect("put")
}

/// Makes the calls of `sequence` directly against the emulator: the same
/// operation on the same table (here: `platform`'s), the same number of items
/// and bytes written, every write conditional like the platform's.
async fn replay(client: &Client, platform: &Platform, sequence: &[Call], run: usize) {
    for (i, call) in sequence.iter().enumerate() {
        let on_balances = call
            .items
            .first()
            .is_some_and(|t| t.starts_with("Balances"));
        let table = if on_balances {
            &platform.balances_table
        } else {
            &platform.trading_table
        };
        let key = format!("RAW#{run}#{i}");
        match call.operation.as_str() {
            "GetItem" => {
                client
                    .get_item()
                    .table_name(table)
                    .key("pk", s("RAW#seed"))
                    .key("sk", s("RAW"))
                    .consistent_read(true)
                    .send()
                    .await
                    .expect("get");
            }
            "PutItem" => {
                let put = padded(&key, call.put_bytes);
                client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(put.item().clone()))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await
                    .expect("put");
            }
            "UpdateItem" => {
                client
                    .update_item()
                    .table_name(table)
                    .key("pk", s(&key))
                    .key("sk", s("RAW"))
                    .update_expression("SET n = :n")
                    .condition_expression("attribute_not_exists(pk)")
                    .expression_attribute_values(":n", AttributeValue::N("1".into()))
                    .send()
                    .await
                    .expect("update");
            }
            "TransactWriteItems" => {
                let items = call.items.len().max(1);
                let mut request = client.transact_write_items();
                for n in 0..items {
                    let mut put = padded(&format!("{key}#{n}"), call.put_bytes / items);
                    put.table_name = table.clone();
                    request = request.transact_items(TransactWriteItem::builder().put(put).build());
                }
                request.send().await.expect("transaction");
            }
            "Query" => {
                client
                    .query()
                    .table_name(table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s("RAW#seed"))
                    .consistent_read(true)
                    .send()
                    .await
                    .expect("query");
            }
            other => panic!("no raw equivalent for {other}"),
        }
    }
}

/// A 2-item transaction moving one unit between two preloaded items, as
/// `emulator-bench` measures it.
async fn raw_transaction(client: &Client, table: &str, i: usize) {
    let update = |k: usize, delta: &str| {
        let update = Update::builder()
            .table_name(table)
            .key("pk", s(&format!("RAW#load#{}", k % 100)))
            .key("sk", s("RAW"))
            .update_expression("SET n = n + :d")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":d", AttributeValue::N(delta.into()))
            .build()
            .expect("update");
        TransactWriteItem::builder().update(update).build()
    };
    client
        .transact_write_items()
        .transact_items(update(2 * i, "-1"))
        .transact_items(update(2 * i + 1, "1"))
        .send()
        .await
        .expect("transaction");
}

/// The calls one placement makes, learnt on a metered platform.
async fn placement_sequence() -> Vec<Call> {
    let bench = spawn_metered("bench-speed-probe").await;
    let account = funded_account(&bench.platform.balances, "probe", 100_000_000).await;
    bench.metering.take();
    place(&bench.platform, &account, "probe", &limit_buy(10, "500.00")).await;
    bench.metering.take().1
}

#[tokio::main]
async fn main() {
    let orders = arg("--orders", 100);
    let sequence = placement_sequence().await;
    let platform = Platform::spawn("bench-speed").await;
    let client = Client::new(
        &local_stack::Stack::ensure_running()
            .await
            .expect("stack")
            .sdk_config(),
    );
    for table in [&platform.trading_table, &platform.balances_table] {
        for key in (0..100)
            .map(|k| format!("RAW#load#{k}"))
            .chain(["RAW#seed".to_string()])
        {
            client
                .put_item()
                .table_name(table)
                .item("pk", s(&key))
                .item("sk", s("RAW"))
                .item("n", AttributeValue::N("1000000".into()))
                .item("pad", s(&"x".repeat(600)))
                .send()
                .await
                .expect("preload");
        }
    }
    let account = funded_account(&platform.balances, "speed", 1_000_000_000).await;

    // Placement latency, each POST followed by its raw equivalent.
    let mut posts = Vec::new();
    let mut raws = Vec::new();
    let mut ids = Vec::new();
    for n in 0..orders {
        let body = limit_buy(10, "500.00");
        let started = Instant::now();
        ids.push(place(&platform, &account, &format!("k-{n}"), &body).await);
        posts.push(started.elapsed());
        let started = Instant::now();
        replay(&client, &platform, &sequence, n).await;
        raws.push(started.elapsed());
    }
    let calls: Vec<&str> = sequence.iter().map(|c| c.operation.as_str()).collect();
    println!("\n## Placement latency ({orders} sequential orders)\n");
    println!(
        "raw sequence per placement ({} calls): {}\n",
        calls.len(),
        calls.join(", ")
    );
    println!("| | p50 ms | p99 ms | mean ms |");
    println!("|---|---:|---:|---:|");
    let mean = |d: &[Duration]| d.iter().sum::<Duration>() / d.len().max(1) as u32;
    for (name, samples) in [("POST /orders", &posts), ("raw emulator calls", &raws)] {
        println!(
            "| {name} | {} | {} | {} |",
            ms(percentile(samples, 50.0)),
            ms(percentile(samples, 99.0)),
            ms(mean(samples))
        );
    }
    let ratio =
        |p: f64| percentile(&posts, p).as_secs_f64() / percentile(&raws, p).as_secs_f64().max(1e-9);
    println!(
        "| ratio POST / raw | {:.2} | {:.2} | {:.2} |",
        ratio(50.0),
        ratio(99.0),
        mean(&posts).as_secs_f64() / mean(&raws).as_secs_f64().max(1e-9)
    );

    // Fill throughput: executions round-robin across orders, batches of 10.
    wait_until_done_at_exchange(&platform, &ids, Duration::from_secs(60)).await;
    let reports: Vec<Vec<ExchangeReport>> = ids
        .iter()
        .map(|id| platform.reports_from_audit(id))
        .collect();
    let mut executions = Vec::new();
    let mut finals = Vec::new();
    let longest = reports.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for order_reports in &reports {
            match order_reports.get(i) {
                Some(r @ ExchangeReport::Execution { .. }) => executions.push(r.clone()),
                Some(r) => finals.push(r.clone()),
                None => {}
            }
        }
    }
    let processor = platform.orders();
    let (mut processing, mut raw, mut raw_count) = (Duration::ZERO, Duration::ZERO, 0);
    for (n, chunk) in executions.chunks(10).enumerate() {
        let messages = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| message(n * 10 + i, r))
            .collect();
        let started = Instant::now();
        let response = handle_batch(&processor, &platform.set_aside, batch(messages), u64::MAX)
            .await
            .0;
        processing += started.elapsed();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        let started = Instant::now();
        for _ in 0..10 {
            raw_transaction(&client, &platform.trading_table, raw_count).await;
            raw_count += 1;
        }
        raw += started.elapsed();
    }
    for (n, chunk) in finals.chunks(10).enumerate() {
        let messages = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| message(n * 10 + i, r));
        let response = handle_batch(
            &processor,
            &platform.set_aside,
            batch(messages.collect()),
            u64::MAX,
        )
        .await
        .0;
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
    let fills_per_s = executions.len() as f64 / processing.as_secs_f64();
    let raw_per_s = raw_count as f64 / raw.as_secs_f64();
    println!("\n## Fill throughput (one processor, sequential batches of 10)\n");
    println!("| | count | seconds | per second |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fills applied by handle_batch | {} | {:.2} | {fills_per_s:.1} |",
        executions.len(),
        processing.as_secs_f64()
    );
    println!(
        "| raw 2-item TransactWriteItems | {raw_count} | {:.2} | {raw_per_s:.1} |",
        raw.as_secs_f64()
    );
    println!(
        "| ratio fills / raw transactions | | | {:.2} |",
        fills_per_s / raw_per_s
    );
}
