//! `exchange-sim`: see `--help` and the crate documentation.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use exchange_sim::cli::Cli;
use exchange_sim::time::SystemClock;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let seed = cli.seed_or_random();
    let settings = cli.settings(seed)?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    let running = exchange_sim::app::start(settings, listener, Arc::new(SystemClock)).await?;
    // Printed, not only logged: a failing test run is replayed from this seed.
    println!(
        "exchange-sim listening on http://{} seed={seed}",
        running.addr
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.stop().await?;
    Ok(())
}
