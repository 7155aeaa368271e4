//! The `OrderStore` port's contract, for the in-memory and DynamoDB adapters.

use app::order_store::{
    Claim, DueEntry, FillWritten, IdempotencyRecord, Inserted, OrderStore, Saved,
};
use domain::order::{ExecId, FillRecord, OrderId, OPEN_INDEX_SHARDS};
use domain::IdempotencyKey;
use futures::future::join_all;

use crate::new_account;
use crate::orders::{execution, new_order_id, sample_order, settled_record};

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
    order.reported_cum = 1;
    assert_eq!(
        store.save(&order, 1).await.expect("save"),
        Saved::Saved { version: 2 }
    );
    order.reported_cum = 99;
    assert_eq!(store.save(&order, 1).await.expect("save"), Saved::Conflict);
    let stored = store.load(&order.id).await.expect("load").expect("exists");
    assert_eq!((stored.version, stored.value.reported_cum), (2, 1));
}

/// 10 writers each add one to a counter through load/save retries: no update is lost.
pub async fn concurrent_updates_lose_nothing<S: OrderStore>(store: &S) {
    let order = sample_order(&new_account("lost-update"), NOW, NOW + 60_000);
    store.insert(&order).await.expect("insert");
    let writer = || async {
        loop {
            let mut stored = store.load(&order.id).await.expect("load").expect("exists");
            stored.value.reported_cum += 1;
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
    assert_eq!(stored.value.reported_cum, 10);
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

async fn due_ids<S: OrderStore>(
    store: &S,
    shard: u32,
    after: Option<&DueEntry>,
    until: u64,
) -> Vec<OrderId> {
    store
        .due_orders(shard, after, until, 1_000)
        .await
        .expect("due")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Only open orders that are due are found, in their shard, in due order
/// from a cursor; a closed order leaves the index.
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
        found.extend(due_ids(store, shard, None, NOW + 10).await);
    }
    assert!(found.contains(&due.id));
    assert!(!found.contains(&later.id) && !found.contains(&closed.id));
    let shard = due.open_index_shard();
    assert!(due_ids(store, shard, None, NOW + 10)
        .await
        .contains(&due.id));
    // A cursor at the entry itself reads past it.
    let cursor = DueEntry {
        due_at_ms: NOW + 10,
        id: due.id.clone(),
    };
    assert!(!due_ids(store, shard, Some(&cursor), NOW + 10)
        .await
        .contains(&due.id));
    let mut closing = store.load(&due.id).await.expect("load").expect("exists");
    closing.value.closed_at_ms = Some(NOW + 20);
    store
        .save(&closing.value, closing.version)
        .await
        .expect("save");
    assert!(
        !due_ids(store, shard, None, NOW + 10)
            .await
            .contains(&due.id),
        "closing removes the order from the open index"
    );
}

/// A due time moved later leaves the window; entries come ascending.
pub async fn due_orders_follow_their_due_time<S: OrderStore>(store: &S) {
    let account = new_account("due-order");
    let mut orders: Vec<_> = (0..4)
        .map(|i| sample_order(&account, NOW, NOW + 100 - i * 10))
        .collect();
    for order in &orders {
        store.insert(order).await.expect("insert");
    }
    let mut moved = store
        .load(&orders[0].id)
        .await
        .expect("load")
        .expect("exists");
    moved.value.recovery.due_at_ms = NOW + 5_000;
    store.save(&moved.value, moved.version).await.expect("save");
    orders.remove(0);
    for shard in 0..OPEN_INDEX_SHARDS {
        let entries = store
            .due_orders(shard, None, NOW + 1_000, 1_000)
            .await
            .expect("due");
        let mine: Vec<&DueEntry> = entries
            .iter()
            .filter(|e| orders.iter().any(|o| o.id == e.id) || e.id == moved.value.id)
            .collect();
        assert!(mine.iter().all(|e| e.id != moved.value.id), "moved later");
        assert!(mine.windows(2).all(|w| w[0] <= w[1]), "ascending: {mine:?}");
    }
}

/// An execution's record is written once per state: a duplicate stops at
/// it, and a settled record replaces a waiting one when asked.
pub async fn execution_records_are_written_once<S: OrderStore>(store: &S) {
    let order = sample_order(&new_account("fills"), NOW, NOW + 60_000);
    store.insert(&order).await.expect("insert");
    let id = &order.id;
    let exec = ExecId::parse("e-1").expect("exec id");
    assert_eq!(store.fill(id, &exec).await.expect("fill"), None);
    let waiting = FillRecord::recorded(&execution("e-1", 2, 100), NOW);
    assert_eq!(
        store.put_fill(id, &waiting, false).await.expect("put"),
        FillWritten::Written
    );
    assert_eq!(
        store.put_fill(id, &waiting, false).await.expect("put"),
        FillWritten::Exists(waiting.clone())
    );
    assert_eq!(
        store.fill(id, &exec).await.expect("fill"),
        Some(waiting.clone())
    );
    assert_eq!(
        store.next_waiting(id).await.expect("next"),
        Some(waiting.clone())
    );
    let settled = settled_record("e-1", 2, 100, NOW);
    assert_eq!(
        store.put_fill(id, &settled, true).await.expect("put"),
        FillWritten::Written
    );
    assert_eq!(
        store.fill(id, &exec).await.expect("fill"),
        Some(settled.clone())
    );
    assert_eq!(
        store.next_waiting(id).await.expect("next"),
        None,
        "no longer waiting"
    );
    assert_eq!(
        store.put_fill(id, &settled, true).await.expect("put"),
        FillWritten::Exists(settled.clone())
    );
    // Another order's executions are its own.
    let other = sample_order(&new_account("fills"), NOW, NOW + 60_000);
    store.insert(&other).await.expect("insert");
    assert_eq!(store.fill(&other.id, &exec).await.expect("fill"), None);
}

/// Every record of an order, page by page, by exec id.
pub async fn execution_records_are_listed_in_pages<S: OrderStore>(store: &S) {
    let order = sample_order(&new_account("pages"), NOW, NOW + 60_000);
    store.insert(&order).await.expect("insert");
    for n in 0..7 {
        let record = settled_record(&format!("s-{n}"), 1, 100, NOW);
        store
            .put_fill(&order.id, &record, false)
            .await
            .expect("put");
    }
    let waiting = FillRecord::recorded(&execution("w-0", 1, 100), NOW);
    store
        .put_fill(&order.id, &waiting, false)
        .await
        .expect("put");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .fills(&order.id, after.as_ref(), 3)
            .await
            .expect("page");
        assert!(page.fills.len() <= 3);
        seen.extend(page.fills.into_iter().map(|r| r.exec_id.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7).map(|n| format!("s-{n}")).collect();
    expected.push("w-0".into());
    seen.sort();
    assert_eq!(seen, expected);
}

/// A cursor is saved only over the version it was read at.
pub async fn cursors_are_conditional<S: OrderStore>(store: &S) {
    let name = format!("test#{}", new_order_id());
    assert_eq!(store.cursor(&name).await.expect("cursor"), None);
    assert_eq!(
        store.save_cursor(&name, "a", 0).await.expect("save"),
        Saved::Saved { version: 1 }
    );
    assert_eq!(
        store.save_cursor(&name, "b", 0).await.expect("save"),
        Saved::Conflict
    );
    assert_eq!(
        store.save_cursor(&name, "c", 1).await.expect("save"),
        Saved::Saved { version: 2 }
    );
    let stored = store.cursor(&name).await.expect("cursor").expect("saved");
    assert_eq!((stored.value.as_str(), stored.version), ("c", 2));
}

#[macro_export]
macro_rules! order_store_conformance {
    ($make:expr) => {
        $crate::order_store_conformance!(@tests $make;
            keys_are_claimed_once_until_they_expire, concurrent_claims_have_one_winner,
            insert_is_once, saves_are_conditional_on_the_version, concurrent_updates_lose_nothing,
            lists_an_accounts_orders_newest_first, due_orders_come_from_the_open_index,
            due_orders_follow_their_due_time, execution_records_are_written_once,
            execution_records_are_listed_in_pages, cursors_are_conditional);
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
