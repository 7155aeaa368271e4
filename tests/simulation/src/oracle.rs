//! The oracle: DESIGN §7, checked from outside the platform. The truth is
//! the venue's audit (what it holds and executed, the contradictions it
//! sent) and the Balances ledger (every operation under its key, every
//! balance); what the clients were answered; and what the harness saw the
//! platform send. The platform's records are read only for what it claims
//! (an order closed, concluded "not placed", flagged), each claim judged
//! against that truth, never for its own totals or status.
//!
//! After every step, for what the step touched: settlements match venue
//! executions; no order uses more than it reserved; balances move only by
//! settlements; a closed order has nothing left at the venue or in its
//! reservation; no "not placed" conclusion the venue contradicts; market
//! orders carry their protection; no placement starts after an accepted
//! cancel. Once the faults stopped and the run went quiet: everything
//! above for everything, every order closed, every venue execution
//! settled once with its terms, reservations back to zero, balances equal
//! to deposits ± venue executions, every flag explained, every accepted
//! cancel carried out in time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use app::LedgerStore;
use domain::order::{pending_condition, FlagReason, Order, OrderId, StepFailure};
use domain::{AccountId, Asset, IdempotencyKey, Operation, OperationRecord, Outcome, Side};
use exchange_sim::hostile::HostileKind;
use exchange_sim::order::{Order as VenueOrder, OrderType as VenueOrderType};

use crate::scenario::Scenario;
use crate::world::{ready, World};

/// Violations kept per run (the first ones explain it).
const MAX_VIOLATIONS: usize = 20;

/// What the Balances ledger holds for one order, from its operation records.
#[derive(Debug, Default)]
struct Books {
    account: Option<AccountId>,
    /// The reservation, once it took effect.
    reserved: Option<u64>,
    /// Units of the reservation settlements took.
    consumed: u64,
    /// Units given back (on their own, or riding on the last settlement).
    returned: u64,
    /// exec id → (shares, cents) of each settlement.
    settles: BTreeMap<String, (u64, u64)>,
    shortfall: bool,
}

/// When a flag was first seen on an order, whether faults were on then,
/// and whether the venue was still working the order.
#[derive(Debug, Clone, Copy)]
struct FlagSeen {
    at_ms: u64,
    during_faults: bool,
    venue_open: bool,
    /// How long the order had carried a condition without a break and
    /// without progress by recovery when the flag was first seen.
    unresolved_ms: u64,
}

pub struct Oracle {
    deposits: BTreeMap<(AccountId, Asset), u64>,
    accounted: HashSet<(AccountId, IdempotencyKey)>,
    books: BTreeMap<OrderId, Books>,
    /// Σ of what settlements moved, per account and asset.
    settled: BTreeMap<(AccountId, Asset), i128>,
    owed: BTreeMap<(AccountId, Asset), u64>,
    flags: BTreeMap<(OrderId, FlagReason), FlagSeen>,
    /// When each open order was last seen carrying no condition at all.
    healthy_ms: BTreeMap<OrderId, u64>,
    collar_bps: u64,
    offset_ms: i64,
    /// When the reconciler's first run after the faults stopped finished
    /// everything due (a backlog of thousands of overdue orders takes runs).
    caught_up_ms: Option<u64>,
    pub violations: Vec<String>,
}

/// The venue itself sent a second report of `exec` with other terms (the
/// `exec_id_reused` contradiction). Delivered before the true one, it looks
/// like any first report; the platform can only flag the conflict when the
/// true one comes (see [`Oracle::finish`]).
fn altered_by_venue(world: &World, exec: &str) -> bool {
    world.shared.exchange.with_engine(|e| {
        e.hostile_events()
            .iter()
            .any(|h| h.kind == HostileKind::ExecIdReused && h.exec_ids.iter().any(|x| x == exec))
    })
}

/// Units of the paying asset an execution costs: cash for a buy, shares for a sell.
fn cost(side: Side, shares: u64, cents: u64) -> u64 {
    match side {
        Side::Buy => shares * cents,
        Side::Sell => shares,
    }
}

fn venue_side(order: &VenueOrder) -> Side {
    match order.side {
        exchange_sim::order::Side::Buy => Side::Buy,
        exchange_sim::order::Side::Sell => Side::Sell,
    }
}

fn venue_executions(order: &VenueOrder) -> BTreeMap<String, (u64, u64)> {
    order
        .executions
        .iter()
        .map(|e| (e.exec_id.clone(), (e.quantity.shares(), e.price.cents())))
        .collect()
}

impl Oracle {
    pub fn new(scenario: &Scenario, deposits: &[(AccountId, Asset, u64)]) -> Self {
        let mut given: BTreeMap<(AccountId, Asset), u64> = BTreeMap::new();
        for (account, asset, units) in deposits {
            *given.entry((account.clone(), asset.clone())).or_default() += units;
        }
        Oracle {
            deposits: given,
            accounted: HashSet::new(),
            books: BTreeMap::new(),
            settled: BTreeMap::new(),
            owed: BTreeMap::new(),
            flags: BTreeMap::new(),
            healthy_ms: BTreeMap::new(),
            collar_bps: scenario.settings.market_collar_bps,
            offset_ms: scenario.clock_offset_ms,
            caught_up_ms: None,
            violations: Vec::new(),
        }
    }

    pub fn violate(&mut self, text: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(text);
        }
    }

    /// Folds one ledger record into the books (once per key).
    fn account(&mut self, record: &OperationRecord) {
        let slot = (record.account.clone(), record.key.clone());
        if !self.accounted.insert(slot) {
            return;
        }
        let key = record.key.as_str();
        if key.starts_with("deposit:") {
            return;
        }
        let Some(id) = crate::ports::order_of_key(&record.key) else {
            self.violate(format!(
                "Balances holds an operation under a foreign key {key}"
            ));
            return;
        };
        let suffix = &key[36..];
        let took_effect = record.outcome.took_effect();
        let books = self.books.entry(id.clone()).or_default();
        books.account = Some(record.account.clone());
        match (&record.operation, suffix) {
            (Operation::Reserve { amount, .. }, ":reserve") => {
                // A refusal for lack of funds is an answer like any other.
                if took_effect {
                    books.reserved = Some(amount.units());
                }
            }
            (Operation::Release { amount, .. }, ":release") => {
                if took_effect {
                    books.returned += amount.units();
                } else {
                    self.violate(format!("{id}: Balances refused its release: {record:?}"));
                }
            }
            (
                Operation::Settle {
                    symbol,
                    side,
                    quantity,
                    price,
                    from_reserved_units,
                    release_units,
                },
                suffix,
            ) if suffix.starts_with(":fill:") => {
                let exec = suffix.trim_start_matches(":fill:").to_owned();
                if !took_effect {
                    self.violate(format!(
                        "{id}: the settlement of execution {exec} was refused ({:?}): an execution the venue made is never refused",
                        record.outcome
                    ));
                    return;
                }
                let (shares, cents) = (quantity.shares(), price.cents());
                let units = cost(*side, shares, cents);
                books.consumed += units.min(*from_reserved_units);
                books.returned += release_units;
                books.settles.insert(exec, (shares, cents));
                let stock = Asset::Shares(symbol.clone());
                let (paid, received, proceeds) = match side {
                    Side::Buy => (Asset::Cash, stock, shares),
                    Side::Sell => (stock, Asset::Cash, shares * cents),
                };
                if let Outcome::Shortfall { asset, units } = &record.outcome {
                    books.shortfall = true;
                    *self
                        .owed
                        .entry((record.account.clone(), asset.clone()))
                        .or_default() += units;
                }
                let account = record.account.clone();
                *self.settled.entry((account.clone(), paid)).or_default() -= i128::from(units);
                *self.settled.entry((account, received)).or_default() += i128::from(proceeds);
            }
            _ => self.violate(format!(
                "{id}: unexpected Balances operation under key {key}: {:?}",
                record.operation
            )),
        }
    }

    /// Checks what the last step touched.
    pub fn after_step(&mut self, world: &World) {
        let (orders, keys) = {
            let mut seen = world.shared.seen();
            (
                std::mem::take(&mut seen.orders),
                std::mem::take(&mut seen.keys),
            )
        };
        let mut accounts = BTreeSet::new();
        for (account, key) in keys {
            accounts.insert(account.clone());
            if self.accounted.contains(&(account.clone(), key.clone())) {
                continue;
            }
            if let Ok(Some(record)) = ready(world.ledger.operation(&account, &key)) {
                self.account(&record);
            }
        }
        for id in &orders {
            self.check_order(world, id);
        }
        for account in &accounts {
            self.check_account(world, account);
        }
    }

    /// The truth about one order against the ledger and the platform's claims.
    fn check_order(&mut self, world: &World, id: &OrderId) {
        let venue = world
            .shared
            .exchange
            .with_engine(|e| e.get_by_client_id(id.as_str()));
        let order = ready(app::order_store::OrderStore::load(&world.store, id))
            .ok()
            .flatten()
            .map(|v| v.value);
        let executions = venue.as_ref().map(venue_executions).unwrap_or_default();
        let mut found = Vec::new();
        if venue.is_some() && order.is_none() {
            found.push(format!(
                "{id}: the venue holds an order the platform never recorded"
            ));
        }
        if let Some(books) = self.books.get(id) {
            for (exec, terms) in &books.settles {
                let confirmed = executions.get(exec) == Some(terms);
                if !confirmed && !altered_by_venue(world, exec) {
                    found.push(format!(
                        "{id}: settled execution {exec} {terms:?}, which the venue does not confirm (it says {:?})",
                        executions.get(exec)
                    ));
                }
            }
            if let Some(reserved) = books.reserved {
                if books.consumed + books.returned > reserved {
                    found.push(format!(
                        "{id}: took {} and gave back {} of a reservation of {reserved}",
                        books.consumed, books.returned
                    ));
                }
            } else if books.consumed + books.returned > 0 {
                found.push(format!("{id}: settled or released without a reservation"));
            }
        }
        if let Some(venue) = &venue {
            if self.collar_bps > 0 && venue.order_type == VenueOrderType::Market {
                found.push(format!(
                    "{id}: a market order reached the venue without its protective limit (collar {} bps)",
                    self.collar_bps
                ));
            }
        }
        if let Some(cancel) = world.clients.cancels.get(id) {
            if let Some(sent) = world.shared.seen().first_send.get(id) {
                if *sent > cancel.requested_event {
                    found.push(format!(
                        "{id}: its placement started after a cancel was accepted (nothing had been sent before the cancel)"
                    ));
                }
            }
        }
        if let Some(order) = &order {
            self.check_claims(world, order, venue.as_ref(), &executions, &mut found);
        }
        for text in found {
            self.violate(text);
        }
    }

    /// What the platform claims about `order`, judged against the venue and the ledger.
    fn check_claims(
        &mut self,
        world: &World,
        order: &Order,
        venue: Option<&VenueOrder>,
        executions: &BTreeMap<String, (u64, u64)>,
        found: &mut Vec<String>,
    ) {
        let id = &order.id;
        if let (Some(failure), Some(venue)) =
            (order.place.as_ref().and_then(|p| p.step.failure()), venue)
        {
            if !matches!(failure, StepFailure::CancelRefused { .. }) {
                found.push(format!(
                    "{id}: concluded {failure:?}, yet the venue holds it as {} ({:?})",
                    venue.order_id, venue.status
                ));
            }
        }
        if order.is_closed() {
            if let Some(venue) = venue.filter(|v| !v.status.is_terminal()) {
                found.push(format!(
                    "{id}: closed while the venue still works it ({:?})",
                    venue.status
                ));
            }
            let books = self.books.get(id);
            let settled = books.map(|b| &b.settles);
            for (exec, terms) in executions {
                let settled = settled.and_then(|s| s.get(exec));
                let explained = settled.is_some() && altered_by_venue(world, exec);
                if settled != Some(terms) && !explained {
                    found.push(format!(
                        "{id}: closed with venue execution {exec} {terms:?} not settled"
                    ));
                }
            }
            if let Some(books) = books {
                if let Some(reserved) = books.reserved {
                    if books.consumed + books.returned != reserved {
                        found.push(format!(
                            "{id}: closed with {} of its reservation of {reserved} neither used nor given back",
                            reserved as i128 - (books.consumed + books.returned) as i128
                        ));
                    }
                }
            }
        }
        let during_faults = world.shared.plan().enabled();
        let venue_open = venue.is_some_and(|v| !v.status.is_terminal());
        let now = world.now_ms();
        // A flag's clock may run at most from when the order was last seen
        // healthy (before this step: a flag raised during the step may have
        // been resolved by its end) or, for `Stuck`, from recovery's last
        // progress on it before the flag.
        let healthy_ms = self
            .healthy_ms
            .get(id)
            .copied()
            .unwrap_or(order.created_at_ms);
        let stuck = world.shared.seen().stuck_flagged.get(id).copied();
        for reason in &order.recovery.flags {
            let (flagged_ms, progress_ms) = match (reason, stuck) {
                (FlagReason::Stuck, Some((at, progress))) => (at, progress.unwrap_or(0)),
                _ => (now, 0),
            };
            self.flags.entry((id.clone(), *reason)).or_insert(FlagSeen {
                at_ms: now,
                during_faults,
                venue_open,
                unresolved_ms: flagged_ms.saturating_sub(healthy_ms.max(progress_ms)),
            });
        }
        let policy = &world.scenario.settings.recovery;
        if pending_condition(order, now, policy).is_none() {
            self.healthy_ms.insert(id.clone(), now);
        }
    }

    /// Balances move only by settlements: what the account holds is what
    /// it deposited ± what settled, and it owes exactly its shortfalls.
    fn check_account(&mut self, world: &World, account: &AccountId) {
        let held = world.balances_of(account);
        let mut assets: BTreeSet<Asset> = held.keys().cloned().collect();
        for (owner, asset) in self.deposits.keys().chain(self.settled.keys()) {
            if owner == account {
                assets.insert(asset.clone());
            }
        }
        for asset in assets {
            let slot = (account.clone(), asset.clone());
            let balance = held.get(&asset).copied().unwrap_or_default();
            let expected = i128::from(self.deposits.get(&slot).copied().unwrap_or(0))
                + self.settled.get(&slot).copied().unwrap_or(0);
            if balance.net() != expected {
                self.violate(format!(
                    "{account} {asset}: holds {} net ({balance:?}), but deposits ± settlements say {expected}",
                    balance.net()
                ));
            }
            let owed = self.owed.get(&slot).copied().unwrap_or(0);
            if balance.owed != owed {
                self.violate(format!(
                    "{account} {asset}: owes {}, but its shortfalls add up to {owed}",
                    balance.owed
                ));
            }
        }
    }

    /// Everything, once the faults stopped and the run went quiet.
    pub fn finish(&mut self, world: &World, faults_stopped_ms: u64) {
        let mut records = world.ledger.operations();
        records.sort_by(|a, b| (&a.account, &a.key).cmp(&(&b.account, &b.key)));
        for record in &records {
            self.account(record);
        }
        let orders = world.store.orders();
        let ids: BTreeSet<OrderId> = orders.iter().map(|o| o.id.clone()).collect();
        for id in &ids {
            self.check_order(world, id);
        }
        for account in world.clients.accounts.iter().chain(&world.clients.crowd) {
            self.check_account(world, account);
        }
        let audit = world.shared.exchange.audit();
        let mut per_client: BTreeMap<&str, usize> = BTreeMap::new();
        for venue in &audit.orders {
            *per_client
                .entry(venue.client_order_id.as_str())
                .or_default() += 1;
        }
        for (client_id, n) in per_client {
            if n > 1 {
                self.violate(format!("{client_id}: {n} orders at the venue"));
            }
        }
        for order in &orders {
            if !order.is_closed() {
                self.violate(format!(
                    "{}: still open ({:?}: {}) after the faults stopped",
                    order.id,
                    order.status(),
                    order.status_reason().unwrap_or_default()
                ));
            }
        }
        if orders.len() > world.clients.keys_used {
            self.violate(format!(
                "{} orders from {} idempotency keys",
                orders.len(),
                world.clients.keys_used
            ));
        }
        let by_id: BTreeMap<&OrderId, &Order> = orders.iter().map(|o| (&o.id, o)).collect();
        self.check_holdings(world, &audit.orders);
        self.check_venue_executions(world, &audit.orders, &by_id);
        let flag_after_ms = world.scenario.settings.recovery.flag_after_ms;
        self.check_flags(&orders, &audit, faults_stopped_ms, flag_after_ms);
        self.check_cancels(world, &audit.orders, faults_stopped_ms);
    }

    /// Every venue execution of a platform order settled once with its
    /// terms; or, where the venue itself first reported other terms for it,
    /// settled as reported and the order flagged with the conflict.
    fn check_venue_executions(
        &mut self,
        world: &World,
        venue_orders: &[VenueOrder],
        orders: &BTreeMap<&OrderId, &Order>,
    ) {
        let mut found = Vec::new();
        for venue in venue_orders {
            let Ok(id) = OrderId::parse(&venue.client_order_id) else {
                continue;
            };
            let settles = self.books.get(&id).map(|b| &b.settles);
            let flagged = orders
                .get(&id)
                .is_some_and(|o| o.recovery.flags.contains(&FlagReason::ConflictingExecution));
            for (exec, terms) in venue_executions(venue) {
                match settles.and_then(|s| s.get(&exec)) {
                    Some(settled) if *settled == terms => {}
                    Some(_) if altered_by_venue(world, &exec) && flagged => {}
                    Some(settled) if altered_by_venue(world, &exec) => found.push(format!(
                        "{id}: settled venue execution {exec} as {settled:?} (a report the venue contradicted), not as {terms:?}, and nobody was told"
                    )),
                    other => found.push(format!(
                        "{id}: venue execution {exec} {terms:?} never settled (settled: {other:?})"
                    )),
                }
            }
        }
        for text in found {
            self.violate(text);
        }
    }

    /// The terms an execution was settled with when the venue itself
    /// contradicted them (flagged); else the venue's.
    fn accounted_terms(
        &self,
        world: &World,
        id: &OrderId,
        exec: &str,
        venue: (u64, u64),
    ) -> (u64, u64) {
        match self.books.get(id).and_then(|b| b.settles.get(exec)) {
            Some(settled) if *settled != venue && altered_by_venue(world, exec) => *settled,
            _ => venue,
        }
    }

    /// Reservations back to zero; holdings = deposits ± what the venue
    /// executed (as settled, where the venue contradicted itself).
    fn check_holdings(&mut self, world: &World, venue_orders: &[VenueOrder]) {
        let mut expected: BTreeMap<(AccountId, Asset), i128> = self
            .deposits
            .iter()
            .map(|(slot, units)| (slot.clone(), i128::from(*units)))
            .collect();
        for venue in venue_orders {
            let Ok(account) = AccountId::parse(&venue.account) else {
                continue;
            };
            let Ok(stock) = world.catalog.asset(&venue.symbol) else {
                continue;
            };
            let Ok(id) = OrderId::parse(&venue.client_order_id) else {
                continue;
            };
            let sign = match venue_side(venue) {
                Side::Buy => 1,
                Side::Sell => -1,
            };
            for (exec, terms) in venue_executions(venue) {
                let (shares, cents) = self.accounted_terms(world, &id, &exec, terms);
                let shares = i128::from(shares);
                let cash = shares * i128::from(cents);
                *expected
                    .entry((account.clone(), stock.clone()))
                    .or_default() += sign * shares;
                *expected.entry((account.clone(), Asset::Cash)).or_default() -= sign * cash;
            }
        }
        let mut found = Vec::new();
        for account in world.clients.accounts.iter().chain(&world.clients.crowd) {
            let held = world.balances_of(account);
            for (asset, balance) in &held {
                if balance.reserved != 0 {
                    found.push(format!(
                        "{account} {asset}: {} still reserved with every order closed",
                        balance.reserved
                    ));
                }
            }
            for ((owner, asset), want) in &expected {
                if owner != account {
                    continue;
                }
                let have = held.get(asset).map_or(0, |b| b.net());
                if have != *want {
                    found.push(format!(
                        "{account} {asset}: holds {have} net, deposits ± venue executions say {want}"
                    ));
                }
            }
        }
        for text in found {
            self.violate(text);
        }
    }

    /// Every flag must be explained by the venue's truth: a shortfall the
    /// ledger recorded, an execution beyond the reservation, a
    /// contradiction the venue sent; "stuck" only while faults ran, and
    /// only once the order had carried a condition for longer than the
    /// flag's bound without a break and without progress by recovery (a
    /// healthy order, and each look that gains ground, start the clock afresh).
    fn check_flags(
        &mut self,
        orders: &[Order],
        audit: &exchange_sim::engine::EngineAudit,
        faults_stopped_ms: u64,
        flag_after_ms: u64,
    ) {
        let contradicted: BTreeSet<&str> = audit
            .hostile_events
            .iter()
            .map(|h| h.client_order_id.as_str())
            .collect();
        // Orders of which the venue reported an execution twice, with other terms.
        let altered: BTreeSet<&str> = audit
            .hostile_events
            .iter()
            .filter(|h| h.kind == HostileKind::ExecIdReused)
            .map(|h| h.client_order_id.as_str())
            .collect();
        let venue: BTreeMap<&str, &VenueOrder> = audit
            .orders
            .iter()
            .map(|o| (o.client_order_id.as_str(), o))
            .collect();
        let mut found = Vec::new();
        for order in orders {
            let id = &order.id;
            let books = self.books.get(id);
            for reason in &order.recovery.flags {
                let explained = match reason {
                    // Stuck: a condition recovery could not resolve while
                    // faults ran; or a market order the venue keeps working
                    // past its silence bound (its protective limit not
                    // reached: see the report of the simulation).
                    FlagReason::Stuck => {
                        self.flags.get(&(id.clone(), *reason)).is_some_and(|seen| {
                            let resting_market = seen.venue_open
                                && order.request.order_type == domain::order::OrderType::Market;
                            let faults = seen.during_faults && seen.at_ms <= faults_stopped_ms;
                            (faults || resting_market) && seen.unresolved_ms > flag_after_ms
                        })
                    }
                    FlagReason::Shortfall => books.is_some_and(|b| b.shortfall),
                    FlagReason::BeyondReservation => {
                        let spent: u64 = venue.get(id.as_str()).map_or(0, |v| {
                            let side = venue_side(v);
                            v.executions
                                .iter()
                                .map(|e| cost(side, e.quantity.shares(), e.price.cents()))
                                .sum()
                        });
                        books
                            .and_then(|b| b.reserved)
                            .is_some_and(|reserved| spent > reserved)
                            // Settled as the venue first reported it, with
                            // other terms than it lists now.
                            || altered.contains(id.as_str())
                    }
                    // The venue contradicted itself about one of its
                    // executions: the platform settled what it reported
                    // first, and flags the rest (a closed order reopened by
                    // the true report, shares beyond the order).
                    FlagReason::Overfilled | FlagReason::Reopened => altered.contains(id.as_str()),
                    FlagReason::ConflictingExecution | FlagReason::UnconfirmedReport => {
                        contradicted.contains(id.as_str())
                    }
                    FlagReason::UnknownToExchange
                    | FlagReason::Refused
                    | FlagReason::Unresolved => false,
                };
                if !explained {
                    found.push(format!(
                        "{id}: flagged {} although the venue's state explains no such flag ({}); first seen {:?}",
                        reason.as_str(),
                        order.recovery.flag_detail.clone().unwrap_or_default(),
                        self.flags.get(&(id.clone(), *reason))
                    ));
                }
            }
        }
        for text in found {
            self.violate(text);
        }
    }

    pub fn recovery_caught_up(&mut self, now_ms: u64) {
        self.caught_up_ms.get_or_insert(now_ms);
    }

    /// A cancel the API accepted leaves its order live at the venue no
    /// longer than recovery's bound after the faults stopped and recovery
    /// worked through what was due (a cancel waits its turn in the
    /// open-order index: recovery has no priority lane for cancels).
    fn check_cancels(
        &mut self,
        world: &World,
        venue_orders: &[VenueOrder],
        faults_stopped_ms: u64,
    ) {
        let policy = &world.scenario.settings.recovery;
        let bound_ms = policy.retry_max_ms
            + policy.max_in_flight_ms
            + policy.clock_skew_margin_ms
            + world.scenario.settings.placement_window_ms
            + app::orders::INDEX_LAG_MS
            + 3 * 60_000;
        let mut found = Vec::new();
        for venue in venue_orders {
            let Ok(id) = OrderId::parse(&venue.client_order_id) else {
                continue;
            };
            let Some(cancel) = world.clients.cancels.get(&id) else {
                continue;
            };
            let ended_ms = venue.updated_at.saturating_add_signed(-self.offset_ms);
            let recovered_ms = self
                .caught_up_ms
                .unwrap_or(faults_stopped_ms)
                .max(faults_stopped_ms);
            let by_ms = cancel.answered_ms.max(recovered_ms) + bound_ms;
            if !venue.status.is_terminal() || ended_ms > by_ms {
                found.push(format!(
                    "{id}: a cancel accepted at {} left it live at the venue until {ended_ms} ({:?}; bound {by_ms}: recovery through its backlog at {recovered_ms}, then {bound_ms} ms)",
                    cancel.answered_ms, venue.status
                ));
            }
        }
        for text in found {
            self.violate(text);
        }
    }
}
