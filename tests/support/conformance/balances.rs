//! The `Balances` port's contract. Each check uses fresh accounts, so checks
//! can share one service instance and run in parallel.

use std::collections::BTreeMap;

use app::{Balances, BalancesCallError};
use domain::{
    AccountId, Amount, Asset, Balance, Catalog, Failure, IdempotencyKey, Operation, Outcome, Price,
    Quantity, Side,
};
use futures::future::join_all;

use crate::new_account;

pub fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("valid key")
}

pub fn usd(cents: u64) -> Amount {
    Amount::new(cents).expect("positive amount")
}

pub fn aapl() -> Asset {
    Catalog::us_equities().asset("AAPL").expect("listed")
}

pub fn deposit(cents: u64) -> Operation {
    Operation::Deposit {
        asset: Asset::Cash,
        amount: usd(cents),
    }
}

pub fn reserve(cents: u64) -> Operation {
    Operation::Reserve {
        asset: Asset::Cash,
        amount: usd(cents),
    }
}

pub fn release(cents: u64) -> Operation {
    Operation::Release {
        asset: Asset::Cash,
        amount: usd(cents),
    }
}

/// A settlement whose whole cost the order's reservation covers.
pub fn settle(side: Side, shares: u64, price_cents: u64) -> Operation {
    let cost = match side {
        Side::Buy => shares * price_cents,
        Side::Sell => shares,
    };
    settle_covering(side, shares, price_cents, cost)
}

/// A settlement whose cost the reservation covers up to `from_reserved_units`.
pub fn settle_covering(
    side: Side,
    shares: u64,
    price_cents: u64,
    from_reserved_units: u64,
) -> Operation {
    let symbol = Catalog::us_equities().symbol("AAPL").expect("listed");
    Operation::Settle {
        symbol,
        side,
        quantity: Quantity::new(shares).expect("positive"),
        price: Price::from_cents(price_cents).expect("positive"),
        from_reserved_units,
        release_units: 0,
    }
}

pub async fn funded_account<B: Balances>(balances: &B, label: &str, cents: u64) -> AccountId {
    let account = new_account(label);
    let record = balances
        .execute(&account, &key("funding"), &deposit(cents))
        .await
        .expect("deposit");
    assert_eq!(record.outcome, Outcome::Succeeded);
    account
}

pub async fn balance_of<B: Balances>(balances: &B, account: &AccountId, asset: &Asset) -> Balance {
    let all: BTreeMap<Asset, Balance> = balances.balances(account).await.expect("balances");
    all.get(asset).copied().unwrap_or_default()
}

/// A deposit opens the account and shows up as available.
pub async fn deposit_opens_an_account<B: Balances>(balances: &B) {
    let account = funded_account(balances, "deposit", 100_000).await;
    let all = balances.balances(&account).await.expect("balances");
    assert_eq!(
        all,
        BTreeMap::from([(
            Asset::Cash,
            Balance {
                available: 100_000,
                reserved: 0,
                owed: 0,
            }
        )])
    );
}

/// The same request with the same key ten times: ten identical records, one movement.
pub async fn replay_moves_once<B: Balances>(balances: &B) {
    let account = funded_account(balances, "replay", 10_000).await;
    let mut records = Vec::new();
    for _ in 0..10 {
        records.push(
            balances
                .execute(&account, &key("order-1:reserve"), &reserve(2_500))
                .await
                .expect("reserve"),
        );
    }
    assert!(
        records.iter().all(|r| r == &records[0]),
        "every replay answers the first record"
    );
    assert_eq!(records[0].outcome, Outcome::Succeeded);
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 7_500,
            reserved: 2_500,
            owed: 0,
        }
    );
}

/// A key reused for another request is refused and moves nothing.
pub async fn reused_key_is_refused<B: Balances>(balances: &B) {
    let account = funded_account(balances, "reuse", 10_000).await;
    balances
        .execute(&account, &key("k"), &reserve(100))
        .await
        .expect("reserve");
    let reused = balances.execute(&account, &key("k"), &reserve(200)).await;
    assert_eq!(reused, Err(BalancesCallError::KeyReused));
    let other_kind = balances.execute(&account, &key("k"), &release(100)).await;
    assert_eq!(other_kind, Err(BalancesCallError::KeyReused));
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 9_900,
            reserved: 100,
            owed: 0,
        }
    );
}

/// A refusal for lack of funds is stored: replays and lookups answer it even
/// after funds arrive, and it moved nothing.
pub async fn refusal_is_stored_and_replayed<B: Balances>(balances: &B) {
    let account = funded_account(balances, "refusal", 1_000).await;
    let refused = balances
        .execute(&account, &key("big"), &reserve(1_001))
        .await
        .expect("answered");
    assert_eq!(
        refused.outcome,
        Outcome::Failed(Failure::InsufficientFunds { asset: Asset::Cash })
    );
    balances
        .execute(&account, &key("top-up"), &deposit(5_000))
        .await
        .expect("deposit");
    let replayed = balances
        .execute(&account, &key("big"), &reserve(1_001))
        .await
        .expect("answered");
    assert_eq!(replayed, refused);
    assert_eq!(
        balances.lookup(&account, &key("big")).await,
        Ok(Some(refused))
    );
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 6_000,
            reserved: 0,
            owed: 0,
        }
    );
}

/// Operations on an account that never held anything are refused and not stored.
pub async fn unknown_account_is_refused<B: Balances>(balances: &B) {
    let account = new_account("ghost");
    assert_eq!(
        balances.execute(&account, &key("r"), &reserve(1)).await,
        Err(BalancesCallError::UnknownAccount)
    );
    assert_eq!(balances.lookup(&account, &key("r")).await, Ok(None));
    assert_eq!(
        balances.balances(&account).await,
        Err(BalancesCallError::UnknownAccount)
    );
}

/// A buy: reserve cash, settle two fills from it, release the rest.
pub async fn buy_reserve_settle_release<B: Balances>(balances: &B) {
    let account = funded_account(balances, "buy", 100_000).await;
    balances
        .execute(&account, &key("o:reserve"), &reserve(60_000))
        .await
        .expect("reserve");
    balances
        .execute(&account, &key("o:fill:e1"), &settle(Side::Buy, 2, 18_725))
        .await
        .expect("settle");
    balances
        .execute(&account, &key("o:fill:e2"), &settle(Side::Buy, 1, 18_700))
        .await
        .expect("settle");
    let rest = 60_000 - 2 * 18_725 - 18_700;
    balances
        .execute(&account, &key("o:release"), &release(rest))
        .await
        .expect("release");
    assert_eq!(
        balances.balances(&account).await.expect("balances"),
        BTreeMap::from([
            (
                Asset::Cash,
                Balance {
                    available: 100_000 - 2 * 18_725 - 18_700,
                    reserved: 0,
                    owed: 0,
                }
            ),
            (
                aapl(),
                Balance {
                    available: 3,
                    reserved: 0,
                    owed: 0,
                }
            ),
        ])
    );
}

/// A sell: reserve shares, settle a fill, receive cash.
pub async fn sell_reserve_settle<B: Balances>(balances: &B) {
    let account = new_account("sell");
    let shares = |n| Amount::new(n).expect("positive");
    balances
        .execute(
            &account,
            &key("gift"),
            &Operation::Deposit {
                asset: aapl(),
                amount: shares(5),
            },
        )
        .await
        .expect("deposit");
    balances
        .execute(
            &account,
            &key("o:reserve"),
            &Operation::Reserve {
                asset: aapl(),
                amount: shares(4),
            },
        )
        .await
        .expect("reserve");
    balances
        .execute(&account, &key("o:fill:e1"), &settle(Side::Sell, 4, 10_000))
        .await
        .expect("settle");
    assert_eq!(
        balances.balances(&account).await.expect("balances"),
        BTreeMap::from([
            (
                Asset::Cash,
                Balance {
                    available: 40_000,
                    reserved: 0,
                    owed: 0,
                }
            ),
            (
                aapl(),
                Balance {
                    available: 1,
                    reserved: 0,
                    owed: 0,
                }
            ),
        ])
    );
}

/// Nothing is taken from a bucket that does not hold it: a release beyond
/// what is reserved, a reservation beyond what is available, are refused.
pub async fn never_negative<B: Balances>(balances: &B) {
    let account = funded_account(balances, "negative", 1_000).await;
    balances
        .execute(&account, &key("r"), &reserve(400))
        .await
        .expect("reserve");
    let too_much_release = balances
        .execute(&account, &key("rel"), &release(401))
        .await
        .expect("answered");
    assert!(matches!(too_much_release.outcome, Outcome::Failed(_)));
    let too_much_reserve = balances
        .execute(&account, &key("r2"), &reserve(601))
        .await
        .expect("answered");
    assert!(matches!(too_much_reserve.outcome, Outcome::Failed(_)));
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 600,
            reserved: 400,
            owed: 0,
        }
    );
}

/// A settlement is never refused: the exchange executed it. Its cost comes
/// out of the reservation as far as the order says it covers, then out of
/// what is available, and what is left is recorded as owed: a shortfall,
/// with its amount, on the record and in the balance.
pub async fn executions_beyond_the_reservation_are_paid_then_owed<B: Balances>(balances: &B) {
    let account = funded_account(balances, "beyond", 1_000).await;
    balances
        .execute(&account, &key("o:reserve"), &reserve(400))
        .await
        .expect("reserve");
    let beyond = balances
        .execute(
            &account,
            &key("o:fill:e1"),
            &settle_covering(Side::Buy, 1, 401, 400),
        )
        .await
        .expect("answered");
    assert_eq!(beyond.outcome, Outcome::Succeeded);
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 599,
            reserved: 0,
            owed: 0,
        }
    );
    let short = balances
        .execute(
            &account,
            &key("o:fill:e2"),
            &settle_covering(Side::Buy, 1, 700, 0),
        )
        .await
        .expect("answered");
    assert_eq!(
        short.outcome,
        Outcome::Shortfall {
            asset: Asset::Cash,
            units: 101
        }
    );
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 0,
            reserved: 0,
            owed: 101,
        }
    );
    assert_eq!(balance_of(balances, &account, &aapl()).await.available, 2);
    // A replay answers the same record and moves nothing.
    let again = balances
        .execute(
            &account,
            &key("o:fill:e2"),
            &settle_covering(Side::Buy, 1, 700, 0),
        )
        .await
        .expect("answered");
    assert_eq!(again, short);
    assert_eq!(balance_of(balances, &account, &Asset::Cash).await.owed, 101);
    // Selling shares the account does not hold: owed in shares.
    let oversold = balances
        .execute(
            &account,
            &key("p:fill:e1"),
            &settle_covering(Side::Sell, 5, 100, 0),
        )
        .await
        .expect("answered");
    assert_eq!(
        oversold.outcome,
        Outcome::Shortfall {
            asset: aapl(),
            units: 3
        }
    );
    let shares = balance_of(balances, &account, &aapl()).await;
    assert_eq!((shares.available, shares.owed), (0, 3));
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await.available,
        500
    );
}

/// Keys are scoped per account.
pub async fn keys_are_per_account<B: Balances>(balances: &B) {
    let first = funded_account(balances, "scope-a", 1_000).await;
    let second = funded_account(balances, "scope-b", 1_000).await;
    balances
        .execute(&first, &key("same"), &reserve(100))
        .await
        .expect("reserve");
    let other = balances
        .execute(&second, &key("same"), &reserve(300))
        .await
        .expect("reserve");
    assert_eq!(other.outcome, Outcome::Succeeded);
    assert_eq!(
        balance_of(balances, &second, &Asset::Cash).await,
        Balance {
            available: 700,
            reserved: 300,
            owed: 0,
        }
    );
}

pub async fn unknown_key_lookup_is_none<B: Balances>(balances: &B) {
    let account = funded_account(balances, "lookup", 1_000).await;
    assert_eq!(
        balances.lookup(&account, &key("never-sent")).await,
        Ok(None)
    );
}

/// 50 concurrent calls with one key: one movement, 50 identical records.
pub async fn concurrent_same_key_moves_once<B: Balances>(balances: &B) {
    let account = funded_account(balances, "race-one", 100_000).await;
    let (once, operation) = (key("once"), reserve(1_000));
    let calls = (0..50).map(|_| balances.execute(&account, &once, &operation));
    let records: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("answered"))
        .collect();
    assert!(records
        .iter()
        .all(|r| r == &records[0] && r.outcome == Outcome::Succeeded));
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 99_000,
            reserved: 1_000,
            owed: 0,
        }
    );
}

/// 50 concurrent reserves with different keys against funds for exactly 10:
/// exactly 10 succeed, nothing goes negative.
pub async fn concurrent_reserves_never_overdraw<B: Balances>(balances: &B) {
    let account = funded_account(balances, "race-many", 10_000).await;
    let keys: Vec<IdempotencyKey> = (0..50)
        .map(|i| key(&format!("order-{i}:reserve")))
        .collect();
    let operation = reserve(1_000);
    let calls = keys
        .iter()
        .map(|k| balances.execute(&account, k, &operation));
    let records: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("answered"))
        .collect();
    let succeeded = records
        .iter()
        .filter(|r| r.outcome == Outcome::Succeeded)
        .count();
    assert_eq!(succeeded, 10);
    assert_eq!(
        balance_of(balances, &account, &Asset::Cash).await,
        Balance {
            available: 0,
            reserved: 10_000,
            owed: 0,
        }
    );
    // Each refusal is stored too: a replay of any of the 50 answers the same.
    for (k, record) in keys.iter().zip(&records) {
        assert_eq!(
            balances.lookup(&account, k).await.expect("lookup").as_ref(),
            Some(record)
        );
    }
}

/// Runs every check of the suite as a `#[tokio::test]` against one adapter.
#[macro_export]
macro_rules! balances_conformance {
    ($make:expr) => {
        $crate::balances_conformance!(@tests $make;
            deposit_opens_an_account, replay_moves_once, reused_key_is_refused,
            refusal_is_stored_and_replayed, unknown_account_is_refused,
            buy_reserve_settle_release, sell_reserve_settle, never_negative,
            keys_are_per_account, unknown_key_lookup_is_none,
            concurrent_same_key_moves_once, concurrent_reserves_never_overdraw,
            executions_beyond_the_reservation_are_paid_then_owed);
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let balances = $make;
                $crate::conformance::balances::$check(&balances).await;
            }
        )*
    };
}
