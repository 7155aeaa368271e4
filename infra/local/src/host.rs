//! The process that hosts the five handlers, wired as AWS wires them: the
//! trading HTTP API (orders behind the JWT authorizer, the webhook without
//! it), the Balances API, the fill queue's event source mapping, and the
//! reconciler's schedule (sometimes firing twice at once, as EventBridge may).
//! The demo kills this process (SIGKILL) mid-flight and starts it again.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use app::orders::{OrderSettings, Orders, RetryPolicy};
use app::{BalancesService, SystemClock};
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::{DynamoLedgerStore, DynamoOrderStore};
use aws_adapters::exchange_http::HttpExchange;
use aws_adapters::sqs::SqsFillQueue;
use domain::order::RecoveryPolicy;
use domain::Catalog;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::faults::FaultyBalances;
use crate::gateway::{Gateway, Route};
use crate::sqs_poller::EventSourceMapping;

/// Environment variable carrying the host's configuration (JSON).
pub const CONFIG_VARIABLE: &str = "LOCAL_HOST_CONFIG";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostConfig {
    pub trading_table: String,
    pub balances_table: String,
    pub fill_queue_url: String,
    pub fill_queue_arn: String,
    pub fill_dead_letter_queue_url: String,
    pub api_listen: SocketAddr,
    pub balances_listen: SocketAddr,
    pub exchange_url: String,
    pub webhook_secret: String,
    pub jwt_key: String,
    /// How often the schedule fires (the template says every minute; demos go faster).
    pub reconciler_interval_ms: u64,
    /// Chance that one tick invokes the reconciler twice at once.
    pub reconciler_double_chance: f64,
    pub balances_fault_rate: f64,
    /// Balances faults stop at this time (Unix ms).
    pub balances_faults_until_ms: u64,
    pub seed: u64,
    pub fast_recovery: bool,
}

impl HostConfig {
    pub fn order_settings(&self) -> OrderSettings {
        let mut settings = OrderSettings::default();
        if self.fast_recovery {
            settings.placement_window_ms = 15_000;
            settings.recovery = RecoveryPolicy {
                quiet_after_ms: 3_000,
                clock_skew_margin_ms: 1_000,
                max_invocation_ms: 5_000,
            };
        }
        settings
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        if self.fast_recovery {
            RetryPolicy {
                lease_ms: 5_000,
                backoff_base_ms: 1_000,
                backoff_max_ms: 5_000,
                flag_after_attempts: 30,
            }
        } else {
            RetryPolicy::default()
        }
    }
}

type HostOrders = Orders<DynamoOrderStore, FaultyBalances<HttpBalances>, HttpExchange, SystemClock>;

fn orders(
    config: &HostConfig,
    dynamodb: &aws_sdk_dynamodb::Client,
    salt: u64,
) -> anyhow::Result<HostOrders> {
    let catalog = Catalog::us_equities();
    let timeout = Duration::from_secs(3);
    let balances_url = format!("http://{}", config.balances_listen);
    let balances = HttpBalances::new(&balances_url, catalog.clone(), timeout)?;
    let balances = FaultyBalances::new(
        balances,
        config.balances_fault_rate,
        config.balances_faults_until_ms,
        config.seed ^ salt,
    );
    let exchange = HttpExchange::new(&config.exchange_url, catalog, timeout)?;
    let store = DynamoOrderStore::new(dynamodb.clone(), config.trading_table.clone());
    Ok(Orders::new(
        store,
        balances,
        exchange,
        SystemClock,
        config.order_settings(),
    ))
}

/// Runs every handler until the process is killed.
pub async fn run(config: HostConfig) -> anyhow::Result<()> {
    // The same configuration path as in Lambda: endpoints from the environment.
    let aws = aws_config::load_from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let catalog = Catalog::us_equities();

    let ledger = DynamoLedgerStore::new(
        dynamodb.clone(),
        config.balances_table.clone(),
        catalog.clone(),
    );
    let balances_api = balances::router(BalancesService::new(ledger, SystemClock), catalog.clone());
    let balances_gateway = Gateway::new(
        vec![Route {
            prefix: "/accounts",
            function: balances_api,
            jwt: false,
        }],
        Vec::new(),
    );

    let queue = SqsFillQueue::new(
        sqs.clone(),
        &config.fill_queue_url,
        &config.fill_dead_letter_queue_url,
    );
    let secret =
        fill_webhook::signature::Secret::parse(&config.webhook_secret).context("webhook secret")?;
    let webhook = fill_webhook::router(queue, SystemClock, vec![secret], Duration::from_secs(300));
    let orders_api = place_order::router(orders(&config, &dynamodb, 1)?, catalog);
    let trading_gateway = Gateway::new(
        vec![
            Route {
                prefix: fill_webhook::WEBHOOK_PATH,
                function: webhook,
                jwt: false,
            },
            Route {
                prefix: "/orders",
                function: orders_api,
                jwt: true,
            },
        ],
        config.jwt_key.as_bytes().to_vec(),
    );

    let balances_listener = tokio::net::TcpListener::bind(config.balances_listen)
        .await
        .context("balances port")?;
    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .context("API port")?;
    tokio::spawn(crate::gateway::serve(
        balances_listener,
        balances_gateway.into_router(),
    ));
    tokio::spawn(crate::gateway::serve(
        api_listener,
        trading_gateway.into_router(),
    ));

    let processor = orders(&config, &dynamodb, 2)?;
    let mapping = EventSourceMapping::new(
        sqs.clone(),
        &config.fill_queue_url,
        &config.fill_queue_arn,
        10,
        1,
    );
    tokio::spawn(async move {
        loop {
            if let Err(error) = mapping
                .poll_once(|event| fill_processor::handle_batch(&processor, event))
                .await
            {
                tracing::warn!(%error, "fill queue poll failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let settings = reconciler::Settings {
        retry: config.retry_policy(),
        max_orders_per_run: 200,
        max_run_ms: 20_000,
        safety_margin_ms: 1_000,
    };
    let (first, second) = (
        orders(&config, &dynamodb, 3)?,
        orders(&config, &dynamodb, 4)?,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut tick = tokio::time::interval(Duration::from_millis(config.reconciler_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if rng.gen::<f64>() < config.reconciler_double_chance {
            tokio::join!(
                reconciler::run_once(&first, &settings, 30_000),
                reconciler::run_once(&second, &settings, 30_000)
            );
        } else {
            reconciler::run_once(&first, &settings, 30_000).await;
        }
    }
}
