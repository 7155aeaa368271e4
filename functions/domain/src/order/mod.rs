//! An order and the records of its steps, and the two questions every
//! handler asks of them: what is its status, and what should happen next.
//!
//! There is no central state machine. Each handler records the steps it owns
//! (`reserve`, `place` and `cancel` by place-order, executions and their
//! settlements by the fill processor, recovery by the reconciler), and
//! [`next_actions`] derives what is left to do from whatever has been
//! recorded, in any order it arrived.
//!
//! - [`ids`]: `OrderId` (the `client_order_id` at the exchange), `ExecId`,
//!   and the idempotency keys derived from them;
//! - [`request`]: what the caller asked for, its reservation and the
//!   protective limit of a market order;
//! - [`step`]: step records (`processing` / `succeeded` / `failed`), the
//!   placement and the cancel intent;
//! - [`report`]: what the exchange reports (executions, final statuses);
//! - [`fill`]: executions, their own records and the order's totals;
//! - [`record`]: the order record, its transitions and its status;
//! - [`recovery`]: the venue's guarantees, recovery's timings, conditions
//!   and flags;
//! - [`next`]: [`next_actions`] and the signal an order carries for recovery.

mod fill;
mod ids;
mod next;
mod record;
mod recovery;
mod report;
mod request;
mod step;

pub use fill::{Fill, FillRecord, FillState, FillTotals};
pub use ids::{ExecId, OrderId, MAX_EXEC_ID_LEN};
pub use next::{
    absence_final_at_ms, lookup_proves_absence, next_actions, next_look_ms, pending_condition,
    silence_due_at_ms, Action, Driver,
};
pub use record::{Order, OrderStatus, Taken};
pub use recovery::{
    AbsenceProof, Condition, ConditionKind, Decision, FlagReason, Ground, OperatorDecision,
    Recovery, RecoveryPolicy, VenueRules,
};
pub use report::{ExchangeReport, Execution, FinalReport, FinalStatus};
pub use request::{OrderRequest, OrderType, Pricing, Reservation, TimeInForce};
pub use step::{detail, Cancel, Placement, Step, StepFailure, StepState, MAX_DETAIL_CHARS};

use crate::money::MoneyError;

/// Shards of the open-order index: open orders spread over this many index
/// partitions, so no single one runs hot; the reconciler reads each.
pub const OPEN_INDEX_SHARDS: u32 = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order id must be a UUID in lower-case hex with hyphens")]
    InvalidOrderId,
    #[error("execution id must be 1 to {MAX_EXEC_ID_LEN} printable ASCII characters")]
    InvalidExecId,
    #[error("a limit order needs a limit price")]
    MissingLimitPrice,
    #[error("a market order takes no limit price")]
    UnexpectedLimitPrice,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// Deliberate bugs for the simulation to catch (tests only): compiled in
/// with the `mutants` feature, and even then off unless a test switches one
/// on for its own thread.
#[cfg(feature = "mutants")]
pub mod mutants {
    use std::cell::Cell;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mutant {
        /// An execution already recorded is recorded again.
        FillsNotDeduplicated,
        /// The first empty lookup is taken as proof of absence.
        NotPlacedWithoutWaiting,
        /// A market order goes out without its protective limit.
        MarketWithoutProtection,
        /// The placement does not look at the cancel intent.
        PlacementIgnoresCancel,
        /// An order accepts at most a fixed number of executions.
        FillCap,
        /// Recovery's record of a condition (its `since`, its attempts) is
        /// never reset: not on progress, not when the order is healthy again.
        AttemptsNeverReset,
        /// An execution beyond the reservation is refused.
        RefuseBeyondReservation,
    }

    thread_local! {
        static ACTIVE: Cell<Option<Mutant>> = const { Cell::new(None) };
    }

    pub fn set(mutant: Option<Mutant>) {
        ACTIVE.with(|active| active.set(mutant));
    }

    pub fn active(mutant: Mutant) -> bool {
        ACTIVE.with(|active| active.get() == Some(mutant))
    }
}

#[cfg(test)]
mod tests;
