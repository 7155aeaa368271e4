//! Everything one simulated run holds: the clock, the stores, the Balances
//! service, the exchange engine, the fill queue, the clients, and the fault
//! plan. Each invocation gets its own `Orders` over fault-wrapped ports.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::{OrderSettings, Orders, RetryPolicy};
use app::{BalancesService, Clock, ManualClock};
use domain::order::{Order, OrderId, OrderRequest, RecoveryPolicy};
use domain::{AccountId, Amount, Asset, Catalog, IdempotencyKey, Operation};
use exchange_sim::EngineConfig;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::faults::{FaultPlan, FaultRates, Invocation};
use super::mutants::Mutant;
use super::ports::{Findings, SimBalances, SimBalancesService, SimExchange, SimStore};
use super::queue::SimQueue;
use super::trace::Trace;
use crate::sim_exchange::{fast_fills, EngineExchange};

/// The simulated epoch: 2024-03-01T12:00:00Z.
pub const START_MS: u64 = 1_709_294_400_000;
/// Accounts trading in one run.
pub const ACCOUNTS: usize = 3;
/// Symbols traded (listed both by the exchange and by the catalog).
pub const SYMBOLS: &[&str] = &["AAPL", "MSFT", "TSLA"];

pub type SimOrders = Orders<SimStore, SimBalances, SimExchange, ManualClock>;

/// An API request a client has sent and not yet had an answer to.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub request: OrderRequest,
    pub attempts: u32,
}

pub struct World {
    pub seed: u64,
    pub clock: ManualClock,
    pub ledger: MemoryLedgerStore,
    pub balances: Arc<SimBalancesService>,
    pub store: MemoryOrderStore,
    pub exchange: Arc<EngineExchange>,
    pub queue: SimQueue,
    pub plan: FaultPlan,
    pub trace: Trace,
    /// Drives the scheduler's choices (faults have their own stream).
    pub rng: ChaCha8Rng,
    pub settings: OrderSettings,
    pub reconciler: reconciler::Settings,
    pub mutant: Option<Mutant>,
    pub catalog: Catalog,
    pub accounts: Vec<AccountId>,
    /// What was deposited per (account, asset), in minor units.
    pub deposits: BTreeMap<(AccountId, Asset), u64>,
    pub pending: Vec<ClientRequest>,
    /// The order each (account, key) answered with, as the clients saw it.
    pub answered: BTreeMap<(AccountId, IdempotencyKey), OrderId>,
    /// Every order as last seen, to check that records only ever grow.
    pub last_seen: BTreeMap<OrderId, Order>,
    pub next_key: u64,
    /// Violations found inside a step (a write that lost a record).
    pub findings: Findings,
    order_ids: Arc<Mutex<ChaCha8Rng>>,
    releases: Arc<AtomicU64>,
    invocations: u64,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[T]) -> T {
    choices[rng.gen_range(0..choices.len())]
}

/// A UUID-shaped order id drawn from the seed.
fn seeded_order_id(rng: &Mutex<ChaCha8Rng>) -> OrderId {
    let mut bytes = [0u8; 16];
    rng.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .fill_bytes(&mut bytes);
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
    pub fn new(seed: u64, mutant: Option<Mutant>) -> Self {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(master.next_u64());
        let fault_rng = ChaCha8Rng::seed_from_u64(master.next_u64());
        let order_ids = Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(master.next_u64())));
        let engine_seed = master.next_u64();

        let trace = Trace::default();
        let rates = FaultRates {
            fault: pick(&mut rng, &[0.0, 0.02, 0.08, 0.2]),
            crash_share: pick(&mut rng, &[0.2, 0.5]),
            yield_: pick(&mut rng, &[0.0, 0.2, 0.5]),
        };
        let plan = FaultPlan::new(fault_rng, rates, trace.clone());
        // The exchange sometimes cancels or expires orders part-way.
        let ends_early = rng.gen_bool(0.5);
        let engine = EngineConfig {
            cancel_probability: if ends_early { 0.1 } else { 0.0 },
            expire_probability: if ends_early { 0.1 } else { 0.0 },
            fill_interval_max_ms: pick(&mut rng, &[20, 2_000, 20_000]),
            ..fast_fills(engine_seed)
        };
        let clock = ManualClock::at(START_MS);
        let exchange = Arc::new(
            EngineExchange::new(engine, Arc::new(clock.clone())).expect("valid engine config"),
        );
        let ledger = MemoryLedgerStore::default();
        let balances = Arc::new(BalancesService::new(ledger.clone(), clock.clone()));
        // Timings vary by seed, so recovery meets orders before and after
        // their deadlines.
        let settings = OrderSettings {
            placement_window_ms: pick(&mut rng, &[5_000, 10_000, 120_000]),
            recovery: RecoveryPolicy {
                quiet_after_ms: pick(&mut rng, &[2_000, 60_000]),
                ..OrderSettings::default().recovery
            },
            ..OrderSettings::default()
        };
        let reconciler = reconciler::Settings {
            retry: RetryPolicy {
                backoff_base_ms: pick(&mut rng, &[5_000, 60_000]),
                ..RetryPolicy::default()
            },
            max_orders_per_run: pick(&mut rng, &[2, 200]),
            max_run_ms: 45_000,
            safety_margin_ms: 10_000,
        };
        trace.push(format!(
            "seed {seed}: {rates:?}, window {} ms, quiet {} ms, backoff {} ms, page {}, ends early {ends_early}",
            settings.placement_window_ms,
            settings.recovery.quiet_after_ms,
            reconciler.retry.backoff_base_ms,
            reconciler.max_orders_per_run
        ));
        let mut world = World {
            seed,
            clock,
            ledger,
            balances,
            store: MemoryOrderStore::default(),
            exchange,
            queue: SimQueue::default(),
            plan,
            trace,
            rng,
            settings,
            reconciler,
            mutant,
            catalog: Catalog::us_equities(),
            accounts: Vec::new(),
            deposits: BTreeMap::new(),
            pending: Vec::new(),
            answered: BTreeMap::new(),
            last_seen: BTreeMap::new(),
            next_key: 0,
            findings: Findings::default(),
            order_ids,
            releases: Arc::new(AtomicU64::new(0)),
            invocations: 0,
        };
        world.fund_accounts();
        world
    }

    /// Deposits straight at the service (outside the simulated faults).
    fn fund_accounts(&mut self) {
        for n in 0..ACCOUNTS {
            let account = AccountId::parse(&format!("acct-{n}")).expect("valid account");
            // One account is poor, so some orders are refused for funds.
            let cash_cents = if n == 0 {
                200_000
            } else {
                self.rng.gen_range(5_000_000..=30_000_000)
            };
            let mut assets = vec![(Asset::Cash, cash_cents)];
            for symbol in SYMBOLS {
                let symbol = self.catalog.symbol(symbol).expect("listed");
                assets.push((Asset::Shares(symbol), self.rng.gen_range(0..=100)));
            }
            for (asset, units) in assets {
                if units == 0 {
                    continue;
                }
                let key =
                    IdempotencyKey::parse(&format!("deposit:{}", asset.code())).expect("valid key");
                let operation = Operation::Deposit {
                    asset: asset.clone(),
                    amount: Amount::new(units).expect("positive"),
                };
                futures::executor::block_on(self.balances.execute(account.clone(), key, operation))
                    .expect("deposit");
                self.deposits.insert((account.clone(), asset), units);
            }
            self.accounts.push(account);
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh invocation named after what triggered it, with its own ports.
    pub fn invocation(&mut self, what: &str) -> (SimOrders, Arc<Invocation>) {
        self.invocations += 1;
        let invocation = Invocation::new(format!("{what}#{}", self.invocations), self.plan.clone());
        let orders = Orders::new(
            SimStore {
                inner: self.store.clone(),
                invocation: invocation.clone(),
                mutant: self.mutant,
                findings: self.findings.clone(),
            },
            SimBalances {
                inner: self.balances.clone(),
                invocation: invocation.clone(),
                mutant: self.mutant,
                releases: self.releases.clone(),
            },
            SimExchange {
                inner: self.exchange.clone(),
                invocation: invocation.clone(),
            },
            self.clock.clone(),
            self.settings.clone(),
        );
        let ids = self.order_ids.clone();
        (
            orders.with_order_ids(move || seeded_order_id(&ids)),
            invocation,
        )
    }

    pub fn note(&self, line: String) {
        self.trace
            .push(format!("[t+{}ms] {line}", self.now_ms() - START_MS));
    }
}
