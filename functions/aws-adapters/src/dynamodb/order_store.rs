//! The trading table.
//!
//! Items, all in the order's partition (`pk = ORDER#<id>`) unless said:
//! - `sk = ORDER`: the order (`o`, compact JSON, see [`super::compact`]),
//!   its version `v`, and the index attributes: always `ac` (account; with
//!   `pk` the keys of `account-orders`), and only while open `os`/`od`
//!   (shard and due time: the sparse open-order index).
//! - `sk = FILL#<exec_id>`: one settled execution (`f`), written once with
//!   `attribute_not_exists`, which is also where a duplicate stops.
//! - `sk = WAIT#<exec_id>`: an execution waiting for the settling slot.
//! - `pk = IDEM#<account>#<key>`, `sk = IDEM`: the idempotency record of a
//!   placement, expiring by TTL (`expires_at`, seconds).
//! - `pk = CURSOR#<name>`, `sk = CURSOR`: the reconciler's progress.
//!
//! Why this shape: an order's own item stays under 1 KB whatever the number
//! of its executions, so every save is one conditional put of 1 WRU (no
//! transaction), and each execution costs the same whether it is the first
//! or the ten-thousandth: one item of its own, never rewritten.

use std::collections::HashMap;

use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;
use domain::order::{ExecId, FillRecord, FillState, Order, OrderId};
use domain::{AccountId, IdempotencyKey};

use super::compact::{lengthen, shorten};
use super::describe;

pub const OPEN_ORDERS_INDEX: &str = "open-orders";
pub const ACCOUNT_ORDERS_INDEX: &str = "account-orders";
pub const FLAGGED_ORDERS_INDEX: &str = "flagged-orders";
const ORDER_SK: &str = "ORDER";
const IDEM_SK: &str = "IDEM";
const CURSOR_SK: &str = "CURSOR";
const FILL_PREFIX: &str = "FILL#";
const WAIT_PREFIX: &str = "WAIT#";
/// Attributes of the indexes (short: they count in every item's size).
pub const ATTR_ACCOUNT: &str = "ac";
pub const ATTR_OPEN_SHARD: &str = "os";
pub const ATTR_DUE_AT: &str = "od";
/// Present only on flagged orders (sparse index of what needs an operator).
pub const ATTR_FLAGGED: &str = "fg";
const FLAGGED: &str = "FLAGGED";

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn order_pk(id: &OrderId) -> String {
    format!("ORDER#{id}")
}

fn idem_pk(account: &AccountId, key: &IdempotencyKey) -> String {
    format!("IDEM#{account}#{key}")
}

fn key(pk: String, sk: String) -> Item {
    Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

fn fill_sk(exec_id: &ExecId) -> String {
    format!("{FILL_PREFIX}{exec_id}")
}

fn wait_sk(exec_id: &ExecId) -> String {
    format!("{WAIT_PREFIX}{exec_id}")
}

fn unavailable<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn corrupt<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// An SDK error, classified: what repeating cannot fix (an item too large,
/// a malformed request) is `Corrupt` with the operation named, never a
/// retry loop; the rest may be transient.
fn sdk_error<E, R>(operation: &str, subject: &str, error: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let code = error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or_default();
    let permanent = matches!(
        code,
        "ValidationException"
            | "ResourceNotFoundException"
            | "ItemCollectionSizeLimitExceededException"
    );
    let text = format!("{operation} of {subject}: {}", describe(error));
    if permanent {
        StoreError::Corrupt(text)
    } else {
        StoreError::Unavailable(text)
    }
}

fn number(item: &Item, name: &str) -> Result<u64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item lacks number {name}")))
}

fn text<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item lacks string {name}")))
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoOrderStore {
            client,
            table: table.into(),
        }
    }

    /// The order's item, as stored (also used to measure its size).
    pub fn order_item(order: &Order, version: u64) -> Result<Item, StoreError> {
        let mut item = key(order_pk(&order.id), ORDER_SK.into());
        item.insert("o".into(), s(shorten(order).map_err(corrupt)?));
        item.insert("v".into(), n(version));
        item.insert(ATTR_ACCOUNT.into(), s(order.account.as_str()));
        // Sparse index: only open orders carry its keys, so the reconciler's
        // reads grow with open orders, never with history.
        if !order.is_closed() {
            item.insert(
                ATTR_OPEN_SHARD.into(),
                s(order.open_index_shard().to_string()),
            );
            item.insert(ATTR_DUE_AT.into(), n(order.recovery.due_at_ms));
        }
        // Sparse too: an operator lists what needs them without a scan.
        if order.recovery.is_flagged() {
            item.insert(ATTR_FLAGGED.into(), s(FLAGGED));
        }
        Ok(item)
    }

    fn parse_order(item: &Item) -> Result<Versioned<Order>, StoreError> {
        let value: Order = lengthen(text(item, "o")?).map_err(corrupt)?;
        Ok(Versioned {
            value,
            version: number(item, "v")?,
        })
    }

    fn fill_item(id: &OrderId, record: &FillRecord) -> Result<Item, StoreError> {
        let sk = match record.state {
            FillState::Settled { .. } => fill_sk(&record.exec_id),
            FillState::Recorded => wait_sk(&record.exec_id),
        };
        let mut item = key(order_pk(id), sk);
        item.insert("f".into(), s(shorten(record).map_err(corrupt)?));
        Ok(item)
    }

    fn parse_fill(item: &Item) -> Result<FillRecord, StoreError> {
        lengthen(text(item, "f")?).map_err(corrupt)
    }

    fn parse_idempotency(item: &Item) -> Result<IdempotencyRecord, StoreError> {
        Ok(IdempotencyRecord {
            account: AccountId::parse(text(item, "account")?).map_err(corrupt)?,
            key: IdempotencyKey::parse(text(item, "key")?).map_err(corrupt)?,
            fingerprint: text(item, "fingerprint")?.to_owned(),
            order_id: OrderId::parse(text(item, "order_id")?).map_err(corrupt)?,
            expires_at_ms: number(item, "expires_at_ms")?,
        })
    }

    async fn get(&self, key: Item, subject: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", subject, &e))?;
        Ok(output.item)
    }

    /// Puts `item` if `condition` holds; on a failed condition, returns the item it met.
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Option<Item>,
        subject: &str,
    ) -> Result<Result<(), Option<Item>>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            // The existing item comes back with the refusal: no extra read.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Err(failed.item().cloned()))
                }
                _ => Err(sdk_error("PutItem", subject, &error)),
            },
        }
    }

    /// Every order in the table. Reads the whole table: for audits of test
    /// runs only, never on a request path (the functions' IAM policies do
    /// not even allow a scan).
    pub async fn scan_orders(&self) -> Result<Vec<Order>, StoreError> {
        let mut orders = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :order")
                .expression_attribute_values(":order", s(ORDER_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", "the trading table", &e))?;
            for item in page.items() {
                orders.push(Self::parse_order(item)?.value);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(orders);
            }
        }
    }

    /// A page of the flagged orders, oldest first (the sparse flagged-orders
    /// index, then each order from the table).
    pub async fn flagged(
        &self,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<OrderId>), StoreError> {
        let start = after.map(|id| {
            let mut start = key(order_pk(id), ORDER_SK.into());
            start.insert(ATTR_FLAGGED.into(), s(FLAGGED));
            start
        });
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(FLAGGED_ORDERS_INDEX)
            .key_condition_expression("#flagged = :flagged")
            .expression_attribute_names("#flagged", ATTR_FLAGGED)
            .expression_attribute_values(":flagged", s(FLAGGED))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query", "the flagged-orders index", &e))?;
        let mut orders = Vec::new();
        for item in page.items() {
            let pk = text(item, "pk")?;
            let id = OrderId::parse(pk.strip_prefix("ORDER#").unwrap_or(pk)).map_err(corrupt)?;
            // The index lags the table a little: an order cleared since is skipped.
            if let Some(order) = self.load(&id).await? {
                if order.value.recovery.is_flagged() {
                    orders.push(order.value);
                }
            }
        }
        let next = page.last_evaluated_key().and_then(|k| {
            let pk = k.get("pk")?.as_s().ok()?;
            OrderId::parse(pk.strip_prefix("ORDER#").unwrap_or(pk)).ok()
        });
        Ok((orders, next))
    }

    /// How many open orders one shard of the index holds (a count, read
    /// from the index's keys only: progress displays, never a table scan).
    pub async fn open_count(&self, shard: u32) -> Result<u64, StoreError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_ORDERS_INDEX)
                .key_condition_expression("#shard = :shard")
                .expression_attribute_names("#shard", ATTR_OPEN_SHARD)
                .expression_attribute_values(":shard", s(shard.to_string()))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", "the open-order index", &e))?;
            count += u64::try_from(page.count()).unwrap_or(0);
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(count);
            }
        }
    }
}

impl OrderStore for DynamoOrderStore {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        let mut item = key(idem_pk(&record.account, &record.key), IDEM_SK.into());
        item.extend([
            ("account".to_owned(), s(record.account.as_str())),
            ("key".to_owned(), s(record.key.as_str())),
            ("fingerprint".to_owned(), s(record.fingerprint.clone())),
            ("order_id".to_owned(), s(record.order_id.as_str())),
            ("expires_at_ms".to_owned(), n(record.expires_at_ms)),
            // TTL deletes in seconds, days late at worst; `expires_at_ms` decides.
            ("expires_at".to_owned(), n(record.expires_at_ms / 1000)),
        ]);
        let values = Item::from([(":now".to_owned(), n(now_ms))]);
        match self
            .put_if(
                item,
                "attribute_not_exists(pk) OR expires_at_ms <= :now",
                Some(values),
                "an idempotency key",
            )
            .await?
        {
            Ok(()) => Ok(Claim::Claimed),
            Err(Some(existing)) => Ok(Claim::Taken(Self::parse_idempotency(&existing)?)),
            Err(None) => Err(StoreError::Corrupt(
                "key claim refused without the record".into(),
            )),
        }
    }

    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        let subject = format!("order {}", order.id);
        match self
            .put_if(
                Self::order_item(order, 1)?,
                "attribute_not_exists(pk)",
                None,
                &subject,
            )
            .await?
        {
            Ok(()) => Ok(Inserted::New(Versioned {
                value: order.clone(),
                version: 1,
            })),
            Err(Some(existing)) => Ok(Inserted::Exists(Self::parse_order(&existing)?)),
            Err(None) => Err(StoreError::Corrupt(
                "order insert refused without the order".into(),
            )),
        }
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        self.get(key(order_pk(id), ORDER_SK.into()), &format!("order {id}"))
            .await?
            .as_ref()
            .map(Self::parse_order)
            .transpose()
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let item = Self::order_item(order, expected_version + 1)?;
        let values = Item::from([(":expected".to_owned(), n(expected_version))]);
        match self
            .put_if(
                item,
                "v = :expected",
                Some(values),
                &format!("order {}", order.id),
            )
            .await?
        {
            Ok(()) => Ok(Saved::Saved {
                version: expected_version + 1,
            }),
            Err(_) => Ok(Saved::Conflict),
        }
    }

    async fn fill(&self, id: &OrderId, exec_id: &ExecId) -> Result<Option<FillRecord>, StoreError> {
        // Settled or waiting: both keys in one round trip.
        let keys = vec![
            key(order_pk(id), fill_sk(exec_id)),
            key(order_pk(id), wait_sk(exec_id)),
        ];
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(unavailable)?;
        let mut pending = HashMap::from([(self.table.clone(), request)]);
        let mut found: Vec<FillRecord> = Vec::new();
        for _ in 0..BATCH_RETRIES {
            let output = self
                .client
                .batch_get_item()
                .set_request_items(Some(pending))
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", &format!("execution {exec_id}"), &e))?;
            for item in output
                .responses()
                .and_then(|r| r.get(&self.table))
                .into_iter()
                .flatten()
            {
                found.push(Self::parse_fill(item)?);
            }
            pending = output.unprocessed_keys.unwrap_or_default();
            if pending.is_empty() {
                // The settled record wins over a waiting leftover.
                found.sort_by_key(|r| !r.is_settled());
                return Ok(found.into_iter().next());
            }
        }
        Err(StoreError::Unavailable(format!(
            "execution {exec_id} left unread after retries"
        )))
    }

    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        let subject = format!("execution {} of order {id}", record.exec_id);
        let written = match self
            .put_if(
                Self::fill_item(id, record)?,
                "attribute_not_exists(pk)",
                None,
                &subject,
            )
            .await?
        {
            Ok(()) => FillWritten::Written,
            Err(Some(existing)) => FillWritten::Exists(Self::parse_fill(&existing)?),
            Err(None) => {
                return Err(StoreError::Corrupt(format!(
                    "{subject}: refused without the record"
                )))
            }
        };
        if remove_waiting && record.is_settled() {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(order_pk(id), wait_sk(&record.exec_id))))
                .send()
                .await
                .map_err(|e| sdk_error("DeleteItem", &subject, &e))?;
        }
        Ok(written)
    }

    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :wait)")
            .expression_attribute_values(":pk", s(order_pk(id)))
            .expression_attribute_values(":wait", s(WAIT_PREFIX))
            .consistent_read(true)
            .limit(1)
            .send()
            .await
            .map_err(|e| sdk_error("Query", &format!("waiting executions of {id}"), &e))?;
        output.items().first().map(Self::parse_fill).transpose()
    }

    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        // Settled records first (FILL# sorts before WAIT#), each by exec id;
        // the cursor is the last exec id of the page in that order.
        let mut fills = Vec::new();
        for (prefix, sk_of) in [
            (FILL_PREFIX, fill_sk as fn(&ExecId) -> String),
            (WAIT_PREFIX, wait_sk),
        ] {
            let want = limit + 1 - fills.len().min(limit);
            let start = after.map(|e| key(order_pk(id), sk_of(e)));
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(order_pk(id)))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", &format!("executions of {id}"), &e))?;
            for item in output.items() {
                fills.push(Self::parse_fill(item)?);
            }
            if fills.len() > limit {
                break;
            }
        }
        fills.sort_by(|a, b| a.exec_id.cmp(&b.exec_id));
        fills.dedup_by(|a, b| a.exec_id == b.exec_id);
        let next = if fills.len() > limit {
            fills.truncate(limit);
            fills.last().map(|r| r.exec_id.clone())
        } else {
            None
        };
        Ok(FillPage { fills, next })
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let start = after.map(|id| {
            let mut start = key(order_pk(id), ORDER_SK.into());
            start.insert(ATTR_ACCOUNT.into(), s(account.as_str()));
            start
        });
        // One more than asked, to know whether a next page exists.
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACCOUNT_ORDERS_INDEX)
            .key_condition_expression("#account = :account")
            .expression_attribute_names("#account", ATTR_ACCOUNT)
            .expression_attribute_values(":account", s(account.as_str()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query", "an account's orders", &e))?;
        let mut ids: Vec<OrderId> = page
            .items()
            .iter()
            .map(|item| {
                let pk = text(item, "pk")?;
                OrderId::parse(pk.strip_prefix("ORDER#").unwrap_or(pk)).map_err(corrupt)
            })
            .collect::<Result<_, _>>()?;
        let has_more = ids.len() > limit;
        ids.truncate(limit);
        let mut orders = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            // The index holds keys only (updates cost it nothing); the orders
            // come from the table, strongly consistent.
            let keys = ids
                .iter()
                .map(|id| key(order_pk(id), ORDER_SK.into()))
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let mut pending = HashMap::from([(self.table.clone(), request)]);
            for _ in 0..BATCH_RETRIES {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", "an account's orders", &e))?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    orders.push(Self::parse_order(item)?.value);
                }
                pending = output.unprocessed_keys.unwrap_or_default();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(
                    "orders left unread after retries".into(),
                ));
            }
        }
        orders.sort_by(|a, b| b.id.cmp(&a.id));
        let next = if has_more {
            orders.last().map(|o| o.id.clone())
        } else {
            None
        };
        Ok(OrderPage { orders, next })
    }

    async fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let start = after.map(|entry| {
            let mut start = key(order_pk(&entry.id), ORDER_SK.into());
            start.insert(ATTR_OPEN_SHARD.into(), s(shard.to_string()));
            start.insert(ATTR_DUE_AT.into(), n(entry.due_at_ms));
            start
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_ORDERS_INDEX)
            .key_condition_expression("#shard = :shard AND #due <= :until")
            .expression_attribute_names("#shard", ATTR_OPEN_SHARD)
            .expression_attribute_names("#due", ATTR_DUE_AT)
            .expression_attribute_values(":shard", s(shard.to_string()))
            .expression_attribute_values(":until", n(until_ms))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query", "the open-order index", &e))?;
        output
            .items()
            .iter()
            .map(|item| {
                let pk = text(item, "pk")?;
                Ok(DueEntry {
                    due_at_ms: number(item, ATTR_DUE_AT)?,
                    id: OrderId::parse(pk.strip_prefix("ORDER#").unwrap_or(pk)).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        let item = self
            .get(key(format!("CURSOR#{name}"), CURSOR_SK.into()), name)
            .await?;
        item.map(|item| {
            Ok(Versioned {
                value: text(&item, "c")?.to_owned(),
                version: number(&item, "v")?,
            })
        })
        .transpose()
    }

    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        let mut item = key(format!("CURSOR#{name}"), CURSOR_SK.into());
        item.insert("c".into(), s(value));
        item.insert("v".into(), n(expected_version + 1));
        let (condition, values) = if expected_version == 0 {
            ("attribute_not_exists(pk)", None)
        } else {
            (
                "v = :expected",
                Some(Item::from([(":expected".to_owned(), n(expected_version))])),
            )
        };
        match self.put_if(item, condition, values, name).await? {
            Ok(()) => Ok(Saved::Saved {
                version: expected_version + 1,
            }),
            Err(_) => Ok(Saved::Conflict),
        }
    }
}

/// Rounds of `BatchGetItem` for keys DynamoDB left unprocessed.
const BATCH_RETRIES: usize = 5;
