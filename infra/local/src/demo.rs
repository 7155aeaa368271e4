//! The demo: the whole platform trading, failing and recovering on one
//! machine. Accounts are funded, a stream of orders is placed (and some
//! cancelled) while the exchange and the Balances calls fail on purpose
//! (effects with lost answers included) and webhooks are dropped,
//! duplicated, reordered and delayed; the process hosting the handlers is
//! killed (SIGKILL) mid-flight and restarted. Then the faults stop, the
//! platform converges by itself within a budget derived from its stated
//! liveness bound, and every invariant of the design is checked against the
//! exchange's audit and the Balances service.
//!
//! The demo runs a short trading session: the venue's close (and the
//! platform's end-of-day check against the venue's list of the day) falls
//! inside the run, because a resting order whose last webhooks were dropped
//! is, by design, only looked at again at the end of its day.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use app::orders::OrderSettings;
use app::Balances;
use aws_adapters::balances_http::{HttpBalances, HttpBalancesAdmin};
use aws_adapters::dynamodb::DynamoOrderStore;
use domain::order::{FlagReason, Order, OrderStatus, StepFailure, StepState, OPEN_INDEX_SHARDS};
use domain::{AccountId, Amount, Asset, Catalog, IdempotencyKey, Operation, Side};
use exchange_sim::engine::EngineConfig;
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation, WebhookFaults};
use exchange_sim::venue::VenueProfile;
use exchange_sim::webhooks::WebhookConfig;
use futures::StreamExt as _;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;

use crate::format::{duration, rfc3339};
use crate::host::{Calendar, HostConfig, FILL_PROCESSOR_TIMEOUT_MS};
use crate::{jwt, HostProcess};

pub use crate::free_port;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub orders: usize,
    pub accounts: usize,
    pub seed: u64,
    /// Probability scale of every injected fault (0 turns them all off).
    pub fault_rate: f64,
    /// Hard kills of the handler process while orders are placed.
    pub kills: usize,
    pub concurrency: usize,
    /// The venue profile: `tombstone`, `deadline` or `plain`.
    pub venue: String,
}

/// Starting cash per account: 1,000,000.00 USD.
const START_CASH_CENTS: u64 = 100_000_000;
/// Starting shares per account of each traded symbol.
const START_SHARES: u64 = 1_000;
const SYMBOLS: [&str; 3] = ["AAPL", "MSFT", "NVDA"];
/// Client retries of one placement (same idempotency key).
const CLIENT_ATTEMPTS: usize = 10;
/// Share of placed orders the client cancels a moment later.
const CANCEL_SHARE: f64 = 0.1;
/// The exchange expires a resting order this long after accepting it, so
/// every order of a demo ends within the run (`EngineConfig::order_lifetime_ms`).
pub const ORDER_LIFETIME_MS: u64 = 20_000;
/// The end-of-day check starts this long after the session's close.
pub const EOD_CHECK_AFTER_CLOSE_MS: u64 = 5_000;
/// How often the reconciler's schedule fires in the demo.
pub const RECONCILER_INTERVAL_MS: u64 = 1_000;
/// Index entries younger than this are left to the next reconciler run
/// (`app::orders` INDEX_LAG_MS).
const INDEX_LAG_MS: u64 = 5_000;
/// The demo's fill queue hands a batch cut by a kill back after this long:
/// the fill processor's timeout, the least AWS allows for a queue feeding
/// it (template.yaml keeps 180 s, six times it, for throttled retries).
pub const DEMO_VISIBILITY_TIMEOUT_S: u64 = FILL_PROCESSOR_TIMEOUT_MS / 1_000;
/// The emulator's secret of the webhook signing secrets is
/// `<prefix>ExchangeWebhookSecret` (in AWS, the template's
/// `WebhookSigningSecret`).
pub const WEBHOOK_SECRET_NAME: &str = "ExchangeWebhookSecret";
const MS_PER_DAY: u64 = 86_400_000;

fn now_ms() -> u64 {
    app::Clock::now_ms(&app::SystemClock)
}

fn flush() {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
}

fn exchange_faults(rate: f64) -> FaultConfig {
    let rest = OpFaults {
        fail_before_5xx: rate / 4.0,
        fail_before_reset: rate / 8.0,
        fail_after_5xx: rate / 4.0,
        fail_after_reset: rate / 8.0,
        fail_after_timeout: rate / 8.0,
        ..OpFaults::default()
    };
    let reads = OpFaults {
        fail_before_5xx: rate / 4.0,
        ..OpFaults::default()
    };
    FaultConfig {
        operations: BTreeMap::from([
            (SimOperation::Place, rest.clone()),
            (SimOperation::Cancel, rest),
            (SimOperation::GetOrderByClientId, reads.clone()),
            (SimOperation::ListExecutions, reads),
        ]),
        webhooks: WebhookFaults {
            drop: rate,
            duplicate: rate,
            reorder: rate,
            delay: rate,
            delay_ms: 1_000,
            outage_ms: 0,
        },
        timeout_delay_ms: 4_000,
        ..FaultConfig::healthy()
    }
}

pub fn venue_profile(name: &str) -> anyhow::Result<VenueProfile> {
    Ok(match name {
        "tombstone" => VenueProfile::Tombstone,
        "deadline" => VenueProfile::Deadline,
        "plain" => VenueProfile::Plain,
        other => bail!("unknown venue profile {other:?}: tombstone, deadline or plain"),
    })
}

/// What to start, for the demo and for `up`.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub seed: u64,
    pub fault_rate: f64,
    pub api_listen: SocketAddr,
    pub balances_listen: SocketAddr,
    pub prefix: String,
    pub venue: String,
    /// A short trading session (venue and platform alike), fixed as the
    /// exchange starts; `None`: the defaults (20:00 UTC close).
    pub session: Option<SessionPlan>,
    /// `EngineConfig::order_lifetime_ms` (0: time in force decides).
    pub order_lifetime_ms: u64,
    /// Sets the fill queue's visibility timeout (seconds).
    pub visibility_timeout_s: Option<u64>,
    /// Steps of the caller's progress display (`[n/steps]`).
    pub steps: usize,
}

/// How a demo's session is laid out from the moment the exchange starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPlan {
    /// Time to set up before the first order (handlers, accounts).
    pub setup_ms: u64,
    /// Time to send the orders.
    pub trading_window_ms: u64,
}

/// Everything the runner started, for the demo and for `up`.
pub struct Started {
    pub stack: local_stack::Stack,
    pub resources: local_stack::Resources,
    pub prefix: String,
    pub exchange: exchange_sim::app::Running,
    pub host: HostProcess,
    pub config: HostConfig,
    /// The emulator was already running (someone else's to stop).
    pub emulator_was_running: bool,
    /// The session, when one was planned, and its close (Unix ms).
    pub calendar: Option<Calendar>,
    pub close_at_ms: Option<u64>,
    /// Longest a webhook that failed keeps waiting for its next attempt once
    /// deliveries work again: a backoff at its cap, an attempt's timeout, a
    /// reorder hold, a fault's delay.
    pub webhook_retry_ms: u64,
}

/// Starts (or reuses) the emulator, creates the tables and queues of
/// template.yaml under the prefix, starts the exchange simulator with faults
/// at `fault_rate`, and the handler process. Prints steps 1 to 3.
pub async fn start(options: &StartOptions) -> anyhow::Result<Started> {
    let steps = options.steps;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let profile = venue_profile(&options.venue)?;
    let emulator_was_running = tokio::task::spawn_blocking(local_stack::status)
        .await??
        .running;
    let stack = local_stack::Stack::ensure_running()
        .await
        .context("starting the local stack")?;
    let resources = stack
        .create_resources(&options.prefix)
        .await
        .context("creating resources")?;
    let queue = &resources.queues["FillQueue"];
    let mut visibility_note = String::new();
    if let Some(seconds) = options.visibility_timeout_s {
        let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config());
        let sqs_error = |e: &dyn std::fmt::Display| anyhow::anyhow!("fill queue attributes: {e}");
        let attribute = aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout;
        let declared = sqs
            .get_queue_attributes()
            .queue_url(&queue.url)
            .attribute_names(attribute.clone())
            .send()
            .await
            .map_err(|e| sqs_error(&aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .attributes()
            .and_then(|a| a.get(&attribute).cloned())
            .unwrap_or_else(|| "?".into());
        sqs.set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(attribute, seconds.to_string())
            .send()
            .await
            .map_err(|e| sqs_error(&aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        visibility_note = format!(
            "; the fill queue's visibility timeout is {seconds} s here (template.yaml: {declared} s), \
             the fill processor's timeout, so a batch cut by a kill comes back within the run"
        );
    }
    println!(
        "[1/{steps}] emulator up{}; tables and queues from template.yaml with prefix {}{visibility_note}",
        if emulator_was_running {
            " (reused)"
        } else {
            ""
        },
        options.prefix
    );

    let secret_bytes: [u8; 24] = rng.gen();
    let webhook_secret = {
        use base64::Engine as _;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret_bytes)
        )
    };
    let planned = options.session.map(|plan| {
        let start_ms = now_ms() + plan.setup_ms;
        let (_, calendar) = session(
            start_ms,
            plan.trading_window_ms,
            &crate::host::local_order_settings(),
        );
        (calendar, next_close_ms(&calendar, start_ms))
    });
    let calendar = planned.map(|(calendar, _)| calendar);
    let mut engine = EngineConfig {
        seed: options.seed,
        venue: profile,
        min_chunks: 1,
        max_chunks: 4,
        fill_interval_min_ms: 50,
        fill_interval_max_ms: 500,
        cancel_probability: 0.05,
        expire_probability: 0.03,
        order_lifetime_ms: options.order_lifetime_ms,
        ..EngineConfig::default()
    };
    if let Some(calendar) = calendar {
        engine.close_utc_ms = calendar.close_utc_ms;
    }
    let mut settings = exchange_sim::app::Settings::new(engine);
    settings.faults = exchange_faults(options.fault_rate);
    let webhook = WebhookConfig::new(
        format!(
            "http://{}{}",
            options.api_listen,
            fill_webhook::WEBHOOK_PATH
        ),
        exchange_sim::signature::Secret::parse(&webhook_secret)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let webhook_retry_ms = webhook.max_backoff_ms
        + webhook.attempt_timeout_ms
        + webhook.reorder_hold_ms
        + settings.faults.webhooks.delay_ms;
    settings.webhook = Some(webhook);
    let exchange_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let exchange = exchange_sim::app::start(
        settings,
        exchange_listener,
        Arc::new(exchange_sim::time::SystemClock),
    )
    .await?;
    let lifetime = if options.order_lifetime_ms > 0 {
        format!(
            "; resting orders expire {} after acceptance (order_lifetime_ms), so they end within the run",
            duration(options.order_lifetime_ms)
        )
    } else {
        String::new()
    };
    println!(
        "[2/{steps}] exchange simulator at {} (venue {}, faults at rate {}{lifetime})",
        exchange.url(),
        options.venue,
        options.fault_rate
    );

    // The webhook reads its signing secrets from Secrets Manager, as in AWS.
    let webhook_secret_id = stack
        .put_secret(
            &format!("{}{WEBHOOK_SECRET_NAME}", options.prefix),
            &fill_webhook::SecretValue::json(&[&webhook_secret]),
        )
        .await
        .context("storing the webhook signing secret")?;
    let jwt_key: String = (0..32)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let config = HostConfig {
        trading_table: resources.table("TradingTable").to_owned(),
        balances_table: resources.table("BalancesTable").to_owned(),
        fill_queue_url: queue.url.clone(),
        fill_queue_arn: queue.arn.clone(),
        fill_dead_letter_queue_url: resources.queue_url("FillDeadLetterQueue").to_owned(),
        api_listen: options.api_listen,
        balances_listen: options.balances_listen,
        exchange_url: exchange.url(),
        venue: options.venue.clone(),
        webhook_secret_id,
        jwt_key,
        reconciler_interval_ms: RECONCILER_INTERVAL_MS,
        reconciler_double_chance: 0.2,
        balances_fault_rate: options.fault_rate / 2.0,
        balances_faults_until_ms: u64::MAX,
        seed: options.seed,
        fast_recovery: true,
        calendar,
    };
    let host = HostProcess::spawn(&stack, &config).await?;
    println!(
        "[3/{steps}] handlers up (pid {}): API http://{}, Balances http://{}; their JSON logs: {}",
        host.pid(),
        options.api_listen,
        options.balances_listen,
        crate::handler_log_path().display()
    );
    Ok(Started {
        stack,
        resources,
        prefix: options.prefix.clone(),
        exchange,
        host,
        config,
        emulator_was_running,
        calendar,
        close_at_ms: planned.map(|(_, close)| close),
        webhook_retry_ms,
    })
}

// -- the session and the convergence budget -------------------------------------

/// How long the demo gives itself to send the orders before the session's
/// cutoff: generous for a 2-core machine with the emulator and faults.
pub fn trading_window_ms(orders: usize, concurrency: usize, kills: usize, fault_rate: f64) -> u64 {
    let orders = orders as u64;
    let lanes = concurrency.clamp(1, 16) as u64;
    // One placement costs ~0.5 s on the emulator; faults add client retries.
    let per_order_ms = 500 + (fault_rate.clamp(0.0, 1.0) * 2_000.0) as u64;
    // However many lanes, the emulator serves one request at a time: with
    // fills running alongside it answers about 5 placements a second (a
    // 5,000-order run at 8 lanes placed 2,823 in a 9-minute window).
    let sending_ms = (orders * per_order_ms / lanes).max(orders * EMULATOR_MS_PER_PLACEMENT);
    10_000 + sending_ms + kills as u64 * 3_000
}

/// The emulator's wall time per placement under a demo's load (see above).
const EMULATOR_MS_PER_PLACEMENT: u64 = 200;

/// The longest a placement can still arrive at the venue after the order
/// was created: its window, the clock-skew margin, the longest call in flight.
pub fn placement_bound_ms(settings: &OrderSettings) -> u64 {
    settings.placement_window_ms
        + settings.recovery.clock_skew_margin_ms
        + settings.recovery.max_in_flight_ms
}

/// What the convergence budget is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetInputs {
    /// When the faults stopped (no order is created after it).
    pub faults_stopped_at_ms: u64,
    /// When the end-of-day check of the session starts (close + delay).
    pub end_of_day_at_ms: u64,
    pub settings: OrderSettings,
    pub order_lifetime_ms: u64,
    /// Longest a webhook already failing keeps the venue waiting: one
    /// backoff at its cap, one attempt's timeout, a reorder hold, a delay.
    pub webhook_retry_ms: u64,
    /// A batch cut by a kill comes back after the queue's visibility timeout.
    pub visibility_timeout_ms: Option<u64>,
    pub reconciler_interval_ms: u64,
    pub orders: usize,
}

/// The budget and each term of it, to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub total_ms: u64,
    /// The term that sets the start of the last recovery, and the others beside it.
    pub longest_wait: Vec<(String, u64)>,
    /// Added to the longest wait.
    pub then: Vec<(String, u64)>,
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let terms = |terms: &[(String, u64)], join: &str| {
            terms
                .iter()
                .map(|(name, ms)| format!("{name} {}", duration(*ms)))
                .collect::<Vec<_>>()
                .join(join)
        };
        write!(
            f,
            "{} = max({}) + {}",
            duration(self.total_ms),
            terms(&self.longest_wait, ", "),
            terms(&self.then, " + ")
        )
    }
}

/// The liveness bound after the faults stop, as a budget: the last thing
/// that can still be on its way (the end-of-day check, an order created
/// just before the faults stopped reaching its end at the venue and its
/// last webhook arriving, a batch cut by a kill coming back), then what
/// recovery needs to act on it (webhooks' grace, a silent order's bound,
/// a few retries at their cap, the index's lag, two reconciler ticks), the
/// work itself and a margin.
pub fn convergence_budget(inputs: &BudgetInputs) -> Budget {
    let policy = &inputs.settings.recovery;
    let mut longest_wait = vec![
        (
            "end-of-day check".to_owned(),
            inputs
                .end_of_day_at_ms
                .saturating_sub(inputs.faults_stopped_at_ms),
        ),
        (
            "placement bound + order lifetime + webhook retry".to_owned(),
            placement_bound_ms(&inputs.settings)
                + inputs.order_lifetime_ms
                + inputs.webhook_retry_ms,
        ),
    ];
    if let Some(visibility) = inputs.visibility_timeout_ms {
        longest_wait.push(("fill queue visibility timeout".to_owned(), visibility));
    }
    let then = vec![
        ("gap grace".to_owned(), policy.gap_grace_ms),
        ("market silence".to_owned(), policy.market_silence_ms),
        ("3 retries at their cap".to_owned(), 3 * policy.retry_max_ms),
        ("index lag".to_owned(), INDEX_LAG_MS),
        (
            "2 reconciler ticks".to_owned(),
            2 * inputs.reconciler_interval_ms,
        ),
        (
            "work (40 ms an order)".to_owned(),
            inputs.orders as u64 * 40,
        ),
        ("margin".to_owned(), 15_000),
    ];
    let total_ms = longest_wait.iter().map(|(_, ms)| *ms).max().unwrap_or(0)
        + then.iter().map(|(_, ms)| *ms).sum::<u64>();
    Budget {
        total_ms,
        longest_wait,
        then,
    }
}

/// The session of a demo that starts sending at `start_ms`: orders are sent
/// until the cutoff, and every placement has arrived at the venue before
/// the close, so the venue and the platform put every order on the same day.
pub fn session(start_ms: u64, trading_window_ms: u64, settings: &OrderSettings) -> (u64, Calendar) {
    let cutoff = start_ms + trading_window_ms;
    // The close on a whole second, after every placement's bound.
    let close = (cutoff + placement_bound_ms(settings) + 2_000).div_ceil(1_000) * 1_000;
    (
        cutoff,
        Calendar {
            close_utc_ms: close % MS_PER_DAY,
            check_after_close_ms: EOD_CHECK_AFTER_CLOSE_MS,
        },
    )
}

/// The next close of the calendar at or after `at_ms`.
pub fn next_close_ms(calendar: &Calendar, at_ms: u64) -> u64 {
    let day = at_ms / MS_PER_DAY;
    let today = day * MS_PER_DAY + calendar.close_utc_ms;
    if today >= at_ms {
        today
    } else {
        today + MS_PER_DAY
    }
}

// -- the client ------------------------------------------------------------------

#[derive(Default)]
struct ClientLog {
    placed: AtomicUsize,
    retries: AtomicUsize,
    not_sent: AtomicUsize,
    unanswered: AtomicUsize,
    cancels_sent: AtomicUsize,
    cancels_accepted: AtomicUsize,
    /// Idempotency key → the order ids answered for it.
    answers: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

struct Request {
    account: AccountId,
    key: String,
    body: serde_json::Value,
    cancel_after_ms: Option<u64>,
}

fn random_order(
    rng: &mut ChaCha8Rng,
    accounts: &[AccountId],
    exchange: &exchange_sim::app::Running,
    i: usize,
) -> Request {
    let account = accounts[rng.gen_range(0..accounts.len())].clone();
    let symbol = SYMBOLS[rng.gen_range(0..SYMBOLS.len())];
    let side = if rng.gen_bool(0.5) { "buy" } else { "sell" };
    let quantity = rng.gen_range(1..=20u64).to_string();
    let time_in_force = match rng.gen_range(0..100) {
        0..=69 => "day",
        70..=84 => "gtc",
        _ => "ioc",
    };
    let key = format!("demo-order-{i}");
    let body = if rng.gen_bool(0.4) {
        serde_json::json!({"symbol": symbol, "side": side, "type": "market", "quantity": quantity,
            "time_in_force": time_in_force})
    } else {
        let quote = exchange
            .state
            .engine()
            .quote(symbol, now_ms())
            .map(|q| q.last.cents())
            .unwrap_or(10_000);
        // Within 2% of the quote either way: most fill, some rest and expire.
        let offset = i64::try_from(quote / 50).unwrap_or(0);
        let cents = i64::try_from(quote).unwrap_or(10_000) + rng.gen_range(-offset..=offset);
        let price = domain::money::format_units(u64::try_from(cents.max(1)).unwrap_or(1), 2);
        serde_json::json!({"symbol": symbol, "side": side, "type": "limit", "quantity": quantity,
            "limit_price": price, "time_in_force": time_in_force})
    };
    let cancel_after_ms = rng.gen_bool(CANCEL_SHARE).then(|| rng.gen_range(0..2_000));
    Request {
        account,
        key,
        body,
        cancel_after_ms,
    }
}

/// A client that retries with the same key until it gets an answer (or
/// the session's cutoff), then cancels some orders.
async fn client(
    http: reqwest::Client,
    api: String,
    token: String,
    request: Request,
    cutoff_ms: u64,
    log: Arc<ClientLog>,
) {
    let url = format!("{api}/orders");
    let mut answered = None;
    for attempt in 0..CLIENT_ATTEMPTS {
        if now_ms() >= cutoff_ms {
            break;
        }
        if attempt > 0 {
            log.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300 * attempt as u64)).await;
        }
        let sent = http
            .post(&url)
            .bearer_auth(&token)
            .header("idempotency-key", &request.key)
            .json(&request.body)
            .send()
            .await;
        let Ok(response) = sent else { continue };
        if response.status().is_server_error() {
            continue;
        }
        let success = response.status().is_success();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        answered = Some(body["id"].as_str().filter(|_| success).map(str::to_owned));
        break;
    }
    match answered {
        None if now_ms() >= cutoff_ms => {
            log.not_sent.fetch_add(1, Ordering::SeqCst);
        }
        None => {
            log.unanswered.fetch_add(1, Ordering::SeqCst);
        }
        Some(id) => {
            log.placed.fetch_add(1, Ordering::SeqCst);
            if let Some(id) = id {
                if let Ok(mut answers) = log.answers.lock() {
                    answers
                        .entry(request.key.clone())
                        .or_default()
                        .insert(id.clone());
                }
                if let Some(after) = request.cancel_after_ms {
                    tokio::time::sleep(Duration::from_millis(after)).await;
                    cancel(&http, &format!("{url}/{id}"), &token, &log).await;
                }
            }
        }
    }
}

async fn cancel(http: &reqwest::Client, url: &str, token: &str, log: &ClientLog) {
    log.cancels_sent.fetch_add(1, Ordering::SeqCst);
    for attempt in 0..5u64 {
        tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
        if let Ok(response) = http.delete(url).bearer_auth(token).send().await {
            if response.status().is_success() {
                log.cancels_accepted.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if !response.status().is_server_error() {
                return;
            }
        }
    }
}

async fn retry_call<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    call: impl Fn() -> F,
) -> anyhow::Result<T> {
    let mut last = String::new();
    for _ in 0..5 {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!("gave up: {last}")
}

/// Open orders as the sparse open-order index counts them (a COUNT per
/// shard: never the table).
pub async fn open_orders(store: &DynamoOrderStore) -> anyhow::Result<u64> {
    let mut open = 0;
    for shard in 0..OPEN_INDEX_SHARDS {
        open += store
            .open_count(shard)
            .await
            .with_context(|| format!("counting shard {shard} of the open-order index"))?;
    }
    Ok(open)
}

// -- the run ---------------------------------------------------------------------

const STEPS: usize = 7;

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    println!(
        "seed {} (repeat this run with --seed {})",
        options.seed, options.seed
    );
    venue_profile(&options.venue)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    let (api_listen, balances_listen) = (free_port()?, free_port()?);
    let prefix = local_stack::unique_prefix("demo");
    let settings = crate::host::local_order_settings();
    let window = trading_window_ms(
        options.orders,
        options.concurrency,
        options.kills,
        options.fault_rate,
    );
    let Started {
        stack,
        exchange,
        mut host,
        mut config,
        emulator_was_running: was_running,
        calendar,
        close_at_ms,
        webhook_retry_ms,
        ..
    } = start(&StartOptions {
        seed: options.seed,
        fault_rate: options.fault_rate,
        api_listen,
        balances_listen,
        prefix: prefix.clone(),
        venue: options.venue.clone(),
        // The venue needs its close when it starts: the session is laid out
        // then, with time for the handlers to start and the accounts to be funded.
        session: Some(SessionPlan {
            setup_ms: 5_000 + options.accounts as u64 * 600,
            trading_window_ms: window,
        }),
        order_lifetime_ms: ORDER_LIFETIME_MS,
        visibility_timeout_s: Some(DEMO_VISIBILITY_TIMEOUT_S),
        steps: STEPS,
    })
    .await?;
    let jwt_key = config.jwt_key.clone();
    let calendar = calendar.context("the demo's session")?;
    let close_ms = close_at_ms.context("the demo's session")?;
    let cutoff_ms = close_ms - placement_bound_ms(&settings) - 2_000;
    let end_of_day_ms = close_ms + calendar.check_after_close_ms;

    // -- accounts --------------------------------------------------------------
    let catalog = Catalog::us_equities();
    // The operator's listener: deposits on the admin route, reads for the checks.
    let balances_url = format!("http://{balances_listen}");
    let balances = HttpBalances::new(&balances_url, catalog.clone(), Duration::from_secs(5))?;
    let admin = HttpBalancesAdmin::new(&balances_url, catalog.clone(), Duration::from_secs(5))?;
    let run_tag = &prefix[2..prefix.len() - 1];
    let accounts: Vec<AccountId> = (0..options.accounts)
        .map(|i| AccountId::parse(&format!("acct{i:03}-{run_tag}")))
        .collect::<Result<_, _>>()?;
    for account in &accounts {
        let mut deposits = vec![(Asset::Cash, START_CASH_CENTS)];
        for symbol in SYMBOLS {
            deposits.push((catalog.asset(symbol)?, START_SHARES));
        }
        for (asset, units) in deposits {
            let key = IdempotencyKey::parse(&format!("deposit-{}", asset.code()))?;
            let operation = Operation::Deposit {
                asset,
                amount: Amount::new(units)?,
            };
            retry_call(|| admin.execute(account, &key, &operation)).await?;
        }
    }
    println!(
        "[4/{STEPS}] {} accounts funded: 1,000,000.00 USD and {START_SHARES} shares of {SYMBOLS:?} each",
        accounts.len()
    );
    if now_ms() >= cutoff_ms {
        bail!(
            "setting up took longer than the session allowed: its cutoff {} passed before the first order (run it again)",
            rfc3339(cutoff_ms)
        );
    }
    println!(
        "      session: orders until {}, the venue closes at {}, end-of-day check from {} \
         (a resting order whose last webhooks were dropped is looked at again at the end of its day)",
        rfc3339(cutoff_ms),
        rfc3339(close_ms),
        rfc3339(end_of_day_ms)
    );

    // -- orders under faults, with hard kills ------------------------------------
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()?;
    let log = Arc::new(ClientLog::default());
    let mut kill_points: BTreeSet<usize> = BTreeSet::new();
    while kill_points.len() < options.kills.min(options.orders) {
        kill_points.insert(rng.gen_range(options.orders / 5..options.orders.max(2)));
    }
    let requests: Vec<Request> = (0..options.orders)
        .map(|i| random_order(&mut rng, &accounts, &exchange, i))
        .collect();
    let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = Vec::new();
    let mut kills_done = 0;
    let api = format!("http://{api_listen}");
    for (i, request) in requests.into_iter().enumerate() {
        if kill_points.contains(&i) && now_ms() < cutoff_ms {
            host.kill().await?;
            kills_done += 1;
            println!(
                "\n      killed the handler process (SIGKILL) with requests in flight; restarting"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            host = HostProcess::spawn(&stack, &config).await?;
        }
        let permit = semaphore.clone().acquire_owned().await?;
        let token = jwt::token_for(
            jwt_key.as_bytes(),
            request.account.as_str(),
            now_ms() / 1000,
            3_600,
        );
        let (http, shared, api) = (http.clone(), log.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            client(http, api, token, request, cutoff_ms, shared).await;
            drop(permit);
        }));
        print!(
            "\r      placing orders: {}/{} answered (client retries {}, kills {kills_done})    ",
            log.placed.load(Ordering::SeqCst),
            options.orders,
            log.retries.load(Ordering::SeqCst)
        );
        flush();
    }
    for task in tasks {
        task.await?;
    }
    let not_sent = log.not_sent.load(Ordering::SeqCst);
    println!(
        "\r[5/{STEPS}] {} of {} orders answered (client retries {}, {} never answered{}), {} cancel(s) sent ({} accepted), {kills_done} hard kill(s)          ",
        log.placed.load(Ordering::SeqCst),
        options.orders,
        log.retries.load(Ordering::SeqCst),
        log.unanswered.load(Ordering::SeqCst),
        if not_sent > 0 {
            format!(", {not_sent} without an answer at the session's cutoff")
        } else {
            String::new()
        },
        log.cancels_sent.load(Ordering::SeqCst),
        log.cancels_accepted.load(Ordering::SeqCst),
    );

    // -- faults off, then converge -------------------------------------------------
    exchange.state.faults().heal();
    host.stop_faults()?;
    config.balances_faults_until_ms = 0;
    let faults_stopped_ms = now_ms();
    let faults_stopped = Instant::now();
    let budget = convergence_budget(&BudgetInputs {
        faults_stopped_at_ms: faults_stopped_ms,
        end_of_day_at_ms: end_of_day_ms,
        settings: settings.clone(),
        order_lifetime_ms: ORDER_LIFETIME_MS,
        webhook_retry_ms,
        visibility_timeout_ms: (kills_done > 0).then_some(DEMO_VISIBILITY_TIMEOUT_S * 1_000),
        reconciler_interval_ms: RECONCILER_INTERVAL_MS,
        orders: options.orders,
    });
    println!(
        "      faults off at {} (exchange healed; the handlers' Balances faults stopped)",
        rfc3339(faults_stopped_ms)
    );
    println!("      convergence budget {budget}");
    let store = DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config()),
        config.trading_table.clone(),
    );
    let budget_time = Duration::from_millis(budget.total_ms);
    let mut open = u64::MAX;
    let mut last_error = None;
    loop {
        match open_orders(&store).await {
            Ok(count) => open = count,
            Err(error) => last_error = Some(error.to_string()),
        }
        let waiting = if open > 0 && now_ms() < end_of_day_ms {
            format!(
                ", end-of-day check in {}",
                duration(end_of_day_ms - now_ms())
            )
        } else {
            String::new()
        };
        print!(
            "\r      converging: {} open after {} of {}{waiting}          ",
            if open == u64::MAX {
                "?".to_owned()
            } else {
                open.to_string()
            },
            duration(faults_stopped.elapsed().as_millis() as u64),
            duration(budget.total_ms)
        );
        flush();
        if open == 0 || faults_stopped.elapsed() > budget_time {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let converged_in = faults_stopped.elapsed();
    let converged = open == 0;
    if converged {
        println!(
            "\r[6/{STEPS}] converged {} after the faults stopped (budget {})                    ",
            duration(converged_in.as_millis() as u64),
            duration(budget.total_ms)
        );
    } else {
        println!(
            "\r[6/{STEPS}] DID NOT CONVERGE: {} order(s) still open {} after the faults stopped (budget {}){}",
            if open == u64::MAX { "?".to_owned() } else { open.to_string() },
            duration(converged_in.as_millis() as u64),
            duration(budget.total_ms),
            last_error.map(|e| format!("; last error: {e}")).unwrap_or_default()
        );
    }

    // -- the check: one scan of the table, now that nothing runs -------------------
    println!("[7/{STEPS}] checking every invariant against the exchange's audit and the Balances service");
    let answers = log.answers.lock().map(|a| a.clone()).unwrap_or_default();
    let report = check(&Checked {
        store: &store,
        accounts: &accounts,
        balances: &balances,
        exchange: &exchange,
        catalog: &catalog,
        answers: &answers,
        faults_on: options.fault_rate > 0.0,
    })
    .await;
    print!(
        "{}",
        report.render(&exchange, &log, kills_done, options.fault_rate)
    );
    println!(
        "\n{} {} after the faults stopped (budget {}); whole run {}.",
        if converged {
            "Converged"
        } else {
            "Did not converge"
        },
        duration(converged_in.as_millis() as u64),
        duration(budget.total_ms),
        duration(started.elapsed().as_millis() as u64)
    );

    host.kill().await?;
    drop(exchange);
    if !was_running {
        tokio::task::spawn_blocking(local_stack::stop).await??;
    }
    outcome(converged, &report.invariants)
}

/// The demo's exit: an error (non-zero exit) unless it converged and every invariant held.
pub fn outcome(converged: bool, invariants: &[Invariant]) -> anyhow::Result<()> {
    let failed = invariants.iter().filter(|i| !i.passed).count();
    match (converged, failed) {
        (true, 0) => Ok(()),
        (false, 0) => bail!("the platform did not converge within its budget"),
        (true, n) => bail!("{n} invariant(s) failed"),
        (false, n) => {
            bail!("the platform did not converge within its budget, and {n} invariant(s) failed")
        }
    }
}

// -- the invariants ----------------------------------------------------------------

pub struct Invariant {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

impl Invariant {
    fn pass(name: &'static str, detail: String) -> Self {
        Invariant {
            name,
            passed: true,
            detail,
        }
    }

    fn fail(name: &'static str, detail: String) -> Self {
        Invariant {
            name,
            passed: false,
            detail,
        }
    }

    fn of(name: &'static str, passed: bool, detail: String) -> Self {
        Invariant {
            name,
            passed,
            detail,
        }
    }
}

pub struct Report {
    pub invariants: Vec<Invariant>,
    pub orders: Vec<Order>,
    pub executions_recorded: usize,
}

struct Checked<'a> {
    store: &'a DynamoOrderStore,
    accounts: &'a [AccountId],
    balances: &'a HttpBalances,
    exchange: &'a exchange_sim::app::Running,
    catalog: &'a Catalog,
    answers: &'a BTreeMap<String, BTreeSet<String>>,
    faults_on: bool,
}

/// Reads at once while checking.
const CHECK_CONCURRENCY: usize = 8;

const ONE_EXCHANGE_ORDER: &str = "at most one exchange order per platform order";
const ONE_ORDER_PER_KEY: &str = "one order per idempotency key";
const FILLS_RECORDED: &str = "fills recorded = executions at the exchange";
const ONE_SETTLEMENT: &str = "one settlement per execution";
const CONSERVED: &str = "cash and shares conserved per account (owed counted)";
const RESERVED_ZERO: &str = "reserved back to zero";
const TERMINAL: &str = "every order terminal";
const NO_FALSE_FLAGS: &str = "no order flagged while its exchange state is healthy";
const CANCELS_HOLD: &str = "a cancelled order is never left live at the exchange";

async fn check(checked: &Checked<'_>) -> Report {
    let mut invariants = Vec::new();
    let orders = match checked.store.scan_orders().await {
        Ok(orders) => orders,
        Err(error) => {
            let reason = format!("cannot be checked: the orders could not be read: {error}");
            for name in [
                ONE_EXCHANGE_ORDER,
                ONE_ORDER_PER_KEY,
                FILLS_RECORDED,
                ONE_SETTLEMENT,
                CONSERVED,
                RESERVED_ZERO,
                TERMINAL,
                NO_FALSE_FLAGS,
                CANCELS_HOLD,
            ] {
                invariants.push(Invariant::fail(name, reason.clone()));
            }
            return Report {
                invariants,
                orders: Vec::new(),
                executions_recorded: 0,
            };
        }
    };
    let audit = checked.exchange.state.engine().audit();
    let by_id: BTreeMap<&str, &Order> = orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let at_exchange: BTreeMap<&str, &exchange_sim::order::Order> = audit
        .orders
        .iter()
        .map(|o| (o.client_order_id.as_str(), o))
        .collect();

    // 1. At most one exchange order per platform order, none unknown.
    let mut per_client_id: BTreeMap<&str, usize> = BTreeMap::new();
    for order in &audit.orders {
        *per_client_id
            .entry(order.client_order_id.as_str())
            .or_default() += 1;
    }
    let duplicated = per_client_id.values().filter(|n| **n > 1).count();
    let strangers = per_client_id
        .keys()
        .filter(|id| !by_id.contains_key(*id))
        .count();
    invariants.push(Invariant::of(
        ONE_EXCHANGE_ORDER,
        duplicated == 0 && strangers == 0,
        format!(
            "{} exchange orders for {} platform orders; {duplicated} duplicated, {strangers} unknown to the platform",
            audit.orders.len(),
            orders.len()
        ),
    ));

    // 2. One order per idempotency key, as the client was answered.
    let reused: Vec<&String> = checked
        .answers
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(key, _)| key)
        .collect();
    let answered: BTreeSet<&String> = checked.answers.values().flatten().collect();
    let unknown_answers = answered
        .iter()
        .filter(|id| !by_id.contains_key(id.as_str()))
        .count();
    invariants.push(Invariant::of(
        ONE_ORDER_PER_KEY,
        reused.is_empty() && unknown_answers == 0,
        format!(
            "{} keys answered with {} order ids; {} key(s) with more than one order, {unknown_answers} answered id(s) not in the table",
            checked.answers.len(),
            answered.len(),
            reused.len()
        ),
    ));

    // 3. Fills recorded = executions at the exchange, per order.
    let mut records: BTreeMap<&str, Vec<domain::order::FillRecord>> = BTreeMap::new();
    let mut unreadable = Vec::new();
    let read = futures::stream::iter(orders.iter().map(|order| async move {
        (
            order,
            crate::operator::all_executions(checked.store, order).await,
        )
    }))
    .buffer_unordered(CHECK_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    for (order, result) in read {
        match result {
            Ok(list) => {
                records.insert(order.id.as_str(), list);
            }
            Err(error) => unreadable.push(format!("{}: {error:#}", order.id)),
        }
    }
    let executions_recorded: usize = records.values().map(Vec::len).sum();
    let (mut missing, mut extra, mut duplicates, mut executions) = (0, 0, 0, 0);
    for order in &orders {
        let Some(list) = records.get(order.id.as_str()) else {
            continue;
        };
        let exchange_ids: BTreeSet<&str> = at_exchange
            .get(order.id.as_str())
            .map(|o| o.executions.iter().map(|e| e.exec_id.as_str()).collect())
            .unwrap_or_default();
        let recorded: BTreeSet<&str> = list.iter().map(|r| r.exec_id.as_str()).collect();
        executions += exchange_ids.len();
        missing += exchange_ids.difference(&recorded).count();
        extra += recorded.difference(&exchange_ids).count();
        duplicates += list.len() - recorded.len();
    }
    let detail = format!(
        "{executions} executions at the exchange, {executions_recorded} recorded; {missing} missing, {extra} not at the exchange, {duplicates} recorded twice"
    );
    invariants.push(if unreadable.is_empty() {
        Invariant::of(
            FILLS_RECORDED,
            missing == 0 && extra == 0 && duplicates == 0,
            detail,
        )
    } else {
        Invariant::fail(
            FILLS_RECORDED,
            format!(
                "cannot be checked for {} order(s): {}; {detail}",
                unreadable.len(),
                unreadable.join("; ")
            ),
        )
    });

    // 4. One settlement per execution, with the execution's terms.
    let (mut settled, mut not_settled, mut wrong_terms, mut lookups_failed) = (0, 0, 0, Vec::new());
    let lookups = orders.iter().flat_map(|order| {
        records
            .get(order.id.as_str())
            .into_iter()
            .flatten()
            .map(move |record| (order, record))
    });
    let looked_up = futures::stream::iter(lookups.map(|(order, record)| async move {
        let key = order.id.settle_key(&record.exec_id);
        let found = checked.balances.lookup(&order.account, &key).await;
        (key, record, found)
    }))
    .buffer_unordered(CHECK_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    for (key, record, found) in looked_up {
        match found {
            Ok(Some(found)) if found.outcome.took_effect() => match found.operation {
                Operation::Settle {
                    quantity, price, ..
                } if quantity == record.quantity && price == record.price => settled += 1,
                _ => wrong_terms += 1,
            },
            Ok(_) => not_settled += 1,
            Err(error) => lookups_failed.push(format!("{key}: {error}")),
        }
    }
    let detail = format!("{settled} settled once with their terms, {not_settled} not settled, {wrong_terms} with other terms");
    invariants.push(if lookups_failed.is_empty() {
        Invariant::of(ONE_SETTLEMENT, not_settled == 0 && wrong_terms == 0, detail)
    } else {
        Invariant::fail(
            ONE_SETTLEMENT,
            format!(
                "cannot be checked: {} Balances lookup(s) failed (first: {}); {detail}",
                lookups_failed.len(),
                lookups_failed[0]
            ),
        )
    });

    // 5-6. Conservation per account and asset, owed counted; reserved back to zero.
    let mut expected: BTreeMap<(&AccountId, Asset), i128> = BTreeMap::new();
    for account in checked.accounts {
        expected.insert((account, Asset::Cash), i128::from(START_CASH_CENTS));
        for symbol in SYMBOLS {
            if let Ok(asset) = checked.catalog.asset(symbol) {
                expected.insert((account, asset), i128::from(START_SHARES));
            }
        }
    }
    for exchange_order in &audit.orders {
        let Some(order) = by_id.get(exchange_order.client_order_id.as_str()) else {
            continue;
        };
        let sign = if order.request.side == Side::Buy {
            1
        } else {
            -1
        };
        for execution in &exchange_order.executions {
            let shares = i128::from(execution.quantity.shares());
            let cash = i128::from(execution.price.cents()) * shares;
            *expected
                .entry((&order.account, Asset::Shares(order.request.symbol.clone())))
                .or_default() += sign * shares;
            *expected.entry((&order.account, Asset::Cash)).or_default() -= sign * cash;
        }
    }
    let mut wrong = Vec::new();
    let mut unread = Vec::new();
    let (mut reserved_left, mut owed) = (0u64, 0u64);
    for account in checked.accounts {
        let held = match checked.balances.balances(account).await {
            Ok(held) => held,
            Err(error) => {
                unread.push(format!("{account}: {error}"));
                continue;
            }
        };
        reserved_left += held.values().map(|b| b.reserved).sum::<u64>();
        owed += held.values().map(|b| b.owed).sum::<u64>();
        for ((_, asset), want) in expected.iter().filter(|((owner, _), _)| *owner == account) {
            let have = held.get(asset).map(|b| b.net()).unwrap_or_default();
            if have != *want {
                wrong.push(format!("{account} {asset}: {have} != {want}"));
            }
        }
    }
    let reason = (!unread.is_empty()).then(|| {
        format!(
            "cannot be checked for {} account(s): {}",
            unread.len(),
            unread.join("; ")
        )
    });
    invariants.push(match &reason {
        Some(reason) => Invariant::fail(CONSERVED, reason.clone()),
        None if wrong.is_empty() => Invariant::pass(
            CONSERVED,
            format!(
                "{} balances = deposits ± executions at the exchange (available + reserved - owed; {owed} units owed)",
                expected.len()
            ),
        ),
        None => Invariant::fail(CONSERVED, wrong.join("; ")),
    });
    invariants.push(match reason {
        Some(reason) => Invariant::fail(RESERVED_ZERO, reason),
        None => Invariant::of(
            RESERVED_ZERO,
            reserved_left == 0,
            format!("{reserved_left} units still reserved"),
        ),
    });

    // 7. Every order terminal.
    let open: Vec<&Order> = orders.iter().filter(|o| !o.is_closed()).collect();
    invariants.push(Invariant::of(
        TERMINAL,
        open.is_empty(),
        if open.is_empty() {
            format!("{} orders closed", orders.len())
        } else {
            format!(
                "{} of {} still open (first: {} {:?}; `cargo run -p local -- order <id>` shows why)",
                open.len(),
                orders.len(),
                open[0].id,
                open[0].status()
            )
        },
    ));

    // 8. No flag on an order whose exchange state is healthy. The demo's
    // venue is truthful and honours limits: every flag but `stuck` says
    // something went wrong, and `stuck` is wrong too when no fault ran.
    let hostile = checked.exchange.state.engine().config().hostile.is_some()
        || !checked.exchange.state.engine().config().honours_limits;
    let mut by_reason: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for order in orders.iter().filter(|o| o.recovery.is_flagged()) {
        for reason in &order.recovery.flags {
            *by_reason.entry(reason.as_str()).or_default() += 1;
        }
        let healthy_venue_explains = order
            .recovery
            .flags
            .iter()
            .all(|r| *r == FlagReason::Stuck && checked.faults_on);
        if order.recovery.flag_detail.is_none() || !(hostile || healthy_venue_explains) {
            unexplained.push(order.id.to_string());
        }
    }
    invariants.push(Invariant::of(
        NO_FALSE_FLAGS,
        unexplained.is_empty(),
        if by_reason.is_empty() {
            "no order flagged".to_owned()
        } else {
            format!(
                "flags {by_reason:?}; {} not explained by the run (first: {})",
                unexplained.len(),
                unexplained.first().map_or("-", String::as_str)
            )
        },
    ));

    // 9. A cancel the platform accepted never leaves its order live at the exchange.
    let cancelled: Vec<&Order> = orders.iter().filter(|o| o.cancel.is_some()).collect();
    let (mut live, mut cancelled_there, mut ended_before, mut never_there) = (Vec::new(), 0, 0, 0);
    for order in &cancelled {
        match at_exchange.get(order.id.as_str()) {
            None => never_there += 1,
            Some(view) if !view.status.is_terminal() => live.push(order.id.to_string()),
            Some(view) if view.status == exchange_sim::order::OrderStatus::Cancelled => {
                cancelled_there += 1
            }
            Some(_) => ended_before += 1,
        }
    }
    invariants.push(Invariant::of(
        CANCELS_HOLD,
        live.is_empty(),
        format!(
            "{} cancels recorded: {cancelled_there} cancelled at the exchange, {ended_before} had ended there, {never_there} never reached it; {} live{}",
            cancelled.len(),
            live.len(),
            live.first().map(|id| format!(" (first: {id})")).unwrap_or_default()
        ),
    ));

    Report {
        invariants,
        orders,
        executions_recorded,
    }
}

impl Report {
    fn render(
        &self,
        exchange: &exchange_sim::app::Running,
        log: &ClientLog,
        kills: usize,
        fault_rate: f64,
    ) -> String {
        let mut out = String::new();
        let orders = &self.orders;
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        let mut failed_by_reason: BTreeMap<String, usize> = BTreeMap::new();
        for order in orders {
            let status = serde_json::to_value(order.status())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *by_status.entry(status).or_default() += 1;
            if order.status() == OrderStatus::Failed {
                *failed_by_reason
                    .entry(
                        order
                            .status_reason()
                            .unwrap_or_else(|| "no reason recorded".into()),
                    )
                    .or_default() += 1;
            }
        }
        let count = |f: &dyn Fn(&Order) -> bool| orders.iter().filter(|o| f(o)).count();
        let counters = exchange.state.faults().counters().clone();
        let rest = counters.rest.values().fold((0, 0), |(before, after), c| {
            (
                before + c.before_5xx + c.before_reset,
                after + c.after_5xx + c.after_reset + c.after_timeout,
            )
        });
        let hooks = &counters.webhooks;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Orders: {} in the table, by final status {by_status:?}",
            orders.len()
        );
        for (reason, n) in &failed_by_reason {
            let _ = writeln!(out, "  failed ({n}): {reason}");
        }
        let _ = writeln!(
            out,
            "Executions applied: {} (exchange total {})",
            self.executions_recorded,
            exchange.state.engine().execution_count()
        );
        let _ = writeln!(
            out,
            "Faults injected: exchange REST calls failed {} times before their effect and {} after it (answer lost); \
             webhooks dropped {}, duplicated {}, reordered {}, delayed {}; the handlers' Balances calls failed at rate {}; {kills} hard kill(s)",
            rest.0, rest.1, hooks.dropped, hooks.duplicated, hooks.reordered, hooks.delayed,
            fault_rate / 2.0
        );
        let _ = writeln!(
            out,
            "Client: {} answered, {} retries, {} never answered, {} without an answer at the cutoff; {} cancels sent, {} accepted",
            log.placed.load(Ordering::SeqCst),
            log.retries.load(Ordering::SeqCst),
            log.unanswered.load(Ordering::SeqCst),
            log.not_sent.load(Ordering::SeqCst),
            log.cancels_sent.load(Ordering::SeqCst),
            log.cancels_accepted.load(Ordering::SeqCst)
        );
        let _ = writeln!(
            out,
            "Recoveries the records show: placements whose answer was lost {}, sent more than once {}, concluded not placed {}, \
             reservations retried {}, releases retried {}, cancels repeated {}, decided by the venue's day list {}",
            count(&|o| o.place.as_ref().is_some_and(|p| p.last_error.is_some())),
            count(&|o| o.place.as_ref().is_some_and(|p| p.sends > 1)),
            count(&|o| matches!(
                o.place.as_ref().map(|p| &p.step.state),
                Some(StepState::Failed(StepFailure::NotPlaced { .. }))
            )),
            count(&|o| o.reserve.attempt > 1),
            count(&|o| o.release.as_ref().is_some_and(|r| r.attempt > 1)),
            count(&|o| o
                .cancel
                .as_ref()
                .and_then(|c| c.step.as_ref())
                .is_some_and(|s| s.attempt > 1)),
            count(&|o| o.place.as_ref().is_some_and(|p| p.awaiting_day_list)),
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Invariants, checked against the exchange's audit and the Balances service:"
        );
        for invariant in &self.invariants {
            let _ = writeln!(
                out,
                "  {} {:<54} {}",
                if invariant.passed { "PASS" } else { "FAIL" },
                invariant.name,
                invariant.detail
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(faults_stopped_at_ms: u64, end_of_day_at_ms: u64, kills: bool) -> BudgetInputs {
        BudgetInputs {
            faults_stopped_at_ms,
            end_of_day_at_ms,
            settings: crate::host::local_order_settings(),
            order_lifetime_ms: ORDER_LIFETIME_MS,
            webhook_retry_ms: 12_000,
            visibility_timeout_ms: kills.then_some(30_000),
            reconciler_interval_ms: 1_000,
            orders: 100,
        }
    }

    #[test]
    fn the_budget_starts_from_the_longest_wait_and_adds_recovery() {
        // Placement bound 15 + 1 + 5 s, lifetime 20 s, webhook retry 12 s = 53 s.
        let budget = convergence_budget(&inputs(1_000_000, 1_010_000, false));
        let then = 3_000 + 10_000 + 15_000 + 5_000 + 2_000 + 4_000 + 15_000;
        assert_eq!(budget.total_ms, 53_000 + then);
        // The end-of-day check an hour away sets the budget.
        let budget = convergence_budget(&inputs(1_000_000, 1_000_000 + 3_600_000, false));
        assert_eq!(budget.total_ms, 3_600_000 + then);
        // A kill's stranded batch counts only when it is the longest wait.
        let budget = convergence_budget(&inputs(1_000_000, 1_000_000, true));
        assert_eq!(budget.total_ms, 53_000 + then);
        assert_eq!(budget.longest_wait.len(), 3);
        let text = budget.to_string();
        assert!(text.starts_with("1m47s = max(end-of-day check 0ms, placement bound + order lifetime + webhook retry 53.0s, fill queue visibility timeout 30.0s) + gap grace 3.0s"), "{text}");
    }

    #[test]
    fn the_session_closes_after_every_placement_could_arrive() {
        let settings = crate::host::local_order_settings();
        // 2024-05-01T12:00:00Z
        let start = 1_714_564_800_000;
        let (cutoff, calendar) = session(start, 60_000, &settings);
        assert_eq!(cutoff, start + 60_000);
        let close = next_close_ms(&calendar, start);
        // cutoff + 21 s of placement bound + 2 s, on a whole second.
        assert_eq!(close, start + 83_000);
        assert_eq!(calendar.close_utc_ms, 12 * 3_600_000 + 83_000);
        assert_eq!(calendar.check_after_close_ms, EOD_CHECK_AFTER_CLOSE_MS);
        // Just before midnight the close falls on the next day.
        let late = start + 12 * 3_600_000 - 30_000;
        let (_, calendar) = session(late, 60_000, &settings);
        let close = next_close_ms(&calendar, late);
        assert_eq!(close, late + 83_000);
        assert!(calendar.close_utc_ms < MS_PER_DAY);
    }

    #[test]
    fn the_trading_window_grows_with_orders_and_faults() {
        assert_eq!(trading_window_ms(0, 8, 0, 0.0), 10_000);
        assert_eq!(trading_window_ms(80, 8, 0, 0.0), 26_000);
        assert_eq!(trading_window_ms(80, 1, 0, 0.0), 50_000);
        assert!(trading_window_ms(80, 8, 2, 0.15) > trading_window_ms(80, 8, 0, 0.0));
        // More lanes do not make the emulator answer faster.
        assert!(trading_window_ms(5_000, 8, 0, 0.15) >= 1_010_000);
    }

    #[test]
    fn a_run_passes_only_when_it_converged_and_every_invariant_held() {
        let held = || Invariant::pass(TERMINAL, String::new());
        let broken = || Invariant::fail(CONSERVED, "cannot be checked".into());
        assert!(outcome(true, &[held(), held()]).is_ok());
        let error = outcome(false, &[held()]).unwrap_err().to_string();
        assert!(error.contains("did not converge"), "{error}");
        let error = outcome(true, &[held(), broken()]).unwrap_err().to_string();
        assert_eq!(error, "1 invariant(s) failed");
        assert!(outcome(false, &[broken()]).is_err());
    }

    #[test]
    fn venue_profiles_are_the_simulators() {
        assert_eq!(venue_profile("plain").unwrap(), VenueProfile::Plain);
        assert!(venue_profile("nyse").is_err());
    }
}
