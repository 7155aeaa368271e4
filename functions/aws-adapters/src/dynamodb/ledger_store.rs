//! The Balances table.
//!
//! Items (one partition per account, so an account's balances and its
//! operations are read with one query):
//! - `pk = ACCOUNT#<account>`, `sk = BALANCE#<asset>`: `available`,
//!   `reserved` and, once a settlement went beyond the account's funds,
//!   `owed` (N).
//! - `pk = ACCOUNT#<account>`, `sk = OP#<idempotency key>`: the operation record
//!   (`operation` and `outcome` as JSON, `fingerprint`, `recorded_at`).
//!
//! An operation is one `TransactWriteItems`: the record, put only if absent
//! (this is where a replay stops), and one `ADD` per balance, conditioned so
//! that nothing goes below zero. Writes per operation: 1 record + 1 or 2
//! balances, each counted twice inside a transaction.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use app::{Applied, LedgerStore, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use domain::{AccountId, Asset, AssetChange, Balance, Catalog, IdempotencyKey, OperationRecord};

use super::describe;

/// Transactions that collide with another on the same item are cancelled
/// with `TransactionConflict`; they are retried this many times in total.
const CONFLICT_ATTEMPTS: u32 = 4;
const CONFLICT_BACKOFF: Duration = Duration::from_millis(20);
/// Longest balance query, in pages; an account holds one item per asset.
const MAX_BALANCE_PAGES: usize = 20;

#[derive(Debug, Clone)]
pub struct DynamoLedgerStore {
    client: Client,
    table: String,
    catalog: Catalog,
}

fn account_pk(account: &AccountId) -> AttributeValue {
    AttributeValue::S(format!("ACCOUNT#{account}"))
}

fn operation_sk(key: &IdempotencyKey) -> AttributeValue {
    AttributeValue::S(format!("OP#{key}"))
}

const BALANCE_PREFIX: &str = "BALANCE#";

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoLedgerStore {
    pub fn new(client: Client, table: impl Into<String>, catalog: Catalog) -> Self {
        DynamoLedgerStore {
            client,
            table: table.into(),
            catalog,
        }
    }

    fn record_put(&self, record: &OperationRecord) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .item("pk", account_pk(&record.account))
            .item("sk", operation_sk(&record.key))
            .item("operation", AttributeValue::S(to_json(&record.operation)?))
            .item("outcome", AttributeValue::S(to_json(&record.outcome)?))
            .item("fingerprint", AttributeValue::S(record.fingerprint.clone()))
            .item(
                "recorded_at",
                AttributeValue::N(record.recorded_at_ms.to_string()),
            )
            // The one guard that makes the operation happen once per key.
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn balance_update(
        &self,
        account: &AccountId,
        change: &AssetChange,
    ) -> Result<Update, StoreError> {
        let mut adds = Vec::new();
        let mut guards = Vec::new();
        let mut values = HashMap::new();
        for (field, delta) in [
            ("available", change.available),
            ("reserved", change.reserved),
            ("owed", change.owed),
        ] {
            if delta == 0 {
                continue;
            }
            adds.push(format!("{field} :{field}"));
            values.insert(format!(":{field}"), number(delta));
            if delta < 0 {
                // A missing attribute fails the comparison: nothing to take from.
                guards.push(format!("{field} >= :{field}_needed"));
                values.insert(format!(":{field}_needed"), number(-delta));
            }
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", account_pk(account))
            .key(
                "sk",
                AttributeValue::S(format!("{BALANCE_PREFIX}{}", change.asset.code())),
            )
            // ADD creates the item and the attribute at zero when absent (first deposit).
            .update_expression(format!("ADD {}", adds.join(", ")))
            .set_expression_attribute_values(Some(values));
        if !guards.is_empty() {
            update = update.condition_expression(guards.join(" AND "));
        }
        update
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Runs the transaction, retrying conflicts. `None`: applied. `Some(codes)`:
    /// cancelled, with each item's failed-condition code (`None` where it held).
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<Option<String>>>, StoreError> {
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(None),
                Err(SdkError::ServiceError(service)) => {
                    if let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                        service.err()
                    {
                        let codes: Vec<Option<String>> = cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                            .collect();
                        let conflict = codes.iter().flatten().any(|c| c == "TransactionConflict");
                        if !conflict {
                            return Ok(Some(codes));
                        }
                        if attempt < CONFLICT_ATTEMPTS {
                            tokio::time::sleep(CONFLICT_BACKOFF * attempt).await;
                            continue;
                        }
                    }
                    return Err(StoreError::Unavailable(format!("{:?}", service.err())));
                }
                Err(other) => return Err(StoreError::Unavailable(describe(&other))),
            }
        }
        Err(StoreError::Unavailable(
            "transaction conflicts persisted".into(),
        ))
    }

    async fn existing(&self, record: &OperationRecord) -> Result<Applied, StoreError> {
        let existing = self.operation(&record.account, &record.key).await?;
        existing.map(Applied::AlreadyExists).ok_or_else(|| {
            StoreError::Corrupt("record condition failed but no record found".into())
        })
    }

    fn parse_record(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<OperationRecord, StoreError> {
        let text = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("operation record lacks {name}")))
        };
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let recorded_at_ms = item
            .get("recorded_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| StoreError::Corrupt("operation record lacks recorded_at".into()))?;
        Ok(OperationRecord {
            account: account.clone(),
            key: key.clone(),
            operation: serde_json::from_str(text("operation")?).map_err(corrupt)?,
            outcome: serde_json::from_str(text("outcome")?).map_err(corrupt)?,
            fingerprint: text("fingerprint")?.clone(),
            recorded_at_ms,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl LedgerStore for DynamoLedgerStore {
    async fn apply(
        &self,
        record: &OperationRecord,
        changes: &[AssetChange],
    ) -> Result<Applied, StoreError> {
        let mut items = vec![TransactWriteItem::builder()
            .put(self.record_put(record)?)
            .build()];
        for change in changes {
            items.push(
                TransactWriteItem::builder()
                    .update(self.balance_update(&record.account, change)?)
                    .build(),
            );
        }
        let Some(codes) = self.transact(items).await? else {
            return Ok(Applied::Stored);
        };
        // Index 0 is the record: an existing record wins over any balance check.
        if codes.first().is_some_and(Option::is_some) {
            return self.existing(record).await;
        }
        let failed = codes.iter().skip(1).position(Option::is_some);
        match failed.and_then(|i| changes.get(i)) {
            Some(change) => Ok(Applied::Insufficient(change.asset.clone())),
            None => Err(StoreError::Unavailable(format!(
                "transaction cancelled: {codes:?}"
            ))),
        }
    }

    async fn record_refusal(&self, record: &OperationRecord) -> Result<Applied, StoreError> {
        let put = self.record_put(record)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item().clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(Applied::Stored),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                self.existing(record).await
            }
            Err(error) => Err(StoreError::Unavailable(describe(&error))),
        }
    }

    async fn operation(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", account_pk(account))
            .key("sk", operation_sk(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        output
            .item()
            .map(|item| self.parse_record(account, key, item))
            .transpose()
    }

    async fn balances(&self, account: &AccountId) -> Result<BTreeMap<Asset, Balance>, StoreError> {
        let mut balances = BTreeMap::new();
        let mut start = None;
        for _ in 0..MAX_BALANCE_PAGES {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", account_pk(account))
                .expression_attribute_values(":prefix", AttributeValue::S(BALANCE_PREFIX.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            for item in output.items() {
                let (asset, balance) = self.parse_balance(item)?;
                balances.insert(asset, balance);
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(balances);
            }
        }
        Err(StoreError::Corrupt(format!(
            "account {account} has more balances than {MAX_BALANCE_PAGES} pages"
        )))
    }
}

impl DynamoLedgerStore {
    fn parse_balance(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<(Asset, Balance), StoreError> {
        let sk = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .unwrap_or_default();
        let code = sk.strip_prefix(BALANCE_PREFIX).unwrap_or_default();
        let asset = self
            .catalog
            .asset(code)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // ADD only creates the attributes it touches; a missing one is zero.
        let field = |name: &str| -> Result<u64, StoreError> {
            match item.get(name) {
                None => Ok(0),
                Some(value) => value
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("balance {name} is not a whole number"))
                    }),
            }
        };
        Ok((
            asset,
            Balance {
                available: field("available")?,
                reserved: field("reserved")?,
                owed: field("owed")?,
            },
        ))
    }
}
