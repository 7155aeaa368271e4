//! The demo: the whole platform trading, failing and recovering on one
//! machine. Accounts are funded, a stream of orders is placed while the
//! exchange and the Balances calls fail on purpose (effects with lost
//! answers included) and webhooks are dropped, duplicated, reordered and
//! delayed; the process hosting the handlers is killed (SIGKILL) mid-flight
//! and restarted. Then the faults stop, the platform converges by itself, and
//! every invariant of the design is checked against the exchange's audit and
//! the Balances service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use app::Balances;
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::DynamoOrderStore;
use domain::order::{Order, StepFailure, StepState};
use domain::{AccountId, Amount, Asset, Catalog, IdempotencyKey, Operation, Side};
use exchange_sim::engine::EngineConfig;
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation, WebhookFaults};
use exchange_sim::webhooks::WebhookConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Semaphore;

use crate::host::HostConfig;
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
    pub converge_timeout: Duration,
}

/// Starting cash per account: 1,000,000.00 USD.
const START_CASH_CENTS: u64 = 100_000_000;
/// Starting shares per account of each traded symbol.
const START_SHARES: u64 = 1_000;
const SYMBOLS: [&str; 3] = ["AAPL", "MSFT", "NVDA"];
/// Client retries of one placement (same idempotency key).
const CLIENT_ATTEMPTS: usize = 10;

fn now_ms() -> u64 {
    app::Clock::now_ms(&app::SystemClock)
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

struct Progress {
    placed: AtomicUsize,
    retries: AtomicUsize,
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
}

/// Starts (or reuses) the emulator, creates a fresh set of tables and queues,
/// starts the exchange simulator with faults at `fault_rate`, and the handler process.
pub async fn start(
    seed: u64,
    fault_rate: f64,
    api_listen: SocketAddr,
    balances_listen: SocketAddr,
    prefix: &str,
) -> anyhow::Result<Started> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let emulator_was_running = tokio::task::spawn_blocking(local_stack::status)
        .await??
        .running;
    let stack = local_stack::Stack::ensure_running()
        .await
        .context("starting the local stack")?;
    let resources = stack
        .create_resources(prefix)
        .await
        .context("creating resources")?;
    println!("[1/6] emulator up; tables and queues from template.yaml with prefix {prefix}");

    let secret_bytes: [u8; 24] = rng.gen();
    let webhook_secret = {
        use base64::Engine as _;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret_bytes)
        )
    };
    let engine = EngineConfig {
        seed,
        min_chunks: 1,
        max_chunks: 4,
        fill_interval_min_ms: 50,
        fill_interval_max_ms: 500,
        cancel_probability: 0.05,
        expire_probability: 0.03,
        // Limit orders that never become marketable end (expire) within the demo.
        order_lifetime_ms: 20_000,
        ..EngineConfig::default()
    };
    let mut settings = exchange_sim::app::Settings::new(engine);
    settings.faults = exchange_faults(fault_rate);
    settings.webhook = Some(WebhookConfig::new(
        format!("http://{api_listen}{}", fill_webhook::WEBHOOK_PATH),
        exchange_sim::signature::Secret::parse(&webhook_secret)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    ));
    let exchange_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let exchange = exchange_sim::app::start(
        settings,
        exchange_listener,
        Arc::new(exchange_sim::time::SystemClock),
    )
    .await?;
    println!(
        "[2/6] exchange simulator at {} (faults at rate {fault_rate})",
        exchange.url()
    );

    let jwt_key: String = (0..32)
        .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
        .collect();
    let queue = &resources.queues["FillQueue"];
    let config = HostConfig {
        trading_table: resources.table("TradingTable").to_owned(),
        balances_table: resources.table("BalancesTable").to_owned(),
        fill_queue_url: queue.url.clone(),
        fill_queue_arn: queue.arn.clone(),
        fill_dead_letter_queue_url: resources.queue_url("FillDeadLetterQueue").to_owned(),
        api_listen,
        balances_listen,
        exchange_url: exchange.url(),
        webhook_secret,
        jwt_key,
        reconciler_interval_ms: 1_000,
        reconciler_double_chance: 0.2,
        balances_fault_rate: fault_rate / 2.0,
        balances_faults_until_ms: u64::MAX,
        seed,
        fast_recovery: true,
    };
    let host = HostProcess::spawn(&stack, &config).await?;
    println!(
        "[3/6] handlers up: API http://{api_listen}, Balances http://{balances_listen} (pid {})",
        host.pid()
    );
    Ok(Started {
        stack,
        resources,
        prefix: prefix.to_owned(),
        exchange,
        host,
        config,
        emulator_was_running,
    })
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    println!(
        "seed {} (repeat this run with --seed {})",
        options.seed, options.seed
    );
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    let (api_listen, balances_listen) = (free_port()?, free_port()?);
    let prefix = local_stack::unique_prefix("demo");
    let Started {
        stack,
        exchange,
        mut host,
        mut config,
        emulator_was_running: was_running,
        ..
    } = start(
        options.seed,
        options.fault_rate,
        api_listen,
        balances_listen,
        &prefix,
    )
    .await?;
    let jwt_key = config.jwt_key.clone();

    // -- accounts --------------------------------------------------------------
    let catalog = Catalog::us_equities();
    let balances = HttpBalances::new(
        &format!("http://{balances_listen}"),
        catalog.clone(),
        Duration::from_secs(5),
    )?;
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
            retry_call(|| balances.execute(account, &key, &operation)).await?;
        }
    }
    println!(
        "[4/6] {} accounts funded: 1,000,000.00 USD and {START_SHARES} shares of {SYMBOLS:?} each",
        accounts.len()
    );

    // -- orders under faults, with hard kills ------------------------------------
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()?;
    let progress = Arc::new(Progress {
        placed: AtomicUsize::new(0),
        retries: AtomicUsize::new(0),
    });
    let mut kill_points: BTreeSet<usize> = BTreeSet::new();
    while kill_points.len() < options.kills.min(options.orders) {
        kill_points.insert(rng.gen_range(options.orders / 5..options.orders.max(2)));
    }
    let requests: Vec<(AccountId, String, serde_json::Value)> = (0..options.orders)
        .map(|i| random_order(&mut rng, &accounts, &exchange, i))
        .collect();
    let semaphore = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = Vec::new();
    let mut kills_done = 0;
    for (i, (account, key, body)) in requests.into_iter().enumerate() {
        if kill_points.contains(&i) {
            host.kill().await?;
            kills_done += 1;
            println!(
                "\n      killed the handler process (SIGKILL) with requests in flight; restarting"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            host = HostProcess::spawn(&stack, &config).await?;
        }
        let permit = semaphore.clone().acquire_owned().await?;
        let token = jwt::token_for(jwt_key.as_bytes(), account.as_str(), now_ms() / 1000, 3_600);
        let (http, shared) = (http.clone(), progress.clone());
        let url = format!("http://{api_listen}/orders");
        tasks.push(tokio::spawn(async move {
            let result = place_with_retries(&http, &url, &token, &key, &body, &shared).await;
            shared.placed.fetch_add(1, Ordering::SeqCst);
            drop(permit);
            result
        }));
        print!(
            "\r      placing orders: {}/{} (client retries {}, kills {kills_done})    ",
            progress.placed.load(Ordering::SeqCst),
            options.orders,
            progress.retries.load(Ordering::SeqCst)
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let mut unanswered = 0;
    for task in tasks {
        if task.await?.is_err() {
            unanswered += 1;
        }
    }
    println!(
        "\r[5/6] {} orders sent (client retries {}, {unanswered} never answered), {kills_done} hard kill(s)          ",
        options.orders,
        progress.retries.load(Ordering::SeqCst)
    );

    // -- faults off, then converge -------------------------------------------------
    exchange.state.faults().heal();
    host.kill().await?;
    config.balances_faults_until_ms = 0;
    host = HostProcess::spawn(&stack, &config).await?;
    let faults_stopped = Instant::now();
    println!("      faults off (exchange healed; handlers killed once more and restarted without Balances faults)");
    let store = DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config()),
        config.trading_table.clone(),
    );
    let orders = loop {
        let orders = store.scan_orders().await?;
        let open = orders.iter().filter(|o| !o.is_closed()).count();
        print!(
            "\r      converging: {open} of {} orders still open after {:.0?}     ",
            orders.len(),
            faults_stopped.elapsed()
        );
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        if open == 0 || faults_stopped.elapsed() > options.converge_timeout {
            break orders;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let converged_in = faults_stopped.elapsed();
    println!(
        "\r[6/6] converged {:.1?} after the faults stopped                                  ",
        converged_in
    );

    let report = check(&orders, &accounts, &balances, &exchange, &catalog).await?;
    print_report(&orders, &exchange, &report, converged_in, started.elapsed());

    host.kill().await?;
    drop(exchange);
    if !was_running {
        tokio::task::spawn_blocking(local_stack::stop).await??;
    }
    if report.failed() {
        bail!(
            "{} invariant(s) failed",
            report.invariants.iter().filter(|i| !i.passed).count()
        );
    }
    Ok(())
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

fn random_order(
    rng: &mut ChaCha8Rng,
    accounts: &[AccountId],
    exchange: &exchange_sim::app::Running,
    i: usize,
) -> (AccountId, String, serde_json::Value) {
    let account = accounts[rng.gen_range(0..accounts.len())].clone();
    let symbol = SYMBOLS[rng.gen_range(0..SYMBOLS.len())];
    let side = if rng.gen_bool(0.5) { "buy" } else { "sell" };
    let quantity = rng.gen_range(1..=20u64).to_string();
    let key = format!("demo-order-{i}");
    let body = if rng.gen_bool(0.4) {
        serde_json::json!({"symbol": symbol, "side": side, "type": "market", "quantity": quantity})
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
        serde_json::json!({"symbol": symbol, "side": side, "type": "limit", "quantity": quantity, "limit_price": price})
    };
    (account, key, body)
}

/// A client that retries with the same key until it gets an answer.
async fn place_with_retries(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    key: &str,
    body: &serde_json::Value,
    progress: &Progress,
) -> anyhow::Result<u16> {
    for attempt in 0..CLIENT_ATTEMPTS {
        if attempt > 0 {
            progress.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300 * attempt as u64)).await;
        }
        let sent = http
            .post(url)
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        match sent {
            Ok(response) if !response.status().is_server_error() => {
                return Ok(response.status().as_u16())
            }
            _ => continue,
        }
    }
    bail!("no answer after {CLIENT_ATTEMPTS} attempts")
}

struct Invariant {
    name: &'static str,
    passed: bool,
    detail: String,
}

struct Report {
    invariants: Vec<Invariant>,
}

impl Report {
    fn failed(&self) -> bool {
        self.invariants.iter().any(|i| !i.passed)
    }
}

async fn check(
    orders: &[Order],
    accounts: &[AccountId],
    balances: &HttpBalances,
    exchange: &exchange_sim::app::Running,
    catalog: &Catalog,
) -> anyhow::Result<Report> {
    let audit = exchange.state.engine().audit();
    let mut invariants = Vec::new();
    let by_id: BTreeMap<&str, &Order> = orders.iter().map(|o| (o.id.as_str(), o)).collect();

    // 1. At most one exchange order per platform order; one order per (account, key).
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
    invariants.push(Invariant {
        name: "at most one exchange order per order",
        passed: duplicated == 0 && strangers == 0,
        detail: format!("{} exchange orders for {} platform orders; {duplicated} duplicated, {strangers} unknown", audit.orders.len(), orders.len()),
    });
    let keys: BTreeSet<(&str, &str)> = orders
        .iter()
        .map(|o| (o.account.as_str(), o.idempotency_key.as_str()))
        .collect();
    invariants.push(Invariant {
        name: "at most one order per (account, idempotency key)",
        passed: keys.len() == orders.len(),
        detail: format!("{} orders, {} distinct keys", orders.len(), keys.len()),
    });

    // 2. Every execution applied exactly once, each fill settled once.
    let mut missing = 0;
    let mut extra = 0;
    let mut executions = 0;
    for exchange_order in &audit.orders {
        let Some(order) = by_id.get(exchange_order.client_order_id.as_str()) else {
            continue;
        };
        let at_exchange: BTreeSet<&str> = exchange_order
            .executions
            .iter()
            .map(|e| e.exec_id.as_str())
            .collect();
        let recorded: BTreeSet<&str> = order.fills.iter().map(|f| f.exec_id.as_str()).collect();
        executions += at_exchange.len();
        missing += at_exchange.difference(&recorded).count();
        extra += recorded.difference(&at_exchange).count() + (order.fills.len() - recorded.len());
    }
    invariants.push(Invariant {
        name: "fills recorded = executions at the exchange",
        passed: missing == 0 && extra == 0,
        detail: format!("{executions} executions; {missing} missing, {extra} extra"),
    });
    let mut unsettled = 0;
    let mut settled = 0;
    for order in orders {
        for fill in &order.fills {
            match balances
                .lookup(&order.account, &order.id.settle_key(&fill.exec_id))
                .await
            {
                Ok(Some(record)) if record.outcome == domain::Outcome::Succeeded => settled += 1,
                _ => unsettled += 1,
            }
        }
    }
    invariants.push(Invariant {
        name: "balance movements = fills (one settlement per fill)",
        passed: unsettled == 0,
        detail: format!("{settled} settled, {unsettled} not"),
    });

    // 3. Conservation per account, reserved back to zero, nothing negative.
    let mut expected: BTreeMap<(&AccountId, Asset), i128> = BTreeMap::new();
    for account in accounts {
        expected.insert((account, Asset::Cash), i128::from(START_CASH_CENTS));
        for symbol in SYMBOLS {
            expected.insert((account, catalog.asset(symbol)?), i128::from(START_SHARES));
        }
    }
    for exchange_order in &audit.orders {
        let Some(order) = by_id.get(exchange_order.client_order_id.as_str()) else {
            continue;
        };
        for execution in &exchange_order.executions {
            let shares = i128::from(execution.quantity.shares());
            let cash = i128::from(execution.price.cents()) * shares;
            let sign = if order.request.side == Side::Buy {
                1
            } else {
                -1
            };
            *expected
                .entry((&order.account, Asset::Shares(order.request.symbol.clone())))
                .or_default() += sign * shares;
            *expected.entry((&order.account, Asset::Cash)).or_default() -= sign * cash;
        }
    }
    let mut wrong = Vec::new();
    let mut reserved_left = 0u64;
    for account in accounts {
        let held = balances
            .balances(account)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for ((owner, asset), want) in expected.iter().filter(|((owner, _), _)| *owner == account) {
            let balance = held.get(asset).copied().unwrap_or_default();
            reserved_left += balance.reserved;
            let have = i128::from(balance.available) + i128::from(balance.reserved);
            if have != *want {
                wrong.push(format!("{owner} {asset}: {have} != {want}"));
            }
        }
    }
    invariants.push(Invariant {
        name: "cash and shares conserved per account",
        passed: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!("{} balances match deposits ± executions", expected.len())
        } else {
            wrong.join("; ")
        },
    });
    invariants.push(Invariant {
        name: "reserved back to zero",
        passed: reserved_left == 0,
        detail: format!("{reserved_left} units still reserved"),
    });

    // 4. Every order terminal, with its reason recorded.
    let open = orders.iter().filter(|o| !o.is_closed()).count();
    let flagged = orders
        .iter()
        .filter(|o| o.recovery.flagged.is_some())
        .count();
    invariants.push(Invariant {
        name: "every order terminal",
        passed: open == 0,
        detail: format!("{open} open, {flagged} flagged for an operator"),
    });
    Ok(Report { invariants })
}

fn print_report(
    orders: &[Order],
    exchange: &exchange_sim::app::Running,
    report: &Report,
    converged_in: Duration,
    total: Duration,
) {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for order in orders {
        *by_status
            .entry(format!("{:?}", order.status()).to_lowercase())
            .or_default() += 1;
    }
    let fills: usize = orders.iter().map(|o| o.fills.len()).sum();
    let found = orders
        .iter()
        .filter(|o| o.recovery.attempts > 0 && o.place.as_ref().is_some_and(|p| p.is_succeeded()))
        .count();
    let not_placed = orders
        .iter()
        .filter(|o| {
            matches!(
                o.place.as_ref().map(|p| &p.state),
                Some(StepState::Failed(StepFailure::NotPlaced { .. }))
            )
        })
        .count();
    let recovered = orders.iter().filter(|o| o.recovery.attempts > 0).count();
    let retried_reserve = orders.iter().filter(|o| o.reserve.attempt > 1).count();
    let counters = exchange.state.faults().counters().clone();
    let rest = counters.rest.values().fold((0, 0), |(before, after), c| {
        (
            before + c.before_5xx + c.before_reset,
            after + c.after_5xx + c.after_reset + c.after_timeout,
        )
    });
    let hooks = &counters.webhooks;
    println!();
    println!("Orders by final status: {by_status:?}");
    println!("Fills applied: {fills}, each exactly once");
    println!(
        "Faults injected by the exchange: {} REST calls failed before their effect, {} after it (answer lost); webhooks dropped {}, duplicated {}, reordered {}, delayed {}",
        rest.0, rest.1, hooks.dropped, hooks.duplicated, hooks.reordered, hooks.delayed
    );
    println!("Recovered by the reconciler: {recovered} orders (placed orders it pulled or looked up: {found}, concluded not placed behind a tombstone: {not_placed}, reservations retried: {retried_reserve})");
    println!();
    println!(
        "Invariants (DESIGN §7), checked against the exchange's audit and the Balances service:"
    );
    for invariant in &report.invariants {
        println!(
            "  {} {:<52} {}",
            if invariant.passed { "PASS" } else { "FAIL" },
            invariant.name,
            invariant.detail
        );
    }
    println!();
    println!("Converged {converged_in:.1?} after the faults stopped; whole run {total:.1?}.");
}
