//! Emulator conformance: the DynamoDB and SQS behaviour the project relies on,
//! checked against the local stack (infra/moto/server.py). Stock moto_server
//! fails (a)-(c) (see infra/EMULATOR.md); run them against one with
//! `LOCAL_STACK_ENDPOINT=http://127.0.0.1:<port>`.
//!
//! Each test creates its own tables and queues (`unique_prefix`), so they run
//! in parallel. The DynamoDB client has retries disabled: an HTTP 500 from the
//! emulator must show up as a failure, not be retried away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use futures::future::join_all;
use local_stack::{unique_prefix, Resources, Stack};

struct Env {
    ddb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    res: Resources,
}

impl Env {
    async fn new(label: &str) -> Result<Env> {
        let stack = Stack::ensure_running().await?;
        let res = stack.create_resources(&unique_prefix(label)).await?;
        let cfg = stack.sdk_config();
        let ddb_cfg = aws_sdk_dynamodb::config::Builder::from(&cfg)
            .retry_config(RetryConfig::disabled())
            .build();
        Ok(Env {
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb_cfg),
            sqs: aws_sdk_sqs::Client::new(&cfg),
            res,
        })
    }

    fn trading(&self) -> &str {
        self.res.table("TradingTable")
    }

    async fn put(&self, pk: &str, sk: &str, attrs: &[(&str, AttributeValue)]) -> Result<()> {
        let mut req = self
            .ddb
            .put_item()
            .table_name(self.trading())
            .item("pk", s(pk))
            .item("sk", s(sk));
        for (k, v) in attrs {
            req = req.item(*k, v.clone());
        }
        req.send().await?;
        Ok(())
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        Ok(self
            .ddb
            .get_item()
            .table_name(self.trading())
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await?
            .item)
    }

    async fn get_n(&self, pk: &str, sk: &str) -> Result<i64> {
        let item = self
            .get(pk, sk)
            .await?
            .ok_or_else(|| anyhow!("{pk}/{sk} missing"))?;
        let n = item.get("n").ok_or_else(|| anyhow!("{pk}/{sk} has no n"))?;
        Ok(n.as_n().map_err(|_| anyhow!("n not a number"))?.parse()?)
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

/// HTTP status of a failed SDK call (None when no response arrived).
fn http_status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Update for a 2-item transaction: `SET n = n + :d` (guarded by `n >= -:d` when negative).
fn add(table: &str, pk: &str, sk: &str, delta: i64) -> Result<TransactWriteItem> {
    let mut u = Update::builder()
        .table_name(table)
        .key("pk", s(pk))
        .key("sk", s(sk))
        .update_expression("SET n = n + :d")
        .expression_attribute_values(":d", n(delta));
    if delta < 0 {
        u = u
            .condition_expression("n >= :need")
            .expression_attribute_values(":need", n(-delta));
    }
    Ok(TransactWriteItem::builder().update(u.build()?).build())
}

fn put_tx(table: &str, pk: &str, sk: &str) -> Result<TransactWriteItem> {
    Ok(TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(table)
                .item("pk", s(pk))
                .item("sk", s(sk))
                .condition_expression("attribute_not_exists(pk)")
                .build()?,
        )
        .build())
}

// (a) ------------------------------------------------------------------------
/// Attributes that make each item (and so each request's work in the
/// emulator) bigger: a longer critical section makes a missing lock show up
/// in nearly every run instead of now and then.
fn padding() -> Vec<(&'static str, AttributeValue)> {
    const NAMES: [&str; 8] = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    NAMES.iter().map(|k| (*k, big_list())).collect()
}

fn big_list() -> AttributeValue {
    AttributeValue::L(vec![
        AttributeValue::M(
            [("a", s("padding")), ("b", n(1)), ("c", s("padding"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        64
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_conditional_decrement_is_atomic() -> Result<()> {
    let env = Arc::new(Env::new("decrement").await?);
    // 100 units, 150 concurrent decrements; on several items at once so the
    // emulator sees enough concurrency.
    const ITEMS: usize = 4;
    for i in 0..ITEMS {
        let mut attrs = padding();
        attrs.push(("n", n(100)));
        env.put(&format!("STOCK#{i}"), "META", &attrs).await?;
    }
    // Bounded in flight: enough to expose a non-atomic emulator, not so many
    // that a loaded machine times connections out.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(200));
    let tasks = (0..150 * ITEMS).map(|j| {
        let env = env.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let _permit = in_flight.acquire_owned().await;
            let i = j % ITEMS;
            let r = env
                .ddb
                .update_item()
                .table_name(env.trading())
                .key("pk", s(&format!("STOCK#{i}")))
                .key("sk", s("META"))
                // The big SET makes the work between the condition check and
                // the write long, as a real multi-attribute update would.
                .update_expression("SET n = n - :one, filler = :filler")
                .condition_expression("n >= :one")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":filler", big_list())
                .send()
                .await;
            (i, r)
        })
    });
    let (mut ok, mut refused, mut other) = (vec![0; ITEMS], vec![0; ITEMS], Vec::new());
    for r in join_all(tasks).await {
        match r? {
            (i, Ok(_)) => ok[i] += 1,
            (i, Err(e))
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                refused[i] += 1
            }
            (_, Err(e)) => other.push(format!(
                "{:?} {} {}",
                http_status(&e),
                e.code().unwrap_or("?"),
                e.message().unwrap_or("")
            )),
        }
    }
    ensure!(other.is_empty(), "unexpected errors: {other:?}");
    ensure!(
        ok.iter().all(|&k| k == 100) && refused.iter().all(|&k| k == 50),
        "decrements succeeded {ok:?}, refused {refused:?} (want 100 and 50 each)"
    );
    for i in 0..ITEMS {
        let left = env.get_n(&format!("STOCK#{i}"), "META").await?;
        ensure!(left == 0, "STOCK#{i} ends at {left}, not 0");
    }
    Ok(())
}

// (b) ------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_attribute_not_exists_put_has_one_winner() -> Result<()> {
    let env = Arc::new(Env::new("claim").await?);
    // 20 concurrent claims of one key, for several keys at once.
    const KEYS: usize = 10;
    let tasks = (0..20 * KEYS).map(|j| {
        let env = env.clone();
        tokio::spawn(async move {
            let key = j % KEYS;
            let mut req = env
                .ddb
                .put_item()
                .table_name(env.trading())
                .item("pk", s(&format!("IDEM#acct#{key}")))
                .item("sk", s("META"))
                .item("writer", n(j as i64))
                .condition_expression("attribute_not_exists(pk)");
            for (k, v) in padding() {
                req = req.item(k, v);
            }
            (key, j, req.send().await)
        })
    });
    let mut winners = vec![Vec::new(); KEYS];
    let mut other = Vec::new();
    for r in join_all(tasks).await {
        match r? {
            (key, j, Ok(_)) => winners[key].push(j),
            (_, _, Err(e))
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            (_, _, Err(e)) => {
                other.push(format!("{:?} {}", http_status(&e), e.code().unwrap_or("?")))
            }
        }
    }
    ensure!(other.is_empty(), "unexpected errors: {other:?}");
    ensure!(
        winners.iter().all(|w| w.len() == 1),
        "winners per key: {winners:?}"
    );
    for (key, w) in winners.iter().enumerate() {
        let stored = env
            .get(&format!("IDEM#acct#{key}"), "META")
            .await?
            .context("claim missing")?;
        ensure!(
            stored.get("writer") == Some(&n(w[0] as i64)),
            "key {key}: stored item is not the winner's"
        );
    }
    Ok(())
}

// (c) ------------------------------------------------------------------------
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn emulator_concurrent_transactions_lose_nothing() -> Result<()> {
    let env = Arc::new(Env::new("tx-concurrent").await?);
    let table = env.trading().to_string();
    env.put("ACCT#a", "CASH", &[("n", n(1000))]).await?;
    env.put("ACCT#b", "CASH", &[("n", n(0))]).await?;
    const ROUNDS: usize = 40;
    let mut tasks = Vec::new();
    for i in 0..ROUNDS {
        // Overlapping: all move one unit a -> b.
        let (env1, t1) = (env.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let items = vec![
                add(&t1, "ACCT#a", "CASH", -1)?,
                add(&t1, "ACCT#b", "CASH", 1)?,
            ];
            let r = env1
                .ddb
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            Ok::<_, anyhow::Error>((
                "transfer",
                r.map(|_| ())
                    .map_err(|e| (http_status(&e), e.code().map(str::to_string))),
            ))
        }));
        // Unrelated, and failing: a condition on a missing item (stock moto
        // then restores a table snapshot, wiping concurrent writes).
        let (env2, t2) = (env.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let check = ConditionCheck::builder()
                .table_name(&t2)
                .key("pk", s(&format!("MISSING#{i}")))
                .key("sk", s("X"))
                .condition_expression("attribute_exists(pk)")
                .build()?;
            let items = vec![
                put_tx(&t2, &format!("FAILED#{i}"), "X")?,
                TransactWriteItem::builder().condition_check(check).build(),
            ];
            let r = env2
                .ddb
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            Ok((
                "failing",
                r.map(|_| ())
                    .map_err(|e| (http_status(&e), e.code().map(str::to_string))),
            ))
        }));
        // Unrelated: a 2-item put transaction and a single put.
        let (env3, t3) = (env.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let items = vec![
                put_tx(&t3, &format!("NEW#{i}"), "1")?,
                put_tx(&t3, &format!("NEW#{i}"), "2")?,
            ];
            let r = env3
                .ddb
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            Ok((
                "unrelated-tx",
                r.map(|_| ())
                    .map_err(|e| (http_status(&e), e.code().map(str::to_string))),
            ))
        }));
        let env4 = env.clone();
        tasks.push(tokio::spawn(async move {
            let r = env4
                .ddb
                .put_item()
                .table_name(env4.trading())
                .item("pk", s(&format!("SINGLE#{i}")))
                .item("sk", s("1"))
                .send()
                .await;
            Ok((
                "single-put",
                r.map(|_| ())
                    .map_err(|e| (http_status(&e), e.code().map(str::to_string))),
            ))
        }));
    }
    let mut problems = Vec::new();
    for r in join_all(tasks).await {
        let (kind, outcome) = r??;
        match (kind, outcome) {
            ("failing", Err((_, Some(code)))) if code == "TransactionCanceledException" => {}
            ("failing", other) => problems.push(format!("failing tx: {other:?}")),
            (_, Ok(())) => {}
            (kind, Err(e)) => problems.push(format!("{kind}: {e:?}")),
        }
    }
    ensure!(
        problems.is_empty(),
        "{} problems, e.g. {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    let (a, b) = (
        env.get_n("ACCT#a", "CASH").await?,
        env.get_n("ACCT#b", "CASH").await?,
    );
    ensure!(
        a == 1000 - ROUNDS as i64 && b == ROUNDS as i64,
        "a={a} b={b}"
    );
    let mut lost = Vec::new();
    for i in 0..ROUNDS {
        for (pk, sk) in [
            (format!("NEW#{i}"), "1"),
            (format!("NEW#{i}"), "2"),
            (format!("SINGLE#{i}"), "1"),
        ] {
            if env.get(&pk, sk).await?.is_none() {
                lost.push(format!("{pk}/{sk}"));
            }
        }
        ensure!(
            env.get(&format!("FAILED#{i}"), "X").await?.is_none(),
            "cancelled put applied"
        );
    }
    ensure!(lost.is_empty(), "lost writes: {lost:?}");
    Ok(())
}

type Item = HashMap<String, AttributeValue>;

/// The reasons of a cancelled transaction: (code, item returned).
fn cancellation(
    e: SdkError<TransactWriteItemsError, HttpResponse>,
) -> Result<Vec<(String, Option<Item>)>> {
    match e.into_service_error() {
        TransactWriteItemsError::TransactionCanceledException(c) => Ok(c
            .cancellation_reasons()
            .iter()
            .map(|r| (r.code().unwrap_or("").to_string(), r.item().cloned()))
            .collect()),
        other => Err(anyhow!(
            "expected TransactionCanceledException, got {other:?}"
        )),
    }
}

// (d) ------------------------------------------------------------------------
#[tokio::test]
async fn emulator_transaction_cancellation_reports_reasons_and_applies_nothing() -> Result<()> {
    let env = Env::new("tx-cancel").await?;
    let t = env.trading().to_string();
    env.put("ORDER#1", "META", &[("n", n(5))]).await?;
    env.put("ACCT#1", "CASH", &[("n", n(3))]).await?;
    let check = ConditionCheck::builder()
        .table_name(&t)
        .key("pk", s("ACCT#1"))
        .key("sk", s("CASH"))
        .condition_expression("n >= :x")
        .expression_attribute_values(":x", n(1))
        .build()?;
    let failing = Update::builder()
        .table_name(&t)
        .key("pk", s("ORDER#1"))
        .key("sk", s("META"))
        .update_expression("SET n = n + :d")
        .condition_expression("n < :max")
        .expression_attribute_values(":d", n(1))
        .expression_attribute_values(":max", n(5))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()?;
    let items = vec![
        put_tx(&t, "ORDER#1", "FILL#e1")?,
        TransactWriteItem::builder().update(failing).build(),
        TransactWriteItem::builder().condition_check(check).build(),
    ];
    let err = env
        .ddb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .err()
        .context("transaction must be cancelled")?;
    let reasons = cancellation(err)?;
    let codes: Vec<&str> = reasons.iter().map(|(c, _)| c.as_str()).collect();
    ensure!(
        codes == ["None", "ConditionalCheckFailed", "None"],
        "codes {codes:?}"
    );
    // ReturnValuesOnConditionCheckFailure=ALL_OLD returns the item in the reason.
    ensure!(
        reasons[1].1.as_ref().and_then(|i| i.get("n")) == Some(&n(5)),
        "reason item: {:?}",
        reasons[1].1
    );
    ensure!(
        env.get("ORDER#1", "FILL#e1").await?.is_none(),
        "put of a cancelled tx applied"
    );
    ensure!(
        env.get_n("ORDER#1", "META").await? == 5,
        "update of a cancelled tx applied"
    );
    Ok(())
}

// (e) ------------------------------------------------------------------------
#[tokio::test]
async fn emulator_transaction_validation_failure_rolls_back_earlier_items() -> Result<()> {
    let env = Env::new("tx-rollback").await?;
    let t = env.trading().to_string();
    env.put("ACCT#1", "CASH", &[("n", n(10))]).await?;
    env.put("ACCT#2", "CASH", &[("n", s("not a number"))])
        .await?;
    // Items 1 and 2 apply fine; item 3 fails only when applied (arithmetic on a
    // string), after the earlier ones were written: they must be undone.
    let items = vec![
        put_tx(&t, "ORDER#9", "META")?,
        add(&t, "ACCT#1", "CASH", -4)?,
        TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&t)
                    .key("pk", s("ACCT#2"))
                    .key("sk", s("CASH"))
                    .update_expression("SET n = n + :d")
                    .expression_attribute_values(":d", n(1))
                    .build()?,
            )
            .build(),
    ];
    let err = env
        .ddb
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .err()
        .context("transaction must fail")?;
    // moto answers ValidationException (AWS cancels with a ValidationError reason).
    let code = err.code().unwrap_or("").to_string();
    ensure!(
        code == "ValidationException" || code == "TransactionCanceledException",
        "unexpected error {code}: {err:?}"
    );
    ensure!(
        http_status(&err) == Some(400),
        "status {:?}",
        http_status(&err)
    );
    ensure!(
        env.get("ORDER#9", "META").await?.is_none(),
        "earlier put not rolled back"
    );
    ensure!(
        env.get_n("ACCT#1", "CASH").await? == 10,
        "earlier update not rolled back"
    );
    Ok(())
}

// (f) ------------------------------------------------------------------------
/// Visibility timeout of the redelivery test, in seconds.
const VISIBILITY_S: i32 = 5;

#[tokio::test]
async fn emulator_sqs_visibility_timeout_redelivers() -> Result<()> {
    let env = Env::new("sqs-visibility").await?;
    let q = env.res.queue_url("FillQueue").to_string();
    env.sqs
        .send_message()
        .queue_url(&q)
        .message_body("fill-1")
        .message_group_id("order-1")
        .message_deduplication_id("fill-1")
        .send()
        .await?;
    let receive = |vis: i32| {
        env.sqs
            .receive_message()
            .queue_url(&q)
            .visibility_timeout(vis)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
    };
    // Hidden for its visibility timeout (long enough that the two calls
    // always fit inside it, even on a loaded machine)...
    let received_at = Instant::now();
    let first = receive(VISIBILITY_S).await?.messages.unwrap_or_default();
    ensure!(first.len() == 1, "first receive got {}", first.len());
    let hidden = receive(VISIBILITY_S).await?.messages.unwrap_or_default();
    ensure!(
        hidden.is_empty(),
        "message visible during its visibility timeout"
    );
    // ...then delivered again, never before the timeout has passed.
    let started = Instant::now();
    let again = loop {
        let got = receive(30).await?.messages.unwrap_or_default();
        if !got.is_empty() {
            break got;
        }
        ensure!(
            started.elapsed() < system_tests::WAIT_BOUND,
            "never redelivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        received_at.elapsed() >= Duration::from_secs(VISIBILITY_S as u64),
        "redelivered after {:?}, inside its visibility timeout",
        received_at.elapsed()
    );
    ensure!(
        again.len() == 1 && again[0].message_id == first[0].message_id,
        "not redelivered"
    );
    let count = again[0]
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .cloned();
    ensure!(
        count.as_deref() == Some("2"),
        "ApproximateReceiveCount {count:?}"
    );
    Ok(())
}

#[tokio::test]
async fn emulator_sqs_redrives_to_the_dead_letter_queue() -> Result<()> {
    let env = Env::new("sqs-redrive").await?;
    let q = env.res.queue_url("FillQueue").to_string();
    let dlq = env.res.queue_url("FillDeadLetterQueue").to_string();
    env.sqs
        .send_message()
        .queue_url(&q)
        .message_body("poison")
        .message_group_id("order-1")
        .message_deduplication_id("poison")
        .send()
        .await?;
    // maxReceiveCount is 10 in template.yaml: ten deliveries, then the DLQ.
    let mut deliveries = 0;
    for _ in 0..15 {
        let got = env
            .sqs
            .receive_message()
            .queue_url(&q)
            .visibility_timeout(0)
            .send()
            .await?;
        deliveries += got.messages.unwrap_or_default().len();
    }
    ensure!(
        deliveries == 10,
        "delivered {deliveries} times before the DLQ (want 10)"
    );
    let dead = env
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .send()
        .await?
        .messages
        .unwrap_or_default();
    ensure!(
        dead.len() == 1 && dead[0].body() == Some("poison"),
        "DLQ holds {dead:?}"
    );
    Ok(())
}

/// The fill processor relies on FIFO semantics: one order's reports are
/// handed out one batch at a time and in order, a delivery id taken twice
/// is kept once, and other orders are not held up.
#[tokio::test]
async fn emulator_sqs_fifo_orders_groups_and_drops_repeats() -> Result<()> {
    let env = Env::new("sqs-fifo").await?;
    let q = env.res.queue_url("FillQueue").to_string();
    for (group, body) in [("a", "a-1"), ("a", "a-2"), ("a", "a-1"), ("b", "b-1")] {
        env.sqs
            .send_message()
            .queue_url(&q)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(body)
            .send()
            .await?;
    }
    let receive = |max: i32| {
        env.sqs
            .receive_message()
            .queue_url(&q)
            .max_number_of_messages(max)
            .visibility_timeout(30)
            .send()
    };
    let bodies = |messages: &[aws_sdk_sqs::types::Message]| -> Vec<String> {
        messages
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect()
    };
    // One at a time: a-1 goes out first; a-2 waits behind it, b-1 does not.
    let first = receive(1).await?.messages.unwrap_or_default();
    ensure!(bodies(&first) == ["a-1"], "first {:?}", bodies(&first));
    let second = receive(10).await?.messages.unwrap_or_default();
    ensure!(
        bodies(&second) == ["b-1"],
        "group a must wait while a-1 is in flight: {:?}",
        bodies(&second)
    );
    env.sqs
        .delete_message()
        .queue_url(&q)
        .receipt_handle(first[0].receipt_handle().unwrap_or_default())
        .send()
        .await?;
    let third = receive(10).await?.messages.unwrap_or_default();
    ensure!(
        bodies(&third) == ["a-2"],
        "a-2 next, the repeated a-1 dropped: {:?}",
        bodies(&third)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_sqs_long_poll_does_not_stall_dynamodb() -> Result<()> {
    let env = Arc::new(Env::new("sqs-longpoll").await?);
    env.put("K", "V", &[("n", n(1))]).await?;
    let q = env.res.queue_url("FillQueue").to_string();
    let poller = {
        let (env, q) = (env.clone(), q.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = env
                .sqs
                .receive_message()
                .queue_url(&q)
                .wait_time_seconds(5)
                .send()
                .await;
            (
                started.elapsed(),
                r.map(|o| o.messages.unwrap_or_default().len()),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        env.get("K", "V").await?;
        worst = worst.max(t.elapsed());
    }
    let (waited, got) = poller.await?;
    ensure!(got? == 0, "the queue was empty");
    ensure!(
        waited >= Duration::from_millis(4500),
        "long poll returned after {waited:?}"
    );
    // A poll that held the DynamoDB lock would delay a GetItem by most of its
    // 5 s wait; anything well under that shows it does not (generous bound,
    // so a loaded machine's slow calls do not fail the test).
    ensure!(
        worst < Duration::from_millis(3_000),
        "GetItem took {worst:?} during a long poll"
    );
    eprintln!("GetItem during a 5 s long poll: worst {worst:?}; poll returned after {waited:?}");

    // A send during a long poll wakes it well before the wait time.
    let poller = {
        let (env, q) = (env.clone(), q.clone());
        tokio::spawn(async move {
            let r = env
                .sqs
                .receive_message()
                .queue_url(&q)
                .wait_time_seconds(5)
                .send()
                .await;
            (
                Instant::now(),
                r.map(|o| o.messages.unwrap_or_default().len()),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    env.sqs
        .send_message()
        .queue_url(&q)
        .message_body("wake")
        .message_group_id("order-1")
        .message_deduplication_id("wake")
        .send()
        .await?;
    let (returned, got) = poller.await?;
    ensure!(got? == 1, "long poll did not get the message");
    let delay = returned.saturating_duration_since(sent);
    // Not woken, the poll would return at the end of its 5 s wait.
    ensure!(
        delay < Duration::from_millis(3_500),
        "long poll woke {delay:?} after the send"
    );
    Ok(())
}

// (g) ------------------------------------------------------------------------
#[tokio::test]
async fn emulator_resources_follow_the_template() -> Result<()> {
    let env = Env::new("schema").await?;
    let table = env
        .ddb
        .describe_table()
        .table_name(env.trading())
        .send()
        .await?
        .table
        .context("no table description")?;
    let gsis: HashMap<String, (Vec<String>, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            let keys = g
                .key_schema()
                .iter()
                .map(|k| k.attribute_name().to_string())
                .collect();
            let projection = g
                .projection()
                .and_then(|p| p.projection_type())
                .map(|p| p.as_str().to_string())
                .unwrap_or_default();
            (g.index_name().unwrap_or("").to_string(), (keys, projection))
        })
        .collect();
    ensure!(
        gsis.get("open-orders") == Some(&(vec!["os".into(), "od".into()], "KEYS_ONLY".into())),
        "open-orders: {gsis:?}"
    );
    ensure!(
        gsis.get("account-orders") == Some(&(vec!["ac".into(), "pk".into()], "KEYS_ONLY".into())),
        "account-orders: {gsis:?}"
    );
    let ttl = env
        .ddb
        .describe_time_to_live()
        .table_name(env.trading())
        .send()
        .await?
        .time_to_live_description
        .context("no TTL description")?;
    ensure!(
        ttl.attribute_name() == Some("expires_at"),
        "TTL attribute {ttl:?}"
    );
    ensure!(
        ttl.time_to_live_status().map(|s| s.as_str()) == Some("ENABLED"),
        "TTL {ttl:?}"
    );

    let attrs = env
        .sqs
        .get_queue_attributes()
        .queue_url(env.res.queue_url("FillQueue"))
        .attribute_names(QueueAttributeName::All)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    ensure!(
        attrs
            .get(&QueueAttributeName::VisibilityTimeout)
            .map(String::as_str)
            == Some("180"),
        "{attrs:?}"
    );
    ensure!(
        attrs
            .get(&QueueAttributeName::FifoQueue)
            .map(String::as_str)
            == Some("true"),
        "{attrs:?}"
    );
    let redrive: serde_json::Value = serde_json::from_str(
        attrs
            .get(&QueueAttributeName::RedrivePolicy)
            .context("no RedrivePolicy")?,
    )?;
    ensure!(
        redrive["deadLetterTargetArn"] == env.res.queues["FillDeadLetterQueue"].arn.as_str(),
        "{redrive}"
    );
    ensure!(
        redrive["maxReceiveCount"].to_string().trim_matches('"') == "10",
        "{redrive}"
    );

    // Creating again with the same prefix reuses everything.
    let stack = Stack::ensure_running().await?;
    let prefix = env.trading().trim_end_matches("TradingTable").to_string();
    let again = stack.create_resources(&prefix).await?;
    ensure!(
        again.tables == env.res.tables && again.queues == env.res.queues,
        "not idempotent"
    );
    Ok(())
}
