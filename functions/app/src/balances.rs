//! The Balances use case: every mutation is recorded under its idempotency
//! key with its outcome, so any repeat of it is answered from the record.

use std::collections::BTreeMap;
use std::future::Future;

use domain::money::MoneyError;
use domain::{AccountId, Asset, Balance, IdempotencyKey, Operation, OperationRecord, Outcome};

use crate::clock::Clock;
use crate::ledger_store::{Applied, LedgerStore, StoreError};

/// Errors of the Balances service, as the service itself sees them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalancesError {
    #[error("this idempotency key was used for a different request")]
    KeyReused,
    #[error("unknown account")]
    UnknownAccount,
    #[error("no operation under this idempotency key")]
    OperationNotFound,
    #[error("invalid operation: {0}")]
    InvalidOperation(#[from] MoneyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An operation's record and whether this call was a replay of an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub record: OperationRecord,
    pub replayed: bool,
}

/// Times a shortfall settlement is recomputed when the balance moves under it.
const SHORTFALL_ATTEMPTS: usize = 4;

#[derive(Clone)]
pub struct BalancesService<S, C> {
    store: S,
    clock: C,
}

impl<S: LedgerStore, C: Clock> BalancesService<S, C> {
    pub fn new(store: S, clock: C) -> Self {
        BalancesService { store, clock }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs `operation` once per (account, key). A refusal for lack of funds is
    /// an outcome like success: it is stored and replayed, never retried
    /// behind the caller's back. A settlement is never refused for lack of
    /// funds: the exchange executed it, so what the account cannot cover
    /// is recorded as owed (a shortfall) in the same step.
    pub async fn execute(
        &self,
        account: AccountId,
        key: IdempotencyKey,
        operation: Operation,
    ) -> Result<Executed, BalancesError> {
        let changes = operation.changes()?;
        let record = OperationRecord {
            fingerprint: operation.fingerprint(&account),
            account,
            key,
            operation,
            outcome: Outcome::Succeeded,
            recorded_at_ms: self.clock.now_ms(),
        };
        match self.store.apply(&record, &changes).await? {
            Applied::Stored => Ok(Executed {
                record,
                replayed: false,
            }),
            Applied::AlreadyExists(existing) => replay(existing, &record.fingerprint),
            Applied::Insufficient(asset)
                if matches!(record.operation, Operation::Settle { .. }) =>
            {
                self.settle_with_shortfall(record, asset).await
            }
            Applied::Insufficient(asset) => self.refuse(record, asset).await,
        }
    }

    /// A settlement the account's balances cannot cover as asked: takes what
    /// the reservation and `available` hold and records the rest as owed.
    /// Another operation may move the balance in between; then this is
    /// computed again from the new balance.
    async fn settle_with_shortfall(
        &self,
        record: OperationRecord,
        asset: Asset,
    ) -> Result<Executed, BalancesError> {
        for _ in 0..SHORTFALL_ATTEMPTS {
            let balances = self.store.balances(&record.account).await?;
            if balances.is_empty() {
                return Err(BalancesError::UnknownAccount);
            }
            let now = balances.get(&asset).copied().unwrap_or_default();
            let (changes, outcome) = match record.operation.settle_against(now)? {
                Some((changes, asset, units)) if units > 0 => {
                    (changes, Outcome::Shortfall { asset, units })
                }
                Some((changes, _, _)) => (changes, Outcome::Succeeded),
                None => (record.operation.changes()?, Outcome::Succeeded),
            };
            let record = OperationRecord {
                outcome,
                ..record.clone()
            };
            match self.store.apply(&record, &changes).await? {
                Applied::Stored => {
                    if let Outcome::Shortfall { asset, units } = &record.outcome {
                        tracing::error!(account = %record.account, key = %record.key, %asset, units, "settlement beyond the account's funds: shortfall recorded");
                    }
                    return Ok(Executed {
                        record,
                        replayed: false,
                    });
                }
                Applied::AlreadyExists(existing) => return replay(existing, &record.fingerprint),
                Applied::Insufficient(_) => continue,
            }
        }
        Err(StoreError::Unavailable("the balance kept moving; repeat the settlement".into()).into())
    }

    async fn refuse(
        &self,
        record: OperationRecord,
        asset: Asset,
    ) -> Result<Executed, BalancesError> {
        // Only a deposit opens an account. Checked on this path alone, so a
        // successful operation costs no extra read.
        let is_deposit = matches!(record.operation, Operation::Deposit { .. });
        if !is_deposit && self.store.balances(&record.account).await?.is_empty() {
            return Err(BalancesError::UnknownAccount);
        }
        let refusal = OperationRecord {
            outcome: Outcome::Failed(domain::Failure::InsufficientFunds { asset }),
            ..record
        };
        match self.store.record_refusal(&refusal).await? {
            Applied::Stored => Ok(Executed {
                record: refusal,
                replayed: false,
            }),
            // A concurrent call with the same key got there first: its outcome stands.
            Applied::AlreadyExists(existing) => replay(existing, &refusal.fingerprint),
            Applied::Insufficient(_) => {
                Err(StoreError::Corrupt("a refusal touches no balance".into()).into())
            }
        }
    }

    pub async fn operation(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<OperationRecord, BalancesError> {
        self.store
            .operation(account, key)
            .await?
            .ok_or(BalancesError::OperationNotFound)
    }

    pub async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesError> {
        let balances = self.store.balances(account).await?;
        if balances.is_empty() {
            return Err(BalancesError::UnknownAccount);
        }
        Ok(balances)
    }
}

fn replay(existing: OperationRecord, fingerprint: &str) -> Result<Executed, BalancesError> {
    if existing.fingerprint == fingerprint {
        Ok(Executed {
            record: existing,
            replayed: true,
        })
    } else {
        Err(BalancesError::KeyReused)
    }
}

/// Errors of a call to the Balances service, as a caller sees them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalancesCallError {
    #[error("this idempotency key was used for a different request")]
    KeyReused,
    #[error("unknown account")]
    UnknownAccount,
    /// The service refused the request as malformed; repeating it will not help.
    #[error("request refused: {0}")]
    Invalid(String),
    /// The call certainly did not take effect (e.g. the connection was refused).
    #[error("balances service unavailable: {0}")]
    Unavailable(String),
    /// The call may or may not have taken effect (timeout, 5xx, connection
    /// lost after sending). Look the key up, or repeat the call with the same key.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
}

/// The Balances service as other functions call it. Every call that moves
/// value carries an idempotency key and can be looked up by it.
pub trait Balances: Send + Sync {
    /// Runs the operation once per (account, key) and returns its record,
    /// whose outcome may be a stored refusal (insufficient funds).
    fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> impl Future<Output = Result<OperationRecord, BalancesCallError>> + Send;

    /// The record stored under the key, if the operation ever took effect.
    fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> impl Future<Output = Result<Option<OperationRecord>, BalancesCallError>> + Send;

    fn balances(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = Result<BTreeMap<Asset, Balance>, BalancesCallError>> + Send;
}

impl From<BalancesError> for BalancesCallError {
    fn from(error: BalancesError) -> Self {
        match error {
            BalancesError::KeyReused => BalancesCallError::KeyReused,
            BalancesError::UnknownAccount => BalancesCallError::UnknownAccount,
            BalancesError::OperationNotFound => BalancesCallError::Invalid(error.to_string()),
            BalancesError::InvalidOperation(e) => BalancesCallError::Invalid(e.to_string()),
            BalancesError::Store(e) => BalancesCallError::OutcomeUnknown(e.to_string()),
        }
    }
}

/// In-process calls: the service is its own client (tests, simulation).
impl<S: LedgerStore, C: Clock> Balances for BalancesService<S, C> {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let executed =
            BalancesService::execute(self, account.clone(), key.clone(), operation.clone()).await?;
        Ok(executed.record)
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        match self.operation(account, key).await {
            Ok(record) => Ok(Some(record)),
            Err(BalancesError::OperationNotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        Ok(BalancesService::balances(self, account).await?)
    }
}
