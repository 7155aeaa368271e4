//! The deterministic simulation (see `system_tests::simulation`): many seeds
//! with faults everywhere and no invariant broken, every crash point hit, a
//! seed replayed exactly, and deliberate bugs caught.
//!
//! More seeds: `SIM_SEEDS=100000 cargo test -p system-tests --test system
//! simulation::many_seeds -- --nocapture` (`SIM_FIRST_SEED` to start
//! elsewhere). One seed, with its trace: `SIM_SEED=<n> ... simulation::replay`.

use system_tests::simulation::{
    all_crash_points, describe, run_seed, run_seeds, runtime, Campaign, Mutant,
};

/// Seeds CI runs (about a minute on two cores, debug build).
const CI_SEEDS: u64 = 2_000;
/// A deliberate bug must be caught within this many seeds.
const MUTANT_SEED_BUDGET: u64 = 200;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn summary(campaign: &Campaign) -> String {
    format!(
        "{} seeds in {:.1} s ({:.1} seeds/s), {} orders, {} faults injected, {} dead letters, {} violating seeds\ncrash points hit: {:#?}",
        campaign.seeds,
        campaign.elapsed_s,
        campaign.seeds_per_s(),
        campaign.orders,
        campaign.faults,
        campaign.dead_letters,
        campaign.failures.len(),
        campaign.crash_hits
    )
}

#[test]
fn many_seeds_break_no_invariant_and_hit_every_crash_point() {
    let count = env_u64("SIM_SEEDS").unwrap_or(CI_SEEDS);
    let first = env_u64("SIM_FIRST_SEED").unwrap_or(0);
    let campaign = run_seeds(first, count, None, 1);
    println!("{}", summary(&campaign));
    if let Some(failure) = campaign.failures.first() {
        panic!("{}", describe(failure));
    }
    let hit: Vec<String> = campaign.crash_hits.keys().cloned().collect();
    let missed: Vec<String> = all_crash_points()
        .into_iter()
        .filter(|p| !hit.contains(p))
        .collect();
    assert!(missed.is_empty(), "crash points never hit: {missed:?}");
}

#[test]
fn replay() {
    let seed = env_u64("SIM_SEED").unwrap_or(0);
    let mutant = std::env::var("SIM_MUTANT")
        .ok()
        .and_then(|m| Mutant::named(&m));
    let report = run_seed(seed, mutant, &runtime());
    println!("{}", report.trace);
    println!(
        "seed {seed}: {} steps, {} orders, {} faults, crash points {:?}",
        report.steps, report.orders, report.faults, report.crash_hits
    );
    assert!(report.violations.is_empty(), "{}", describe(&report));
}

#[test]
fn a_seed_replays_exactly() {
    let rt = runtime();
    for seed in [3, 11] {
        let first = run_seed(seed, None, &rt);
        let second = run_seed(seed, None, &rt);
        assert_eq!(
            first.digest, second.digest,
            "seed {seed} ran differently twice"
        );
        assert_eq!(first.trace, second.trace);
    }
}

/// Runs seeds with the bug in until one fails; the bug must be caught.
fn caught(mutant: Mutant) {
    let campaign = run_seeds(0, MUTANT_SEED_BUDGET, Some(mutant), 1);
    let Some(failure) = campaign.failures.first() else {
        panic!("{mutant:?} survived {MUTANT_SEED_BUDGET} seeds");
    };
    println!(
        "{mutant:?} caught by seed {} after {} seeds: {}\nreplay: {}",
        failure.seed,
        campaign.seeds,
        failure.violations[0],
        failure.replay_command()
    );
}

#[test]
fn catches_a_release_sent_under_a_fresh_key() {
    caught(Mutant::ReleaseWithFreshKey);
}

#[test]
fn catches_last_writer_wins_without_a_lease() {
    caught(Mutant::LastWriterWins);
}

#[cfg(feature = "mutants")]
#[test]
fn catches_fills_not_deduplicated() {
    caught(Mutant::FillsNotDeduplicated);
}

#[cfg(feature = "mutants")]
#[test]
fn catches_not_placed_concluded_without_waiting() {
    caught(Mutant::NotPlacedWithoutWaiting);
}
