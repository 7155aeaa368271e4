//! The oracle: safety invariants checked after every step, and the full list
//! of DESIGN §7 checked against the exchange's audit once the run is quiet.

use std::collections::{BTreeMap, BTreeSet};

use app::LedgerStore;
use domain::money::notional;
use domain::order::{Order, OrderId, StepFailure, StepState};
use domain::{AccountId, Asset, Operation, OperationRecord, Outcome, Side};
use exchange_sim::engine::EngineAudit;

use super::world::World;

/// What the Balances service did for one order, from its operation records.
#[derive(Debug, Default)]
struct Movements {
    reserved: i128,
    consumed: i128,
    released: i128,
    /// exec id → (shares, price in cents) of each settlement.
    settled: BTreeMap<String, (u64, u64)>,
    releases: usize,
}

impl Movements {
    fn held(&self) -> i128 {
        self.reserved - self.consumed - self.released
    }
}

fn movements(operations: &[OperationRecord]) -> BTreeMap<String, Movements> {
    let mut by_order: BTreeMap<String, Movements> = BTreeMap::new();
    for op in operations {
        if op.outcome != Outcome::Succeeded || op.key.as_str().len() < 37 {
            continue;
        }
        let (order, rest) = op.key.as_str().split_at(36);
        let entry = by_order.entry(order.to_owned()).or_default();
        match &op.operation {
            Operation::Reserve { amount, .. } => entry.reserved += i128::from(amount.units()),
            Operation::Release { amount, .. } => {
                entry.released += i128::from(amount.units());
                entry.releases += 1;
            }
            Operation::Settle {
                side,
                quantity,
                price,
                ..
            } => {
                let units = match side {
                    Side::Buy => notional(*price, *quantity).map_or(0, |a| a.units()),
                    Side::Sell => quantity.shares(),
                };
                entry.consumed += i128::from(units);
                let exec = rest.trim_start_matches(":fill:").to_owned();
                entry
                    .settled
                    .insert(exec, (quantity.shares(), price.cents()));
            }
            Operation::Deposit { .. } => {}
        }
    }
    by_order
}

/// exec id → (shares, cents) of each execution of each client order id, and
/// how many exchange orders each client order id has.
/// exec id → (shares, price in cents).
type Executions = BTreeMap<String, (u64, u64)>;

fn exchange_view(audit: &EngineAudit) -> (BTreeMap<String, Executions>, BTreeMap<String, usize>) {
    let mut executions = BTreeMap::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for order in &audit.orders {
        *count.entry(order.client_order_id.clone()).or_default() += 1;
        let execs: Executions = order
            .executions
            .iter()
            .map(|e| (e.exec_id.clone(), (e.quantity.shares(), e.price.cents())))
            .collect();
        executions.insert(order.client_order_id.clone(), execs);
    }
    (executions, count)
}

fn fills_of(order: &Order) -> Executions {
    order
        .fills
        .iter()
        .map(|f| {
            (
                f.exec_id.as_str().to_owned(),
                (f.quantity.shares(), f.price.cents()),
            )
        })
        .collect()
}

fn ledger(world: &World) -> BTreeMap<(AccountId, Asset), domain::Balance> {
    let mut all = BTreeMap::new();
    for account in &world.accounts {
        let balances =
            futures::executor::block_on(world.ledger.balances(account)).unwrap_or_default();
        for (asset, balance) in balances {
            all.insert((account.clone(), asset), balance);
        }
    }
    all
}

/// Records only grow: a recorded outcome, fill, final report or close is never lost.
pub fn only_grew(before: &Order, now: &Order, out: &mut Vec<String>) {
    let id = &now.id;
    let settled = |o: &Order| -> Vec<String> {
        o.fills
            .iter()
            .filter(|f| !f.settle.is_processing())
            .map(|f| f.exec_id.as_str().to_owned())
            .collect()
    };
    let steps = [
        ("reserve", Some(&before.reserve), Some(&now.reserve)),
        ("place", before.place.as_ref(), now.place.as_ref()),
        ("release", before.release.as_ref(), now.release.as_ref()),
    ];
    for (name, was, is) in steps {
        if let Some(was) = was.filter(|s| !s.is_processing()) {
            if is.map(|s| &s.state) != Some(&was.state) {
                out.push(format!(
                    "{id}: recorded {name} outcome {:?} was lost",
                    was.state
                ));
            }
        }
    }
    let (was, is) = (fills_of(before), fills_of(now));
    if was.iter().any(|(exec, fill)| is.get(exec) != Some(fill)) {
        out.push(format!("{id}: a recorded fill was lost or changed"));
    }
    let now_settled = settled(now);
    if settled(before).iter().any(|e| !now_settled.contains(e)) {
        out.push(format!("{id}: a recorded settlement was lost"));
    }
    if before.is_closed() && !now.is_closed() {
        out.push(format!("{id}: a closed order reopened"));
    }
    if before.final_report.is_some() && before.final_report != now.final_report {
        out.push(format!("{id}: the final report was lost or changed"));
    }
    if before.exchange_order_id.is_some() && before.exchange_order_id != now.exchange_order_id {
        out.push(format!("{id}: the exchange order id was lost or changed"));
    }
}

fn check_order(
    world: &World,
    order: &Order,
    executions: &BTreeMap<String, Executions>,
    moved: Option<&Movements>,
    out: &mut Vec<String>,
) {
    let id = &order.id;
    let fills = fills_of(order);
    if fills.len() != order.fills.len() {
        out.push(format!("{id}: an execution was applied twice"));
    }
    let at_exchange = executions.get(id.as_str());
    for (exec, fill) in &fills {
        if at_exchange.and_then(|e| e.get(exec)) != Some(fill) {
            out.push(format!(
                "{id}: fill {exec} {fill:?} is not an execution at the exchange"
            ));
        }
    }
    if order.filled_quantity() > order.request.quantity.shares() {
        out.push(format!("{id}: filled beyond the ordered quantity"));
    }
    if let Some(StepState::Failed(failure)) = order.place.as_ref().map(|s| &s.state) {
        if at_exchange.is_some() {
            out.push(format!(
                "{id}: concluded not placed ({failure:?}), yet the exchange holds it"
            ));
        }
        let early = order
            .place
            .as_ref()
            .is_some_and(|s| s.updated_at_ms <= order.place_deadline_ms);
        let not_placed = matches!(failure, StepFailure::NotPlaced { .. });
        if not_placed && early && order.cancel_requested_at_ms.is_none() {
            out.push(format!("{id}: concluded not placed before its deadline"));
        }
    }
    let held = moved.map_or(0, Movements::held);
    if held < 0 {
        out.push(format!(
            "{id}: released or consumed {} units beyond its reservation",
            -held
        ));
    }
    if let Some(moved) = moved {
        if moved.releases > 1 {
            out.push(format!(
                "{id}: its reservation was released {} times",
                moved.releases
            ));
        }
        for (exec, settled) in &moved.settled {
            if fills.get(exec) != Some(settled) {
                out.push(format!(
                    "{id}: settlement of {exec} without its fill recorded"
                ));
            }
        }
    }
    if order.is_closed() && held != 0 {
        out.push(format!(
            "{id}: closed while still holding {held} reserved units"
        ));
    }
    if let Some(before) = world.last_seen.get(id) {
        only_grew(before, order, out);
    }
}

/// Safety, after every step.
pub fn check_step(world: &mut World) -> Vec<String> {
    let mut out = std::mem::take(
        &mut *world
            .findings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let orders = world.store.orders();
    let operations = world.ledger.operations();
    let moved = movements(&operations);
    let audit = world.exchange.audit();
    let (executions, count) = exchange_view(&audit);
    let ids: BTreeSet<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    for (client_id, n) in &count {
        if *n > 1 {
            out.push(format!("{client_id}: {n} exchange orders"));
        }
        if !ids.contains(client_id.as_str()) {
            out.push(format!(
                "{client_id}: an exchange order with no order of ours"
            ));
        }
    }
    let mut per_key: BTreeMap<(AccountId, String), usize> = BTreeMap::new();
    let mut held: BTreeMap<(AccountId, Asset), i128> = BTreeMap::new();
    for order in &orders {
        check_order(
            world,
            order,
            &executions,
            moved.get(order.id.as_str()),
            &mut out,
        );
        *per_key
            .entry((
                order.account.clone(),
                order.idempotency_key.as_str().to_owned(),
            ))
            .or_default() += 1;
        *held
            .entry((order.account.clone(), order.reservation.asset.clone()))
            .or_default() += moved.get(order.id.as_str()).map_or(0, Movements::held);
    }
    for ((account, key), n) in per_key {
        if n > 1 {
            out.push(format!("{account} key {key}: {n} orders"));
        }
    }
    for ((account, asset), balance) in ledger(world) {
        let expected = held
            .get(&(account.clone(), asset.clone()))
            .copied()
            .unwrap_or(0);
        if i128::from(balance.reserved) != expected {
            out.push(format!(
                "{account} {}: reserved {} but its orders hold {expected}",
                asset.code(),
                balance.reserved
            ));
        }
    }
    check_conservation(world, &operations, &mut out);
    world.last_seen = orders.into_iter().map(|o| (o.id.clone(), o)).collect();
    out
}

/// Cash and shares: what was deposited, plus or minus every settlement.
fn check_conservation(world: &World, operations: &[OperationRecord], out: &mut Vec<String>) {
    let mut expected: BTreeMap<(AccountId, Asset), i128> = world
        .deposits
        .iter()
        .map(|(k, v)| (k.clone(), i128::from(*v)))
        .collect();
    for op in operations {
        let settle = matches!(op.operation, Operation::Settle { .. });
        if !settle || op.outcome != Outcome::Succeeded {
            continue;
        }
        for change in op.operation.changes().unwrap_or_default() {
            *expected
                .entry((op.account.clone(), change.asset))
                .or_default() += i128::from(change.available) + i128::from(change.reserved);
        }
    }
    let actual = ledger(world);
    for (slot, want) in expected {
        let have = actual
            .get(&slot)
            .map_or(0, |b| i128::from(b.available) + i128::from(b.reserved));
        if have != want {
            out.push(format!(
                "{} {}: holds {have}, expected {want}",
                slot.0,
                slot.1.code()
            ));
        }
    }
}

/// Liveness and the full §7 list, once faults stopped and the run went quiet.
pub fn check_final(world: &mut World) -> Vec<String> {
    let mut out = check_step(world);
    let orders: Vec<Order> = world.store.orders();
    let audit = world.exchange.audit();
    let (executions, _) = exchange_view(&audit);
    let moved = movements(&world.ledger.operations());
    let mut totals: BTreeMap<(AccountId, Asset), i128> = world
        .deposits
        .iter()
        .map(|(k, v)| (k.clone(), i128::from(*v)))
        .collect();
    for order in &orders {
        let id: &OrderId = &order.id;
        if !order.is_closed() {
            out.push(format!(
                "{id}: still open ({:?}) after the faults stopped",
                order.status()
            ));
        }
        if let Some(reason) = &order.recovery.flagged {
            out.push(format!("{id}: flagged: {reason}"));
        }
        let fills = fills_of(order);
        let at_exchange = executions.get(id.as_str()).cloned().unwrap_or_default();
        if fills != at_exchange {
            out.push(format!(
                "{id}: fills {fills:?} but executions {at_exchange:?}"
            ));
        }
        let settled = moved
            .get(id.as_str())
            .map(|m| m.settled.clone())
            .unwrap_or_default();
        if settled != fills {
            out.push(format!("{id}: settlements {settled:?} but fills {fills:?}"));
        }
        for fill in &order.fills {
            let cash = i128::from(notional(fill.price, fill.quantity).map_or(0, |a| a.units()));
            let shares = i128::from(fill.quantity.shares());
            let stock = Asset::Shares(order.request.symbol.clone());
            let (cash, shares) = match order.request.side {
                Side::Buy => (-cash, shares),
                Side::Sell => (cash, -shares),
            };
            *totals
                .entry((order.account.clone(), Asset::Cash))
                .or_default() += cash;
            *totals.entry((order.account.clone(), stock)).or_default() += shares;
        }
    }
    for exchange_order in &audit.orders {
        if !exchange_order.status.is_terminal() {
            out.push(format!(
                "{}: still open at the exchange",
                exchange_order.client_order_id
            ));
        }
    }
    let actual = ledger(world);
    for (slot, balance) in &actual {
        if balance.reserved != 0 {
            out.push(format!(
                "{} {}: {} still reserved",
                slot.0,
                slot.1.code(),
                balance.reserved
            ));
        }
    }
    for (slot, want) in totals {
        let have = actual
            .get(&slot)
            .map_or(0, |b| i128::from(b.available) + i128::from(b.reserved));
        if have != want {
            out.push(format!(
                "{} {}: holds {have}, deposits ± fills say {want}",
                slot.0,
                slot.1.code()
            ));
        }
    }
    out
}
