//! Faults the local runner injects into the Balances calls of the handlers
//! (the exchange simulator injects its own): a call fails before it takes
//! effect, or takes effect and its answer is lost. Seeded, and only until a
//! given time or until the process is told to stop them (`SIGUSR1`), so a
//! run can stop the faults and watch the platform converge.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use app::balances::{Balances, BalancesCallError};
use app::Clock;
use domain::{AccountId, Asset, Balance, IdempotencyKey, Operation, OperationRecord};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// When the injected faults stop (Unix ms), shared by every faulty client
/// of a process so one signal stops them all.
#[derive(Debug, Clone)]
pub struct FaultSwitch(Arc<AtomicU64>);

impl FaultSwitch {
    pub fn until(until_ms: u64) -> Self {
        FaultSwitch(Arc::new(AtomicU64::new(until_ms)))
    }

    /// Faults stop now.
    pub fn stop(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    pub fn active(&self, now_ms: u64) -> bool {
        now_ms < self.0.load(Ordering::SeqCst)
    }
}

pub struct FaultyBalances<B> {
    inner: B,
    rate: f64,
    switch: FaultSwitch,
    rng: Mutex<ChaCha8Rng>,
}

impl<B> FaultyBalances<B> {
    /// Each mutating call fails with probability `rate` (half before, half
    /// after its effect) while `switch` is on.
    pub fn new(inner: B, rate: f64, switch: FaultSwitch, seed: u64) -> Self {
        FaultyBalances {
            inner,
            rate,
            switch,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// `None`: no fault; `Some(true)`: after the effect; `Some(false)`: before it.
    fn draw(&self) -> Option<bool> {
        if !self.switch.active(app::SystemClock.now_ms()) {
            return None;
        }
        let mut rng = self.rng.lock().ok()?;
        (rng.gen::<f64>() < self.rate).then(|| rng.gen::<bool>())
    }
}

impl<B: Balances> Balances for FaultyBalances<B> {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        match self.draw() {
            None => self.inner.execute(account, key, operation).await,
            Some(false) => Err(BalancesCallError::Unavailable(
                "injected: failed before sending".into(),
            )),
            Some(true) => {
                let _ = self.inner.execute(account, key, operation).await;
                Err(BalancesCallError::OutcomeUnknown(
                    "injected: answer lost after the effect".into(),
                ))
            }
        }
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        self.inner.lookup(account, key).await
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        self.inner.balances(account).await
    }
}
