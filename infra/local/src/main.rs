//! `cargo run -p local -- <command>`: run the platform on this machine, and
//! operate it here or in AWS.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use app::orders::{OrderSettings, Orders};
use app::Clock;
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::DynamoOrderStore;
use clap::{Args, Parser, Subcommand};
use domain::Catalog;
use local::demo::{self, DemoOptions, StartOptions};
use local::target::{Target, TargetArgs, UpState};
use local::{host, jwt, operator};

mod readiness;

#[derive(Parser)]
#[command(
    about = "Run the trading platform locally (emulator, exchange simulator, the five handlers, a demo of recovery under faults) and operate it, locally or in AWS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trade under faults with hard kills, converge within a stated budget,
    /// check every invariant, report. Exits non-zero if the platform does
    /// not converge or any invariant fails.
    Demo {
        /// Orders to place.
        #[arg(long, default_value_t = 300)]
        orders: usize,
        /// Accounts to fund and trade from.
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
        /// Orders in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The venue's guarantees, for the exchange simulator and the
        /// platform's client alike: tombstone (cancel by client id leaves a
        /// tombstone), deadline (request deadline, authoritative lookup),
        /// plain (neither: only the day's order list proves absence).
        #[arg(long, default_value = "tombstone", value_parser = ["tombstone", "deadline", "plain"])]
        venue: String,
    },
    /// Start everything without faults and keep it running; prints how to call it.
    Up {
        /// Where the trading HTTP API (orders, webhook) listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        api_listen: SocketAddr,
        /// Where the Balances API listens for the operator (its deposits go
        /// to the admin route).
        #[arg(long, default_value = "127.0.0.1:8081")]
        balances_listen: SocketAddr,
        /// Prefix of the tables and queues; reusing one keeps earlier state.
        #[arg(long, default_value = "local-")]
        prefix: String,
        /// The exchange simulator's venue profile (see `demo --help`).
        #[arg(long, default_value = "tombstone", value_parser = ["tombstone", "deadline", "plain"])]
        venue: String,
    },
    /// Stop the emulator started by an earlier `up` or test run.
    Down,
    /// Print a JWT for an account, signed with the key `up` printed.
    Token {
        /// The caller the token speaks for (its `sub`): a plain id
        /// (`alice`) is the account itself; any other (`auth0|abc`) maps to
        /// a derived account id (see the README's API section).
        #[arg(long)]
        account: String,
        /// The signing key `up` printed.
        #[arg(long)]
        key: String,
        /// The scopes it grants, space-separated: `orders:read` for the
        /// GET routes, `orders:write` for POST and DELETE.
        #[arg(long, default_value = jwt::DEFAULT_SCOPE)]
        scope: String,
    },
    /// One order's timeline: every step with its time (UTC), the time
    /// between steps, every execution, flags, the condition recovery waits
    /// on, and what recovery would do next and why.
    Order {
        /// The order id (a UUID).
        id: String,
        /// Print one JSON document instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        venue: VenueArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Orders flagged for an operator, one line each with its reasons (the
    /// sparse flagged-orders index, never a scan).
    Flagged {
        /// Index entries read per page.
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Every message of the fill dead-letter queue with its reason and kind;
    /// `--redrive` sends the reports back to the fill queue and deletes them
    /// (safe: each report applies at most once).
    DeadLetters {
        /// Move every message that carries a report back to the fill queue.
        #[arg(long)]
        redrive: bool,
        /// The fill queue to redrive to (default: the stack's FillQueueUrl
        /// output, else the queue whose redrive policy names the dead-letter queue).
        #[arg(long)]
        fill_queue_url: Option<String>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Record an operator's decision on an order (through the platform's own
    /// use case), then show the order; the reconciler finishes it on its next
    /// run (the operator needs no rights at Balances).
    Resolve {
        /// The order id (a UUID).
        id: String,
        /// not-placed: the venue never received the placement (release and
        /// close); acknowledged: the flags were looked into, the order goes on.
        #[arg(long, value_parser = ["not-placed", "acknowledged"])]
        decision: String,
        /// What the decision rests on (a venue statement, a ticket).
        #[arg(long)]
        evidence: String,
        /// The Balances API (default: the stack's BalancesApiUrl output, or
        /// the running `up`'s operator listener). Signed with SigV4 in AWS,
        /// where the caller's role must be in BALANCES_TRADING_ROLES (the
        /// decision releases the reservation).
        #[arg(long)]
        balances_url: Option<String>,
        /// The exchange's REST API (default: the running `up`'s; required in AWS).
        #[arg(long, env = "EXCHANGE_BASE_URL")]
        exchange_url: Option<String>,
        #[command(flatten)]
        venue: VenueArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Can this checkout be deployed? Installs the pinned SAM CLI and
    /// cargo-lambda, runs `sam validate --lint` and cfn-lint, cross-builds the
    /// five functions for arm64 and reports their sizes (slow; not in CI).
    Readiness,
    /// Internal: the handler process the runner starts (and kills).
    #[command(hide = true)]
    ServeHandlers,
}

#[derive(Args, Clone, Debug)]
struct VenueArgs {
    /// The venue's profile, which decides what recovery may conclude
    /// (default: the running `up`'s, else tombstone).
    #[arg(long, value_parser = ["tombstone", "deadline", "plain"])]
    venue: Option<String>,
}

impl VenueArgs {
    fn profile(&self, target: &Target) -> String {
        self.venue
            .clone()
            .or_else(|| target.local.as_ref().map(|s| s.venue.clone()))
            .unwrap_or_else(|| "tombstone".into())
    }
}

/// The order settings an operator command reasons with: the host's on the
/// local stack, the deployed defaults in AWS; the venue's rules either way.
fn operator_settings(target: &Target, venue: &str) -> anyhow::Result<OrderSettings> {
    let mut settings = if target.aws {
        OrderSettings::default()
    } else {
        host::local_order_settings()
    };
    settings.recovery.venue = aws_adapters::exchange_http::Venue::simulator(venue)
        .context("unknown venue profile")?
        .rules;
    Ok(settings)
}

fn store(target: &Target) -> DynamoOrderStore {
    DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(&target.sdk),
        target.trading_table.clone(),
    )
}

async fn fill_queue_url(
    sqs: &aws_sdk_sqs::Client,
    target: &Target,
    given: Option<String>,
    dlq: &str,
) -> anyhow::Result<String> {
    if let Some(url) = given.or_else(|| target.fill_queue_url.clone()) {
        return Ok(url);
    }
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(dlq)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    match sources.queue_urls() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("no queue sends to {dlq}; pass --fill-queue-url"),
        many => anyhow::bail!("several queues send to {dlq} ({many:?}); pass --fill-queue-url"),
    }
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
            venue,
        } => {
            let seed = seed.unwrap_or_else(|| u64::from(uuid::Uuid::new_v4().as_fields().0));
            demo::run(DemoOptions {
                orders,
                accounts: accounts.max(1),
                seed,
                fault_rate,
                kills,
                concurrency,
                venue,
            })
            .await
        }
        Command::Up {
            api_listen,
            balances_listen,
            prefix,
            venue,
        } => up(api_listen, balances_listen, prefix, venue).await,
        Command::Down => {
            match tokio::task::spawn_blocking(local_stack::stop).await?? {
                Some(pid) => println!("stopped the emulator (pid {pid})"),
                None => println!("no emulator of this project was running"),
            }
            Ok(())
        }
        Command::Token {
            account,
            key,
            scope,
        } => {
            let now_s = app::SystemClock.now_ms() / 1000;
            println!(
                "{}",
                jwt::token_with_scope(key.as_bytes(), &account, &scope, now_s, 24 * 3600)
            );
            Ok(())
        }
        Command::Order {
            id,
            json,
            venue,
            target,
        } => {
            let target = target.resolve().await?;
            let settings = operator_settings(&target, &venue.profile(&target))?;
            let text = operator::order_timeline(
                &store(&target),
                &id,
                &settings.recovery,
                app::SystemClock.now_ms(),
                json,
            )
            .await?;
            println!("{text}");
            Ok(())
        }
        Command::Flagged { page_size, target } => {
            let target = target.resolve().await?;
            println!(
                "{}",
                operator::flagged_orders(&store(&target), page_size).await?
            );
            Ok(())
        }
        Command::DeadLetters {
            redrive,
            fill_queue_url: given,
            target,
        } => {
            let target = target.resolve().await?;
            let dlq = target.dead_letter_queue_url.clone().context(
                "no dead-letter queue: pass --dead-letter-queue-url, or a --stack with the output FillDeadLetterQueueUrl",
            )?;
            let sqs = aws_sdk_sqs::Client::new(&target.sdk);
            if redrive {
                let queue = fill_queue_url(&sqs, &target, given, &dlq).await?;
                println!("{}", operator::redrive(&sqs, &dlq, &queue).await?);
            } else {
                println!("{}", operator::dead_letters(&sqs, &dlq).await?);
            }
            Ok(())
        }
        Command::Resolve {
            id,
            decision,
            evidence,
            balances_url,
            exchange_url,
            venue,
            target,
        } => {
            let target = target.resolve().await?;
            let profile = venue.profile(&target);
            let settings = operator_settings(&target, &profile)?;
            let catalog = Catalog::us_equities();
            let timeout = Duration::from_millis(host::CALL_TIMEOUT_MS);
            let balances_url = balances_url.or_else(|| target.balances_url.clone()).context(
                "no Balances API: pass --balances-url (or --stack with the output BalancesApiUrl, or run `up`)",
            )?;
            let exchange_url = exchange_url
                .or_else(|| target.local.as_ref().map(|s| s.exchange_url.clone()))
                .context(
                    "no exchange: pass --exchange-url (or set EXCHANGE_BASE_URL, or run `up`)",
                )?;
            let mut balances = HttpBalances::new(&balances_url, catalog.clone(), timeout)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if target.aws {
                balances = balances
                    .signed_with(&target.sdk)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let exchange = host::exchange_client(&exchange_url, &profile, catalog)?;
            let orders = Orders::new(
                store(&target),
                balances,
                exchange,
                app::SystemClock,
                settings,
            );
            let decision = operator::parse_decision(&decision)?;
            println!(
                "{}",
                operator::resolve_order(&orders, &id, decision, &evidence).await?
            );
            Ok(())
        }
        Command::Readiness => tokio::task::spawn_blocking(readiness::run).await?,
        Command::ServeHandlers => {
            // JSON lines, as the functions log in Lambda.
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_current_span(true)
                .with_writer(std::io::stderr)
                .init();
            let config: host::HostConfig =
                serde_json::from_str(&std::env::var(host::CONFIG_VARIABLE)?)?;
            host::run(config).await
        }
    }
}

async fn up(
    api_listen: SocketAddr,
    balances_listen: SocketAddr,
    prefix: String,
    venue: String,
) -> anyhow::Result<()> {
    const STEPS: usize = 4;
    let mut started = demo::start(&StartOptions {
        seed: 1,
        fault_rate: 0.0,
        api_listen,
        balances_listen,
        prefix: prefix.clone(),
        venue: venue.clone(),
        session: None,
        order_lifetime_ms: 0,
        visibility_timeout_s: None,
        steps: STEPS,
    })
    .await?;
    let state = UpState {
        pid: std::process::id(),
        prefix: prefix.clone(),
        api_url: format!("http://{api_listen}"),
        balances_url: format!("http://{balances_listen}"),
        exchange_url: started.exchange.url(),
        venue,
    };
    state.write()?;
    println!(
        "[4/{STEPS}] ready; the operator commands find this stack through {}",
        UpState::path().display()
    );
    let now_s = app::SystemClock.now_ms() / 1000;
    let token = jwt::token_for(started.config.jwt_key.as_bytes(), "alice", now_s, 24 * 3600);
    println!("\nEverything is up. Fund an account (as the operator, on the Balances admin route), place an order, read its history:\n");
    println!("  curl -s -X POST http://{balances_listen}/admin/accounts/alice/operations -H 'content-type: application/json' \\");
    println!("    -H 'idempotency-key: first-deposit' -d '{{\"type\":\"deposit\",\"asset\":\"USD\",\"amount\":\"10000.00\"}}'");
    println!("  TOKEN={token}");
    println!("  curl -s -X POST http://{api_listen}/orders -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\");
    println!("    -H 'idempotency-key: order-1' -d '{{\"symbol\":\"AAPL\",\"side\":\"buy\",\"type\":\"limit\",\"quantity\":\"10\",\"limit_price\":\"200.00\",\"time_in_force\":\"day\"}}'");
    println!("  curl -s http://{api_listen}/orders -H \"authorization: Bearer $TOKEN\"");
    println!("  cargo run -p local -- order <order id> --prefix {prefix}");
    println!("  cargo run -p local -- flagged --prefix {prefix}");
    println!("  cargo run -p local -- dead-letters --prefix {prefix}");
    println!(
        "  cargo run -p local -- token --account bob --key {}",
        started.config.jwt_key
    );
    println!(
        "\nThe handlers log JSON lines (and their metric lines) to {}",
        local::handler_log_path().display()
    );
    println!("  tail -f {}", local::handler_log_path().display());
    println!("\nCtrl-C (or SIGTERM) stops the handlers and the exchange (and the emulator, if this command started it).");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    UpState::remove();
    started.host.kill().await?;
    if !started.emulator_was_running {
        tokio::task::spawn_blocking(local_stack::stop).await??;
    }
    Ok(())
}
