//! The capacity meter against the emulator: exact units for the writes and
//! reads the cost budget is made of.

use aws_adapters::dynamodb::{metered_client, usage_report, Meter, Projection, TableSchema, Usage};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;

struct Setup {
    client: Client,
    meter: Meter,
    trading: String,
    balances: String,
}

async fn setup(label: &str) -> Setup {
    let stack = local_stack::Stack::ensure_running()
        .await
        .expect("local stack");
    let resources = stack
        .create_resources(&local_stack::unique_prefix(label))
        .await
        .expect("resources");
    let trading = resources.table("TradingTable").to_string();
    let balances = resources.table("BalancesTable").to_string();
    let plain = Client::new(&stack.sdk_config());
    let mut schemas = Vec::new();
    for table in [&trading, &balances] {
        schemas.push(
            TableSchema::describe(&plain, table)
                .await
                .expect("describe"),
        );
    }
    let meter = Meter::new();
    let client = metered_client(&stack.sdk_config(), &meter, &schemas);
    Setup {
        client,
        meter,
        trading,
        balances,
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// Counters since the last call, then zero again.
fn take(meter: &Meter) -> Usage {
    let usage = meter.snapshot();
    meter.reset();
    usage
}

/// A transaction item putting a small item, guarded by `condition` if given.
fn put(table: &str, pk: &str, sk: &str, condition: Option<&str>) -> TransactWriteItem {
    let put = Put::builder()
        .table_name(table)
        .item("pk", s(pk))
        .item("sk", s(sk))
        .set_condition_expression(condition.map(str::to_string))
        .build()
        .expect("put");
    TransactWriteItem::builder().put(put).build()
}

#[tokio::test]
async fn describe_reads_keys_and_indexes() {
    let setup = setup("meter-describe").await;
    let plain = &setup.client;
    let schema = TableSchema::describe(plain, &setup.trading).await.unwrap();
    assert_eq!(schema.key_attributes, ["pk", "sk"]);
    let open = schema
        .indexes
        .iter()
        .find(|i| i.name == "open-orders")
        .unwrap();
    assert_eq!(open.key_attributes, ["os", "od"]);
    assert_eq!(open.projection, Projection::KeysOnly);
    let account = schema
        .indexes
        .iter()
        .find(|i| i.name == "account-orders")
        .unwrap();
    assert_eq!(account.key_attributes, ["ac", "pk"]);
    let balances = TableSchema::describe(plain, &setup.balances).await.unwrap();
    assert!(balances.indexes.is_empty());
}

#[tokio::test]
async fn single_writes_bill_per_started_kilobyte() {
    let Setup {
        client,
        meter,
        trading,
        ..
    } = setup("meter-writes").await;
    meter.reset();

    // A small item: 1 WRU.
    client
        .put_item()
        .table_name(&trading)
        .item("pk", s("ORDER#1"))
        .item("sk", s("META"))
        .send()
        .await
        .unwrap();
    let usage = take(&meter);
    assert_eq!(
        (usage.write_units, usage.index_write_units),
        (1, 0),
        "{}",
        usage_report(&usage)
    );
    assert_eq!(usage.calls.get("PutItem"), Some(&1), "{:?}", usage.calls);
    assert_eq!(usage.tables[&trading].write_units, 1);

    // About 1.5 KB: 2 WRU.
    client
        .put_item()
        .table_name(&trading)
        .item("pk", s("ORDER#2"))
        .item("sk", s("META"))
        .item("detail", s(&"x".repeat(1500)))
        .send()
        .await
        .unwrap();
    assert_eq!(take(&meter).write_units, 2);

    // A failed conditional put still bills: 1 WRU for the small existing item.
    let failed = client
        .put_item()
        .table_name(&trading)
        .item("pk", s("ORDER#1"))
        .item("sk", s("META"))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    assert!(failed.is_err());
    let usage = take(&meter);
    assert_eq!(
        (usage.write_units, usage.failed_conditions),
        (1, 1),
        "{}",
        usage_report(&usage)
    );
    assert_eq!(usage.errors, 0);
}

#[tokio::test]
async fn transactions_bill_every_item_twice_even_when_cancelled() {
    let Setup {
        client,
        meter,
        trading,
        balances,
    } = setup("meter-transactions").await;
    meter.reset();

    client
        .transact_write_items()
        .transact_items(put(&trading, "ORDER#1", "META", None))
        .transact_items(put(&balances, "ACCOUNT#1", "USD", None))
        .send()
        .await
        .unwrap();
    let usage = take(&meter);
    assert_eq!(usage.write_units, 4, "{}", usage_report(&usage));
    assert_eq!(usage.tables[&trading].write_units, 2);
    assert_eq!(usage.tables[&balances].write_units, 2);

    // The same items again, each guarded: cancelled, and still 4 WRU.
    let guard = Some("attribute_not_exists(pk)");
    let result = client
        .transact_write_items()
        .transact_items(put(&trading, "ORDER#1", "META", guard))
        .transact_items(put(&balances, "ACCOUNT#2", "USD", guard))
        .send()
        .await;
    assert!(result.is_err());
    let usage = take(&meter);
    assert_eq!(usage.write_units, 4, "{}", usage_report(&usage));
    assert_eq!(usage.cancelled_transactions, 1);
    assert_eq!(usage.failed_conditions, 1);
}

#[tokio::test]
async fn reads_bill_per_four_kilobytes_and_consistency() {
    let Setup {
        client,
        meter,
        trading,
        ..
    } = setup("meter-reads").await;
    for sk in ["STEP#a", "STEP#b", "STEP#c"] {
        client
            .put_item()
            .table_name(&trading)
            .item("pk", s("ORDER#1"))
            .item("sk", s(sk))
            .send()
            .await
            .unwrap();
    }
    meter.reset();

    let get = |consistent: bool| {
        client
            .get_item()
            .table_name(&trading)
            .key("pk", s("ORDER#1"))
            .key("sk", s("STEP#a"))
            .consistent_read(consistent)
            .send()
    };
    get(true).await.unwrap();
    assert_eq!(take(&meter).read_units(), "1");
    get(false).await.unwrap();
    assert_eq!(take(&meter).read_units(), "0.5");

    let found = client
        .query()
        .table_name(&trading)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s("ORDER#1"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(found.items().len(), 3);
    let usage = take(&meter);
    assert_eq!(usage.read_units(), "1", "{}", usage_report(&usage));
    assert_eq!(usage.write_units, 0);
}

#[tokio::test]
async fn index_writes_follow_the_index_keys() {
    let Setup {
        client,
        meter,
        trading,
        ..
    } = setup("meter-index").await;
    meter.reset();

    // An open order carries the sparse index's keys: 1 table + 1 index write.
    client
        .put_item()
        .table_name(&trading)
        .item("pk", s("ORDER#1"))
        .item("sk", s("META"))
        .item("os", s("7"))
        .item("od", AttributeValue::N("1700000000".to_string()))
        .send()
        .await
        .unwrap();
    let usage = take(&meter);
    assert_eq!(
        (usage.write_units, usage.index_write_units),
        (2, 1),
        "{}",
        usage_report(&usage)
    );
    assert_eq!(
        usage.tables[&trading].index_write_units.get("open-orders"),
        Some(&1)
    );

    // Updating an attribute the keys-only index does not project: table only.
    client
        .update_item()
        .table_name(&trading)
        .key("pk", s("ORDER#1"))
        .key("sk", s("META"))
        .update_expression("SET filled = :f")
        .expression_attribute_values(":f", AttributeValue::N("1".to_string()))
        .send()
        .await
        .unwrap();
    let usage = take(&meter);
    assert_eq!(
        (usage.write_units, usage.index_write_units),
        (1, 0),
        "{}",
        usage_report(&usage)
    );

    // Closing the order removes its index keys: 1 table write + 1 index delete.
    client
        .update_item()
        .table_name(&trading)
        .key("pk", s("ORDER#1"))
        .key("sk", s("META"))
        .update_expression("REMOVE os, od")
        .send()
        .await
        .unwrap();
    let usage = take(&meter);
    assert_eq!(
        (usage.write_units, usage.index_write_units),
        (2, 1),
        "{}",
        usage_report(&usage)
    );
}
