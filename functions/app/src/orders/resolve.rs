//! An operator's decision on a flagged or unresolved order, recorded on the
//! order as a step of its own with its evidence; the order is then due, and
//! the reconciler drives it on as any other record.

use domain::order::{detail, Decision, OperatorDecision, Order, OrderId, StepFailure};

use super::{OrderError, Orders, INDEX_LAG_MS};
use crate::balances::Balances;
use crate::clock::Clock;
use crate::exchange::Exchange;
use crate::order_store::OrderStore;

/// What the operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub decision: Decision,
    pub evidence: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("evidence is required: say what the decision rests on")]
    NoEvidence,
    #[error("only a placement whose outcome is unknown can be concluded not placed")]
    NotUnknown,
    #[error(transparent)]
    Order(#[from] OrderError),
}

impl<S, B, E, C> Orders<S, B, E, C>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    pub async fn resolve(
        &self,
        id: &OrderId,
        resolution: &Resolution,
    ) -> Result<Order, ResolveError> {
        let evidence = resolution.evidence.trim();
        if evidence.is_empty() {
            return Err(ResolveError::NoEvidence);
        }
        let current = self.load(id).await?;
        let unknown = current
            .value
            .place
            .as_ref()
            .is_some_and(|p| p.step.is_processing());
        if resolution.decision == Decision::NotPlaced && !unknown {
            return Err(ResolveError::NotUnknown);
        }
        let now = self.now_ms();
        let note = OperatorDecision {
            at_ms: now,
            decision: resolution.decision,
            evidence: detail(evidence),
            cleared: current.value.recovery.flags.clone(),
        };
        let current = self
            .update(current, |o| {
                o.recovery.resolved = Some(note.clone());
                o.recovery.flags.clear();
                o.recovery.flag_detail = None;
                o.recovery.flagged_at_ms = None;
                o.recovery.condition = None;
                true
            })
            .await?;
        let current = match resolution.decision {
            Decision::NotPlaced => {
                self.fail_placement(
                    current,
                    StepFailure::NotPlaced {
                        detail: detail(&format!("operator: {evidence}")),
                    },
                )
                .await?
            }
            Decision::Acknowledged => current,
        };
        tracing::warn!(order_id = %id, decision = ?resolution.decision, evidence, "operator decision recorded");
        // The reconciler finishes it on its next run, with its own role's
        // rights at Balances (an operator's credentials may not release).
        Ok(self.due_by(current, now + INDEX_LAG_MS).await?.value)
    }
}
