//! The state of one run: the clock, the in-memory stores, the Balances
//! service, the exchange engine, the venue's webhooks, the fill queue, the
//! clients, and what the oracle has seen so far. Every invocation (an API
//! request, a fill batch, a reconciler run) gets its own `Orders` over
//! fault-wrapped ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use app::exchange::{Exchange, VenueClock};
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::Orders;
use app::{BalancesService, Clock, ManualClock};
use domain::order::OrderId;
use domain::{AccountId, Amount, Asset, Catalog, IdempotencyKey, Operation};
use futures::FutureExt;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clients::Clients;
use crate::faults::{FaultPlan, Invocation};
use crate::mutants::Mutant;
use crate::network::{Held, Network};
use crate::ports::{SimBalances, SimExchange, SimStore};
use crate::queue::SimQueue;
use crate::scenario::Scenario;
use crate::sim_exchange::EngineExchange;
use crate::trace::Trace;
use crate::webhooks::Webhooks;

pub type SimBalancesService = BalancesService<MemoryLedgerStore, ManualClock>;
pub type SimOrders = Orders<SimStore, SimBalances, SimExchange, ManualClock>;

/// The result of an in-memory call, which never waits.
pub fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    future
        .now_or_never()
        .expect("an in-memory call completes at once")
}

/// What the harness saw happen in the current step (the oracle checks
/// what was touched), and facts it keeps for the whole run.
#[derive(Debug, Default)]
pub struct Observations {
    /// Orders something happened to in this step.
    pub orders: BTreeSet<OrderId>,
    /// Balances keys called in this step, with their account.
    pub keys: BTreeSet<(AccountId, IdempotencyKey)>,
    /// When each order's placement was first attempted (an event number),
    /// held sends included.
    pub first_send: BTreeMap<OrderId, u64>,
    /// When a reconciler run last saved a change to each order beyond its
    /// recovery bookkeeping (progress recovery made on it).
    pub recovered_at: BTreeMap<OrderId, u64>,
    /// When each order was flagged `Stuck`, and when recovery had last
    /// made progress on it by then.
    pub stuck_flagged: BTreeMap<OrderId, (u64, Option<u64>)>,
}

/// What every invocation of a run shares: the clock, the venue, the fault
/// plan, the network, the observations.
pub struct Shared {
    pub clock: ManualClock,
    pub exchange: Arc<EngineExchange>,
    plan: Mutex<FaultPlan>,
    net: Mutex<Network>,
    seen: Mutex<Observations>,
    pub trace: Trace,
    pub start_ms: u64,
    pub mutant: Option<Mutant>,
    /// The venue's clock as the platform measures it: the true offset off
    /// by an error within the policy's `clock_skew_margin_ms`.
    pub measured_clock: VenueClock,
    /// Orders events (sends, cancel requests) for rules about "before".
    events: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn plan(&self) -> MutexGuard<'_, FaultPlan> {
        lock(&self.plan)
    }

    pub fn seen(&self) -> MutexGuard<'_, Observations> {
        lock(&self.seen)
    }

    pub fn net(&self) -> MutexGuard<'_, Network> {
        lock(&self.net)
    }

    /// The next event number.
    pub fn event(&self) -> u64 {
        self.events.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A trace line stamped with the run's time.
    pub fn note(&self, line: impl FnOnce() -> String) {
        let elapsed = self.now_ms().saturating_sub(self.start_ms);
        self.trace
            .line(|| format!("[{:>9.3}s] {}", elapsed as f64 / 1000.0, line()));
    }

    pub fn touch(&self, id: &OrderId) {
        self.seen().orders.insert(id.clone());
    }

    /// Moves the clock forward to `to_ms`, landing every request in flight
    /// at its own time on the way.
    pub fn advance_to(&self, to_ms: u64) {
        loop {
            let landing = self.net().next_landing(to_ms);
            let Some((at_ms, held)) = landing else {
                break;
            };
            self.set_clock(at_ms);
            self.land(held);
        }
        self.set_clock(to_ms);
    }

    fn set_clock(&self, at_ms: u64) {
        let now = self.clock.now_ms();
        if at_ms > now {
            self.clock.advance_ms(at_ms - now);
        }
    }

    /// A held request reaches the venue: past every fault, it already left.
    fn land(&self, held: Held) {
        let id = held.client_order_id().clone();
        self.touch(&id);
        match held {
            Held::Place(request) => {
                let outcome = ready(Exchange::place(&*self.exchange, &request));
                self.note(|| format!("  late placement of {id} lands: {outcome:?}"));
            }
            Held::Cancel {
                client_order_id,
                venue_order_id,
            } => {
                let outcome = ready(Exchange::cancel(
                    &*self.exchange,
                    &client_order_id,
                    venue_order_id.as_deref(),
                ));
                self.note(|| format!("  late cancel of {id} lands: {outcome:?}"));
            }
        }
    }

    /// Holds `request` in the network for `delay_ms`.
    pub fn hold(&self, delay_ms: u64, request: Held) {
        let at = self.now_ms() + delay_ms;
        self.net().hold(at, request);
    }
}

/// One run.
pub struct World {
    pub scenario: Scenario,
    pub shared: Arc<Shared>,
    pub ledger: MemoryLedgerStore,
    pub balances: Arc<SimBalancesService>,
    pub store: MemoryOrderStore,
    pub queue: SimQueue,
    pub webhooks: Webhooks,
    pub clients: Clients,
    pub catalog: Catalog,
    /// What each account was given at the start: (account, asset, units).
    pub deposits: Vec<(AccountId, Asset, u64)>,
    /// What the clients saw go wrong in an answer (checked with the oracle's).
    pub findings: Vec<String>,
    /// The scheduler's choices (faults draw from their own stream).
    pub rng: ChaCha8Rng,
    order_ids: Arc<Mutex<ChaCha8Rng>>,
    invocations: u64,
}

/// A UUID-shaped order id drawn from the seed.
fn seeded_order_id(rng: &Mutex<ChaCha8Rng>) -> OrderId {
    let mut bytes = [0u8; 16];
    lock(rng).fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    OrderId::parse(&text).expect("a UUID is an order id")
}

impl World {
    pub fn new(scenario: Scenario, mutant: Option<Mutant>, trace: Trace) -> Self {
        let mut master = ChaCha8Rng::seed_from_u64(scenario.seed ^ 0x005E_ED0F_5EED);
        let rng = ChaCha8Rng::seed_from_u64(master.next_u64());
        let fault_rng = ChaCha8Rng::seed_from_u64(master.next_u64());
        let order_ids = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(master.next_u64())));
        let queue_rng = ChaCha8Rng::seed_from_u64(master.next_u64());

        let clock = ManualClock::at(scenario.start_ms);
        let exchange = EngineExchange::new(scenario.engine.clone(), clock.clone())
            .expect("the scenario's engine configuration is valid")
            .with_clock_offset(scenario.clock_offset_ms);
        let measured_clock = VenueClock {
            offset_ms: scenario.clock_offset_ms + scenario.clock_error_ms,
            uncertainty_ms: scenario.clock_error_ms.unsigned_abs(),
        };
        let shared = Arc::new(Shared {
            clock: clock.clone(),
            exchange: Arc::new(exchange),
            plan: Mutex::new(FaultPlan::new(fault_rng, scenario.rates.clone())),
            net: Mutex::new(Network::default()),
            seen: Mutex::new(Observations::default()),
            trace,
            start_ms: scenario.start_ms,
            mutant,
            measured_clock,
            events: AtomicU64::new(0),
        });
        shared.note(|| format!("{scenario}"));
        let ledger = MemoryLedgerStore::default();
        let balances = Arc::new(BalancesService::new(ledger.clone(), clock));
        let catalog = Catalog::us_equities();
        let clients = Clients::new(&scenario, &catalog);
        let mut world = World {
            webhooks: Webhooks::new(&scenario),
            queue: SimQueue::new(queue_rng),
            scenario,
            shared,
            ledger,
            balances,
            store: MemoryOrderStore::default(),
            clients,
            catalog,
            deposits: Vec::new(),
            findings: Vec::new(),
            rng,
            order_ids,
            invocations: 0,
        };
        world.fund_accounts();
        world
    }

    /// Deposits straight at the service, before anything else runs.
    fn fund_accounts(&mut self) {
        let funding = self.clients.funding(&self.catalog);
        for (account, asset, units) in funding {
            let key =
                IdempotencyKey::parse(&format!("deposit:{}", asset.code())).expect("a valid key");
            let operation = Operation::Deposit {
                asset: asset.clone(),
                amount: Amount::new(units).expect("a positive deposit"),
            };
            ready(self.balances.execute(account.clone(), key, operation))
                .expect("an in-memory deposit succeeds");
            self.deposits.push((account, asset, units));
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.shared.now_ms()
    }

    pub fn note(&self, line: impl FnOnce() -> String) {
        self.shared.note(line);
    }

    /// Something a client's answer shows to be wrong.
    pub fn finding(&mut self, text: String) {
        self.note(|| format!("FINDING: {text}"));
        self.findings.push(text);
    }

    /// A fresh invocation named after what triggered it, with its own ports.
    pub fn orders(&mut self, what: &str) -> (SimOrders, Arc<Invocation>) {
        self.invocations += 1;
        let invocation =
            Invocation::new(format!("{what}#{}", self.invocations), self.shared.clone());
        let orders = Orders::new(
            SimStore {
                inner: self.store.clone(),
                invocation: invocation.clone(),
            },
            SimBalances {
                inner: self.balances.clone(),
                ledger: self.ledger.clone(),
                invocation: invocation.clone(),
            },
            SimExchange {
                inner: self.shared.exchange.clone(),
                invocation: invocation.clone(),
            },
            self.shared.clock.clone(),
            self.scenario.settings.clone(),
        );
        let ids = self.order_ids.clone();
        (
            orders.with_order_ids(move || seeded_order_id(&ids)),
            invocation,
        )
    }

    /// Moves the clock forward by `delta_ms` (late requests land on the way).
    pub fn pass_ms(&self, delta_ms: u64) {
        self.shared.advance_to(self.now_ms() + delta_ms);
    }

    pub fn pass_to(&self, at_ms: u64) {
        self.shared.advance_to(at_ms.max(self.now_ms()));
    }

    /// Everything the venue reported since the last look becomes webhook
    /// deliveries.
    pub fn collect_venue_events(&mut self) {
        let events = self.shared.exchange.take_events();
        for event in &events {
            if let Ok(id) = OrderId::parse(&event.client_order_id) {
                self.shared.touch(&id);
            }
        }
        let offset = self.scenario.clock_offset_ms;
        self.webhooks
            .schedule(events, offset, &mut self.rng, self.shared.plan().enabled());
    }

    /// Accounts that trade in this run.
    pub fn accounts(&self) -> &[AccountId] {
        &self.clients.accounts
    }

    /// What the platform's Balances ledger holds for `account`.
    pub fn balances_of(&self, account: &AccountId) -> BTreeMap<Asset, domain::Balance> {
        ready(app::LedgerStore::balances(&self.ledger, account)).unwrap_or_default()
    }
}
