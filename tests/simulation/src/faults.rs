//! Faults at every port call, drawn from the seed. A call passes, fails
//! before its effect (refused), fails after it (the answer is lost), is
//! held in the network and lands later (placements and cancels), or crashes
//! its invocation there, before or after the effect: nothing the
//! invocation would do after a crash happens (every later call of it
//! fails, and its answer never reaches anyone). A call may also yield, so
//! that invocations running side by side interleave, and each call takes a
//! little time.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::world::Shared;

/// The port an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    Store,
    Balances,
    Exchange,
    Queue,
}

/// Every port operation the platform performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    ClaimKey,
    Insert,
    Load,
    Save,
    Fill,
    PutFill,
    NextWaiting,
    Fills,
    ListForAccount,
    DueOrders,
    Cursor,
    SaveCursor,
    Reserve,
    Settle,
    Release,
    Place,
    Cancel,
    Order,
    Executions,
    ReferencePrice,
    Clock,
    DayOrders,
    QueueSend,
    QueueSetAside,
}

impl Call {
    pub const ALL: [Call; 24] = [
        Call::ClaimKey,
        Call::Insert,
        Call::Load,
        Call::Save,
        Call::Fill,
        Call::PutFill,
        Call::NextWaiting,
        Call::Fills,
        Call::ListForAccount,
        Call::DueOrders,
        Call::Cursor,
        Call::SaveCursor,
        Call::Reserve,
        Call::Settle,
        Call::Release,
        Call::Place,
        Call::Cancel,
        Call::Order,
        Call::Executions,
        Call::ReferencePrice,
        Call::Clock,
        Call::DayOrders,
        Call::QueueSend,
        Call::QueueSetAside,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Call::ClaimKey => "store.claim_key",
            Call::Insert => "store.insert",
            Call::Load => "store.load",
            Call::Save => "store.save",
            Call::Fill => "store.fill",
            Call::PutFill => "store.put_fill",
            Call::NextWaiting => "store.next_waiting",
            Call::Fills => "store.fills",
            Call::ListForAccount => "store.list_for_account",
            Call::DueOrders => "store.due_orders",
            Call::Cursor => "store.cursor",
            Call::SaveCursor => "store.save_cursor",
            Call::Reserve => "balances.reserve",
            Call::Settle => "balances.settle",
            Call::Release => "balances.release",
            Call::Place => "exchange.place",
            Call::Cancel => "exchange.cancel",
            Call::Order => "exchange.order",
            Call::Executions => "exchange.executions",
            Call::ReferencePrice => "exchange.reference_price",
            Call::Clock => "exchange.clock",
            Call::DayOrders => "exchange.day_orders",
            Call::QueueSend => "queue.send",
            Call::QueueSetAside => "queue.set_aside",
        }
    }

    pub fn port(self) -> Port {
        match self {
            Call::ClaimKey
            | Call::Insert
            | Call::Load
            | Call::Save
            | Call::Fill
            | Call::PutFill
            | Call::NextWaiting
            | Call::Fills
            | Call::ListForAccount
            | Call::DueOrders
            | Call::Cursor
            | Call::SaveCursor => Port::Store,
            Call::Reserve | Call::Settle | Call::Release => Port::Balances,
            Call::Place
            | Call::Cancel
            | Call::Order
            | Call::Executions
            | Call::ReferencePrice
            | Call::Clock
            | Call::DayOrders => Port::Exchange,
            Call::QueueSend | Call::QueueSetAside => Port::Queue,
        }
    }

    /// The call changes something (so it can fail or crash after its effect).
    pub fn effectful(self) -> bool {
        matches!(
            self,
            Call::ClaimKey
                | Call::Insert
                | Call::Save
                | Call::PutFill
                | Call::SaveCursor
                | Call::Reserve
                | Call::Settle
                | Call::Release
                | Call::Place
                | Call::Cancel
                | Call::QueueSend
                | Call::QueueSetAside
        )
    }

    /// Simulated time one call takes, at most (a DynamoDB write, a call
    /// across the network to Balances or the venue).
    fn max_latency_ms(self) -> u64 {
        match self.port() {
            Port::Store | Port::Queue => 4,
            Port::Balances => 15,
            Port::Exchange => 60,
        }
    }
}

/// Where an invocation can crash: at a call, before or after its effect. A
/// read has only "before" (after it, nothing changed that could be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrashPoint {
    pub call: Call,
    pub after: bool,
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = if self.after { "after" } else { "before" };
        write!(f, "{when} {}", self.call.name())
    }
}

/// Every crash point of the store, Balances and the exchange: each must be
/// hit in every CI run (the queue's are exercised too, not counted).
pub fn all_crash_points() -> Vec<CrashPoint> {
    let mut points = Vec::new();
    for call in Call::ALL {
        if call.port() == Port::Queue {
            continue;
        }
        points.push(CrashPoint { call, after: false });
        if call.effectful() {
            points.push(CrashPoint { call, after: true });
        }
    }
    points
}

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Refused: it surely did not take effect.
    FailBefore,
    /// It took effect; its answer is lost.
    FailAfter,
    CrashBefore,
    CrashAfter,
    /// Held in the network; it lands this much later (the caller times out).
    InFlight {
        delay_ms: u64,
    },
}

/// A service down for a while: every call to it is refused.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub port: Port,
    pub from_ms: u64,
    pub until_ms: u64,
}

/// How often things go wrong in one run (drawn from the seed).
#[derive(Debug, Clone)]
pub struct FaultRates {
    /// Chance that a call fails (before or after its effect).
    pub fail: f64,
    /// Chance that an invocation crashes at a call.
    pub crash: f64,
    /// Chance that a placement or cancel is held in the network.
    pub in_flight: f64,
    /// Longest a held request stays in the network (within the policy's
    /// `max_in_flight_ms`, as the platform is entitled to assume).
    pub max_flight_ms: u64,
    /// Chance that a call lets another invocation run first.
    pub yield_: f64,
    /// One crash point this seed exercises hard, and how often it crashes there.
    pub focus: Option<(CrashPoint, f64)>,
    pub outages: Vec<Outage>,
}

/// The seeded fault plan of one run.
pub struct FaultPlan {
    rng: ChaCha8Rng,
    pub rates: FaultRates,
    enabled: bool,
    pub hits: BTreeMap<CrashPoint, u64>,
    pub injected: u64,
}

impl FaultPlan {
    pub fn new(rng: ChaCha8Rng, rates: FaultRates) -> Self {
        FaultPlan {
            rng,
            rates,
            enabled: true,
            hits: BTreeMap::new(),
            injected: 0,
        }
    }

    /// Faults stop (the liveness phase); calls still take their time.
    pub fn disable(&mut self) {
        self.enabled = false;
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The fate of one call at `now_ms`, whether it yields first, and its latency.
    pub fn decide(&mut self, call: Call, now_ms: u64) -> (Fault, bool, u64) {
        let latency = self.rng.gen_range(0..=call.max_latency_ms());
        if !self.enabled {
            return (Fault::Pass, false, latency);
        }
        let yields = self.rates.yield_ > 0.0 && self.rng.gen_bool(self.rates.yield_);
        let down = self
            .rates
            .outages
            .iter()
            .any(|o| o.port == call.port() && (o.from_ms..o.until_ms).contains(&now_ms));
        if down {
            self.injected += 1;
            return (Fault::FailBefore, yields, latency);
        }
        if let Some((point, p)) = self.rates.focus {
            if point.call == call && self.rng.gen_bool(p) {
                self.injected += 1;
                let fault = if point.after {
                    Fault::CrashAfter
                } else {
                    Fault::CrashBefore
                };
                return (fault, yields, latency);
            }
        }
        if self.rng.gen_bool(self.rates.crash) {
            self.injected += 1;
            let after = call.effectful() && self.rng.gen_bool(0.5);
            let fault = if after {
                Fault::CrashAfter
            } else {
                Fault::CrashBefore
            };
            return (fault, yields, latency);
        }
        let held = matches!(call, Call::Place | Call::Cancel)
            && self.rates.in_flight > 0.0
            && self.rng.gen_bool(self.rates.in_flight);
        if held {
            self.injected += 1;
            let delay_ms = self.rng.gen_range(1..=self.rates.max_flight_ms.max(1));
            return (Fault::InFlight { delay_ms }, yields, latency);
        }
        if self.rng.gen_bool(self.rates.fail) {
            self.injected += 1;
            let after = call.effectful() && self.rng.gen_bool(0.5);
            let fault = if after {
                Fault::FailAfter
            } else {
                Fault::FailBefore
            };
            return (fault, yields, latency);
        }
        (Fault::Pass, yields, latency)
    }
}

/// One Lambda invocation (or one API request): a crash ends it.
pub struct Invocation {
    pub name: String,
    crashed: AtomicBool,
    /// Calls that change something, attempted so far.
    writes: AtomicU64,
    shared: Arc<Shared>,
}

impl Invocation {
    pub fn new(name: String, shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Invocation {
            name,
            crashed: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            shared,
        })
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Before a port call: the invocation still runs, the call takes its
    /// time, maybe another invocation goes first; then the plan decides.
    /// `Err` when the invocation is gone (crashed earlier).
    pub async fn enter(&self, call: Call) -> Result<Fault, String> {
        if self.crashed() {
            return Err(format!("{} is gone", self.name));
        }
        if call.effectful() {
            self.writes.fetch_add(1, Ordering::SeqCst);
        }
        let now = self.shared.now_ms();
        let (fault, yields, latency_ms) = self.shared.plan().decide(call, now);
        if yields {
            YieldOnce(false).await;
        }
        self.shared.advance_to(self.shared.now_ms() + latency_ms);
        if self.crashed() {
            return Err(format!("{} is gone", self.name));
        }
        if fault != Fault::Pass {
            self.shared
                .note(|| format!("  {} {fault:?} at {}", self.name, call.name()));
        }
        Ok(fault)
    }

    /// Marks the invocation crashed at `point` and counts the hit.
    pub fn crash(&self, call: Call, after: bool) {
        self.crashed.store(true, Ordering::SeqCst);
        *self
            .shared
            .plan()
            .hits
            .entry(CrashPoint { call, after })
            .or_default() += 1;
    }

    /// Runs one port call under the plan. `refused` makes the error a caller
    /// sees when the call surely did not happen, `lost` when its outcome is
    /// unknown. A fault that holds a request in the network is the caller's
    /// to handle (see `ports`); here it counts as a lost answer.
    pub async fn call<T, E>(
        &self,
        call: Call,
        work: impl Future<Output = Result<T, E>>,
        refused: impl Fn(String) -> E,
        lost: impl Fn(String) -> E,
    ) -> Result<T, E> {
        let fault = match self.enter(call).await {
            Ok(fault) => fault,
            Err(gone) => return Err(refused(gone)),
        };
        self.perform(call, fault, work, refused, lost).await
    }

    /// Carries out `fault` on `work`.
    pub async fn perform<T, E>(
        &self,
        call: Call,
        fault: Fault,
        work: impl Future<Output = Result<T, E>>,
        refused: impl Fn(String) -> E,
        lost: impl Fn(String) -> E,
    ) -> Result<T, E> {
        let name = call.name();
        match fault {
            Fault::Pass => work.await,
            Fault::FailBefore => Err(refused(format!("injected: {name} refused"))),
            Fault::FailAfter | Fault::InFlight { .. } => {
                let _ = work.await;
                Err(lost(format!("injected: the answer of {name} was lost")))
            }
            Fault::CrashBefore => {
                self.crash(call, false);
                Err(lost(format!("crashed before {name}")))
            }
            Fault::CrashAfter => {
                let _ = work.await;
                self.crash(call, true);
                Err(lost(format!("crashed after {name}")))
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
