//! `cargo run -p local -- <command>`: run the platform on this machine.

use std::net::SocketAddr;
use std::time::Duration;

use aws_adapters::dynamodb::DynamoOrderStore;
use clap::{Parser, Subcommand};
use local::demo::{self, DemoOptions};
use local::{host, jwt, operator};

#[derive(Parser)]
#[command(
    about = "Run the trading platform locally: emulator, exchange simulator, the five handlers, a demo of recovery under faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trade under faults with hard kills, converge, check every invariant, report.
    Demo {
        #[arg(long, default_value_t = 300)]
        orders: usize,
        #[arg(long, default_value_t = 20)]
        accounts: usize,
        /// Seed of every random choice (printed, so a run can be repeated).
        #[arg(long)]
        seed: Option<u64>,
        /// Scale of every injected fault probability (0 = healthy).
        #[arg(long, default_value_t = 0.15)]
        fault_rate: f64,
        /// Hard kills (SIGKILL) of the handler process while orders are placed.
        #[arg(long, default_value_t = 2)]
        kills: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 240)]
        converge_timeout_seconds: u64,
    },
    /// Start everything without faults and keep it running; prints how to call it.
    Up {
        #[arg(long, default_value = "127.0.0.1:8080")]
        api_listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8081")]
        balances_listen: SocketAddr,
        /// Prefix of the tables and queues; reusing one keeps earlier state.
        #[arg(long, default_value = "local-")]
        prefix: String,
    },
    /// Stop the emulator started by an earlier `up` or test run.
    Down,
    /// Print a JWT for an account, signed with the key `up` printed.
    Token {
        #[arg(long)]
        account: String,
        #[arg(long)]
        key: String,
    },
    /// One order's timeline: every record, its state, time, key and attempts,
    /// and what recovery would do next.
    Order {
        id: String,
        #[arg(long, default_value = "local-")]
        prefix: String,
    },
    /// Orders flagged for an operator.
    Flagged {
        #[arg(long, default_value = "local-")]
        prefix: String,
    },
    /// The fill dead-letter queue's messages; `--redrive` sends the reports back
    /// to the fill queue (safe: each applies at most once).
    DeadLetters {
        #[arg(long, default_value = "local-")]
        prefix: String,
        #[arg(long)]
        redrive: bool,
    },
    /// Internal: the handler process the runner starts (and kills).
    #[command(hide = true)]
    ServeHandlers,
}

async fn stack_and_resources(
    prefix: &str,
) -> anyhow::Result<(local_stack::Stack, local_stack::Resources)> {
    let stack = local_stack::Stack::ensure_running().await?;
    let resources = stack.create_resources(prefix).await?;
    Ok((stack, resources))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo {
            orders,
            accounts,
            seed,
            fault_rate,
            kills,
            concurrency,
            converge_timeout_seconds,
        } => {
            let seed = seed.unwrap_or_else(|| u64::from(uuid::Uuid::new_v4().as_fields().0));
            demo::run(DemoOptions {
                orders,
                accounts: accounts.max(1),
                seed,
                fault_rate,
                kills,
                concurrency,
                converge_timeout: Duration::from_secs(converge_timeout_seconds),
            })
            .await
        }
        Command::Up {
            api_listen,
            balances_listen,
            prefix,
        } => {
            let mut started = demo::start(1, 0.0, api_listen, balances_listen, &prefix).await?;
            let now_s = app::Clock::now_ms(&app::SystemClock) / 1000;
            let token =
                jwt::token_for(started.config.jwt_key.as_bytes(), "alice", now_s, 24 * 3600);
            println!("\nEverything is up. Fund an account, place an order, read its history:\n");
            println!("  curl -s -X POST http://{balances_listen}/accounts/alice/operations -H 'content-type: application/json' \\");
            println!("    -H 'idempotency-key: first-deposit' -d '{{\"type\":\"deposit\",\"asset\":\"USD\",\"amount\":\"10000.00\"}}'");
            println!("  TOKEN={token}");
            println!("  curl -s -X POST http://{api_listen}/orders -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\");
            println!("    -H 'idempotency-key: order-1' -d '{{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"quantity\":\"10\",\"limit_price\":\"200.00\"}}'");
            println!("  curl -s http://{api_listen}/orders -H \"authorization: Bearer $TOKEN\"");
            println!("  cargo run -p local -- order <order id> --prefix {prefix}");
            println!(
                "  cargo run -p local -- token --account bob --key {}",
                started.config.jwt_key
            );
            println!("\nCtrl-C (or SIGTERM) stops the handlers and the exchange (and the emulator, if this command started it).");
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            started.host.kill().await?;
            if !started.emulator_was_running {
                tokio::task::spawn_blocking(local_stack::stop).await??;
            }
            Ok(())
        }
        Command::Down => {
            match tokio::task::spawn_blocking(local_stack::stop).await?? {
                Some(pid) => println!("stopped the emulator (pid {pid})"),
                None => println!("no emulator of this project was running"),
            }
            Ok(())
        }
        Command::Token { account, key } => {
            let now_s = app::Clock::now_ms(&app::SystemClock) / 1000;
            println!(
                "{}",
                jwt::token_for(key.as_bytes(), &account, now_s, 24 * 3600)
            );
            Ok(())
        }
        Command::Order { id, prefix } => {
            let (stack, resources) = stack_and_resources(&prefix).await?;
            let store = DynamoOrderStore::new(
                aws_sdk_dynamodb::Client::new(&stack.sdk_config()),
                resources.table("TradingTable"),
            );
            println!("{}", operator::show_order(&store, &id).await?);
            Ok(())
        }
        Command::Flagged { prefix } => {
            let (stack, resources) = stack_and_resources(&prefix).await?;
            let store = DynamoOrderStore::new(
                aws_sdk_dynamodb::Client::new(&stack.sdk_config()),
                resources.table("TradingTable"),
            );
            let flagged = operator::flagged(&store).await?;
            println!("{} order(s) flagged for an operator", flagged.len());
            for line in flagged {
                println!("  {line}");
            }
            Ok(())
        }
        Command::DeadLetters { prefix, redrive } => {
            let (stack, resources) = stack_and_resources(&prefix).await?;
            let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config());
            let dlq = resources.queue_url("FillDeadLetterQueue");
            for body in operator::dead_letters(&sqs, dlq).await? {
                println!("{body}");
            }
            if redrive {
                let moved = operator::redrive(&sqs, dlq, resources.queue_url("FillQueue")).await?;
                println!("sent {moved} report(s) back to the fill queue");
            }
            Ok(())
        }
        Command::ServeHandlers => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
            let config: host::HostConfig =
                serde_json::from_str(&std::env::var(host::CONFIG_VARIABLE)?)?;
            host::run(config).await
        }
    }
}
