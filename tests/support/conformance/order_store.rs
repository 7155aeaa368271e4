//! The `OrderStore` port's contract, for the in-memory and DynamoDB adapters.

use app::order_store::{Claim, IdempotencyRecord, Inserted, OrderStore, Saved};
use domain::order::{OrderId, OPEN_INDEX_SHARDS};
use domain::IdempotencyKey;
use futures::future::join_all;

use crate::new_account;
use crate::orders::{new_order_id, sample_order};

const NOW: u64 = 1_800_000_000_000;

fn record(
    account: &domain::AccountId,
    key: &str,
    fingerprint: &str,
    order_id: OrderId,
    expires_at_ms: u64,
) -> IdempotencyRecord {
    IdempotencyRecord {
        account: account.clone(),
        key: IdempotencyKey::parse(key).expect("key"),
        fingerprint: fingerprint.into(),
        order_id,
        expires_at_ms,
    }
}

/// A key is held until it expires, then can be claimed again; keys are per account.
pub async fn keys_are_claimed_once_until_they_expire<S: OrderStore>(store: &S) {
    let account = new_account("claim");
    let first = record(&account, "k", "fp-1", new_order_id(), NOW + 1_000);
    assert_eq!(
        store.claim_key(&first, NOW).await.expect("claim"),
        Claim::Claimed
    );
    let second = record(&account, "k", "fp-2", new_order_id(), NOW + 2_000);
    assert_eq!(
        store.claim_key(&second, NOW + 999).await.expect("claim"),
        Claim::Taken(first)
    );
    assert_eq!(
        store.claim_key(&second, NOW + 1_000).await.expect("claim"),
        Claim::Claimed,
        "expired keys are free"
    );
    let elsewhere = record(
        &new_account("other"),
        "k",
        "fp-3",
        new_order_id(),
        NOW + 1_000,
    );
    assert_eq!(
        store.claim_key(&elsewhere, NOW).await.expect("claim"),
        Claim::Claimed
    );
}

/// 20 concurrent claims of one key: exactly one wins, all see the winner.
pub async fn concurrent_claims_have_one_winner<S: OrderStore>(store: &S) {
    let account = new_account("race");
    let records: Vec<_> = (0..20)
        .map(|i| {
            record(
                &account,
                "same",
                &format!("fp-{i}"),
                new_order_id(),
                NOW + 1_000,
            )
        })
        .collect();
    let results = join_all(records.iter().map(|r| store.claim_key(r, NOW))).await;
    let winners: Vec<_> = records
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(Claim::Claimed)))
        .map(|(r, _)| r)
        .collect();
    assert_eq!(winners.len(), 1);
    for result in results {
        match result.expect("answered") {
            Claim::Claimed => {}
            Claim::Taken(holder) => assert_eq!(&holder, winners[0]),
        }
    }
}

pub async fn insert_is_once<S: OrderStore>(store: &S) {
    let order = sample_order(&new_account("insert"), NOW, NOW + 60_000);
    let Inserted::New(stored) = store.insert(&order).await.expect("insert") else {
        panic!("first insert")
    };
    assert_eq!(stored.version, 1);
    let mut other = order.clone();
    other.created_at_ms += 1;
    assert_eq!(
        store.insert(&other).await.expect("insert"),
        Inserted::Exists(stored.clone())
    );
    assert_eq!(store.load(&order.id).await.expect("load"), Some(stored));
    assert_eq!(store.load(&new_order_id()).await.expect("load"), None);
}

/// A save on a stale version is refused; nothing is overwritten.
pub async fn saves_are_conditional_on_the_version<S: OrderStore>(store: &S) {
    let mut order = sample_order(&new_account("cas"), NOW, NOW + 60_000);
    store.insert(&order).await.expect("insert");
    order.recovery.attempts = 1;
    assert_eq!(
        store.save(&order, 1).await.expect("save"),
        Saved::Saved { version: 2 }
    );
    order.recovery.attempts = 99;
    assert_eq!(store.save(&order, 1).await.expect("save"), Saved::Conflict);
    let stored = store.load(&order.id).await.expect("load").expect("exists");
    assert_eq!((stored.version, stored.value.recovery.attempts), (2, 1));
}

/// 10 writers each add one to a counter through load/save retries: no update is lost.
pub async fn concurrent_updates_lose_nothing<S: OrderStore>(store: &S) {
    let order = sample_order(&new_account("lost-update"), NOW, NOW + 60_000);
    store.insert(&order).await.expect("insert");
    let writer = || async {
        loop {
            let mut stored = store.load(&order.id).await.expect("load").expect("exists");
            stored.value.recovery.attempts += 1;
            if store
                .save(&stored.value, stored.version)
                .await
                .expect("save")
                != Saved::Conflict
            {
                return;
            }
        }
    };
    join_all((0..10).map(|_| writer())).await;
    let stored = store.load(&order.id).await.expect("load").expect("exists");
    assert_eq!(stored.value.recovery.attempts, 10);
    assert_eq!(stored.version, 11);
}

/// An account's orders, newest first, page by page, and nobody else's.
pub async fn lists_an_accounts_orders_newest_first<S: OrderStore>(store: &S) {
    let account = new_account("list");
    let mut ids = Vec::new();
    for i in 0..5 {
        let order = sample_order(&account, NOW + i, NOW + 60_000);
        store.insert(&order).await.expect("insert");
        ids.push(order.id);
    }
    store
        .insert(&sample_order(&new_account("stranger"), NOW, NOW))
        .await
        .expect("insert");
    ids.reverse();
    let first = store
        .list_for_account(&account, None, 2)
        .await
        .expect("list");
    assert_eq!(
        first
            .orders
            .iter()
            .map(|o| o.id.clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let second = store
        .list_for_account(&account, first.next.as_ref(), 2)
        .await
        .expect("list");
    assert_eq!(
        second
            .orders
            .iter()
            .map(|o| o.id.clone())
            .collect::<Vec<_>>(),
        ids[2..4]
    );
    let last = store
        .list_for_account(&account, second.next.as_ref(), 2)
        .await
        .expect("list");
    assert_eq!(
        last.orders.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        ids[4..]
    );
    assert_eq!(last.next, None);
}

/// Only open orders that are due are found, in their shard; a closed order leaves the index.
pub async fn due_orders_come_from_the_open_index<S: OrderStore>(store: &S) {
    let account = new_account("due");
    let due = sample_order(&account, NOW, NOW + 10);
    let later = sample_order(&account, NOW, NOW + 1_000_000);
    let mut closed = sample_order(&account, NOW, NOW + 10);
    closed.closed_at_ms = Some(NOW);
    for order in [&due, &later, &closed] {
        store.insert(order).await.expect("insert");
    }
    let mut found = Vec::new();
    for shard in 0..OPEN_INDEX_SHARDS {
        found.extend(store.due_orders(shard, NOW + 10, 1_000).await.expect("due"));
    }
    assert!(found.contains(&due.id));
    assert!(!found.contains(&later.id) && !found.contains(&closed.id));
    let in_its_shard = store
        .due_orders(due.open_index_shard(), NOW + 10, 1_000)
        .await
        .expect("due");
    assert!(in_its_shard.contains(&due.id));
    let mut closing = store.load(&due.id).await.expect("load").expect("exists");
    closing.value.closed_at_ms = Some(NOW + 20);
    store
        .save(&closing.value, closing.version)
        .await
        .expect("save");
    let after = store
        .due_orders(due.open_index_shard(), NOW + 10, 1_000)
        .await
        .expect("due");
    assert!(
        !after.contains(&due.id),
        "closing removes the order from the open index"
    );
}

#[macro_export]
macro_rules! order_store_conformance {
    ($make:expr) => {
        $crate::order_store_conformance!(@tests $make;
            keys_are_claimed_once_until_they_expire, concurrent_claims_have_one_winner,
            insert_is_once, saves_are_conditional_on_the_version, concurrent_updates_lose_nothing,
            lists_an_accounts_orders_newest_first, due_orders_come_from_the_open_index);
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let store = $make;
                $crate::conformance::order_store::$check(&store).await;
            }
        )*
    };
}
