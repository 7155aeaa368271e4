//! Deliberate bugs the simulation must catch, to show the oracle has teeth.
//! Most live in the domain and the use cases behind the `mutants` feature
//! (off unless a thread switches one on); two have no hook there yet and
//! are played by the simulation's ports instead (see [`Mutant::test_side`]).

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// An execution already recorded is recorded again.
    FillsNotDeduplicated,
    /// The first empty lookup after the deadline is taken as proof of absence.
    NotPlacedWithoutWaiting,
    /// A market order goes out without its protective limit.
    MarketWithoutProtection,
    /// The placement does not look at the cancel intent.
    PlacementIgnoresCancel,
    /// An order accepts at most a fixed number of executions.
    FillCap,
    /// Recovery's record of a condition is never reset (on progress, or
    /// when the order is healthy again).
    AttemptsNeverReset,
    /// An execution beyond the reservation is refused.
    RefuseBeyondReservation,
}

impl Mutant {
    pub const ALL: [Mutant; 7] = [
        Mutant::FillsNotDeduplicated,
        Mutant::NotPlacedWithoutWaiting,
        Mutant::MarketWithoutProtection,
        Mutant::PlacementIgnoresCancel,
        Mutant::FillCap,
        Mutant::AttemptsNeverReset,
        Mutant::RefuseBeyondReservation,
    ];

    /// The mutant named `name` (its variant name), for `SIM_MUTANT`.
    pub fn named(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| format!("{m:?}") == name)
    }

    /// Played by the simulation's ports: the platform's code has no hook
    /// for it (`domain::order::mutants` declares it, nothing reads it), so
    /// the wrapper does what the bug would: `FillsNotDeduplicated` hides an
    /// execution's own record from the order flow's look-ups;
    /// `RefuseBeyondReservation` has Balances refuse a settlement that
    /// costs more than the order's reservation covers.
    pub fn test_side(self) -> bool {
        matches!(
            self,
            Mutant::FillsNotDeduplicated | Mutant::RefuseBeyondReservation
        )
    }

    /// Switches the mutant on for this thread (the platform's hooks read a
    /// thread-local); the guard switches it off again.
    pub fn activate(self) -> Active {
        #[cfg(feature = "mutants")]
        {
            use domain::order::mutants::{set, Mutant as Domain};
            set(Some(match self {
                Mutant::FillsNotDeduplicated => Domain::FillsNotDeduplicated,
                Mutant::NotPlacedWithoutWaiting => Domain::NotPlacedWithoutWaiting,
                Mutant::MarketWithoutProtection => Domain::MarketWithoutProtection,
                Mutant::PlacementIgnoresCancel => Domain::PlacementIgnoresCancel,
                Mutant::FillCap => Domain::FillCap,
                Mutant::AttemptsNeverReset => Domain::AttemptsNeverReset,
                Mutant::RefuseBeyondReservation => Domain::RefuseBeyondReservation,
            }));
        }
        Active
    }
}

/// Switches the platform's mutants off when dropped.
pub struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        domain::order::mutants::set(None);
    }
}
