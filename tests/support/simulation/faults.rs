//! Faults at every port call, chosen by the seed: each call passes, fails
//! before its effect, fails after it (the answer is lost), or crashes the
//! invocation there (before or after the effect; every later call of that
//! invocation fails, as nothing runs after a crash). A call may also yield,
//! so that two invocations run interleaved.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::trace::Trace;

/// Every crash point the order flow can reach: (port.operation, has an
/// effect). Effectful calls crash before or after their effect; a read only
/// before (after a read, nothing was changed to lose).
pub const CRASH_POINTS: &[(&str, bool)] = &[
    ("store.claim_key", true),
    ("store.insert", true),
    ("store.save", true),
    ("store.load", false),
    ("store.fill", false),
    ("store.put_fill", true),
    ("store.next_waiting", false),
    ("store.fills", false),
    ("store.due_orders", false),
    ("store.cursor", false),
    ("store.save_cursor", true),
    ("balances.reserve", true),
    ("balances.settle", true),
    ("balances.release", true),
    ("exchange.place", true),
    ("exchange.cancel", true),
    ("exchange.order", false),
    ("exchange.executions", false),
    ("exchange.reference_price", false),
    ("exchange.clock", false),
    ("exchange.day_orders", false),
];

/// Every named crash point, `"<before|after> <port.operation>"`.
pub fn all_crash_points() -> Vec<String> {
    let mut points = Vec::new();
    for (point, effectful) in CRASH_POINTS {
        points.push(format!("before {point}"));
        if *effectful {
            points.push(format!("after {point}"));
        }
    }
    points.sort();
    points
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    FailBefore,
    FailAfter,
    CrashBefore,
    CrashAfter,
}

/// How often things go wrong in one run (drawn from the seed).
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// Chance that a call fails or crashes.
    pub fault: f64,
    /// Of the faults, the share that are crashes.
    pub crash_share: f64,
    /// Chance that a call yields to another invocation running alongside.
    pub yield_: f64,
}

struct State {
    rng: ChaCha8Rng,
    rates: FaultRates,
    enabled: bool,
    crash_hits: BTreeMap<String, u64>,
    faults_injected: u64,
}

/// The seeded fault plan shared by every wrapper of one run.
#[derive(Clone)]
pub struct FaultPlan {
    state: Arc<Mutex<State>>,
    trace: Trace,
}

impl FaultPlan {
    pub fn new(rng: ChaCha8Rng, rates: FaultRates, trace: Trace) -> Self {
        let state = State {
            rng,
            rates,
            enabled: true,
            crash_hits: BTreeMap::new(),
            faults_injected: 0,
        };
        FaultPlan {
            state: Arc::new(Mutex::new(state)),
            trace,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Faults stop (the liveness phase); calls still pass through.
    pub fn disable(&self) {
        self.lock().enabled = false;
    }

    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    pub fn crash_hits(&self) -> BTreeMap<String, u64> {
        self.lock().crash_hits.clone()
    }

    pub fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    fn decide(&self, effectful: bool) -> (Fault, bool) {
        let mut state = self.lock();
        if !state.enabled {
            return (Fault::Pass, false);
        }
        let rates = state.rates;
        let yields = state.rng.gen_bool(rates.yield_);
        if !state.rng.gen_bool(rates.fault) {
            return (Fault::Pass, yields);
        }
        state.faults_injected += 1;
        let crash = state.rng.gen_bool(rates.crash_share);
        let after = effectful && state.rng.gen_bool(0.5);
        let fault = match (crash, after) {
            (false, false) => Fault::FailBefore,
            (false, true) => Fault::FailAfter,
            (true, false) => Fault::CrashBefore,
            (true, true) => Fault::CrashAfter,
        };
        (fault, yields)
    }

    fn count_crash(&self, name: String) {
        *self.lock().crash_hits.entry(name).or_default() += 1;
    }
}

/// One Lambda invocation (or one API request): a crash ends it.
pub struct Invocation {
    pub name: String,
    crashed: AtomicBool,
    plan: FaultPlan,
}

impl Invocation {
    pub fn new(name: String, plan: FaultPlan) -> Arc<Self> {
        Arc::new(Invocation {
            name,
            crashed: AtomicBool::new(false),
            plan,
        })
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Runs one port call under the plan. `lost` makes the error a caller
    /// sees when the outcome is unknown; `refused` when the call surely did
    /// not happen.
    pub async fn call<T, E>(
        &self,
        point: &str,
        effectful: bool,
        call: impl Future<Output = Result<T, E>>,
        refused: impl Fn(String) -> E,
        lost: impl Fn(String) -> E,
    ) -> Result<T, E> {
        if self.crashed() {
            return Err(refused(format!("{} is gone", self.name)));
        }
        let (fault, yields) = self.plan.decide(effectful);
        if yields {
            YieldOnce(false).await;
            if self.crashed() {
                return Err(refused(format!("{} is gone", self.name)));
            }
        }
        let note = |what: &str| {
            self.plan
                .trace
                .push(format!("  {} {what} {point}", self.name));
        };
        match fault {
            Fault::Pass => call.await,
            Fault::FailBefore => {
                note("fails before");
                Err(refused(format!("injected: fails before {point}")))
            }
            Fault::FailAfter => {
                note("fails after");
                let _ = call.await;
                Err(lost(format!("injected: answer of {point} lost")))
            }
            Fault::CrashBefore | Fault::CrashAfter => {
                let after = fault == Fault::CrashAfter;
                if after {
                    let _ = call.await;
                }
                let name = format!("{} {point}", if after { "after" } else { "before" });
                note(&format!(
                    "CRASHES {}",
                    if after { "after" } else { "before" }
                ));
                self.crashed.store(true, Ordering::SeqCst);
                self.plan.count_crash(name);
                Err(lost(format!("crashed at {point}")))
            }
        }
    }
}

/// Returns `Pending` once (waking itself at once), so that whatever runs
/// alongside gets a turn: a deterministic interleaving point.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}
