//! Deliberate bugs the simulation must catch, to prove it has teeth. The
//! test-side ones are wrapper behaviour (see `ports.rs`); the two that live in
//! the domain need the `mutants` feature and are switched on for one thread.

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// A repeated execution id is recorded again (domain; `mutants` feature).
    FillsNotDeduplicated,
    /// Each attempt of a release goes out under a fresh idempotency key.
    ReleaseWithFreshKey,
    /// "Not placed" is concluded at the first empty lookup, deadline or not
    /// (domain; `mutants` feature).
    NotPlacedWithoutWaiting,
    /// No lease and no conditional writes: the last writer wins.
    LastWriterWins,
}

impl Mutant {
    pub const ALL: [Mutant; 4] = [
        Mutant::FillsNotDeduplicated,
        Mutant::ReleaseWithFreshKey,
        Mutant::NotPlacedWithoutWaiting,
        Mutant::LastWriterWins,
    ];

    /// The mutant named `name` (its variant name), for `SIM_MUTANT`.
    pub fn named(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| format!("{m:?}") == name)
    }

    /// Switches a domain mutant on for this thread (the simulation runs on
    /// one thread); test-side mutants need nothing. Returns a guard that
    /// switches it off again.
    pub fn activate(self) -> Active {
        #[cfg(feature = "mutants")]
        {
            use domain::order::mutants::{self, Mutant as Domain};
            match self {
                Mutant::FillsNotDeduplicated => mutants::set(Some(Domain::FillsNotDeduplicated)),
                Mutant::NotPlacedWithoutWaiting => {
                    mutants::set(Some(Domain::NotPlacedWithoutWaiting))
                }
                Mutant::ReleaseWithFreshKey | Mutant::LastWriterWins => {}
            }
        }
        Active
    }
}

/// Switches the domain mutants off when dropped.
pub struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        domain::order::mutants::set(None);
    }
}
