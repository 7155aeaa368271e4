//! Raw rates of the emulator, for infra/EMULATOR.md:
//!
//! ```text
//! cargo run -p local-stack --bin emulator-bench -- [--sizes 1000,50000] [--seconds 5] [--concurrency 8]
//! LOCAL_STACK_ENDPOINT=http://127.0.0.1:5000 cargo run ...   # against another emulator (e.g. stock moto_server)
//! ```
//!
//! For each table size: PutItem/s, conditional UpdateItem/s, 2-item
//! TransactWriteItems/s and Query/s (one partition of one item), first from
//! one sequential client, then from `--concurrency` clients at once. Then
//! SQS send/s and receive+delete/s.
//! Each measurement runs for `--seconds` (or until `--max-ops`), whichever
//! comes first, so a slow emulator cannot hang it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use clap::Parser;
use local_stack::{unique_prefix, Stack};

#[derive(Parser)]
#[command(about = "Measure the emulator's raw DynamoDB and SQS rates")]
struct Args {
    /// Table sizes (items preloaded) to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1000,50000")]
    sizes: Vec<usize>,
    /// Time budget per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Cap on operations per measurement.
    #[arg(long, default_value_t = 2000)]
    max_ops: u64,
    /// Clients for the concurrent measurements.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Messages for the SQS measurements.
    #[arg(long, default_value_t = 500)]
    messages: usize,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// Runs `op(i)` from `clients` tasks until the time or op budget is spent;
/// returns operations per second.
async fn rate<F, Fut>(args: &Args, clients: usize, op: F) -> Result<f64>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let max = args.max_ops;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                op(i).await?;
                done += 1;
            }
            Ok::<u64, anyhow::Error>(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn preload(ddb: &aws_sdk_dynamodb::Client, table: &str, items: usize) -> Result<()> {
    let mut i = 0;
    while i < items {
        let batch: Vec<WriteRequest> = (i..(i + 25).min(items))
            .map(|j| {
                let put = PutRequest::builder()
                    .item("pk", s(&format!("LOAD#{j}")))
                    .item("sk", s("META"))
                    .item("n", AttributeValue::N("1000000".into()))
                    .item("account_pk", s(&format!("ACCT#{}", j % 100)))
                    .item("created_sk", s(&format!("{j:08}")))
                    .build()
                    .context("put request")?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<_>>()?;
        let mut pending = Some(batch);
        while let Some(b) = pending.take() {
            let out = ddb
                .batch_write_item()
                .request_items(table, b)
                .send()
                .await?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .filter(|v| !v.is_empty());
        }
        i += 25;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let stack = Stack::ensure_running().await?;
    let cfg = stack.sdk_config();
    let ddb = aws_sdk_dynamodb::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    println!(
        "emulator {} | {} s or {} ops per measurement | concurrency {}",
        stack.dynamodb_endpoint(),
        args.seconds,
        args.max_ops,
        args.concurrency
    );
    println!(
        "| items | op | 1 client (/s) | {} clients (/s) |",
        args.concurrency
    );
    println!("|---:|---|---:|---:|");
    for &size in &args.sizes {
        let res = stack
            .create_resources(&unique_prefix(&format!("bench{size}")))
            .await?;
        let table = res.table("TradingTable").to_string();
        let t = Instant::now();
        preload(&ddb, &table, size).await?;
        eprintln!(
            "preloaded {size} items in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut rows: Vec<(&str, Vec<f64>)> = vec![
            ("PutItem", vec![]),
            ("conditional UpdateItem", vec![]),
            ("TransactWriteItems (2 items)", vec![]),
            ("Query (one partition)", vec![]),
        ];
        for (round, clients) in [1, args.concurrency].into_iter().enumerate() {
            let tag = format!("r{round}");
            let (d, tb, tg) = (ddb.clone(), table.clone(), tag.clone());
            rows[0].1.push(
                rate(&args, clients, move |i| {
                    let (d, tb, tg) = (d.clone(), tb.clone(), tg.clone());
                    async move {
                        d.put_item()
                            .table_name(tb)
                            .item("pk", s(&format!("PUT#{tg}#{i}")))
                            .item("sk", s("META"))
                            .item("n", AttributeValue::N("1".into()))
                            .send()
                            .await?;
                        Ok(())
                    }
                })
                .await?,
            );
            let (d, tb) = (ddb.clone(), table.clone());
            rows[1].1.push(
                rate(&args, clients, move |i| {
                    let (d, tb) = (d.clone(), tb.clone());
                    async move {
                        d.update_item()
                            .table_name(tb)
                            .key("pk", s(&format!("LOAD#{}", i as usize % size.max(1))))
                            .key("sk", s("META"))
                            .update_expression("SET n = n - :one")
                            .condition_expression("n >= :one")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .send()
                            .await?;
                        Ok(())
                    }
                })
                .await?,
            );
            let (d, tb) = (ddb.clone(), table.clone());
            rows[2].1.push(
                rate(&args, clients, move |i| {
                    let (d, tb) = (d.clone(), tb.clone());
                    async move {
                        let upd = |k: usize, delta: &str| -> Result<TransactWriteItem> {
                            Ok(TransactWriteItem::builder()
                                .update(
                                    Update::builder()
                                        .table_name(tb.clone())
                                        .key("pk", s(&format!("LOAD#{}", k % size.max(1))))
                                        .key("sk", s("META"))
                                        .update_expression("SET n = n + :d")
                                        .condition_expression("attribute_exists(pk)")
                                        .expression_attribute_values(
                                            ":d",
                                            AttributeValue::N(delta.into()),
                                        )
                                        .build()?,
                                )
                                .build())
                        };
                        let i = i as usize;
                        d.transact_write_items()
                            .transact_items(upd(2 * i, "-1")?)
                            .transact_items(upd(2 * i + 1, "1")?)
                            .send()
                            .await?;
                        Ok(())
                    }
                })
                .await?,
            );
            let (d, tb) = (ddb.clone(), table.clone());
            rows[3].1.push(
                rate(&args, clients, move |i| {
                    let (d, tb) = (d.clone(), tb.clone());
                    async move {
                        d.query()
                            .table_name(tb)
                            .key_condition_expression("pk = :pk")
                            .expression_attribute_values(
                                ":pk",
                                s(&format!("LOAD#{}", i as usize % size.max(1))),
                            )
                            .send()
                            .await?;
                        Ok(())
                    }
                })
                .await?,
            );
        }
        for (name, r) in rows {
            println!("| {size} | {name} | {:.0} | {:.0} |", r[0], r[1]);
        }
    }

    // SQS: a fresh FIFO queue (the template's dead-letter queue).
    let res = stack.create_resources(&unique_prefix("benchsqs")).await?;
    let q = res.queue_url("FillDeadLetterQueue").to_string();
    let t = Instant::now();
    for i in 0..args.messages {
        sqs.send_message()
            .queue_url(&q)
            .message_body(format!("{{\"fill\":{i}}}"))
            // Both queues are FIFO; ten groups so receives are not held to one.
            .message_group_id(format!("g{}", i % 10))
            .message_deduplication_id(format!("m{i}"))
            .send()
            .await?;
    }
    let send_rate = args.messages as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut drained = 0;
    while drained < args.messages && t.elapsed() < Duration::from_secs(120) {
        let got = sqs
            .receive_message()
            .queue_url(&q)
            .max_number_of_messages(10)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        for m in &got {
            if let Some(h) = m.receipt_handle() {
                sqs.delete_message()
                    .queue_url(&q)
                    .receipt_handle(h)
                    .send()
                    .await?;
            }
        }
        drained += got.len();
    }
    let drain_rate = drained as f64 / t.elapsed().as_secs_f64();
    println!("| - | SQS SendMessage (1 client) | {send_rate:.0} | |");
    println!("| - | SQS ReceiveMessage(10) + DeleteMessage each (1 client), messages | {drain_rate:.0} | |");
    Ok(())
}
