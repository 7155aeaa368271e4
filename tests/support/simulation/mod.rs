//! A deterministic simulation of the whole platform (FoundationDB / VOPR
//! style): one process, one seed, a manual clock, the real domain and handler
//! code (place, the fill processor's batches, the reconciler's runs), the
//! exchange engine and the in-memory adapters, with faults at every port
//! call. After every step the safety invariants are checked; at the end the
//! faults stop, the run is driven until quiet, and liveness and DESIGN §7 are
//! checked against the exchange's audit. A failing seed prints the command
//! that replays it and the trace of what happened.
//!
//! - [`world`]: the state of one run; [`scheduler`]: its steps;
//! - [`faults`]: the seeded fault plan and named crash points;
//!   [`ports`]: the fault-wrapped ports and the test-side mutants;
//! - [`queue`]: SQS's delivery rules; [`invariants`]: the oracle;
//! - [`mutants`]: deliberate bugs the simulation must catch.

pub mod faults;
pub mod invariants;
pub mod mutants;
pub mod ports;
pub mod queue;
pub mod scheduler;
pub mod trace;
pub mod world;

use std::collections::BTreeMap;

use rand::Rng;
use tokio::runtime::{Builder, Runtime};

pub use faults::all_crash_points;
pub use mutants::Mutant;
use world::World;

/// Steps of one run before the faults stop, at least and at most.
pub const MIN_STEPS: usize = 40;
pub const MAX_STEPS: usize = 160;
/// Rounds of the quiet phase: deliver everything, run the reconciler, move
/// the clock past leases and backoffs. Liveness must hold within these.
pub const QUIET_ROUNDS: usize = 40;
/// Messages the quiet phase delivers per round, at most.
const QUIET_BATCHES_PER_ROUND: usize = 50;

/// What one seed did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub mutant: Option<Mutant>,
    pub violations: Vec<String>,
    pub steps: usize,
    pub orders: usize,
    pub crash_hits: BTreeMap<String, u64>,
    pub faults: u64,
    pub dead_letters: usize,
    pub digest: u64,
    pub trace: String,
}

impl RunReport {
    /// The one-line command that replays this seed.
    pub fn replay_command(&self) -> String {
        let (mutant, features) = match self.mutant {
            Some(m) => (format!("SIM_MUTANT={m:?} "), " --features mutants"),
            None => (String::new(), ""),
        };
        format!(
            "{mutant}SIM_SEED={} cargo test -p system-tests{features} --test system simulation::replay -- --nocapture",
            self.seed
        )
    }
}

pub fn runtime() -> Runtime {
    Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// Runs one seed to the end (or to its first violations).
pub fn run_seed(seed: u64, mutant: Option<Mutant>, rt: &Runtime) -> RunReport {
    let _active = mutant.map(Mutant::activate);
    let mut world = World::new(seed, mutant);
    let steps = world.rng.gen_range(MIN_STEPS..=MAX_STEPS);
    let mut violations = Vec::new();
    let mut done = 0;
    for _ in 0..steps {
        done += 1;
        violations.extend(scheduler::step(&mut world, rt));
        violations.extend(invariants::check_step(&mut world));
        if !violations.is_empty() {
            break;
        }
    }
    if violations.is_empty() {
        quiesce(&mut world, rt);
        violations.extend(invariants::check_final(&mut world));
    }
    if !violations.is_empty() {
        world.note(format!("VIOLATIONS: {violations:#?}"));
    }
    RunReport {
        seed,
        mutant,
        violations,
        steps: done,
        orders: world.store.orders().len(),
        crash_hits: world.plan.crash_hits(),
        faults: world.plan.faults_injected(),
        dead_letters: world.queue.dead_letters.len(),
        digest: world.trace.digest(),
        trace: world.trace.render(),
    }
}

/// Faults off; deliver everything and run the reconciler with the clock
/// moved past every lease, backoff and deadline, until nothing is left.
fn quiesce(world: &mut World, rt: &Runtime) {
    world.plan.disable();
    world.pending.clear();
    world.note("faults stop; running until quiet".into());
    let retry = world.reconciler.retry.clone();
    let wait_ms = retry.backoff_max_ms.max(retry.lease_ms) + queue::VISIBILITY_TIMEOUT_MS;
    for _ in 0..QUIET_ROUNDS {
        scheduler::webhooks(world);
        for _ in 0..QUIET_BATCHES_PER_ROUND {
            if world.queue.visible(world.now_ms()) == 0 {
                break;
            }
            scheduler::deliver(world, rt);
        }
        scheduler::reconcile(world, rt, 1);
        let open = world.store.orders().iter().any(|o| !o.is_closed());
        if !open && world.queue.is_empty() && world.exchange.next_due_ms().is_none() {
            return;
        }
        world.clock.advance_ms(wait_ms);
        world.note(format!("time passes {wait_ms} ms"));
    }
}

/// Totals over many seeds.
#[derive(Debug, Default)]
pub struct Campaign {
    pub seeds: u64,
    pub failures: Vec<RunReport>,
    pub crash_hits: BTreeMap<String, u64>,
    pub orders: usize,
    pub faults: u64,
    pub dead_letters: usize,
    pub elapsed_s: f64,
}

impl Campaign {
    pub fn seeds_per_s(&self) -> f64 {
        self.seeds as f64 / self.elapsed_s.max(1e-9)
    }
}

/// Runs `count` seeds from `first`; keeps the failing ones (at most
/// `max_failures`, then stops).
pub fn run_seeds(first: u64, count: u64, mutant: Option<Mutant>, max_failures: usize) -> Campaign {
    let rt = runtime();
    let started = std::time::Instant::now();
    let mut campaign = Campaign::default();
    for seed in first..first + count {
        let report = run_seed(seed, mutant, &rt);
        campaign.seeds += 1;
        campaign.orders += report.orders;
        campaign.faults += report.faults;
        campaign.dead_letters += report.dead_letters;
        for (point, hits) in &report.crash_hits {
            *campaign.crash_hits.entry(point.clone()).or_default() += hits;
        }
        if !report.violations.is_empty() {
            campaign.failures.push(report);
            if campaign.failures.len() >= max_failures {
                break;
            }
        }
    }
    campaign.elapsed_s = started.elapsed().as_secs_f64();
    campaign
}

/// The failure as a reader needs it: the violations, the replay command,
/// then the trace.
pub fn describe(report: &RunReport) -> String {
    format!(
        "seed {} violated:\n  {}\nreplay: {}\ntrace:\n{}",
        report.seed,
        report.violations.join("\n  "),
        report.replay_command(),
        report.trace
    )
}
