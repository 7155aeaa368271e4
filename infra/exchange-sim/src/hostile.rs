//! Hostile reports: webhook events that contradict what the venue holds, as
//! a broken venue or a misrouted feed sends them. Off unless configured. The
//! REST API stays truthful (it is what a client verifies a report against),
//! and every contradiction is written to the audit as a [`HostileRecord`], so
//! tests can tell an injected contradiction from a real one.
//!
//! Each kind fires with its own probability per opportunity, drawn from a
//! seeded stream apart from the engine's, so turning hostility on never
//! changes the fills:
//!
//! | kind | opportunity | what is sent |
//! |---|---|---|
//! | `phantom_order` | each accepted order | an execution and a `filled` status for a random client order id and venue order id the venue never held |
//! | `refused_order_fill` | each refused place (deadline passed, tombstoned) and each cancel of an unknown client id | an execution for that client order id, which the client concluded was never placed |
//! | `exec_id_reused` | each execution | the same `exec_id` again with another quantity or price |
//! | `status_before_executions` | each accepted order | its final status sent before its last 1..=3 executions |
//! | `execution_after_status` | each accepted order | its last execution sent `late_execution_ms` after its final status |
//!
//! `POST /admin/events` sends any event a test writes (kind `injected`).

use serde::{Deserialize, Serialize};

/// Most executions held back behind a final status (`status_before_executions`).
pub const MAX_HELD_EXECUTIONS: usize = 3;
/// Longest accepted `late_execution_ms`.
pub const MAX_LATE_EXECUTION_MS: u64 = 600_000;
/// Account named in a `refused_order_fill` for a cancelled unknown id (the
/// venue never learnt the account).
pub const UNKNOWN_ACCOUNT: &str = "unknown";

/// Per-kind rates (probabilities per opportunity, see the module table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostileConfig {
    pub phantom_order: f64,
    pub refused_order_fill: f64,
    pub exec_id_reused: f64,
    pub status_before_executions: f64,
    pub execution_after_status: f64,
    /// How long after the final status a held-back execution is sent.
    pub late_execution_ms: u64,
}

impl Default for HostileConfig {
    /// The `--hostile` rates: every kind shows up within a few hundred orders.
    fn default() -> Self {
        HostileConfig {
            phantom_order: 0.01,
            refused_order_fill: 0.1,
            exec_id_reused: 0.02,
            status_before_executions: 0.05,
            execution_after_status: 0.05,
            late_execution_ms: 2_000,
        }
    }
}

impl HostileConfig {
    /// Every rate zero: hostile in name only (a base for tests that turn on
    /// one kind).
    pub fn none() -> HostileConfig {
        HostileConfig {
            phantom_order: 0.0,
            refused_order_fill: 0.0,
            exec_id_reused: 0.0,
            status_before_executions: 0.0,
            execution_after_status: 0.0,
            late_execution_ms: HostileConfig::default().late_execution_ms,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            self.phantom_order,
            self.refused_order_fill,
            self.exec_id_reused,
            self.status_before_executions,
            self.execution_after_status,
        ];
        if rates.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return Err("hostile rates must be in [0, 1]".into());
        }
        // One reordering per order: they are drawn from one roll.
        if self.status_before_executions + self.execution_after_status > 1.0 {
            return Err(
                "hostile status_before_executions + execution_after_status must be <= 1".into(),
            );
        }
        if self.late_execution_ms > MAX_LATE_EXECUTION_MS {
            return Err(format!(
                "hostile late_execution_ms must be <= {MAX_LATE_EXECUTION_MS}"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostileKind {
    PhantomOrder,
    RefusedOrderFill,
    ExecIdReused,
    StatusBeforeExecutions,
    ExecutionAfterStatus,
    /// Sent through `POST /admin/events`.
    Injected,
}

/// A reported value that differs from the truth (`exec_id_reused`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alteration {
    /// `"quantity"` or `"price"`.
    pub field: &'static str,
    /// What REST shows.
    pub truth: String,
    /// What the event said.
    pub reported: String,
}

/// One contradiction the venue sent, for the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostileRecord {
    pub kind: HostileKind,
    pub client_order_id: String,
    pub order_id: String,
    /// The executions concerned (invented ones for `phantom_order` and
    /// `refused_order_fill`; real ones otherwise).
    pub exec_ids: Vec<String>,
    /// The `event_id`s (webhook ids) of the events concerned.
    pub event_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altered: Option<Alteration>,
    pub detail: String,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub at: u64,
}

/// How one order's events are reordered, drawn when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reorder {
    /// Hold back the last `window` execution events; send them right after
    /// the final status.
    StatusFirst { window: usize },
    /// Hold back the last execution event; send it `late_execution_ms` after
    /// the final status.
    LateExecution,
}

impl Reorder {
    pub(crate) fn window(self) -> usize {
        match self {
            Reorder::StatusFirst { window } => window,
            Reorder::LateExecution => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rates_are_refused() {
        assert!(HostileConfig::default().validate().is_ok());
        let bad = [
            HostileConfig {
                phantom_order: 1.5,
                ..HostileConfig::none()
            },
            HostileConfig {
                status_before_executions: 0.6,
                execution_after_status: 0.6,
                ..HostileConfig::none()
            },
            HostileConfig {
                late_execution_ms: MAX_LATE_EXECUTION_MS + 1,
                ..HostileConfig::none()
            },
            HostileConfig {
                exec_id_reused: f64::NAN,
                ..HostileConfig::none()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
