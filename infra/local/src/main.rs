//! `cargo run -p local -- <command>`: run the platform on this machine.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use local::{demo, Options, Platform};

#[derive(Parser)]
#[command(about = "Run the trading platform locally: emulator, services, demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything, run the scripted demo, print a report, stop what was started.
    Demo {
        /// Where the Balances service listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        balances_listen: SocketAddr,
    },
    /// Start everything and keep it running until Ctrl-C; prints how to call it.
    Up {
        #[arg(long, default_value = "127.0.0.1:8081")]
        balances_listen: SocketAddr,
        /// Prefix of the tables and queues; reusing one keeps earlier state.
        #[arg(long, default_value = "local-")]
        prefix: String,
    },
    /// Stop the emulator started by an earlier `up` or test run.
    Down,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo { balances_listen } => {
            let prefix = local_stack::unique_prefix("demo");
            let platform = Platform::start(Options {
                prefix,
                balances_listen,
            })
            .await?;
            let result = demo::run(&platform).await;
            platform.stop().await?;
            result
        }
        Command::Up {
            balances_listen,
            prefix,
        } => {
            let platform = Platform::start(Options {
                prefix,
                balances_listen,
            })
            .await?;
            println!("Balances service: {}", platform.balances_url);
            for line in platform.resources.env_lines() {
                println!("  {line}");
            }
            println!("\nTry:");
            println!(
                "  curl -s -X POST {}/accounts/alice/operations -H 'content-type: application/json' \\\n    -H 'idempotency-key: first-deposit' -d '{{\"type\":\"deposit\",\"asset\":\"USD\",\"amount\":\"1000.00\"}}'",
                platform.balances_url
            );
            println!(
                "  curl -s {}/accounts/alice/balances",
                platform.balances_url
            );
            println!("\nCtrl-C stops the services (and the emulator, if this command started it).");
            tokio::signal::ctrl_c().await?;
            platform.stop().await
        }
        Command::Down => {
            match tokio::task::spawn_blocking(local_stack::stop).await?? {
                Some(pid) => println!("stopped the emulator (pid {pid})"),
                None => println!("no emulator of this project was running"),
            }
            Ok(())
        }
    }
}
