//! The platform on one machine, wired as AWS wires it: the emulator with the
//! tables and queues of `template.yaml`, and each service's router (the same
//! one its Lambda serves) on a loopback port. No logic of the platform lives
//! here; this crate only starts and connects things.

pub mod demo;
pub mod sqs_poller;

use std::net::SocketAddr;

use anyhow::Context;
use app::{BalancesService, SystemClock};
use aws_adapters::dynamodb::DynamoLedgerStore;
use domain::Catalog;
use local_stack::{Resources, Stack};

/// What `start` brought up.
pub struct Platform {
    pub stack: Stack,
    pub resources: Resources,
    pub balances_url: String,
    /// Whether the emulator was started by this process (and so is ours to stop).
    pub started_emulator: bool,
}

pub struct Options {
    /// Prefix of the tables and queues (`<prefix><LogicalId>`).
    pub prefix: String,
    /// Where the Balances service listens (port 0: any free port).
    pub balances_listen: SocketAddr,
}

impl Platform {
    pub async fn start(options: Options) -> anyhow::Result<Platform> {
        let was_running = tokio::task::spawn_blocking(local_stack::status)
            .await??
            .running;
        let stack = Stack::ensure_running()
            .await
            .context("starting the local stack")?;
        let resources = stack
            .create_resources(&options.prefix)
            .await
            .context("creating tables and queues from template.yaml")?;

        let config = stack.sdk_config();
        let catalog = Catalog::us_equities();
        let store = DynamoLedgerStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            resources.table("BalancesTable"),
            catalog.clone(),
        );
        let router = balances::router(BalancesService::new(store, SystemClock), catalog);
        let listener = tokio::net::TcpListener::bind(options.balances_listen)
            .await
            .with_context(|| {
                format!(
                    "binding the Balances service to {}",
                    options.balances_listen
                )
            })?;
        let address = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, router).await });

        Ok(Platform {
            stack,
            resources,
            balances_url: format!("http://{address}"),
            started_emulator: !was_running,
        })
    }

    /// Stops the emulator if this process started it; leaves a shared one running.
    pub async fn stop(self) -> anyhow::Result<()> {
        if self.started_emulator {
            tokio::task::spawn_blocking(local_stack::stop).await??;
        }
        Ok(())
    }
}
