//! Property test: random sequences of operations, with replays and reused
//! keys, against a reference model of the ledger. Checks every answer, that
//! nothing goes negative, and that cash and shares are conserved.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use app::memory::MemoryLedgerStore;
use app::{Balances, BalancesCallError, BalancesService, SystemClock};
use domain::{
    AccountId, Amount, Asset, Balance, IdempotencyKey, Operation, OperationRecord, Outcome, Side,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use system_tests::conformance::balances::{aapl, key, settle};
use system_tests::new_account;

#[derive(Debug, Clone)]
struct Step {
    account: usize,
    key: usize,
    operation: Operation,
}

fn operation() -> impl Strategy<Value = Operation> {
    let asset = prop_oneof![Just(Asset::Cash), Just(aapl())];
    let amount = (1u64..2_000).prop_map(|u| Amount::new(u).expect("positive"));
    let covering = 0u64..3_000;
    prop_oneof![
        (asset.clone(), amount.clone())
            .prop_map(|(asset, amount)| Operation::Deposit { asset, amount }),
        (asset.clone(), amount.clone())
            .prop_map(|(asset, amount)| Operation::Reserve { asset, amount }),
        (asset, amount).prop_map(|(asset, amount)| Operation::Release { asset, amount }),
        (
            prop_oneof![Just(Side::Buy), Just(Side::Sell)],
            1u64..20,
            1u64..200,
            covering.clone(),
            prop_oneof![Just(0u64), 1u64..500],
        )
            .prop_map(
                |(side, shares, cents, from_reserved_units, release_units)| {
                    match settle(side, shares, cents) {
                        Operation::Settle {
                            symbol,
                            side,
                            quantity,
                            price,
                            ..
                        } => Operation::Settle {
                            symbol,
                            side,
                            quantity,
                            price,
                            from_reserved_units,
                            release_units,
                        },
                        other => other,
                    }
                }
            ),
    ]
}

fn steps(max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    // Few accounts and keys, so replays and reused keys are frequent.
    let step = (0usize..3, 0usize..6, operation()).prop_map(|(account, key, operation)| Step {
        account,
        key,
        operation,
    });
    prop::collection::vec(step, 1..max_len)
}

/// The ledger as plainly as it can be written.
#[derive(Default)]
struct Model {
    balances: BTreeMap<(usize, Asset), Balance>,
    records: HashMap<(usize, usize), (Operation, Outcome)>,
    /// Net value that entered each asset from outside (deposits and trades).
    inflow: BTreeMap<Asset, i128>,
}

impl Model {
    /// A settlement is never refused: the reservation pays what the order
    /// says it covers, as far as it holds; then what is available; the rest
    /// is owed. The release returns what is left reserved.
    fn settle(&mut self, step: &Step) -> Outcome {
        let Operation::Settle {
            symbol,
            side,
            quantity,
            price,
            from_reserved_units,
            release_units,
        } = &step.operation
        else {
            unreachable!("a settlement")
        };
        let shares = quantity.shares();
        let cash = shares * price.cents();
        let stock = Asset::Shares(symbol.clone());
        let (paying, cost, receiving, proceeds) = match side {
            Side::Buy => (Asset::Cash, cash, stock, shares),
            Side::Sell => (stock, shares, Asset::Cash, cash),
        };
        let mut pay = self
            .balances
            .get(&(step.account, paying.clone()))
            .copied()
            .unwrap_or_default();
        let from_reserved = cost.min(*from_reserved_units).min(pay.reserved);
        pay.reserved -= from_reserved;
        let release = (*release_units).min(pay.reserved);
        pay.reserved -= release;
        pay.available += release;
        let excess = cost - from_reserved;
        let paid = excess.min(pay.available);
        pay.available -= paid;
        let owed = excess - paid;
        pay.owed += owed;
        self.balances.insert((step.account, paying.clone()), pay);
        let receive = self
            .balances
            .entry((step.account, receiving.clone()))
            .or_default();
        receive.available += proceeds;
        *self.inflow.entry(paying.clone()).or_default() -= i128::from(cost);
        *self.inflow.entry(receiving).or_default() += i128::from(proceeds);
        if owed > 0 {
            Outcome::Shortfall {
                asset: paying,
                units: owed,
            }
        } else {
            Outcome::Succeeded
        }
    }

    fn expect(&mut self, step: &Step) -> Result<Outcome, BalancesCallError> {
        if let Some((operation, outcome)) = self.records.get(&(step.account, step.key)) {
            return if operation == &step.operation {
                Ok(outcome.clone())
            } else {
                Err(BalancesCallError::KeyReused)
            };
        }
        let known = self.balances.keys().any(|(a, _)| *a == step.account);
        if !known && !matches!(step.operation, Operation::Deposit { .. }) {
            return Err(BalancesCallError::UnknownAccount);
        }
        if let Operation::Settle { .. } = &step.operation {
            let outcome = self.settle(step);
            self.records.insert(
                (step.account, step.key),
                (step.operation.clone(), outcome.clone()),
            );
            return Ok(outcome);
        }
        let changes = step.operation.changes().expect("bounded");
        let mut updated = Vec::new();
        let mut outcome = Outcome::Succeeded;
        for change in &changes {
            let slot = (step.account, change.asset.clone());
            match change.apply(self.balances.get(&slot).copied().unwrap_or_default()) {
                Ok(balance) => updated.push((slot, balance)),
                Err(failure) => {
                    outcome = Outcome::Failed(failure);
                    break;
                }
            }
        }
        if outcome == Outcome::Succeeded {
            self.balances.extend(updated);
            for change in &changes {
                *self.inflow.entry(change.asset.clone()).or_default() +=
                    i128::from(change.available) + i128::from(change.reserved);
            }
        }
        self.records.insert(
            (step.account, step.key),
            (step.operation.clone(), outcome.clone()),
        );
        Ok(outcome)
    }
}

async fn check_sequence<B: Balances>(balances: &B, steps: &[Step]) -> Result<(), TestCaseError> {
    let accounts: Vec<AccountId> = (0..3).map(|_| new_account("model")).collect();
    let keys: Vec<IdempotencyKey> = (0..6).map(|k| key(&format!("key-{k}"))).collect();
    let mut model = Model::default();
    let mut first_answers: HashMap<(usize, usize), OperationRecord> = HashMap::new();
    for step in steps {
        let expected = model.expect(step);
        let actual = execute_until_known(
            balances,
            &accounts[step.account],
            &keys[step.key],
            &step.operation,
        )
        .await;
        if let Ok(record) = &actual {
            // A replay is answered with the very record of the first call.
            let first = first_answers
                .entry((step.account, step.key))
                .or_insert_with(|| record.clone());
            prop_assert_eq!(&*first, record);
        }
        prop_assert_eq!(actual.map(|r| r.outcome), expected, "step {:?}", step);
    }
    let mut totals: BTreeMap<Asset, i128> = BTreeMap::new();
    for (index, account) in accounts.iter().enumerate() {
        let expected: BTreeMap<Asset, Balance> = model
            .balances
            .iter()
            .filter(|((a, _), _)| *a == index)
            .map(|((_, asset), balance)| (asset.clone(), *balance))
            .collect();
        let actual = balances_until_known(balances, account).await;
        prop_assert_eq!(&actual, &expected);
        for (asset, balance) in actual {
            *totals.entry(asset).or_default() += balance.net();
        }
    }
    // Conservation: what the accounts hold is exactly what came in.
    let inflow: BTreeMap<Asset, i128> = model
        .inflow
        .into_iter()
        .filter(|(asset, v)| *v != 0 || totals.contains_key(asset))
        .collect();
    let totals: BTreeMap<Asset, i128> = totals
        .into_iter()
        .filter(|(asset, v)| *v != 0 || inflow.contains_key(asset))
        .collect();
    prop_assert_eq!(totals, inflow);
    Ok(())
}

/// How long a caller keeps repeating a call whose outcome is unknown before
/// the test gives up: far beyond any answer time of a healthy service, even
/// on a loaded 2-core machine (a stall this long is a bug worth failing on).
const ANSWER_DEADLINE: Duration = Duration::from_secs(120);

/// The client contract: an unknown outcome is resolved by repeating the call
/// with the same key until an answer comes, as a real caller does. The model
/// must then agree with that answer.
async fn execute_until_known<B: Balances>(
    balances: &B,
    account: &AccountId,
    key: &IdempotencyKey,
    operation: &Operation,
) -> Result<OperationRecord, BalancesCallError> {
    let started = Instant::now();
    loop {
        match balances.execute(account, key, operation).await {
            Err(BalancesCallError::OutcomeUnknown(e) | BalancesCallError::Unavailable(e))
                if started.elapsed() < ANSWER_DEADLINE =>
            {
                eprintln!(
                    "no answer yet after {:?} ({e}); repeating with the same key",
                    started.elapsed()
                );
            }
            answer => return answer,
        }
    }
}

/// An account's balances; an unknown account holds nothing. A read without
/// an answer is repeated, never taken as empty.
async fn balances_until_known<B: Balances>(
    balances: &B,
    account: &AccountId,
) -> BTreeMap<Asset, Balance> {
    let started = Instant::now();
    loop {
        match balances.balances(account).await {
            Ok(held) => return held,
            Err(BalancesCallError::UnknownAccount) => return BTreeMap::new(),
            Err(e) if started.elapsed() < ANSWER_DEADLINE => {
                eprintln!(
                    "balances of {account} unread after {:?} ({e}); asking again",
                    started.elapsed()
                );
            }
            Err(e) => {
                panic!("the balances of {account} could not be read in {ANSWER_DEADLINE:?}: {e}")
            }
        }
    }
}

fn run<B: Balances, F: Fn() -> B>(cases: u32, max_len: usize, make: F) {
    if let Err(error) = check(cases, max_len, make) {
        panic!("{error}");
    }
}

fn check<B: Balances, F: Fn() -> B>(cases: u32, max_len: usize, make: F) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&steps(max_len), |steps| {
            let balances = make();
            runtime.block_on(check_sequence(&balances, &steps))
        })
        .map_err(|error| error.to_string())
}

#[test]
fn ledger_matches_its_model_in_memory() {
    run(300, 60, || {
        BalancesService::new(MemoryLedgerStore::default(), SystemClock)
    });
}

/// Fewer cases: each step is a round trip to the service and the emulator.
#[test]
fn ledger_matches_its_model_over_http_on_dynamodb() {
    // The server's task keeps running on this runtime's workers while the
    // property runner drives the client from its own runtime.
    let server_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = server_runtime.block_on(system_tests::spawn_balances("model"));
    run(12, 40, || app.client.clone());
}

/// A deliberately broken ledger: a repeated settlement (same key) is applied
/// again instead of being answered from its record.
struct SettlesTwice(BalancesService<MemoryLedgerStore, SystemClock>);

impl Balances for SettlesTwice {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        let seen = self.0.lookup(account, key).await?.is_some();
        if seen && matches!(operation, Operation::Settle { .. }) {
            let again = IdempotencyKey::parse(&format!("{key}~again")).expect("valid key");
            let _ = Balances::execute(&self.0, account, &again, operation).await;
        }
        Balances::execute(&self.0, account, key, operation).await
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        self.0.lookup(account, key).await
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        Balances::balances(&self.0, account).await
    }
}

/// The model has teeth: a ledger that settles a replay twice fails it.
#[test]
fn the_model_catches_a_ledger_that_settles_a_replay_twice() {
    let result = check(300, 60, || {
        SettlesTwice(BalancesService::new(
            MemoryLedgerStore::default(),
            SystemClock,
        ))
    });
    let error = result.expect_err("a double settlement must break the model");
    println!("caught: {}", error.lines().next().unwrap_or_default());
}
