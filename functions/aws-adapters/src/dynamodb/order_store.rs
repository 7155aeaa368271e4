//! The trading table.
//!
//! Items:
//! - `pk = ORDER#<id>`, `sk = ORDER`: the order with every step record
//!   (`order`, a map), its `version`, and the index attributes: always
//!   `account_pk`/`created_sk` (an account's orders, newest first), and only
//!   while open `open_shard`/`due_at` (the sparse open-order index).
//! - `pk = IDEM#<account>#<key>`, `sk = IDEM`: the idempotency record of a
//!   placement, expiring by TTL (`expires_at`, seconds).
//!
//! Why one item per order: every step of an order is then one conditional
//! put (on `version`), which is atomic without a transaction (1 WRU per KB
//! instead of 2), a duplicate fill costs one consistent read and no write, and
//! loading an order is one read.

use std::collections::HashMap;

use app::order_store::{
    Claim, IdempotencyRecord, Inserted, OrderPage, OrderStore, Saved, StoreError, Versioned,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;
use domain::order::{Order, OrderId};
use domain::{AccountId, IdempotencyKey};

use super::describe;

pub const OPEN_ORDERS_INDEX: &str = "open-orders";
pub const ACCOUNT_ORDERS_INDEX: &str = "account-orders";
const ORDER_SK: &str = "ORDER";
const IDEM_SK: &str = "IDEM";

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

fn order_pk(id: &OrderId) -> AttributeValue {
    s(format!("ORDER#{id}"))
}

fn account_pk(account: &AccountId) -> AttributeValue {
    s(format!("ACCOUNT#{account}"))
}

fn idem_pk(account: &AccountId, key: &IdempotencyKey) -> AttributeValue {
    s(format!("IDEM#{account}#{key}"))
}

pub fn open_shard(shard: u32) -> String {
    format!("OPEN#{shard}")
}

fn unavailable<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Unavailable(error.to_string())
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

    fn order_item(order: &Order, version: u64) -> Result<Item, StoreError> {
        let body: Item =
            serde_dynamo::to_item(order).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut item = Item::from([
            ("pk".to_owned(), order_pk(&order.id)),
            ("sk".to_owned(), s(ORDER_SK)),
            ("order".to_owned(), AttributeValue::M(body)),
            ("version".to_owned(), n(version)),
            ("account_pk".to_owned(), account_pk(&order.account)),
            ("created_sk".to_owned(), s(order.id.as_str())),
        ]);
        // Sparse index: only open orders carry its keys, so the reconciler's
        // reads grow with open orders, never with history.
        if !order.is_closed() {
            item.insert("open_shard".into(), s(open_shard(order.open_index_shard())));
            item.insert("due_at".into(), n(order.recovery.next_attempt_at_ms));
        }
        Ok(item)
    }

    fn parse_order(item: &Item) -> Result<Versioned<Order>, StoreError> {
        let body = match item.get("order") {
            Some(AttributeValue::M(map)) => map.clone(),
            _ => return Err(StoreError::Corrupt("order item lacks its order".into())),
        };
        let value: Order =
            serde_dynamo::from_item(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Versioned {
            value,
            version: number(item, "version")?,
        })
    }

    fn parse_idempotency(item: &Item) -> Result<IdempotencyRecord, StoreError> {
        let corrupt = |e: domain::ids::IdError| StoreError::Corrupt(e.to_string());
        Ok(IdempotencyRecord {
            account: AccountId::parse(text(item, "account")?).map_err(corrupt)?,
            key: IdempotencyKey::parse(text(item, "key")?).map_err(corrupt)?,
            fingerprint: text(item, "fingerprint")?.to_owned(),
            order_id: OrderId::parse(text(item, "order_id")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            expires_at_ms: number(item, "expires_at_ms")?,
        })
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output.item)
    }

    fn order_key(id: &OrderId) -> Item {
        Item::from([
            ("pk".to_owned(), order_pk(id)),
            ("sk".to_owned(), s(ORDER_SK)),
        ])
    }

    /// Puts `item` if `condition` holds; on a failed condition, returns the item it met.
    async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: Option<Item>,
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
                _ => Err(StoreError::Unavailable(describe(&error))),
            },
        }
    }
}

impl DynamoOrderStore {
    /// Every order in the table. Reads the whole table: for audits, operator
    /// tools and the local runner, never on a request path (the functions'
    /// IAM policies do not even allow a scan).
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
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            for item in page.items() {
                orders.push(Self::parse_order(item)?.value);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(orders);
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
        let item = Item::from([
            ("pk".to_owned(), idem_pk(&record.account, &record.key)),
            ("sk".to_owned(), s(IDEM_SK)),
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
        match self
            .put_if(
                Self::order_item(order, 1)?,
                "attribute_not_exists(pk)",
                None,
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
        self.get(Self::order_key(id))
            .await?
            .as_ref()
            .map(Self::parse_order)
            .transpose()
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let item = Self::order_item(order, expected_version + 1)?;
        let values = Item::from([(":expected".to_owned(), n(expected_version))]);
        match self
            .put_if(item, "version = :expected", Some(values))
            .await?
        {
            Ok(()) => Ok(Saved::Saved {
                version: expected_version + 1,
            }),
            Err(_) => Ok(Saved::Conflict),
        }
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        let start = after.map(|id| {
            Item::from([
                ("account_pk".to_owned(), account_pk(account)),
                ("created_sk".to_owned(), s(id.as_str())),
                ("pk".to_owned(), order_pk(id)),
                ("sk".to_owned(), s(ORDER_SK)),
            ])
        });
        // One more than asked, to know whether a next page exists.
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACCOUNT_ORDERS_INDEX)
            .key_condition_expression("account_pk = :account")
            .expression_attribute_values(":account", account_pk(account))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let mut ids: Vec<OrderId> = page
            .items()
            .iter()
            .map(|item| {
                OrderId::parse(text(item, "created_sk")?)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let has_more = ids.len() > limit;
        ids.truncate(limit);
        let mut orders = Vec::with_capacity(ids.len());
        if !ids.is_empty() {
            // The index holds keys only (updates cost it nothing); the orders
            // come from the table, strongly consistent.
            let keys = ids.iter().map(Self::order_key).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let mut pending = HashMap::from([(self.table.clone(), request)]);
            for _ in 0..5 {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(pending))
                    .send()
                    .await
                    .map_err(|e| StoreError::Unavailable(describe(&e)))?;
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
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OPEN_ORDERS_INDEX)
            .key_condition_expression("open_shard = :shard AND due_at <= :now")
            .expression_attribute_values(":shard", s(open_shard(shard)))
            .expression_attribute_values(":now", n(now_ms))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        output
            .items()
            .iter()
            .map(|item| {
                let pk = text(item, "pk")?;
                let id = pk.strip_prefix("ORDER#").unwrap_or(pk);
                OrderId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}
