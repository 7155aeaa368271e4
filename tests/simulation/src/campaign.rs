//! Runs: one seed from its first step to its last check, and many seeds
//! over the machine's cores. A seed's run has two phases: faults on for the
//! scenario's steps, the oracle checking after each; then the faults stop
//! and the run goes on (webhooks, batches, reconciler ticks, time) until
//! every order is closed, which must happen within the liveness bound,
//! and the oracle checks everything.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use app::orders::TradingCalendar;
use exchange_sim::venue::VenueProfile;

use crate::faults::CrashPoint;
use crate::mutants::Mutant;
use crate::oracle::Oracle;
use crate::scenario::Scenario;
use crate::scheduler;
use crate::trace::Trace;
use crate::world::World;
use crate::{queue, webhooks};

/// The reconciler's schedule (EventBridge, every minute).
pub const RECONCILER_TICK_MS: u64 = 60_000;
/// Most turns of the quiet phase: a run that needs more is stuck.
const MAX_QUIET_TURNS: usize = 20_000;

/// What one seed did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub venue: Option<VenueProfile>,
    pub mutant: Option<Mutant>,
    pub violations: Vec<String>,
    pub steps: usize,
    pub orders: usize,
    pub executions: usize,
    pub crash_hits: BTreeMap<CrashPoint, u64>,
    pub faults: u64,
    /// How long after the faults stopped the last order closed.
    pub converged_after_ms: Option<u64>,
    /// A digest of the end state (with the trace on only).
    pub digest: u64,
    pub trace: String,
}

impl RunReport {
    /// The command that replays this seed, with its trace.
    pub fn replay_command(&self) -> String {
        let (mutant, features) = match self.mutant {
            Some(m) => (format!("SIM_MUTANT={m:?} "), " --features mutants"),
            None => (String::new(), ""),
        };
        format!(
            "{mutant}SIM_SEED={} cargo test -p simulation{features} --test simulation replay -- --exact --nocapture",
            self.seed
        )
    }

    /// The failure as a reader needs it: the violations, the replay command, the trace.
    pub fn describe(&self) -> String {
        format!(
            "seed {} ({:?}) violated:\n  {}\nreplay: {}\ntrace (its end):\n{}",
            self.seed,
            self.venue,
            self.violations.join("\n  "),
            self.replay_command(),
            self.trace
        )
    }
}

/// Runs one seed to its end (or to the step where it first breaks an invariant).
pub fn run_seed(seed: u64, mutant: Option<Mutant>, traced: bool) -> RunReport {
    if let Some(m) = mutant {
        assert!(
            cfg!(feature = "mutants") || m.test_side(),
            "{m:?} lives in the platform's code: build with --features mutants"
        );
    }
    let _active = mutant.map(Mutant::activate);
    let scenario = Scenario::of_seed(seed);
    let venue = scenario.venue;
    let trace = if traced { Trace::on() } else { Trace::off() };
    let mut world = World::new(scenario, mutant, trace.clone());
    let mut oracle = Oracle::new(&world.scenario, &world.deposits);
    let mut steps = 0;
    for _ in 0..world.scenario.steps {
        steps += 1;
        scheduler::step(&mut world);
        oracle.after_step(&world);
        take_findings(&mut world, &mut oracle);
        if !oracle.violations.is_empty() {
            break;
        }
    }
    let mut converged_after_ms = None;
    if oracle.violations.is_empty() {
        let stopped = world.now_ms();
        converged_after_ms = quiesce(&mut world, &mut oracle);
        take_findings(&mut world, &mut oracle);
        if oracle.violations.is_empty() {
            oracle.finish(&world, stopped);
        }
    }
    for violation in &oracle.violations {
        world.note(|| format!("VIOLATION: {violation}"));
    }
    let orders = world.store.orders();
    let (hits, faults) = {
        let plan = world.shared.plan();
        (plan.hits.clone(), plan.injected)
    };
    RunReport {
        seed,
        venue: Some(venue),
        mutant,
        violations: oracle.violations,
        steps,
        executions: world.shared.exchange.with_engine(|e| e.execution_count()),
        orders: orders.len(),
        crash_hits: hits,
        faults,
        converged_after_ms,
        digest: if traced { digest(&world, &orders) } else { 0 },
        trace: trace.render(),
    }
}

fn take_findings(world: &mut World, oracle: &mut Oracle) {
    for finding in std::mem::take(&mut world.findings) {
        oracle.violate(finding);
    }
}

/// A digest of what the run left behind: every order, every ledger record,
/// every venue order (to show a seed replays exactly).
fn digest(world: &World, orders: &[domain::order::Order]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for order in orders {
        serde_json::to_string(order)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    let mut records: Vec<String> = world
        .ledger
        .operations()
        .iter()
        .map(|r| format!("{r:?}"))
        .collect();
    records.sort();
    records.hash(&mut hasher);
    for venue in world.shared.exchange.audit().orders {
        format!("{venue:?}").hash(&mut hasher);
    }
    world.now_ms().hash(&mut hasher);
    hasher.finish()
}

/// How long after the faults stop every order must be closed: the last
/// thing that can still be on its way (a placement recovery may still
/// start and its request land, an order the venue works until its
/// lifetime, a webhook the venue still retries, a batch back after its
/// visibility timeout; on a venue that cannot prove absence, or after a
/// webhook lost for good, the end-of-day check), then what recovery needs
/// to act on it (the grace for webhooks, two retries at their cap, the
/// index's lag, two reconciler ticks) and a margin.
pub fn liveness_bound_ms(world: &World, stopped_ms: u64) -> u64 {
    let s = &world.scenario.settings;
    let r = &s.recovery;
    let placement =
        s.submit_window_ms + s.placement_window_ms + r.clock_skew_margin_ms + r.max_in_flight_ms;
    let at_venue = placement
        + world.scenario.engine.order_lifetime_ms
        + webhooks::MAX_RETRY_MS
        + r.market_silence_ms;
    // A report lost for good (the venue gave up, or the queue dead-lettered
    // it) may be noticed only by the day's list.
    let needs_day_list = world.scenario.venue == VenueProfile::Plain
        || world.webhooks.lost_for_good > 0
        || !world.queue.dead_letters().is_empty();
    let day_list = if needs_day_list {
        end_of_day_check_ms(&s.calendar, stopped_ms).saturating_sub(stopped_ms)
    } else {
        0
    };
    let wait = at_venue.max(day_list).max(queue::VISIBILITY_TIMEOUT_MS);
    wait + r.gap_grace_ms
        + 2 * r.retry_max_ms
        + app::orders::INDEX_LAG_MS
        + 2 * RECONCILER_TICK_MS
        + 60_000
}

/// When the end-of-day check of the trading day `at_ms` belongs to runs
/// (after a close, the next day's: an order placed then is on its list).
fn end_of_day_check_ms(calendar: &TradingCalendar, at_ms: u64) -> u64 {
    calendar.close_ms(calendar.trade_day(at_ms)) + calendar.check_after_close_ms
}

/// When the first end-of-day check at or after `at_ms` runs (between a
/// close and its check, that day's: not the next trading day's).
fn first_check_from_ms(calendar: &TradingCalendar, at_ms: u64) -> u64 {
    let day = at_ms / 86_400_000;
    let today = calendar.close_ms(day) + calendar.check_after_close_ms;
    if today >= at_ms {
        today
    } else {
        calendar.close_ms(day + 1) + calendar.check_after_close_ms
    }
}

/// The faults stop; the run goes on until every order is closed. Returns
/// how long that took, or records a violation past the liveness bound.
fn quiesce(world: &mut World, oracle: &mut Oracle) -> Option<u64> {
    world.shared.plan().disable();
    let stopped = world.now_ms();
    let mut bound = liveness_bound_ms(world, stopped);
    world.note(|| format!("faults stop; every order must close within {bound} ms"));
    // Clients stop placing; what they still had to say, they say now.
    world.clients.pending.clear();
    let cancels: Vec<_> = std::mem::take(&mut world.clients.cancel_retries);
    for (account, id, _attempts) in cancels {
        world.clients.planned_cancels.push((stopped, account, id));
    }
    let mut next_tick = stopped;
    // Whether the last run left work for the next (kept between turns: a
    // turn that only delivered a webhook says nothing about it).
    let mut busy = false;
    for _ in 0..MAX_QUIET_TURNS {
        // The dead-letter alarm reached an operator, who redrives (safe:
        // each report applies once, a contradicting one is flagged).
        let redriven = world.queue.redrive(world.now_ms());
        if redriven > 0 {
            world.note(|| format!("operator redrives {redriven} dead letter(s)"));
        }
        scheduler::after_step(world);
        scheduler::deliver_webhooks(world);
        while scheduler::process_batches(world) {
            scheduler::after_step(world);
            scheduler::deliver_webhooks(world);
        }
        if world.now_ms() >= next_tick {
            let reports = scheduler::reconcile_runs(world, 1);
            if reports.iter().all(|r| !r.budget_exhausted) {
                oracle.recovery_caught_up(world.now_ms());
            }
            busy = reports.iter().any(scheduler::unfinished);
            next_tick = world.now_ms() + RECONCILER_TICK_MS;
        }
        scheduler::after_step(world);
        oracle.after_step(world);
        if !oracle.violations.is_empty() {
            return None;
        }
        let quiet = world.store.open_count() == 0
            && world.webhooks.is_empty()
            && world.queue.is_empty()
            // A message that went dead after this turn's redrive is
            // redriven by the next: it may carry a report to flag.
            && world.queue.dead_letters().is_empty()
            && world.shared.net().is_empty()
            && world.clients.planned_cancels.is_empty()
            && world.clients.next_late_ms().is_none();
        if quiet {
            let took = world.now_ms() - stopped;
            world.note(|| format!("quiet {took} ms after the faults stopped"));
            return Some(took);
        }
        let now = world.now_ms();
        bound = liveness_bound_ms(world, stopped);
        if now > stopped + bound {
            break;
        }
        if !busy {
            next_tick = next_tick.max(next_reconcile_ms(world, next_tick));
        }
        let next = [
            world.webhooks.next_due_ms(),
            world.queue.next_visible_ms(),
            world.shared.net().next_due_ms(),
            world.clients.next_late_ms(),
            world.shared.exchange.next_due_ms(),
            Some(next_tick),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(next_tick)
        .max(now + 1);
        world.pass_to(next);
    }
    let open: Vec<String> = world
        .store
        .orders()
        .iter()
        .filter(|o| !o.is_closed())
        .take(3)
        .map(|o| {
            let venue = world
                .shared
                .exchange
                .with_engine(|e| e.get_by_client_id(o.id.as_str()))
                .map(|v| {
                    let executions: Vec<_> = v
                        .executions
                        .iter()
                        .map(|e| (e.exec_id.clone(), e.quantity.shares()))
                        .collect();
                    (v.status, v.updated_at, executions)
                });
            let records: Vec<_> = world
                .store
                .all_fills(&o.id)
                .into_iter()
                .map(|r| (r.exec_id.to_string(), r.quantity.shares(), r.state))
                .collect();
            format!(
                "{} {:?} ({}) created {} place {:?} deadline {}, recovery {:?}, fills {:?} (reported cum {}, final {:?}, backlog {}, slot {:?}, records {records:?}), at the venue (status, updated, executions) {venue:?}",
                o.id,
                o.status(),
                o.status_reason().unwrap_or_default(),
                o.created_at_ms,
                o.place,
                o.place_deadline_ms,
                o.recovery,
                o.fills,
                o.reported_cum,
                o.final_report,
                o.backlog,
                o.settling
            )
        })
        .collect();
    oracle.violate(format!(
        "{} order(s) still open {} ms after the faults stopped (liveness bound {bound} ms): {}",
        world.store.open_count(),
        world.now_ms() - stopped,
        open.join("; ")
    ));
    None
}

/// The next reconciler tick that can find work: the first entry of the
/// open-order index after each shard's cursor (once the index's lag has
/// passed), or the next end-of-day check.
fn next_reconcile_ms(world: &World, tick_ms: u64) -> u64 {
    use app::order_store::{DueEntry, OrderStore};
    let mut earliest = u64::MAX;
    for shard in 0..domain::order::OPEN_INDEX_SHARDS {
        // The reconciler's cursor: `<due ms>|<order id>` (see app::orders::reconcile).
        let cursor = crate::world::ready(world.store.cursor(&format!("due#{shard}")))
            .ok()
            .flatten()
            .and_then(|c| {
                let (due, id) = c.value.split_once('|')?;
                Some(DueEntry {
                    due_at_ms: due.parse().ok()?,
                    id: domain::order::OrderId::parse(id).ok()?,
                })
            });
        let first =
            crate::world::ready(world.store.due_orders(shard, cursor.as_ref(), u64::MAX, 1))
                .unwrap_or_default();
        if let Some(entry) = first.first() {
            earliest = earliest.min(entry.due_at_ms + app::orders::INDEX_LAG_MS);
        }
    }
    let calendar = &world.scenario.settings.calendar;
    // The first check after the last run (`tick_ms` is a minute after
    // it): one whose time has come while no run has happened is due now.
    let last_run_ms = tick_ms.saturating_sub(RECONCILER_TICK_MS);
    earliest = earliest.min(first_check_from_ms(calendar, last_run_ms));
    if earliest <= tick_ms {
        return tick_ms;
    }
    // Ticks come every minute from the last one.
    tick_ms + (earliest - tick_ms).div_ceil(RECONCILER_TICK_MS) * RECONCILER_TICK_MS
}

/// Totals over many seeds.
#[derive(Debug, Default)]
pub struct Campaign {
    pub seeds: u64,
    pub per_venue: BTreeMap<&'static str, u64>,
    /// The failing seeds (the first few, lowest first), traced.
    pub failures: Vec<RunReport>,
    pub crash_hits: BTreeMap<CrashPoint, u64>,
    pub orders: usize,
    pub executions: usize,
    pub faults: u64,
    pub elapsed_s: f64,
    pub threads: usize,
    /// The longest time to quiet after the faults stopped.
    pub slowest_convergence_ms: u64,
}

impl Campaign {
    pub fn seeds_per_s(&self) -> f64 {
        self.seeds as f64 / self.elapsed_s.max(1e-9)
    }

    pub fn summary(&self) -> String {
        let mut hits = String::new();
        for point in crate::faults::all_crash_points() {
            hits.push_str(&format!(
                "\n  {:<32} {}",
                point.to_string(),
                self.crash_hits.get(&point).copied().unwrap_or(0)
            ));
        }
        format!(
            "{} seeds ({:?}) in {:.1} s on {} threads: {:.1} seeds/s; {} orders, {} venue executions, {} faults injected; slowest convergence {} ms after the faults stopped; {} failing seeds\ncrash points hit:{hits}",
            self.seeds,
            self.per_venue,
            self.elapsed_s,
            self.threads,
            self.seeds_per_s(),
            self.orders,
            self.executions,
            self.faults,
            self.slowest_convergence_ms,
            self.failures.len(),
        )
    }
}

/// Runs seeds `first..first + count` over `threads` threads. With
/// `stop_at_failure`, seeds above the lowest failing one are not started
/// (every seed below it still runs, so the lowest is found whatever the
/// threads' pace). Failing seeds are run again with their trace.
pub fn run_seeds(
    first: u64,
    count: u64,
    mutant: Option<Mutant>,
    stop_at_failure: bool,
    threads: usize,
) -> Campaign {
    let started = std::time::Instant::now();
    let next = AtomicU64::new(first);
    let limit = AtomicU64::new(first + count);
    let campaign = Mutex::new(Campaign {
        threads,
        ..Campaign::default()
    });
    let failing = Mutex::new(Vec::new());
    // `SIM_PROGRESS=1`: a line per seed on stderr (what it did, how long it took).
    let progress = std::env::var_os("SIM_PROGRESS").is_some();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= limit.load(Ordering::SeqCst) {
                    return;
                }
                let seed_started = std::time::Instant::now();
                let report = run_seed(seed, mutant, false);
                let failed = !report.violations.is_empty();
                if progress {
                    eprintln!(
                        "seed {seed} {:?}: {} ms, {} steps, {} orders, {} executions, quiet after {:?} ms{}",
                        report.venue,
                        seed_started.elapsed().as_millis(),
                        report.steps,
                        report.orders,
                        report.executions,
                        report.converged_after_ms,
                        if failed { " FAILED" } else { "" }
                    );
                }
                if failed {
                    if stop_at_failure {
                        limit.fetch_min(seed + 1, Ordering::SeqCst);
                    }
                    failing
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(seed);
                }
                let mut c = campaign
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                c.seeds += 1;
                if let Some(venue) = report.venue {
                    *c.per_venue.entry(venue.as_str()).or_default() += 1;
                }
                c.orders += report.orders;
                c.executions += report.executions;
                c.faults += report.faults;
                c.slowest_convergence_ms = c
                    .slowest_convergence_ms
                    .max(report.converged_after_ms.unwrap_or(0));
                for (point, hits) in report.crash_hits {
                    *c.crash_hits.entry(point).or_default() += hits;
                }
            });
        }
    });
    let mut campaign = campaign
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut failing = failing
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    failing.sort_unstable();
    if stop_at_failure {
        failing.truncate(1);
    }
    // Again with the trace on: the same violations, now explained.
    for seed in failing.into_iter().take(3) {
        campaign.failures.push(run_seed(seed, mutant, true));
    }
    campaign.elapsed_s = started.elapsed().as_secs_f64();
    campaign
}
