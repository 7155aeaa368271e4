//! The record of one step: its state, the attempt that owns it, its times.
//! A step is written before its external call (`processing`) and after it
//! (`succeeded` / `failed`, only on evidence).

use serde::{Deserialize, Serialize};

/// Longest free text kept in a record (a venue's reason, an error): the
/// order item must stay under 1 KB whatever a venue sends.
pub const MAX_DETAIL_CHARS: usize = 96;

/// `text` cut to [`MAX_DETAIL_CHARS`] characters.
pub fn detail(text: &str) -> String {
    text.chars().take(MAX_DETAIL_CHARS).collect()
}

/// Why a step ended in failure. Each is final and backed by evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StepFailure {
    /// Balances refused the reservation.
    InsufficientFunds,
    /// The exchange refused the order.
    ExchangeRejected { detail: String },
    /// The order provably never reached the exchange (and now never can).
    NotPlaced { detail: String },
    /// The exchange refused the cancel (the order had already ended).
    CancelRefused { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StepState {
    Processing,
    Succeeded,
    Failed(StepFailure),
}

/// The record of one step. `attempt` fences outcome writes: an outcome is
/// recorded only by the attempt that still owns the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub state: StepState,
    pub attempt: u32,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
}

impl Step {
    pub fn processing(now_ms: u64) -> Self {
        Step {
            state: StepState::Processing,
            attempt: 1,
            started_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    pub fn done(state: StepState, now_ms: u64) -> Self {
        let mut step = Step::processing(now_ms);
        step.finish(state, now_ms);
        step
    }

    pub fn is_processing(&self) -> bool {
        self.state == StepState::Processing
    }

    pub fn is_succeeded(&self) -> bool {
        self.state == StepState::Succeeded
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.state, StepState::Failed(_))
    }

    pub fn failure(&self) -> Option<&StepFailure> {
        match &self.state {
            StepState::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    pub fn finish(&mut self, state: StepState, now_ms: u64) {
        self.state = state;
        self.updated_at_ms = now_ms;
    }

    /// A new attempt takes the step over; answers of older attempts no longer count.
    pub fn retry(&mut self, now_ms: u64) {
        self.state = StepState::Processing;
        self.attempt += 1;
        self.updated_at_ms = now_ms;
    }
}

/// The `place` step: the step itself, how often the request was sent, and
/// the deadline it carries, fixed at the first send so that every resend is
/// the same request to the exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(flatten)]
    pub step: Step,
    /// Sends so far (each with the same `client_order_id`).
    pub sends: u32,
    /// The request deadline in the venue's clock (venues that enforce one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue_deadline_ms: Option<u64>,
    /// The last send provably never reached the exchange (refused
    /// connection, or looked up and not there before the deadline): it may
    /// be sent again.
    #[serde(default)]
    pub resend: bool,
    /// Why the last send did not get an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Past the point where absence could be proven on other venues; this
    /// venue cannot prove it, so only its end-of-day list will tell.
    #[serde(default)]
    pub awaiting_day_list: bool,
}

impl Placement {
    pub fn started(now_ms: u64, venue_deadline_ms: Option<u64>) -> Self {
        Placement {
            step: Step::processing(now_ms),
            sends: 0,
            venue_deadline_ms,
            resend: false,
            last_error: None,
            awaiting_day_list: false,
        }
    }
}

/// The caller's cancel: a durable intent, then the step that carries it to
/// the exchange, repeated by whichever driver meets the order until the
/// exchange reports a final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub requested_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Step>,
}
