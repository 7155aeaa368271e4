//! How recovery treats an order: when it must be looked at next, which
//! condition it is waiting on (and since when), and why an operator must
//! look. Also the venue's guarantees and the timings recovery works by.

use serde::{Deserialize, Serialize};

use super::step::detail;

/// What proves, from outside, that a venue never received a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbsenceProof {
    /// (a) A cancel by client order id of an id the venue never saw leaves a
    /// tombstone: a request arriving later is refused.
    Tombstone,
    /// (b) The venue refuses a request that arrives after its deadline, and
    /// its lookup by client order id is authoritative.
    Deadline,
    /// (c) Neither: only the venue's own list of the day's orders settles it.
    DayList,
}

/// What the venue guarantees, as the platform relies on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueRules {
    pub absence: AbsenceProof,
    /// The venue takes (and enforces) a request deadline.
    pub request_deadline: bool,
    /// The venue cancels by client order id (else only by its own id).
    pub cancel_by_client_id: bool,
}

impl VenueRules {
    /// Cancel by client id leaves a tombstone; request deadline enforced.
    pub const TOMBSTONE: VenueRules = VenueRules {
        absence: AbsenceProof::Tombstone,
        request_deadline: true,
        cancel_by_client_id: true,
    };
    /// Request deadline enforced on arrival; lookup by client id authoritative.
    pub const DEADLINE: VenueRules = VenueRules {
        absence: AbsenceProof::Deadline,
        request_deadline: true,
        cancel_by_client_id: true,
    };
    /// No deadline, no tombstone, cancel by the venue's own id only.
    pub const PLAIN: VenueRules = VenueRules {
        absence: AbsenceProof::DayList,
        request_deadline: false,
        cancel_by_client_id: false,
    };
}

/// Timing rules of recovery, with units in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPolicy {
    pub venue: VenueRules,
    /// Allowance for the venue's clock against ours beyond what was measured
    /// (the measurement's own error: a `Date` header has 1 s resolution).
    pub clock_skew_margin_ms: u64,
    /// Longest a request can still be on its way (the longest invocation
    /// that could have sent it).
    pub max_in_flight_ms: u64,
    /// First wait before recovery repeats something that failed; it doubles
    /// with each attempt at the same condition, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Time given to webhooks still on their way (reordered, retried by the
    /// venue) before missing executions are pulled over REST.
    pub gap_grace_ms: u64,
    /// A market or IOC order still not final this long after it was placed
    /// is asked about: such orders end in seconds.
    pub market_silence_ms: u64,
    /// A condition still unresolved this long after it arose is flagged for
    /// an operator (recovery keeps trying).
    pub flag_after_ms: u64,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            venue: VenueRules::TOMBSTONE,
            clock_skew_margin_ms: 2_000,
            max_in_flight_ms: 30_000,
            retry_base_ms: 30_000,
            retry_max_ms: 15 * 60_000,
            gap_grace_ms: 60_000,
            market_silence_ms: 2 * 60_000,
            flag_after_ms: 30 * 60_000,
        }
    }
}

impl RecoveryPolicy {
    /// Wait before the `attempts`-th repeat of something that failed.
    pub fn backoff_ms(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(20);
        self.retry_base_ms
            .saturating_mul(1 << doublings)
            .min(self.retry_max_ms)
    }
}

/// What recovery is waiting on for an order (each is a signal that something
/// is missing; a healthy resting order has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// The reservation's outcome is unknown.
    Reserve,
    /// The placement's outcome is unknown.
    Placement,
    /// A settlement's outcome is unknown (or Balances is down).
    Settlement,
    /// Recorded executions wait for the settling slot.
    Backlog,
    /// The release's outcome is unknown.
    Release,
    /// A cancel the caller asked for is not confirmed by the exchange.
    Cancel,
    /// The exchange reported more than was recorded (a final status without
    /// its executions, or a cumulative quantity ahead of the records).
    MissingExecutions,
    /// A market or IOC order did not end when it should have.
    Silence,
}

impl ConditionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionKind::Reserve => "reserve",
            ConditionKind::Placement => "placement",
            ConditionKind::Settlement => "settlement",
            ConditionKind::Backlog => "backlog",
            ConditionKind::Release => "release",
            ConditionKind::Cancel => "cancel",
            ConditionKind::MissingExecutions => "missing_executions",
            ConditionKind::Silence => "silence",
        }
    }
}

/// An unresolved condition: what, since when, how often recovery tried,
/// and how far resolving the order had got when it was last recorded.
/// Attempts and `since` reset when the condition changes or gains ground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub kind: ConditionKind,
    pub since_ms: u64,
    pub attempts: u32,
    #[serde(default)]
    pub ground: Ground,
}

/// How far resolving an order has got: what is done (executions settled,
/// steps finished, the venue's final word, units released) and how many
/// shares the venue reported that are not recorded yet. Whoever moves it
/// on (a handler, or a recovery look that stopped before its own
/// bookkeeping), the order's condition gained ground: its clock restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ground {
    pub done: u64,
    pub missing: u64,
}

impl Ground {
    pub fn gained_on(&self, earlier: &Ground) -> bool {
        self.done > earlier.done || self.missing < earlier.missing
    }
}

/// Why an operator must look at an order. Each is evidence that something
/// outside the platform's rules happened; the order is still driven on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagReason {
    /// A condition stayed unresolved past its bound.
    Stuck,
    /// The exchange executed beyond the reservation and the account's
    /// available balance: the rest is owed.
    Shortfall,
    /// The exchange executed beyond the reservation (paid from available).
    BeyondReservation,
    /// The exchange executed more shares than the order asked for.
    Overfilled,
    /// The exchange executed an order the platform had concluded it never
    /// received, or reported after the order was closed: reopened.
    Reopened,
    /// One `exec_id` was reported again with a different quantity or price.
    ConflictingExecution,
    /// A report the exchange did not confirm was set aside.
    UnconfirmedReport,
    /// The exchange does not know an order it accepted.
    UnknownToExchange,
    /// Balances refused a release or settlement it should have taken.
    Refused,
    /// A placement without proof either way, on a venue that cannot prove
    /// absence, past the end-of-day reconciliation.
    Unresolved,
}

impl FlagReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagReason::Stuck => "stuck",
            FlagReason::Shortfall => "shortfall",
            FlagReason::BeyondReservation => "beyond_reservation",
            FlagReason::Overfilled => "overfilled",
            FlagReason::Reopened => "reopened",
            FlagReason::ConflictingExecution => "conflicting_execution",
            FlagReason::UnconfirmedReport => "unconfirmed_report",
            FlagReason::UnknownToExchange => "unknown_to_exchange",
            FlagReason::Refused => "refused",
            FlagReason::Unresolved => "unresolved",
        }
    }
}

/// Most distinct flag reasons kept on one order (there are fewer kinds).
const MAX_FLAGS: usize = 10;

/// How recovery fares with an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Look at the order again at this time (the open-order index's sort key).
    pub due_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// Why an operator must look (each reason once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagReason>,
    /// What the first flag said, in a line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged_at_ms: Option<u64>,
    /// The last operator decision on the order, with its evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<OperatorDecision>,
}

/// What an operator decided about an order, recorded as a step of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorDecision {
    pub at_ms: u64,
    pub decision: Decision,
    /// What the decision rests on, in a line (a venue statement, a ticket).
    pub evidence: String,
    /// The flags it answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cleared: Vec<FlagReason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The venue never received the placement (its evidence outside the
    /// platform: a statement, a support answer): release and close.
    NotPlaced,
    /// The flags were looked into; the order goes on as its records say.
    Acknowledged,
}

impl Recovery {
    pub fn is_flagged(&self) -> bool {
        !self.flags.is_empty()
    }

    /// Adds a reason; answers whether it is new.
    pub fn flag(&mut self, reason: FlagReason, text: &str, now_ms: u64) -> bool {
        if self.flags.contains(&reason) || self.flags.len() >= MAX_FLAGS {
            return false;
        }
        self.flags.push(reason);
        if self.flag_detail.is_none() {
            self.flag_detail = Some(detail(text));
            self.flagged_at_ms = Some(now_ms);
        }
        true
    }

    /// Records that recovery tried `kind` once more (or met it for the
    /// first time, or again after the order gained ground), the order
    /// being at `ground` now.
    pub fn attempted(&mut self, kind: ConditionKind, now_ms: u64, ground: Ground) -> Condition {
        let condition = match self.condition {
            Some(c) if c.kind == kind && !ground.gained_on(&c.ground) => Condition {
                attempts: c.attempts.saturating_add(1),
                ground,
                ..c
            },
            _ => Condition {
                kind,
                since_ms: now_ms,
                attempts: 1,
                ground,
            },
        };
        self.condition = Some(condition);
        condition
    }
}
