//! The process that hosts the five handlers, wired as AWS wires them: the
//! trading HTTP API (orders behind the JWT authorizer, the webhook without
//! it, its signing secrets read from the emulator's Secrets Manager), the
//! IAM-authorised Balances API (one loopback listener per calling role:
//! place-order, fill-processor and reconciler inside this process, the
//! operator's at `balances_listen`), the fill queue's event source mapping,
//! and the reconciler's schedule (sometimes firing twice at once, as
//! EventBridge may).
//! The demo kills this process (SIGKILL) mid-flight and starts it again, and
//! stops its injected Balances faults with `SIGUSR1`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::orders::{OrderSettings, Orders, TradingCalendar};
use app::{BalancesService, Clock, SystemClock};
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::{DynamoLedgerStore, DynamoOrderStore};
use aws_adapters::exchange_http::{HttpExchange, Venue};
use aws_adapters::sqs::SqsFillQueue;
use domain::order::RecoveryPolicy;
use domain::Catalog;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::faults::{FaultSwitch, FaultyBalances};
use crate::gateway::{Auth, Gateway, Principal, Route};
use crate::sqs_poller::EventSourceMapping;

/// Environment variable carrying the host's configuration (JSON).
pub const CONFIG_VARIABLE: &str = "LOCAL_HOST_CONFIG";

/// The fill processor's timeout (template.yaml): each batch's deadline.
pub const FILL_PROCESSOR_TIMEOUT_MS: u64 = 30_000;
/// The reconciler's timeout (template.yaml).
pub const RECONCILER_TIMEOUT_MS: u64 = 60_000;
/// Timeout of one Balances or exchange call (`CALL_TIMEOUT_MS`).
pub const CALL_TIMEOUT_MS: u64 = 3_000;
/// Fill-processor invocations at once (Lambda scales a FIFO source by
/// message group; SQS keeps one group to one batch at a time).
pub const FILL_PROCESSOR_CONCURRENCY: usize = 4;

/// The local stand-ins of the functions' execution roles (template.yaml),
/// as the Balances API sees its callers.
pub const PLACE_ORDER_ROLE: &str = "local-PlaceOrderFunctionRole";
pub const FILL_PROCESSOR_ROLE: &str = "local-FillProcessorFunctionRole";
pub const RECONCILER_ROLE: &str = "local-ReconcilerFunctionRole";
/// The operator (`demo`, `up` and the operator commands): funds accounts on
/// the admin route, reads, and resolves orders (which releases reservations:
/// a trading operation), so it is in both lists.
pub const OPERATOR_ROLE: &str = "local-OperatorRole";

/// `BALANCES_TRADING_ROLES` and `BALANCES_ADMIN_ROLES` of the local Balances API.
pub fn balances_roles() -> balances::Roles {
    let trading = [
        PLACE_ORDER_ROLE,
        FILL_PROCESSOR_ROLE,
        RECONCILER_ROLE,
        OPERATOR_ROLE,
    ];
    match balances::Roles::parse(&trading.join(","), OPERATOR_ROLE) {
        Ok(roles) => roles,
        Err(error) => unreachable!("the local role names are valid: {error}"),
    }
}

/// How long the webhook uses the signing secrets it read (the deployed default).
pub const WEBHOOK_SECRET_CACHE: Duration =
    Duration::from_secs(fill_webhook::secrets::DEFAULT_CACHE_SECONDS);

/// Bounds of one reconciler run, as the host runs it.
pub fn reconciler_settings() -> reconciler::Settings {
    reconciler::Settings {
        page_size: 100,
        max_run_ms: 20_000,
        safety_margin_ms: 1_000,
    }
}

/// Recovery's timings on one machine: the same rules as in AWS, seconds
/// instead of minutes, so a demo sees every recovery path finish.
pub fn local_order_settings() -> OrderSettings {
    let defaults = OrderSettings::default();
    OrderSettings {
        placement_window_ms: 15_000,
        recovery: RecoveryPolicy {
            clock_skew_margin_ms: 1_000,
            max_in_flight_ms: 5_000,
            retry_base_ms: 1_000,
            retry_max_ms: 5_000,
            gap_grace_ms: 3_000,
            market_silence_ms: 10_000,
            flag_after_ms: 10 * 60_000,
            ..defaults.recovery.clone()
        },
        ..defaults
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostConfig {
    pub trading_table: String,
    pub balances_table: String,
    pub fill_queue_url: String,
    pub fill_queue_arn: String,
    pub fill_dead_letter_queue_url: String,
    pub api_listen: SocketAddr,
    /// The operator's listener of the Balances API.
    pub balances_listen: SocketAddr,
    pub exchange_url: String,
    /// The exchange's venue profile: `tombstone`, `deadline` or `plain`.
    pub venue: String,
    /// Name or ARN of the emulator's secret holding the webhook signing
    /// secrets (`WEBHOOK_SECRET_ID`).
    pub webhook_secret_id: String,
    pub jwt_key: String,
    /// How often the schedule fires (the template says every minute; demos go faster).
    pub reconciler_interval_ms: u64,
    /// Chance that one tick invokes the reconciler twice at once.
    pub reconciler_double_chance: f64,
    pub balances_fault_rate: f64,
    /// Balances faults stop at this time (Unix ms), or at `SIGUSR1`.
    pub balances_faults_until_ms: u64,
    pub seed: u64,
    /// Recovery's timings of [`local_order_settings`] instead of AWS's.
    pub fast_recovery: bool,
    /// The session's close and the end-of-day check; `None`: the platform's defaults.
    #[serde(default)]
    pub calendar: Option<Calendar>,
}

/// The trading session as the demo runs it (the exchange simulator gets the same close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// The close, in ms after midnight UTC.
    pub close_utc_ms: u64,
    /// The end-of-day check starts this long after the close.
    pub check_after_close_ms: u64,
}

impl HostConfig {
    pub fn order_settings(&self) -> OrderSettings {
        let mut settings = if self.fast_recovery {
            local_order_settings()
        } else {
            OrderSettings::default()
        };
        if let Some(calendar) = self.calendar {
            settings.calendar = TradingCalendar {
                close_utc_ms: calendar.close_utc_ms,
                check_after_close_ms: calendar.check_after_close_ms,
            };
        }
        settings
    }
}

/// The platform's exchange client for a venue profile of the simulator.
pub fn exchange_client(url: &str, venue: &str, catalog: Catalog) -> anyhow::Result<HttpExchange> {
    let venue = Venue::simulator(venue)
        .with_context(|| format!("unknown venue profile {venue:?} (tombstone, deadline, plain)"))?;
    Ok(
        HttpExchange::new(url, catalog, Duration::from_millis(CALL_TIMEOUT_MS))
            .map_err(|e| anyhow::anyhow!("exchange client: {e}"))?
            .with_venue(venue),
    )
}

type HostOrders = Orders<DynamoOrderStore, FaultyBalances<HttpBalances>, HttpExchange, SystemClock>;

/// A function's use cases; `balances_url` is its own listener of the
/// Balances API (its role).
fn orders(
    config: &HostConfig,
    dynamodb: &aws_sdk_dynamodb::Client,
    faults: &FaultSwitch,
    balances_url: &str,
    salt: u64,
) -> anyhow::Result<HostOrders> {
    let catalog = Catalog::us_equities();
    let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
    let balances = HttpBalances::new(balances_url, catalog.clone(), timeout)?;
    let balances = FaultyBalances::new(
        balances,
        config.balances_fault_rate,
        faults.clone(),
        config.seed ^ salt,
    );
    let exchange = exchange_client(&config.exchange_url, &config.venue, catalog)?;
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
    let faults = FaultSwitch::until(config.balances_faults_until_ms);
    {
        let faults = faults.clone();
        let mut stop =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        tokio::spawn(async move {
            while stop.recv().await.is_some() {
                faults.stop();
                tracing::warn!("injected Balances faults stopped (SIGUSR1)");
            }
        });
    }

    let ledger = DynamoLedgerStore::new(
        dynamodb.clone(),
        config.balances_table.clone(),
        catalog.clone(),
    );
    let balances_api = balances::router(
        BalancesService::new(ledger, SystemClock),
        catalog.clone(),
        balances_roles(),
    );
    let balances_listener = tokio::net::TcpListener::bind(config.balances_listen)
        .await
        .context("balances port")?;
    serve_balances_as(balances_listener, &balances_api, OPERATOR_ROLE);
    let mut balances_url = std::collections::BTreeMap::new();
    for role in [PLACE_ORDER_ROLE, FILL_PROCESSOR_ROLE, RECONCILER_ROLE] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("balances port")?;
        balances_url.insert(role, format!("http://{}", listener.local_addr()?));
        serve_balances_as(listener, &balances_api, role);
    }

    let queue = SqsFillQueue::new(
        sqs.clone(),
        &config.fill_queue_url,
        &config.fill_dead_letter_queue_url,
    );
    let signing_secret =
        aws_adapters::secrets::SecretsManagerSecret::from_config(&aws, &config.webhook_secret_id);
    let keys = fill_webhook::CachedKeys::new(signing_secret, SystemClock, WEBHOOK_SECRET_CACHE);
    let webhook = fill_webhook::router(queue, SystemClock, keys, Duration::from_secs(300));
    let orders_api = place_order::router_with(
        orders(
            &config,
            &dynamodb,
            &faults,
            &balances_url[PLACE_ORDER_ROLE],
            1,
        )?,
        catalog,
        place_order::AccountMapping::new(Some(crate::jwt::ISSUER.to_owned())),
    );
    let trading_gateway = Gateway::new(
        vec![
            Route {
                prefix: fill_webhook::WEBHOOK_PATH,
                function: webhook,
                auth: Auth::None,
            },
            Route {
                prefix: "/orders",
                function: orders_api,
                auth: Auth::Jwt,
            },
        ],
        config.jwt_key.as_bytes().to_vec(),
    );

    let api_listener = tokio::net::TcpListener::bind(config.api_listen)
        .await
        .context("API port")?;
    tokio::spawn(crate::gateway::serve(
        api_listener,
        trading_gateway.into_router(),
    ));

    // The fill processor: reports it must not apply go to the dead-letter
    // queue with their reason; each batch has the function's timeout.
    let processor = Arc::new(orders(
        &config,
        &dynamodb,
        &faults,
        &balances_url[FILL_PROCESSOR_ROLE],
        2,
    )?);
    let set_aside = Arc::new(SqsFillQueue::new(
        sqs.clone(),
        &config.fill_queue_url,
        &config.fill_dead_letter_queue_url,
    ));
    for _ in 0..FILL_PROCESSOR_CONCURRENCY {
        let mapping = EventSourceMapping::new(
            sqs.clone(),
            &config.fill_queue_url,
            &config.fill_queue_arn,
            10,
            1,
        );
        let (processor, set_aside) = (processor.clone(), set_aside.clone());
        tokio::spawn(async move {
            loop {
                let polled = mapping
                    .poll_once(|event| async {
                        let deadline_ms = SystemClock.now_ms() + FILL_PROCESSOR_TIMEOUT_MS;
                        let (response, summary) = fill_processor::handle_batch(
                            &*processor,
                            &*set_aside,
                            event,
                            deadline_ms,
                        )
                        .await;
                        // Embedded Metric Format, on stdout as in Lambda.
                        println!("{}", fill_processor::metrics_line(&summary));
                        response
                    })
                    .await;
                if let Err(error) = polled {
                    tracing::warn!(%error, "fill queue poll failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
    }

    let settings = reconciler_settings();
    let reconciler_balances = &balances_url[RECONCILER_ROLE];
    let (first, second) = (
        orders(&config, &dynamodb, &faults, reconciler_balances, 3)?,
        orders(&config, &dynamodb, &faults, reconciler_balances, 4)?,
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let mut tick = tokio::time::interval(Duration::from_millis(config.reconciler_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if rng.gen::<f64>() < config.reconciler_double_chance {
            tokio::join!(
                reconciler::run_once(&first, &settings, RECONCILER_TIMEOUT_MS),
                reconciler::run_once(&second, &settings, RECONCILER_TIMEOUT_MS)
            );
        } else {
            reconciler::run_once(&first, &settings, RECONCILER_TIMEOUT_MS).await;
        }
    }
}

/// Serves the Balances API on `listener` as API Gateway's IAM authorizer
/// would pass `role`'s requests: one listener per principal.
fn serve_balances_as(listener: tokio::net::TcpListener, balances_api: &axum::Router, role: &str) {
    let gateway = Gateway::new(
        vec![Route {
            prefix: "/",
            function: balances_api.clone(),
            auth: Auth::Iam(Principal::local(role)),
        }],
        Vec::new(),
    );
    tokio::spawn(crate::gateway::serve(listener, gateway.into_router()));
}
