//! Helpers of the benchmark binaries (`tests/bench/`) and of the cost-budget
//! test: the platform on a metered DynamoDB client with a log of every call,
//! the exchange's webhooks signed as the venue sends them, a poller that
//! hands the FIFO fill queue to the fill processor as Lambda's event source
//! mapping does, counting wrappers of the ports, bulk seeding, statistics.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::order_store::{
    Claim, DueEntry, FillPage, FillWritten, IdempotencyRecord, Inserted, OrderPage, OrderStore,
    Saved, StoreError, Versioned,
};
use app::SystemClock;
use aws_adapters::dynamodb::{
    item_size, metered_client, DynamoOrderStore, Meter, TableSchema, Usage,
};
use aws_adapters::sqs::SqsFillQueue;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use domain::order::{ExchangeReport, Execution, FillRecord, Order, OrderId, VenueRules};
use domain::{AccountId, IdempotencyKey, Price, Symbol};
use exchange_sim::order::EventType;
use exchange_sim::signature::Secret as SimSecret;
use exchange_sim::ExchangeEvent;
use fill_webhook::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use local_stack::{unique_prefix, Resources, Stack};

use crate::platform::{Platform, PlatformOptions};
use crate::serve;

// ---------------------------------------------------------------- metering

/// One DynamoDB call as the log saw it: what it touched and what it cost.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    /// Items touched, e.g. `Trading ORDER#…/ORDER`, `Balances ACCOUNT#…/OP#reserve`.
    pub items: Vec<String>,
    /// Bytes of the items a put writes (0 for updates and reads).
    pub put_bytes: usize,
    /// The capacity this call alone was charged (exact while calls run one
    /// at a time), with the misses of a `BatchGetItem` added (see
    /// [`Call::missed_read_half_units`]).
    pub usage: Usage,
    /// Read half units of the keys a `BatchGetItem` asked for and did not
    /// find. DynamoDB bills each like a `GetItem` of a missing item (1 RRU
    /// strongly consistent: "If you perform a read operation on an item that
    /// doesn't exist, DynamoDB will still consume read throughput", and
    /// BatchGetItem "processes each item in the batch as an individual
    /// GetItem request"); the metering layer bills only the items returned,
    /// so the log adds them. Already included in `usage`.
    pub missed_read_half_units: u64,
}

/// What a call was about, noted before it is sent (the input is gone after).
#[derive(Debug, Default)]
struct Started {
    items: Vec<String>,
    put_bytes: usize,
    /// Per table: keys asked for by a `BatchGetItem`, and whether strongly consistent.
    batch_keys: Vec<(String, usize, bool)>,
}

#[derive(Debug, Default)]
struct LogState {
    /// Calls started and not yet finished, by execution (see [`execution_id`]).
    started: HashMap<usize, Started>,
    calls: Vec<Call>,
    /// The meter's counters after the last finished call.
    last: Usage,
    /// Misses added so far, per table (read half units), since the last take.
    missed: BTreeMap<String, u64>,
}

/// Logs every call with what the [`Meter`] charged for it, by reading the
/// meter after each call. A call's own figures are exact while calls run
/// one at a time (one order's steps); totals of concurrent phases come from
/// the meter (plus the misses, counted per call whatever the concurrency).
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

/// The SDK keeps one `InterceptorContext` in place from the first hook of
/// an execution to the last (the metering layer relies on the same).
fn execution_id(context: &InterceptorContext) -> usize {
    context as *const InterceptorContext as usize
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

/// `bench-cost-0190…-TradingTable` -> `Trading`.
pub fn short_table(table: &str) -> String {
    let name = table.rsplit('-').next().unwrap_or(table);
    name.trim_end_matches("Table").to_string()
}

fn keyed<'a>(
    table: &str,
    key: impl IntoIterator<Item = (&'a String, &'a AttributeValue)>,
) -> String {
    let map: BTreeMap<&str, &AttributeValue> =
        key.into_iter().map(|(k, v)| (k.as_str(), v)).collect();
    format!(
        "{} {}/{}",
        short_table(table),
        short_key(map.get("pk").copied()),
        short_key(map.get("sk").copied())
    )
}

/// The items a request touches, the bytes its puts write, and the keys of
/// a `BatchGetItem`.
fn started(input: &InterceptorContext) -> Started {
    let Some(input) = input.input() else {
        return Started::default();
    };
    let one = |items: Vec<String>, put_bytes| Started {
        items,
        put_bytes,
        batch_keys: Vec::new(),
    };
    if let Some(i) = input.downcast_ref::<PutItemInput>() {
        let item = i.item().cloned().unwrap_or_default();
        let table = i.table_name().unwrap_or_default();
        return one(vec![keyed(table, &item)], item_size(&item));
    }
    if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return one(vec![keyed(i.table_name().unwrap_or_default(), &key)], 0);
    }
    if let Some(i) = input.downcast_ref::<GetItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        return one(vec![keyed(i.table_name().unwrap_or_default(), &key)], 0);
    }
    if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
        let key = i.key().cloned().unwrap_or_default();
        let table = i.table_name().unwrap_or_default();
        return one(vec![format!("delete {}", keyed(table, &key))], 0);
    }
    if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
        let mut out = Started::default();
        for (table, request) in i.request_items().into_iter().flatten() {
            for key in request.keys() {
                out.items.push(keyed(table, key));
            }
            let consistent = request.consistent_read().unwrap_or(false);
            out.batch_keys
                .push((table.clone(), request.keys().len(), consistent));
        }
        return out;
    }
    if let Some(i) = input.downcast_ref::<QueryInput>() {
        let table = short_table(i.table_name().unwrap_or_default());
        let index = i
            .index_name()
            .map(|n| format!(" index {n}"))
            .unwrap_or_default();
        return one(vec![format!("{table}{index}")], 0);
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
        return one(items, bytes);
    }
    Started::default()
}

/// Read half units of the keys a `BatchGetItem` asked for and got neither
/// back nor as unprocessed: misses, billed by DynamoDB like found items.
fn missed_half_units(
    asked: &[(String, usize, bool)],
    context: &FinalizerInterceptorContextRef<'_>,
) -> Vec<(String, u64)> {
    let Some(Ok(output)) = context.output_or_error() else {
        return Vec::new();
    };
    let Some(output) = output.downcast_ref::<BatchGetItemOutput>() else {
        return Vec::new();
    };
    asked
        .iter()
        .map(|(table, keys, consistent)| {
            let returned = output
                .responses()
                .and_then(|r| r.get(table))
                .map_or(0, Vec::len);
            let unprocessed = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map_or(0, |k| k.keys().len());
            let missing = keys.saturating_sub(returned + unprocessed) as u64;
            let per_key = if *consistent { 2 } else { 1 };
            (table.clone(), missing * per_key)
        })
        .filter(|(_, half_units)| *half_units > 0)
        .collect()
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
        let call = started(context.inner());
        let mut state = self.lock();
        // Executions dropped mid-flight never finish; keep the map bounded.
        if state.started.len() > 10_000 {
            state.started.clear();
        }
        state.started.insert(execution_id(context.inner()), call);
        Ok(())
    }

    /// Runs after the meter's own interceptor (registered before this one),
    /// so the meter already holds this call's charge.
    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The snapshot is taken under the log's lock, so snapshots are
        // ordered like the calls that read them (concurrent calls included).
        let mut state = self.lock();
        let now = self.meter.snapshot();
        let mut usage = difference(&now, &state.last);
        state.last = now;
        let started = state
            .started
            .remove(&execution_id(context.inner()))
            .unwrap_or_default();
        let misses = missed_half_units(&started.batch_keys, context);
        let mut missed_read_half_units = 0;
        for (table, half_units) in misses {
            missed_read_half_units += half_units;
            usage.read_half_units += half_units;
            usage
                .tables
                .entry(table.clone())
                .or_default()
                .read_half_units += half_units;
            *state.missed.entry(table).or_default() += half_units;
        }
        let operation = usage.calls.keys().next().cloned().unwrap_or_default();
        state.calls.push(Call {
            operation,
            items: started.items,
            put_bytes: started.put_bytes,
            usage,
            missed_read_half_units,
        });
        Ok(())
    }
}

/// `after - before`, field by field (never below zero: under concurrency a
/// call may be charged before the one before it has read the meter).
pub fn difference(after: &Usage, before: &Usage) -> Usage {
    let mut out = after.clone();
    out.read_half_units = out.read_half_units.saturating_sub(before.read_half_units);
    out.write_units = out.write_units.saturating_sub(before.write_units);
    out.index_write_units = out
        .index_write_units
        .saturating_sub(before.index_write_units);
    out.retries = out.retries.saturating_sub(before.retries);
    out.failed_conditions = out
        .failed_conditions
        .saturating_sub(before.failed_conditions);
    out.cancelled_transactions = out
        .cancelled_transactions
        .saturating_sub(before.cancelled_transactions);
    out.errors = out.errors.saturating_sub(before.errors);
    out.unanswered = out.unanswered.saturating_sub(before.unanswered);
    for (op, n) in &before.calls {
        if let Some(count) = out.calls.get_mut(op) {
            *count = count.saturating_sub(*n);
        }
    }
    out.calls.retain(|_, n| *n > 0);
    for (table, b) in &before.tables {
        if let Some(t) = out.tables.get_mut(table) {
            t.read_half_units = t.read_half_units.saturating_sub(b.read_half_units);
            t.write_units = t.write_units.saturating_sub(b.write_units);
            for (index, units) in &b.index_write_units {
                if let Some(u) = t.index_write_units.get_mut(index) {
                    *u = u.saturating_sub(*units);
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
    /// Everything charged since the last `take` (the misses of
    /// `BatchGetItem` included, see [`Call::missed_read_half_units`]), and
    /// the calls made since, in the order they finished; then both start
    /// again from zero.
    pub fn take(&self) -> (Usage, Vec<Call>) {
        let mut state = self.log.lock();
        let mut usage = self.meter.snapshot();
        self.meter.reset();
        state.last = Usage::default();
        for (table, half_units) in std::mem::take(&mut state.missed) {
            usage.read_half_units += half_units;
            usage.tables.entry(table).or_default().read_half_units += half_units;
        }
        (usage, std::mem::take(&mut state.calls))
    }
}

/// Write units of one table (its indexes included).
pub fn table_write_units(usage: &Usage, table: &str) -> u64 {
    usage.tables.get(table).map_or(0, |t| {
        t.write_units + t.index_write_units.values().sum::<u64>()
    })
}

/// Read half units of one table.
pub fn table_read_half_units(usage: &Usage, table: &str) -> u64 {
    usage.tables.get(table).map_or(0, |t| t.read_half_units)
}

/// Half units as a decimal string: 3 -> "1.5".
pub fn rru(half_units: u64) -> String {
    aws_adapters::dynamodb::format_half_units(half_units)
}

// ---------------------------------------------------------------- platform

/// A platform on the local stack whose every DynamoDB call is metered (the
/// orders API, the use cases of `platform.orders()` and the Balances
/// service's own store share one metered client), with its resources (the
/// FIFO fill queue and its dead-letter queue) and unmetered clients for
/// set-up and inspection.
pub struct BenchPlatform {
    pub platform: Platform,
    pub metering: Metering,
    pub resources: Resources,
    /// Not metered: seeding and inspection.
    pub plain: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl BenchPlatform {
    pub fn queue_url(&self) -> &str {
        self.resources.queue_url("FillQueue")
    }

    pub fn dead_letter_queue_url(&self) -> &str {
        self.resources.queue_url("FillDeadLetterQueue")
    }

    /// The fill queue as the webhook writes it and the processor sets aside to it.
    pub fn fill_queue(&self) -> SqsFillQueue {
        SqsFillQueue::new(
            self.sqs.clone(),
            self.queue_url(),
            self.dead_letter_queue_url(),
        )
    }

    /// An unmetered order store over the trading table.
    pub fn plain_store(&self) -> DynamoOrderStore {
        DynamoOrderStore::new(self.plain.clone(), self.platform.trading_table.clone())
    }
}

pub async fn spawn_metered(label: &str) -> BenchPlatform {
    spawn_metered_with(label, PlatformOptions::default()).await
}

pub async fn spawn_metered_with(label: &str, options: PlatformOptions) -> BenchPlatform {
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
    BenchPlatform {
        platform,
        metering: Metering { meter, log },
        resources,
        plain,
        sqs: aws_sdk_sqs::Client::new(&config),
    }
}

/// Bytes of the order's item as the store writes it (1 WRU while < 1,024).
pub fn order_item_bytes(order: &Order) -> usize {
    DynamoOrderStore::order_item(order, 1)
        .map(|item| item_size(&item))
        .unwrap_or(0)
}

// ------------------------------------------------------------------ orders

pub fn limit_buy(quantity: u64, price: &str) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": price})
}

pub fn market_buy(quantity: u64) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": quantity.to_string()})
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
        let done = {
            let engine = platform.exchange.state.engine();
            ids.iter()
                .filter(|id| {
                    engine
                        .order_summary_by_client_id(id.as_str())
                        .is_some_and(|o| o.status.is_terminal())
                })
                .count()
        };
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

/// One SQS message carrying `report`, as the webhook queues it (its group:
/// the order).
pub fn message(n: usize, report: &ExchangeReport) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(format!("m-{n}"));
    message.body = Some(serde_json::to_string(report).expect("json"));
    message.attributes.insert(
        "MessageGroupId".into(),
        report.client_order_id().to_string(),
    );
    message
}

pub fn batch(messages: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages;
    event
}

// ---------------------------------------------------------------- webhooks

/// The events the exchange's webhooks carry for an order, built from its
/// audit exactly as the simulator sends them: each execution, then the
/// final status once the order ended.
pub fn webhook_events(platform: &Platform, id: &OrderId) -> Vec<ExchangeEvent> {
    let order = platform
        .exchange
        .state
        .engine()
        .get_by_client_id(id.as_str())
        .expect("the order is at the exchange");
    let mut events: Vec<ExchangeEvent> = order
        .executions
        .iter()
        .map(|e| ExchangeEvent {
            event_type: EventType::Execution,
            event_id: format!("evt-{}", e.exec_id),
            client_order_id: order.client_order_id.clone(),
            order_id: order.order_id.clone(),
            account: order.account.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            exec_id: Some(e.exec_id.clone()),
            quantity: Some(e.quantity),
            price: Some(e.price),
            cum_quantity: e.cum_quantity,
            leaves_quantity: e.leaves_quantity,
            status: if e.leaves_quantity.shares() == 0 {
                exchange_sim::OrderStatus::Filled
            } else {
                exchange_sim::OrderStatus::PartiallyFilled
            },
            occurred_at: e.occurred_at,
        })
        .collect();
    if order.status.is_terminal() {
        events.push(ExchangeEvent {
            event_type: EventType::OrderStatus,
            event_id: format!("evt-{}-final", order.order_id),
            client_order_id: order.client_order_id.clone(),
            order_id: order.order_id.clone(),
            account: order.account.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            exec_id: None,
            quantity: None,
            price: None,
            cum_quantity: order.cum_quantity,
            leaves_quantity: order.leaves_quantity,
            status: order.status,
            occurred_at: order.updated_at,
        });
    }
    events
}

/// The fill webhook (`fill_webhook::router`) served on a loopback port in
/// front of the bench's FIFO fill queue, and the venue's signing secret.
pub struct Webhook {
    pub url: String,
    secret: SimSecret,
    http: reqwest::Client,
}

impl Webhook {
    pub async fn serve(bench: &BenchPlatform) -> Webhook {
        let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| u.as_bytes().to_vec())
            .collect();
        let secret = SimSecret::from_bytes(bytes).expect("32 bytes");
        let platform_secret =
            fill_webhook::signature::Secret::parse(&secret.to_whsec()).expect("a whsec secret");
        let router = fill_webhook::router(
            bench.fill_queue(),
            SystemClock,
            fill_webhook::secrets::FixedKeys::new(vec![platform_secret]),
            Duration::from_secs(300),
        );
        let address = serve(router).await;
        Webhook {
            url: format!("http://{address}{}", fill_webhook::WEBHOOK_PATH),
            secret,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs `event` signed now, with its event id as the `webhook-id` (the
    /// venue's retries and duplicates reuse it), as the venue does.
    pub async fn deliver(&self, event: &ExchangeEvent) -> reqwest::StatusCode {
        let body = serde_json::to_vec(event).expect("json");
        let timestamp = app::Clock::now_ms(&SystemClock) / 1000;
        let signature =
            exchange_sim::signature::sign(&self.secret, &event.event_id, timestamp, &body);
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header(HEADER_ID, &event.event_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
            .send()
            .await
            .expect("the webhook answered")
            .status()
    }
}

// ------------------------------------------------------------------- queue

/// Lambda's SQS event source mapping over a FIFO queue, as
/// `infra/local/src/sqs_poller.rs` does it (that crate is a dev-dependency
/// of this one, out of reach of the benchmark binaries): receive a batch
/// with its system attributes (`MessageGroupId` first), hand it to the
/// function, delete what it did not name as failed; the failures come back
/// after the visibility timeout, and after `maxReceiveCount` deliveries go
/// to the dead-letter queue.
#[derive(Clone)]
pub struct FifoPoller {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    batch_size: i32,
    wait_seconds: i32,
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Polled {
    pub received: usize,
    pub failed: usize,
}

impl FifoPoller {
    pub fn new(
        sqs: &aws_sdk_sqs::Client,
        queue_url: &str,
        batch_size: i32,
        wait_seconds: i32,
    ) -> Self {
        FifoPoller {
            sqs: sqs.clone(),
            queue_url: queue_url.to_owned(),
            batch_size: batch_size.clamp(1, 10),
            wait_seconds,
        }
    }

    pub async fn poll_once<F, Fut>(&self, function: F) -> anyhow::Result<Polled>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(self.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Polled::default());
        }
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id.clone();
                record.receipt_handle = m.receipt_handle.clone();
                record.body = m.body.clone();
                record.event_source = Some("aws:sqs".into());
                for (name, value) in m.attributes().into_iter().flatten() {
                    record
                        .attributes
                        .insert(name.as_str().to_owned(), value.clone());
                }
                record
            })
            .collect();
        let response = function(event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id().unwrap_or_default()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle.clone())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await?;
        }
        Ok(Polled {
            received: messages.len(),
            failed: failed.len(),
        })
    }
}

/// Messages on a queue: visible, and in flight (received, not yet deleted).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<(u64, u64)> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?;
    let read = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        read(QueueAttributeName::ApproximateNumberOfMessages),
        read(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

// ---------------------------------------------------------------- counting

/// Calls made through a [`CountingExchange`], by port method.
#[derive(Debug, Clone, Default)]
pub struct ExchangeCalls(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl ExchangeCalls {
    fn count(&self, method: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(method)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Calls about one order (not the venue's clock, a quote or the day's list).
    pub fn per_order(counts: &BTreeMap<&'static str, u64>) -> u64 {
        ["place", "order", "executions", "cancel"]
            .iter()
            .map(|m| counts.get(m).copied().unwrap_or(0))
            .sum()
    }
}

/// The exchange port with every REST call counted (each method is one or
/// more HTTP requests: `executions` and `day_orders` read every page).
pub struct CountingExchange<E> {
    inner: E,
    calls: ExchangeCalls,
}

impl<E> CountingExchange<E> {
    pub fn new(inner: E, calls: ExchangeCalls) -> Self {
        CountingExchange { inner, calls }
    }

    /// The exchange itself (uncounted).
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Exchange> Exchange for CountingExchange<E> {
    fn rules(&self) -> VenueRules {
        self.inner.rules()
    }

    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        self.calls.count("place");
        self.inner.place(request).await
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        self.calls.count("order");
        self.inner.order(client_order_id).await
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        self.calls.count("executions");
        self.inner.executions(exchange_order_id).await
    }

    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        self.calls.count("cancel");
        self.inner.cancel(client_order_id, exchange_order_id).await
    }

    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        self.calls.count("reference_price");
        self.inner.reference_price(symbol).await
    }

    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        self.calls.count("clock");
        self.inner.clock().await
    }

    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        self.calls.count("day_orders");
        self.inner.day_orders(trade_date).await
    }
}

/// Writes of an order that lost to another writer (`Saved::Conflict`):
/// each is re-derived; eight in a row make a use case answer `Busy`.
#[derive(Debug, Clone, Default)]
pub struct Conflicts(Arc<AtomicU64>);

impl Conflicts {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The order store with its lost races counted.
pub struct CountingStore<S> {
    inner: S,
    conflicts: Conflicts,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S, conflicts: Conflicts) -> Self {
        CountingStore { inner, conflicts }
    }

    fn counted(&self, saved: Result<Saved, StoreError>) -> Result<Saved, StoreError> {
        if matches!(saved, Ok(Saved::Conflict)) {
            self.conflicts.0.fetch_add(1, Ordering::SeqCst);
        }
        saved
    }
}

impl<S: OrderStore> OrderStore for CountingStore<S> {
    async fn claim_key(
        &self,
        record: &IdempotencyRecord,
        now_ms: u64,
    ) -> Result<Claim, StoreError> {
        self.inner.claim_key(record, now_ms).await
    }

    async fn insert(&self, order: &Order) -> Result<Inserted, StoreError> {
        self.inner.insert(order).await
    }

    async fn load(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        self.inner.load(id).await
    }

    async fn save(&self, order: &Order, expected_version: u64) -> Result<Saved, StoreError> {
        let saved = self.inner.save(order, expected_version).await;
        self.counted(saved)
    }

    async fn fill(
        &self,
        id: &OrderId,
        exec_id: &domain::order::ExecId,
    ) -> Result<Option<FillRecord>, StoreError> {
        self.inner.fill(id, exec_id).await
    }

    async fn put_fill(
        &self,
        id: &OrderId,
        record: &FillRecord,
        remove_waiting: bool,
    ) -> Result<FillWritten, StoreError> {
        self.inner.put_fill(id, record, remove_waiting).await
    }

    async fn next_waiting(&self, id: &OrderId) -> Result<Option<FillRecord>, StoreError> {
        self.inner.next_waiting(id).await
    }

    async fn fills(
        &self,
        id: &OrderId,
        after: Option<&domain::order::ExecId>,
        limit: usize,
    ) -> Result<FillPage, StoreError> {
        self.inner.fills(id, after, limit).await
    }

    async fn list_for_account(
        &self,
        account: &AccountId,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<OrderPage, StoreError> {
        self.inner.list_for_account(account, after, limit).await
    }

    async fn due_orders(
        &self,
        shard: u32,
        after: Option<&DueEntry>,
        until_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        self.inner.due_orders(shard, after, until_ms, limit).await
    }

    async fn cursor(&self, name: &str) -> Result<Option<Versioned<String>>, StoreError> {
        self.inner.cursor(name).await
    }

    async fn save_cursor(
        &self,
        name: &str,
        value: &str,
        expected_version: u64,
    ) -> Result<Saved, StoreError> {
        let saved = self.inner.save_cursor(name, value, expected_version).await;
        self.counted(saved)
    }
}

/// An idempotency key for a benchmark request.
pub fn idempotency_key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text).expect("a valid idempotency key")
}

// ----------------------------------------------------------------- seeding

type Item = HashMap<String, AttributeValue>;

/// Most `BatchWriteItem` calls in flight while seeding.
const SEED_CONCURRENCY: usize = 4;
/// Items per `BatchWriteItem` (DynamoDB's maximum).
const BATCH_WRITE_ITEMS: usize = 25;
/// Rounds of resending what DynamoDB left unprocessed.
const BATCH_WRITE_RETRIES: usize = 10;

/// Writes `items` straight into `table` with `BatchWriteItem` (25 a call,
/// a few calls at once), resending what is left unprocessed.
pub async fn batch_put(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<Item>,
) -> anyhow::Result<()> {
    let chunks: Vec<Vec<Item>> = items
        .chunks(BATCH_WRITE_ITEMS)
        .map(<[Item]>::to_vec)
        .collect();
    let queue = Arc::new(Mutex::new(chunks.into_iter()));
    let workers = (0..SEED_CONCURRENCY).map(|_| {
        let queue = queue.clone();
        async move {
            loop {
                let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                let Some(chunk) = next else {
                    return anyhow::Ok(());
                };
                let mut pending: Vec<WriteRequest> = chunk
                    .into_iter()
                    .map(|item| {
                        let put = PutRequest::builder().set_item(Some(item)).build()?;
                        anyhow::Ok(WriteRequest::builder().put_request(put).build())
                    })
                    .collect::<Result<_, _>>()?;
                for _ in 0..BATCH_WRITE_RETRIES {
                    if pending.is_empty() {
                        break;
                    }
                    let output = client
                        .batch_write_item()
                        .request_items(table, pending)
                        .send()
                        .await?;
                    pending = output
                        .unprocessed_items
                        .and_then(|mut m| m.remove(table))
                        .unwrap_or_default();
                }
                anyhow::ensure!(pending.is_empty(), "items left unprocessed after retries");
            }
        }
    });
    for result in futures::future::join_all(workers).await {
        result?;
    }
    Ok(())
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

pub fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX)
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
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

/// Whether the flag `--name` is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Today's date and the machine, for the reports.
pub fn run_header(command: &str) -> String {
    let now = app::Clock::now_ms(&SystemClock);
    let day = now / 86_400_000;
    format!(
        "`{command}` — {} UTC, debug build, {} cores",
        app::orders::TradingCalendar::date(day),
        std::thread::available_parallelism().map_or(0, usize::from)
    )
}
