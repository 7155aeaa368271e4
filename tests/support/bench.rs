//! Helpers of the benchmark binaries (`tests/bench/`): the platform on a
//! metered DynamoDB client, a log of the calls it makes one by one, the
//! exchange's reports of an order, and small statistics.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_adapters::dynamodb::{item_size, metered_client, Meter, TableSchema, Usage};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::order::{ExchangeReport, OrderId};
use domain::AccountId;
use local_stack::{unique_prefix, Stack};

use crate::platform::{Platform, PlatformOptions};

// ---------------------------------------------------------------- metering

/// One DynamoDB call as the log saw it: what it touched and what it cost.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    /// Items touched, e.g. `Trading ORDER#…/ORDER`, `Balances ACCOUNT#…/OP#reserve`.
    pub items: Vec<String>,
    /// Bytes of the items a put writes (0 for updates and reads).
    pub put_bytes: usize,
    /// The capacity this call alone was charged.
    pub usage: Usage,
}

#[derive(Debug, Default)]
struct LogState {
    /// Items of the calls started and not yet finished, oldest first.
    started: VecDeque<(Vec<String>, usize)>,
    calls: Vec<Call>,
    /// The meter's counters after the last finished call.
    last: Usage,
}

/// Logs every call with what the [`Meter`] charged for it, by reading the
/// meter after each call. Exact only while calls run one at a time (a
/// single order's steps); totals of concurrent phases come from the meter.
#[derive(Debug, Clone)]
pub struct CallLog {
    meter: Meter,
    state: Arc<Mutex<LogState>>,
}

impl CallLog {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Shortens a key for display: ids are dropped, kinds are kept
/// (`ORDER#0190…` -> `ORDER#…`, `OP#<order>:fill:<exec>` -> `OP#fill`).
fn short_key(value: Option<&AttributeValue>) -> String {
    let text = value
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default();
    match text.split_once('#') {
        None => text,
        Some(("OP", key)) => {
            let kind = key.split(':').nth(1).unwrap_or(key);
            format!("OP#{kind}")
        }
        Some((kind, rest)) if rest.starts_with("CASH") || rest.len() <= 6 => {
            format!("{kind}#{rest}")
        }
        Some((kind, _)) => format!("{kind}#…"),
    }
}

fn short_table(table: &str) -> String {
    let name = table.rsplit('-').next().unwrap_or(table);
    name.trim_end_matches("Table").to_string()
}

fn describe_item(table: &str, item: &BTreeMap<&str, &AttributeValue>) -> String {
    format!(
        "{} {}/{}",
        short_table(table),
        short_key(item.get("pk").copied()),
        short_key(item.get("sk").copied())
    )
}

fn keyed<'a>(
    table: &str,
    key: impl IntoIterator<Item = (&'a String, &'a AttributeValue)>,
) -> String {
    let map = key.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
    describe_item(table, &map)
}

/// The items a request touches, and the bytes its puts write.
fn touched(
    input: &aws_sdk_dynamodb::config::interceptors::InterceptorContext,
) -> (Vec<String>, usize) {
    let Some(input) = input.input() else {
        return (Vec::new(), 0);
    };
    if let Some(i) = input.downcast_ref::<PutItemInput>() {
        let item = i.item().cloned().unwrap_or_default();
        let table = i.table_name().unwrap_or_default();
        return (vec![keyed(table, &item)], item_size(&item));
    }
    if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return (vec![keyed(i.table_name().unwrap_or_default(), &key)], 0);
    }
    if let Some(i) = input.downcast_ref::<GetItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return (vec![keyed(i.table_name().unwrap_or_default(), &key)], 0);
    }
    if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return (
            vec![format!(
                "delete {}",
                keyed(i.table_name().unwrap_or_default(), &key)
            )],
            0,
        );
    }
    if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
        let mut items = Vec::new();
        for (table, request) in i.request_items().into_iter().flatten() {
            for key in request.keys() {
                items.push(keyed(table, key));
            }
        }
        return (items, 0);
    }
    if let Some(i) = input.downcast_ref::<QueryInput>() {
        let table = short_table(i.table_name().unwrap_or_default());
        let index = i
            .index_name()
            .map(|n| format!(" index {n}"))
            .unwrap_or_default();
        return (vec![format!("{table}{index}")], 0);
    }
    if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
        let mut items = Vec::new();
        let mut bytes = 0;
        for item in i.transact_items() {
            if let Some(p) = item.put() {
                items.push(keyed(p.table_name(), p.item()));
                bytes += item_size(p.item());
            } else if let Some(u) = item.update() {
                items.push(keyed(u.table_name(), u.key()));
            } else if let Some(d) = item.delete() {
                items.push(keyed(d.table_name(), d.key()));
            } else if let Some(c) = item.condition_check() {
                items.push(format!("check {}", keyed(c.table_name(), c.key())));
            }
        }
        return (items, bytes);
    }
    (Vec::new(), 0)
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "BenchCallLog"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let started = touched(context.inner());
        self.lock().started.push_back(started);
        Ok(())
    }

    /// Runs after the meter's own interceptor (registered before this one),
    /// so the meter already holds this call's charge.
    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let now = self.meter.snapshot();
        let mut state = self.lock();
        let usage = difference(&now, &state.last);
        state.last = now;
        let (items, put_bytes) = state.started.pop_front().unwrap_or_default();
        let operation = usage.calls.keys().next().cloned().unwrap_or_default();
        state.calls.push(Call {
            operation,
            items,
            put_bytes,
            usage,
        });
        Ok(())
    }
}

/// `after - before`, field by field.
pub fn difference(after: &Usage, before: &Usage) -> Usage {
    let mut out = after.clone();
    out.read_half_units -= before.read_half_units;
    out.write_units -= before.write_units;
    out.index_write_units -= before.index_write_units;
    out.retries -= before.retries;
    out.failed_conditions -= before.failed_conditions;
    out.cancelled_transactions -= before.cancelled_transactions;
    out.errors -= before.errors;
    out.unanswered -= before.unanswered;
    for (op, n) in &before.calls {
        if let Some(count) = out.calls.get_mut(op) {
            *count -= n;
        }
    }
    out.calls.retain(|_, n| *n > 0);
    for (table, b) in &before.tables {
        if let Some(t) = out.tables.get_mut(table) {
            t.read_half_units -= b.read_half_units;
            t.write_units -= b.write_units;
            for (index, units) in &b.index_write_units {
                if let Some(u) = t.index_write_units.get_mut(index) {
                    *u -= units;
                }
            }
            t.index_write_units.retain(|_, u| *u > 0);
        }
    }
    out.tables
        .retain(|_, t| t.read_half_units + t.write_units > 0 || !t.index_write_units.is_empty());
    out
}

/// `total += usage`, field by field.
pub fn accumulate(total: &mut Usage, usage: &Usage) {
    total.read_half_units += usage.read_half_units;
    total.write_units += usage.write_units;
    total.index_write_units += usage.index_write_units;
    total.retries += usage.retries;
    total.failed_conditions += usage.failed_conditions;
    total.cancelled_transactions += usage.cancelled_transactions;
    total.errors += usage.errors;
    total.unanswered += usage.unanswered;
    for (op, n) in &usage.calls {
        *total.calls.entry(op.clone()).or_default() += n;
    }
    for (table, u) in &usage.tables {
        let t = total.tables.entry(table.clone()).or_default();
        t.read_half_units += u.read_half_units;
        t.write_units += u.write_units;
        for (index, units) in &u.index_write_units {
            *t.index_write_units.entry(index.clone()).or_default() += units;
        }
    }
}

/// The meter and the call log of one metered platform.
#[derive(Debug, Clone)]
pub struct Metering {
    pub meter: Meter,
    log: CallLog,
}

impl Metering {
    /// Everything charged since the last `take`, and the calls made since,
    /// in order; then both start again from zero.
    pub fn take(&self) -> (Usage, Vec<Call>) {
        let mut state = self.log.lock();
        let usage = self.meter.snapshot();
        self.meter.reset();
        state.last = Usage::default();
        state.started.clear();
        (usage, std::mem::take(&mut state.calls))
    }
}

/// Write units of one table (its indexes included).
pub fn table_write_units(usage: &Usage, table: &str) -> u64 {
    usage.tables.get(table).map_or(0, |t| {
        t.write_units + t.index_write_units.values().sum::<u64>()
    })
}

// ---------------------------------------------------------------- platform

/// [`Platform::spawn`] with every DynamoDB call metered: the orders API, the
/// use cases of `platform.orders()` and the Balances service's own store all
/// share one metered client.
pub async fn spawn_metered(label: &str) -> (Platform, Metering) {
    spawn_metered_with(label, PlatformOptions::default()).await
}

pub async fn spawn_metered_with(label: &str, options: PlatformOptions) -> (Platform, Metering) {
    let stack = Stack::ensure_running().await.expect("local stack");
    let resources = stack
        .create_resources(&unique_prefix(label))
        .await
        .expect("resources");
    let config = stack.sdk_config();
    let plain = aws_sdk_dynamodb::Client::new(&config);
    let mut schemas = Vec::new();
    for table in [
        resources.table("TradingTable"),
        resources.table("BalancesTable"),
    ] {
        schemas.push(
            TableSchema::describe(&plain, table)
                .await
                .expect("describe"),
        );
    }
    let meter = Meter::new();
    let log = CallLog {
        meter: meter.clone(),
        state: Arc::default(),
    };
    // The log is registered after the meter, so it reads the meter after it.
    let metered = metered_client(&config, &meter, &schemas);
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        metered
            .config()
            .to_builder()
            .interceptor(log.clone())
            .build(),
    );
    let platform = Platform::assemble(dynamodb, &resources, options).await;
    (platform, Metering { meter, log })
}

// ------------------------------------------------------------------ orders

pub fn limit_buy(quantity: u64, price: &str) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": price})
}

/// `POST /orders`; the id of the order it made.
pub async fn place(
    platform: &Platform,
    account: &AccountId,
    key: &str,
    body: &serde_json::Value,
) -> OrderId {
    let response = platform.post_order(account, key, body).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    let id = body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an order, got {status} {body}"));
    OrderId::parse(id).expect("order id")
}

/// Waits until the exchange has finished every one of `ids` (filled,
/// cancelled, expired or rejected), at most `limit`.
pub async fn wait_until_done_at_exchange(platform: &Platform, ids: &[OrderId], limit: Duration) {
    let started = std::time::Instant::now();
    loop {
        let audit = platform.exchange.state.engine().audit();
        let done = audit
            .orders
            .iter()
            .filter(|o| ids.iter().any(|id| id.as_str() == o.client_order_id))
            .filter(|o| {
                !matches!(
                    o.status,
                    exchange_sim::OrderStatus::New | exchange_sim::OrderStatus::PartiallyFilled
                )
            })
            .count();
        if done == ids.len() {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{done} of {} orders done at the exchange",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One SQS message carrying `report`, as the webhook queues it.
pub fn message(n: usize, report: &ExchangeReport) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(format!("m-{n}"));
    message.body = Some(serde_json::to_string(report).expect("json"));
    message
}

pub fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

// -------------------------------------------------------------- statistics

/// The `p`-th percentile (0..=100) of `samples`, nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1000.0)
}

/// A `usize` argument `--name N` of the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}
