//! `cargo run -p local-stack -- <command>`: start, inspect and stop the local
//! DynamoDB/SQS/Secrets Manager emulator, and create the template's tables
//! and queues in it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use local_stack::Stack;

#[derive(Parser)]
#[command(
    name = "local-stack",
    about = "The local DynamoDB + SQS + Secrets Manager emulator (moto, wrapped by infra/moto/server.py)",
    long_about = "The local DynamoDB + SQS + Secrets Manager emulator (moto, wrapped by infra/moto/server.py).\n\n\
        The emulator runs detached on 127.0.0.1:$LOCAL_STACK_PORT (default 4566), logs to \
        .local/moto.log and is installed on first use into .local/venv from \
        infra/moto/requirements.txt. Tables and queues come from template.yaml."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the emulator (or reuse the running one), create the template's
    /// tables and queues, and print `KEY=value` lines: the AWS SDK variables
    /// and the resource names (TRADING_TABLE=..., FILL_QUEUE_URL=...).
    Up {
        /// Resource name prefix: each table/queue is named <prefix><LogicalId>.
        #[arg(long, default_value = "local-")]
        prefix: String,
    },
    /// Stop the emulator this checkout started (SIGTERM, then SIGKILL after 5 s).
    /// Harmless when nothing runs.
    Down,
    /// Say whether the emulator runs, and whether it runs the current code.
    Status,
    /// Print the AWS SDK variables (endpoints, region, dummy credentials) as
    /// `KEY=value` lines, starting the emulator if needed.
    Env,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("local-stack: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, local_stack::StackError> {
    match cli.command {
        Cmd::Up { prefix } => {
            let stack = Stack::ensure_running().await?;
            let resources = stack.create_resources(&prefix).await?;
            for (k, v) in stack.env_vars() {
                println!("{k}={v}");
            }
            for line in resources.env_lines() {
                println!("{line}");
            }
        }
        Cmd::Down => match local_stack::stop()? {
            Some(pid) => eprintln!("local-stack: stopped the emulator (pid {pid})"),
            None => eprintln!("local-stack: no emulator started by this checkout is running"),
        },
        Cmd::Status => {
            let s = local_stack::status()?;
            println!("endpoint={}", s.endpoint);
            println!("running={}", s.running);
            println!("current={}", s.current);
            if let Some(pid) = s.pid {
                println!("pid={pid}");
            }
            println!("log={}", s.log.display());
            eprintln!("local-stack: {}", s.detail);
            if !s.running {
                return Ok(ExitCode::from(3));
            }
        }
        Cmd::Env => {
            let stack = Stack::ensure_running().await?;
            for (k, v) in stack.env_vars() {
                println!("{k}={v}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
