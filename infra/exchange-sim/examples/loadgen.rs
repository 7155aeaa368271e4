//! Load generator for `POST /v1/orders` over loopback: N place requests, C at
//! a time, each with a fresh `client_order_id`; prints req/s and latency
//! percentiles. Bounded in count and time, loopback only.
//!
//! ```text
//! cargo run --release -p exchange-sim --example loadgen -- --requests 20000 --concurrency 32
//! cargo run --release -p exchange-sim --example loadgen -- --url http://127.0.0.1:8700
//! ```
//! Without `--url` it starts a server in-process (sharing the CPU with the
//! load generator, as a separate process on the same machine would).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use exchange_sim::app::{self, Settings};
use exchange_sim::engine::EngineConfig;
use exchange_sim::time::{format_rfc3339_ms, Clock, SystemClock};

const MAX_REQUESTS: usize = 1_000_000;
const MAX_CONCURRENCY: usize = 1_024;

#[derive(Debug, Parser)]
struct Args {
    /// Server to load; must be a loopback address. Starts one in-process if absent.
    #[arg(long)]
    url: Option<String>,
    /// Number of place requests.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Stop after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.requests == 0
        || args.requests > MAX_REQUESTS
        || args.concurrency == 0
        || args.concurrency > MAX_CONCURRENCY
    {
        bail!("need 1..={MAX_REQUESTS} requests and 1..={MAX_CONCURRENCY} concurrency");
    }
    let (url, _server) = match &args.url {
        Some(u) => {
            let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
            if !loopback.iter().any(|p| u.starts_with(p)) {
                bail!("--url must be a loopback http URL");
            }
            (u.trim_end_matches('/').to_string(), None)
        }
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let settings = Settings::new(EngineConfig {
                seed: 1,
                ..EngineConfig::default()
            });
            let running = app::start(settings, listener, Arc::new(SystemClock)).await?;
            (running.url(), Some(running))
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(10))
        .build()?;
    let run_id = SystemClock.now_ms();
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            let total = args.requests;
            tokio::spawn(async move {
                let mut latencies_us = Vec::new();
                let mut errors = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || Instant::now() >= deadline {
                        return (latencies_us, errors);
                    }
                    let body = serde_json::json!({
                        "client_order_id": format!("load-{run_id}-{i}"), "account": "acc-load",
                        "symbol": "AAPL", "side": if i % 2 == 0 { "buy" } else { "sell" },
                        "type": "market", "quantity": "10",
                        "expire_at": format_rfc3339_ms(SystemClock.now_ms() + 30_000),
                    });
                    let t = Instant::now();
                    let ok = match client
                        .post(format!("{url}/v1/orders"))
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) => r.status().as_u16() == 201 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        latencies_us.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.context("worker")?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx] as f64 / 1000.0
    };
    println!(
        "requests={} ok={} errors={} concurrency={} elapsed={:.2}s throughput={:.0} req/s p50={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len() + errors,
        latencies.len(),
        errors,
        args.concurrency,
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
