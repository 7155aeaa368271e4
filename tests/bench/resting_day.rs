//! A simulated trading day of the reconciler with healthy resting orders
//! (issue 17): exchange REST calls per healthy resting order per hour
//! (target ≤ 1; with signals, 0), orders flagged (0), and what each run
//! reads, on the local stack, every call metered:
//!
//! ```text
//! cargo run -p system-tests --bin bench-resting-day -- [--resting 10000] [--hours 24]
//! ```
//!
//! Production timings (`OrderSettings::default()`: first look 53 s after
//! placement, gap grace 60 s, the end-of-day check 30 min after the 20:00
//! UTC close; the reconciler's default bounds). `--resting` limit buys of
//! 10 AAPL at 1.00 (far below the market: they rest) are placed at the
//! exchange simulator in-process, arriving evenly over the first hour of
//! the day, and their order items (copies of one order placed for real
//! through `POST /orders`, under each one's id and exchange id) are written
//! into the trading table with `BatchWriteItem`: the state their placements
//! would have left (their reservations at Balances are not made; no
//! settlement happens to a resting order). The end-of-day check of the day
//! before is marked done, as a platform running the day before would have
//! left it. Then the reconciler runs once per simulated minute for
//! `--hours` hours (the platform's clock is moved to each minute; each run
//! takes the real time it takes), through a counting exchange client.
//!
//! The emulator evaluates every index query against the whole index, so a
//! day of runs over 10,000 orders takes it about an hour. `--memory` runs
//! the same day on the in-memory adapters (the ones the conformance suites
//! hold to the DynamoDB adapter's behaviour) and the exchange simulator's
//! engine in-process, all on one manual clock, in seconds: every order is
//! then placed for real through `Orders::place` (GTC, so it rests through
//! the close and its end-of-day check), the venue's webhooks are delivered
//! to `Orders::apply_report`, and `--hours` may span several days (a GTC
//! order resting from an earlier day is asked for by id at each day's
//! check, one REST call per order per day). Counts of calls and flags come
//! from the same code; capacity and time only from the emulator run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::order_store::OrderStore;
use app::orders::{Orders, TradingCalendar};
use app::{Balances, BalancesService, ManualClock};
use aws_adapters::dynamodb::DynamoOrderStore;
use domain::order::{
    ExchangeReport, ExecId, Execution, FinalReport, FinalStatus, Order, OrderId, OrderRequest,
    OrderType, TimeInForce,
};
use domain::{AccountId, Amount, Asset, Catalog, Operation, Price, Quantity, Side};
use exchange_sim::PlaceOrder;
use system_tests::bench::{
    arg, batch_put, flag, idempotency_key, limit_buy, mean, ms, percentile, place, rru, run_header,
    spawn_metered_with, CountingExchange, ExchangeCalls,
};
use system_tests::conformance::balances::funded_account;
use system_tests::orders::new_order_id;
use system_tests::platform::PlatformOptions;
use system_tests::sim_exchange::{fast_fills, EngineExchange};

/// The reconciler's production bounds and Lambda timeout (as `bench-reconciler`).
const PAGE_SIZE: usize = 100;
const MAX_RUN_MS: u64 = 45_000;
const SAFETY_MARGIN_MS: u64 = 10_000;
const LAMBDA_TIMEOUT_MS: u64 = 60_000;
const MINUTE_MS: u64 = 60_000;
/// The resting orders arrive over this long from the start.
const ARRIVALS_OVER_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Examined orders (their first look), no end-of-day work.
    FirstLooks,
    /// The end-of-day check ran.
    EndOfDay,
    /// Nothing due.
    Idle,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::FirstLooks => "first looks at new orders",
            Kind::EndOfDay => "end-of-day check",
            Kind::Idle => "nothing due",
        }
    }
}

#[derive(Default)]
struct Group {
    runs: u64,
    examined: u64,
    eod_examined: u64,
    read_half_units: u64,
    write_units: u64,
    calls: u64,
    walls: Vec<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let resting = arg("--resting", 10_000);
    let hours = arg("--hours", 24) as u64;
    if flag("--memory") {
        return memory_day(resting, hours).await;
    }
    let options = PlatformOptions {
        settings: app::orders::OrderSettings::default(),
        ..PlatformOptions::default()
    };
    let bp = spawn_metered_with("bench-resting-day", options).await;
    let platform = &bp.platform;
    let account = funded_account(&platform.balances, "day", 1_000_000_000).await;
    let calls = ExchangeCalls::default();
    let orders = platform.orders_with(|s, b, e| (s, b, CountingExchange::new(e, calls.clone())));
    let settings = reconciler::Settings {
        page_size: PAGE_SIZE,
        max_run_ms: MAX_RUN_MS,
        safety_margin_ms: SAFETY_MARGIN_MS,
    };

    // The template, placed for real; it rests too.
    let template_id = place(platform, &account, "template", &limit_buy(10, "1.00")).await;
    let template = platform.stored(&template_id).await;
    anyhow::ensure!(
        template.is_placed() && template.fill_count() == 0,
        "the template rests"
    );
    let first_look_ms = template.recovery.due_at_ms - template.created_at_ms;
    let start = orders.now();

    // The resting orders: at the exchange, then their items.
    let venue_template = platform
        .exchange
        .state
        .engine()
        .get_by_client_id(template_id.as_str())
        .ok_or_else(|| anyhow::anyhow!("the template at the exchange"))?;
    let mut items = Vec::with_capacity(resting);
    let mut ids: Vec<OrderId> = Vec::with_capacity(resting);
    {
        let mut engine = platform.exchange.state.engine();
        for i in 0..resting {
            let id = new_order_id();
            let request = PlaceOrder {
                client_order_id: id.to_string(),
                account: account.to_string(),
                symbol: venue_template.symbol.clone(),
                side: venue_template.side,
                order_type: venue_template.order_type,
                quantity: venue_template.quantity,
                limit_price: venue_template.limit_price,
                expire_at: venue_template.expire_at.map(|_| start + 20_000),
                time_in_force: venue_template.time_in_force,
            };
            let placed = engine.place(request, start)?;
            let mut order: Order = template.clone();
            order.id = id.clone();
            order.exchange_order_id = Some(placed.order.order_id);
            order.created_at_ms = start + ARRIVALS_OVER_MS * i as u64 / resting.max(1) as u64;
            order.recovery.due_at_ms = order.created_at_ms + first_look_ms;
            items.push(DynamoOrderStore::order_item(&order, 3)?);
            ids.push(id);
        }
    }
    let seeding = Instant::now();
    batch_put(&bp.plain, &platform.trading_table, items).await?;
    eprintln!(
        "seeded {resting} resting orders in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let store = bp.plain_store();
    let calendar = TradingCalendar::default();
    if let Some(day) = calendar.last_checkable_day(start) {
        let name = format!("eod#{}", TradingCalendar::date(day));
        if store.cursor(&name).await?.is_none() {
            store.save_cursor(&name, "done", 0).await?;
        }
    }
    bp.metering.take();

    // The day, one run a minute.
    let mut groups: BTreeMap<Kind, Group> = BTreeMap::new();
    let mut flagged_by_runs = 0;
    let mut errors = 0;
    let started = Instant::now();
    for minute in 1..=hours * 60 {
        let target = start + minute * MINUTE_MS;
        let now = orders.now();
        if target > now {
            platform.clock.advance_ms(target - now);
        }
        let t0 = Instant::now();
        let summary = reconciler::run_once(&orders, &settings, LAMBDA_TIMEOUT_MS).await;
        let wall = t0.elapsed();
        let (usage, _) = bp.metering.take();
        flagged_by_runs += summary.newly_flagged;
        errors += summary.errors;
        let eod_examined = summary.end_of_day.as_ref().map_or(0, |e| e.examined);
        let kind = if summary.end_of_day.is_some() {
            Kind::EndOfDay
        } else if summary.examined > 0 {
            Kind::FirstLooks
        } else {
            Kind::Idle
        };
        let group = groups.entry(kind).or_default();
        group.runs += 1;
        group.examined += summary.examined as u64;
        group.eod_examined += eod_examined as u64;
        group.read_half_units += usage.read_half_units;
        group.write_units += usage.write_units;
        group.calls += usage.total_calls();
        group.walls.push(wall);
        if minute % 60 == 0 {
            eprintln!(
                "hour {} simulated in {:.0} s",
                minute / 60,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let rest = calls.snapshot();

    // Nothing flagged, every resting order still open and healthy.
    let (flagged, _) = store.flagged(None, 100).await?;
    let mut still_open = 0;
    for id in &ids {
        if store.load(id).await?.is_some_and(|o| !o.value.is_closed()) {
            still_open += 1;
        }
    }

    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-resting-day -- --resting {resting} --hours {hours}"
        ))
    );
    println!("## {} reconciler runs over {hours} simulated hours, {resting} resting orders (+1 placed for real)\n", hours * 60);
    println!("| runs | count | orders examined | end-of-day orders examined | RRU | WRU | DynamoDB calls | mean RRU per run | mean ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, g) in &groups {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            g.runs,
            g.examined,
            g.eod_examined,
            rru(g.read_half_units),
            g.write_units,
            g.calls,
            rru(g.read_half_units / g.runs.max(1)),
            ms(mean(&g.walls)),
            ms(percentile(&g.walls, 99.0)),
        );
    }
    let per_order = ExchangeCalls::per_order(&rest);
    let order_hours = (resting as u64 + 1) * hours;
    println!("\n## Exchange REST calls (port methods) over the day\n");
    println!("| method | calls |");
    println!("|---|---:|");
    for (method, n) in &rest {
        println!("| {method} | {n} |");
    }
    println!(
        "\nCalls about one order (place, order, executions, cancel): {per_order}, i.e. {:.5} per healthy resting order per hour (target ≤ 1, 0 with signals). \
         Orders flagged: {} (runs reported {flagged_by_runs} newly flagged). Resting orders still open: {still_open} of {resting}. Run errors: {errors}.",
        per_order as f64 / order_hours as f64,
        flagged.len(),
    );
    Ok(())
}

/// What the venue's webhook says, as the fill webhook would queue it.
fn report_of(event: &exchange_sim::ExchangeEvent) -> Option<ExchangeReport> {
    use exchange_sim::order::EventType;
    let client_order_id = OrderId::parse(&event.client_order_id).ok()?;
    match event.event_type {
        EventType::Execution => Some(ExchangeReport::Execution {
            client_order_id,
            execution: Execution {
                exec_id: ExecId::parse(event.exec_id.as_deref()?).ok()?,
                exchange_order_id: event.order_id.clone(),
                quantity: Quantity::new(event.quantity?.shares()).ok()?,
                price: Price::from_cents(event.price?.cents()).ok()?,
                cum_quantity: Some(event.cum_quantity.shares()),
            },
        }),
        EventType::OrderStatus => {
            let status = match event.status {
                exchange_sim::OrderStatus::Filled => FinalStatus::Filled,
                exchange_sim::OrderStatus::Cancelled => FinalStatus::Cancelled,
                exchange_sim::OrderStatus::Expired => FinalStatus::Expired,
                exchange_sim::OrderStatus::Rejected => FinalStatus::Rejected,
                _ => return None,
            };
            Some(ExchangeReport::Final {
                client_order_id,
                exchange_order_id: event.order_id.clone(),
                report: FinalReport {
                    status,
                    cum_quantity: event.cum_quantity.shares(),
                },
            })
        }
    }
}

/// Calls made between two snapshots of the counter.
fn since(
    before: &BTreeMap<&'static str, u64>,
    after: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(k, v)| (*k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn add(total: &mut BTreeMap<&'static str, u64>, more: &BTreeMap<&'static str, u64>) {
    for (k, v) in more {
        *total.entry(k).or_default() += v;
    }
}

/// The day on the in-memory adapters and the in-process engine (see the
/// module's documentation).
async fn memory_day(resting: usize, hours: u64) -> anyhow::Result<()> {
    // 20:31 UTC: just after a day's check, so the day ahead holds a whole
    // session, its close and its check.
    let calendar = TradingCalendar::default();
    let start = calendar.close_ms(20_000) + calendar.check_after_close_ms + MINUTE_MS;
    let clock = ManualClock::at(start);
    let balances = BalancesService::new(MemoryLedgerStore::default(), clock.clone());
    let account = AccountId::parse("resting-day")?;
    let deposit = Operation::Deposit {
        asset: Asset::Cash,
        amount: Amount::new(100 * resting as u64 * 10 + 1)?,
    };
    Balances::execute(&balances, &account, &idempotency_key("funding"), &deposit).await?;
    let calls = ExchangeCalls::default();
    let engine = EngineExchange::new(fast_fills(7), clock.clone())?;
    let store = MemoryOrderStore::default();
    let orders = Orders::new(
        store.clone(),
        balances,
        CountingExchange::new(engine, calls.clone()),
        clock.clone(),
        app::orders::OrderSettings::default(),
    );
    let settings = reconciler::Settings {
        page_size: PAGE_SIZE,
        max_run_ms: MAX_RUN_MS,
        safety_margin_ms: SAFETY_MARGIN_MS,
    };
    let request = OrderRequest::new(
        Catalog::us_equities().symbol("AAPL")?,
        Side::Buy,
        OrderType::Limit,
        Quantity::new(10)?,
        Some(Price::parse("1.00")?),
        TimeInForce::Gtc,
    )?;

    let mut placement_calls = BTreeMap::new();
    let mut recovery_calls = BTreeMap::new();
    let mut examined = 0;
    let mut eod_examined = 0;
    let mut flagged_by_runs = 0;
    let mut reports = 0;
    let mut placed = 0;
    let started = Instant::now();
    for minute in 1..=hours * 60 {
        // This minute's arrivals, spread over the first hour.
        let before = calls.snapshot();
        while placed < resting
            && (placed as u64 * ARRIVALS_OVER_MS / resting as u64) < minute * MINUTE_MS
        {
            let key = idempotency_key(&format!("rest-{placed}"));
            let result = orders.place(account.clone(), key, request.clone()).await?;
            anyhow::ensure!(result.order.is_placed(), "order {placed} placed");
            placed += 1;
        }
        add(&mut placement_calls, &since(&before, &calls.snapshot()));
        clock.advance_ms(MINUTE_MS);
        // What the venue's webhooks carry, delivered.
        for event in orders.exchange().inner().take_events() {
            if let Some(report) = report_of(&event) {
                orders.apply_report(&report).await?;
                reports += 1;
            }
        }
        let before = calls.snapshot();
        let summary = reconciler::run_once(&orders, &settings, LAMBDA_TIMEOUT_MS).await;
        add(&mut recovery_calls, &since(&before, &calls.snapshot()));
        examined += summary.examined;
        eod_examined += summary.end_of_day.as_ref().map_or(0, |e| e.examined);
        flagged_by_runs += summary.newly_flagged;
    }
    let all = store.orders();
    let flagged = all.iter().filter(|o| o.recovery.is_flagged()).count();
    let open = all.iter().filter(|o| !o.is_closed()).count();

    println!(
        "\n{}\n",
        run_header(&format!(
            "cargo run -p system-tests --bin bench-resting-day -- --memory --resting {resting} --hours {hours}"
        ))
    );
    println!(
        "In-memory adapters and the engine in-process on a manual clock from {} 20:31 UTC; {} reconciler runs, one a minute; {:.1} s of real time.\n",
        TradingCalendar::date(20_000),
        hours * 60,
        started.elapsed().as_secs_f64()
    );
    println!("| exchange port method | calls by placements | calls by the reconciler |");
    println!("|---|---:|---:|");
    let methods: std::collections::BTreeSet<&str> = placement_calls
        .keys()
        .chain(recovery_calls.keys())
        .copied()
        .collect();
    for method in methods {
        println!(
            "| {method} | {} | {} |",
            placement_calls.get(method).copied().unwrap_or(0),
            recovery_calls.get(method).copied().unwrap_or(0)
        );
    }
    let per_order = ExchangeCalls::per_order(&recovery_calls);
    println!(
        "\nReconciler calls about one order (order, executions, cancel, place): {per_order}, i.e. {:.5} per healthy resting order per hour \
         (target ≤ 1, 0 with signals). Orders examined by the due-order pass: {examined}; by end-of-day checks: {eod_examined}. \
         Webhook reports delivered: {reports}. Orders flagged: {flagged} (runs reported {flagged_by_runs}). Open at the end: {open} of {resting}.",
        per_order as f64 / (resting as u64 * hours) as f64,
    );
    Ok(())
}
