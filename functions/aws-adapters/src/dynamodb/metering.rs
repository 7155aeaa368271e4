//! Counts DynamoDB capacity by DynamoDB's billing rules, because the local
//! emulator's `ConsumedCapacity` is fixed and fake (nothing for transactions).
//!
//! [`metered_client`] builds a client with an SDK interceptor that looks at
//! each request and its answer and charges a shared [`Meter`]; the adapters
//! use that client unchanged. [`usage_report`] prints what was counted.
//!
//! Rules (AWS developer guide, "DynamoDB read and write operations",
//! `read-write-operations.html`, and "DynamoDB item sizes and formats",
//! `CapacityUnitCalculations.html`):
//! - write: 1 WRU per started KB of the item; `PutItem`/`UpdateItem` bill the
//!   larger of the item before and after, `DeleteItem` the deleted item;
//!   a failed conditional write still bills (at least 1 WRU).
//! - read: 1 RRU per started 4 KB strongly consistent, half that eventually
//!   consistent; `GetItem`/`BatchGetItem` round each item, `Query`/`Scan`
//!   round the sum of the items evaluated (here: returned) once per call.
//! - transactions ("Amazon DynamoDB Transactions: How it works",
//!   `transaction-apis.html`, capacity management): every item costs twice,
//!   a `ConditionCheck` item like a write of the item it checks. A cancelled
//!   transaction still bills its items.
//! - global secondary indexes (`GSI.html#GSI.ThroughputConsiderations.Writes`):
//!   a write that puts an item carrying the index keys costs one index write
//!   per started KB of the projected item; changing an index key costs a
//!   delete plus a put; removing one costs a delete; a write that changes no
//!   projected attribute costs nothing on that index.
//!
//! Counters are integers (read capacity in half units): they feed a cost
//! budget, so no floating point.
//!
//! What the client cannot see, and how it is approximated:
//! - The item *before* a write. The meter remembers the size and attribute
//!   fingerprints of every item it has seen written or read in full (shared by
//!   every client of one [`Meter`]); `ReturnValues` ALL_OLD / ALL_NEW answers
//!   are used when the caller asked for them. An `UpdateItem` of an item never
//!   seen bills the key plus the values it sets; a delete of one never seen
//!   bills 1 WRU and one delete on every index (an upper bound); a put over
//!   an item never seen is billed as a new item.
//! - Update expressions are read lightly: the SET / REMOVE / ADD / DELETE
//!   clauses, `#name` substitutions and the `:value` placeholders. The new size
//!   of an attribute set by a function or arithmetic (`if_not_exists`,
//!   `list_append`, `a + :n`) is the larger of its old size and the values
//!   used; such an attribute counts as changed, so an index key written that
//!   way costs delete + put even when the value stays the same.
//! - `Query`/`Scan` bill the items evaluated before a filter; only the returned
//!   items are visible, so filtered queries are under-counted.
//! - Index writes are counted once per change, also inside transactions (the
//!   guide doubles the table item, and says nothing of doubling index writes).
//! - A request with no answer (timeout, lost connection) may or may not have
//!   been applied: its table writes are billed (an upper bound) and it is
//!   counted in `unanswered`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_sdk_dynamodb::config::ConfigBag;
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::delete_item::{
    DeleteItemError, DeleteItemInput, DeleteItemOutput,
};
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use aws_sdk_dynamodb::operation::transact_get_items::{
    TransactGetItemsInput, TransactGetItemsOutput,
};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput,
};
use aws_sdk_dynamodb::operation::update_item::{
    UpdateItemError, UpdateItemInput, UpdateItemOutput,
};
use aws_sdk_dynamodb::types::{AttributeValue, ProjectionType, ReturnValue, WriteRequest};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

type Item = HashMap<String, AttributeValue>;

// ------------------------------------------------------------------ rules

const WRITE_UNIT_BYTES: usize = 1024;
const READ_UNIT_BYTES: usize = 4096;

/// Size of an item: attribute name bytes plus value sizes
/// (`CapacityUnitCalculations.html`).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// Size of one value, without its attribute name.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        // 3 bytes for the container and 1 per element.
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// "Approximately 1 byte per two significant digits, plus 1 byte"; leading
/// and trailing zeroes do not count.
pub fn number_size(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Write units for one write of an item of `size` bytes: one per started KB,
/// at least one.
pub fn write_units(size: usize) -> u64 {
    size.div_ceil(WRITE_UNIT_BYTES).max(1) as u64
}

/// Read capacity in half units for reading `size` bytes in one go: one
/// started 4 KB block is 2 halves strongly consistent, 1 half eventually
/// consistent; at least one block (a miss still costs).
pub fn read_half_units(size: usize, consistent: bool) -> u64 {
    let blocks = size.div_ceil(READ_UNIT_BYTES).max(1) as u64;
    if consistent {
        2 * blocks
    } else {
        blocks
    }
}

/// Half units as a decimal string: 3 -> "1.5".
pub fn format_half_units(half_units: u64) -> String {
    if half_units.is_multiple_of(2) {
        (half_units / 2).to_string()
    } else {
        format!("{}.5", half_units / 2)
    }
}

// ----------------------------------------------------------------- schema

/// Which attributes an index copies from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    KeysOnly,
    All,
    Include(Vec<String>),
}

/// A global secondary index: its key attributes and projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    pub key_attributes: Vec<String>,
    pub projection: Projection,
}

/// What the meter must know of a table: its primary key attributes (to
/// recognise items) and its global secondary indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub table: String,
    pub key_attributes: Vec<String>,
    pub indexes: Vec<IndexSchema>,
}

/// `DescribeTable` failed or described no table.
#[derive(Debug, thiserror::Error)]
#[error("describing table {table} failed: {message}")]
pub struct DescribeError {
    pub table: String,
    pub message: String,
}

impl TableSchema {
    /// Reads the schema with `DescribeTable`, so callers need not declare
    /// the indexes a second time.
    pub async fn describe(client: &Client, table: &str) -> Result<TableSchema, DescribeError> {
        let fail = |message: String| DescribeError {
            table: table.to_string(),
            message,
        };
        let output = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| fail(super::describe(&e)))?;
        let description = output
            .table()
            .ok_or_else(|| fail("no table description".into()))?;
        let names = |keys: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
            keys.iter()
                .map(|k| k.attribute_name().to_string())
                .collect::<Vec<_>>()
        };
        let indexes = description
            .global_secondary_indexes()
            .iter()
            .map(|index| {
                let projection = index.projection();
                IndexSchema {
                    name: index.index_name().unwrap_or_default().to_string(),
                    key_attributes: names(index.key_schema()),
                    projection: match projection.and_then(|p| p.projection_type()) {
                        Some(ProjectionType::All) => Projection::All,
                        Some(ProjectionType::Include) => Projection::Include(
                            projection
                                .map(|p| p.non_key_attributes().to_vec())
                                .unwrap_or_default(),
                        ),
                        _ => Projection::KeysOnly,
                    },
                }
            })
            .collect();
        Ok(TableSchema {
            table: table.to_string(),
            key_attributes: names(description.key_schema()),
            indexes,
        })
    }
}

// ------------------------------------------------------------------ usage

/// Capacity counted for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUsage {
    pub read_half_units: u64,
    /// Writes to the table itself.
    pub write_units: u64,
    /// Writes to each global secondary index, by index name.
    pub index_write_units: BTreeMap<String, u64>,
}

/// Everything counted since the meter was created or reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Read capacity in half units (an eventually consistent read of up to
    /// 4 KB is one).
    pub read_half_units: u64,
    /// All write units: tables and their indexes.
    pub write_units: u64,
    /// The part of `write_units` spent on global secondary indexes.
    pub index_write_units: u64,
    /// Calls made by the application, by operation (retries not included).
    pub calls: BTreeMap<String, u64>,
    /// Extra attempts made by the SDK's retries.
    pub retries: u64,
    /// Conditions that failed (single writes and items of cancelled transactions).
    pub failed_conditions: u64,
    pub cancelled_transactions: u64,
    /// Answers that were errors DynamoDB does not bill (throttling, validation, ...).
    pub errors: u64,
    /// Attempts that got no answer; their table writes are billed anyway.
    pub unanswered: u64,
    pub tables: BTreeMap<String, TableUsage>,
}

impl Usage {
    /// Read units as a decimal string, e.g. "0.5".
    pub fn read_units(&self) -> String {
        format_half_units(self.read_half_units)
    }

    /// Number of calls of every operation.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    fn table(&mut self, table: &str) -> &mut TableUsage {
        self.tables.entry(table.to_string()).or_default()
    }

    fn charge_read(&mut self, table: &str, half_units: u64) {
        self.read_half_units += half_units;
        self.table(table).read_half_units += half_units;
    }

    fn charge_write(&mut self, table: &str, units: u64) {
        self.write_units += units;
        self.table(table).write_units += units;
    }

    fn charge_index_write(&mut self, table: &str, index: &str, units: u64) {
        if units == 0 {
            return;
        }
        self.write_units += units;
        self.index_write_units += units;
        *self
            .table(table)
            .index_write_units
            .entry(index.to_string())
            .or_default() += units;
    }
}

/// A short table of the usage, for logs and benchmark output.
pub fn usage_report(usage: &Usage) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DynamoDB capacity: {} WRU ({} on indexes), {} RRU, {} calls, {} failed conditions, {} cancelled transactions",
        usage.write_units,
        usage.index_write_units,
        usage.read_units(),
        usage.total_calls(),
        usage.failed_conditions,
        usage.cancelled_transactions,
    );
    if usage.retries + usage.errors + usage.unanswered > 0 {
        let _ = writeln!(
            out,
            "  retries {}, unbilled errors {}, unanswered {}",
            usage.retries, usage.errors, usage.unanswered
        );
    }
    let width = usage
        .tables
        .keys()
        .map(String::len)
        .chain(std::iter::once(5))
        .max()
        .unwrap_or(5)
        + 2;
    let _ = writeln!(out, "  {:<width$} {:>8} {:>8}", "table", "WRU", "RRU");
    for (table, t) in &usage.tables {
        let _ = writeln!(
            out,
            "  {:<width$} {:>8} {:>8}",
            table,
            t.write_units,
            format_half_units(t.read_half_units)
        );
        for (index, units) in &t.index_write_units {
            let label = format!("  index {index}");
            let _ = writeln!(out, "  {label:<width$} {units:>8}");
        }
    }
    if !usage.calls.is_empty() {
        let calls: Vec<String> = usage
            .calls
            .iter()
            .map(|(op, n)| format!("{op} {n}"))
            .collect();
        let _ = writeln!(out, "  calls: {}", calls.join(", "));
    }
    out
}

// ------------------------------------------------------------------ meter

/// What the meter knows of one attribute of an item: its size (name
/// included) and a fingerprint of its value (`None`: value not known, e.g.
/// computed by an update expression).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attr {
    size: usize,
    fingerprint: Option<u64>,
}

/// An item as the meter remembers it.
type Shape = BTreeMap<String, Attr>;

fn shape_of(item: &Item) -> Shape {
    item.iter()
        .map(|(name, value)| (name.clone(), attr_of(name, value)))
        .collect()
}

fn attr_of(name: &str, value: &AttributeValue) -> Attr {
    let mut hasher = DefaultHasher::new();
    format!("{value:?}").hash(&mut hasher);
    Attr {
        size: name.len() + value_size(value),
        fingerprint: Some(hasher.finish()),
    }
}

fn shape_size(shape: &Shape) -> usize {
    shape.values().map(|a| a.size).sum()
}

/// Remembered items are capped so a long benchmark cannot grow without bound;
/// when full, the meter forgets everything and falls back to estimates.
const MAX_REMEMBERED_ITEMS: usize = 200_000;

#[derive(Debug, Default)]
struct State {
    usage: Usage,
    /// Last known shape of items, by (table, primary key).
    items: HashMap<(String, String), Shape>,
}

impl State {
    fn remember(&mut self, table: &str, key: &Option<String>, shape: Option<Shape>) {
        let Some(key) = key else { return };
        let id = (table.to_string(), key.clone());
        match shape {
            Some(shape) => {
                if self.items.len() >= MAX_REMEMBERED_ITEMS {
                    self.items.clear();
                }
                self.items.insert(id, shape);
            }
            None => {
                self.items.remove(&id);
            }
        }
    }

    fn recall(&self, table: &str, key: &Option<String>) -> Option<Shape> {
        let key = key.as_ref()?;
        self.items.get(&(table.to_string(), key.clone())).cloned()
    }
}

/// A shared, thread-safe capacity counter; clones count into the same totals.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    state: Arc<Mutex<State>>,
}

impl Meter {
    pub fn new() -> Meter {
        Meter::default()
    }

    /// The usage counted so far.
    pub fn snapshot(&self) -> Usage {
        self.lock().usage.clone()
    }

    /// Sets the counters to zero. What the meter knows of items is kept, so
    /// the next writes are still billed on the right sizes.
    pub fn reset(&self) {
        self.lock().usage = Usage::default();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop the counting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A DynamoDB client whose every call is counted by `meter`. `tables` gives
/// the primary keys and indexes of the tables it uses (see
/// [`TableSchema::describe`]); calls to other tables are counted without
/// index writes.
pub fn metered_client(
    config: &aws_config::SdkConfig,
    meter: &Meter,
    tables: &[TableSchema],
) -> Client {
    let interceptor = MeterInterceptor {
        meter: meter.clone(),
        schemas: tables
            .iter()
            .map(|t| (t.table.clone(), t.clone()))
            .collect(),
        pending: Mutex::default(),
    };
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(interceptor)
        .build();
    Client::from_conf(conf)
}

// ------------------------------------------------------------- the plan

/// The primary key of a whole item, as text (see [`key_map_text`]); needs
/// the table's key attributes.
fn key_text(schema: Option<&TableSchema>, item: &Item) -> Option<String> {
    let key: Item = schema?
        .key_attributes
        .iter()
        .map(|name| Some((name.clone(), item.get(name)?.clone())))
        .collect::<Option<_>>()?;
    Some(key_map_text(&key))
}

/// A `Key` map as text: names sorted, values in Debug form.
fn key_map_text(key: &Item) -> String {
    let sorted: BTreeMap<&String, &AttributeValue> = key.iter().collect();
    let mut text = String::new();
    for (name, value) in sorted {
        let _ = write!(text, "{name}={value:?};");
    }
    text
}

#[derive(Debug, Clone)]
enum Assigned {
    /// The new value is known exactly (`SET a = :v`).
    Exact(Attr),
    /// Computed: at least this size, value unknown.
    AtLeast(usize),
    /// Grows by this many bytes (nested SET, ADD to a set).
    Grows(usize),
}

/// What an update expression does to the top-level attributes.
#[derive(Debug, Clone, Default)]
struct UpdateEffect {
    assigned: Vec<(String, Assigned)>,
    removed: Vec<String>,
}

impl UpdateEffect {
    fn touched(&self) -> impl Iterator<Item = &String> {
        self.assigned.iter().map(|(n, _)| n).chain(&self.removed)
    }

    fn apply(&self, before: &Shape) -> Shape {
        let mut after = before.clone();
        for name in &self.removed {
            after.remove(name);
        }
        for (name, assigned) in &self.assigned {
            let old = after.get(name).map(|a| a.size);
            let attr = match assigned {
                Assigned::Exact(attr) => *attr,
                Assigned::AtLeast(size) => Attr {
                    size: old.unwrap_or(0).max(*size),
                    fingerprint: None,
                },
                Assigned::Grows(bytes) => Attr {
                    size: old.unwrap_or(name.len() + 3) + bytes,
                    fingerprint: None,
                },
            };
            after.insert(name.clone(), attr);
        }
        after
    }
}

#[derive(Debug, Clone)]
enum Change {
    Put(Shape),
    Update(UpdateEffect),
    Delete,
    /// `ConditionCheck` in a transaction: billed like a write, changes nothing.
    Check,
}

#[derive(Debug, Clone)]
struct Write {
    table: String,
    key: Option<String>,
    /// The key attributes (an update creates the item from them if absent).
    key_shape: Shape,
    change: Change,
}

#[derive(Debug, Clone)]
enum Plan {
    Writes {
        writes: Vec<Write>,
        transactional: bool,
        return_values: Option<ReturnValue>,
    },
    GetItem {
        table: String,
        key: Option<String>,
        consistent: bool,
        whole_item: bool,
    },
    QueryOrScan {
        table: String,
        consistent: bool,
        learn: bool,
    },
    BatchGet {
        consistent: HashMap<String, bool>,
    },
    TransactGet {
        tables: Vec<String>,
    },
    Unmetered,
}

#[derive(Debug)]
struct Pending {
    plan: Plan,
    attempts: u32,
}

/// `arn:aws:dynamodb:...:table/Name` or `Name` -> `Name`.
fn table_name(name: &str) -> String {
    match name.rsplit_once(":table/") {
        Some((_, rest)) => rest.to_string(),
        None => name.to_string(),
    }
}

struct Planner<'a> {
    schemas: &'a HashMap<String, TableSchema>,
}

impl Planner<'_> {
    fn put(&self, table: &str, item: &Item) -> Write {
        let table = table_name(table);
        let schema = self.schemas.get(&table);
        Write {
            key: key_text(schema, item),
            key_shape: key_shape(schema, item),
            table,
            change: Change::Put(shape_of(item)),
        }
    }

    fn keyed(&self, table: &str, key: &Item, change: Change) -> Write {
        Write {
            key: Some(key_map_text(key)),
            key_shape: shape_of(key),
            table: table_name(table),
            change,
        }
    }

    fn plan(&self, input: &aws_smithy_runtime_api::client::interceptors::context::Input) -> Plan {
        let single = |write: Write, return_values: Option<&ReturnValue>| Plan::Writes {
            writes: vec![write],
            transactional: false,
            return_values: return_values.cloned(),
        };
        if let Some(i) = input.downcast_ref::<PutItemInput>() {
            let write = self.put(
                i.table_name().unwrap_or_default(),
                i.item().unwrap_or(&Item::new()),
            );
            return single(write, i.return_values());
        }
        if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            let effect = parse_update(
                i.update_expression().unwrap_or_default(),
                i.expression_attribute_names(),
                i.expression_attribute_values(),
            );
            let key = i.key().cloned().unwrap_or_default();
            let write = self.keyed(
                i.table_name().unwrap_or_default(),
                &key,
                Change::Update(effect),
            );
            return single(write, i.return_values());
        }
        if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
            let key = i.key().cloned().unwrap_or_default();
            let write = self.keyed(i.table_name().unwrap_or_default(), &key, Change::Delete);
            return single(write, i.return_values());
        }
        if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            let writes = i
                .transact_items()
                .iter()
                .filter_map(|item| {
                    if let Some(p) = item.put() {
                        Some(self.put(p.table_name(), p.item()))
                    } else if let Some(u) = item.update() {
                        let effect = parse_update(
                            u.update_expression(),
                            u.expression_attribute_names(),
                            u.expression_attribute_values(),
                        );
                        Some(self.keyed(u.table_name(), u.key(), Change::Update(effect)))
                    } else if let Some(d) = item.delete() {
                        Some(self.keyed(d.table_name(), d.key(), Change::Delete))
                    } else {
                        item.condition_check()
                            .map(|c| self.keyed(c.table_name(), c.key(), Change::Check))
                    }
                })
                .collect();
            return Plan::Writes {
                writes,
                transactional: true,
                return_values: None,
            };
        }
        if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
            let mut writes = Vec::new();
            for (table, requests) in i.request_items().into_iter().flatten() {
                writes.extend(requests.iter().filter_map(|r| self.batch_write(table, r)));
            }
            return Plan::Writes {
                writes,
                transactional: false,
                return_values: None,
            };
        }
        if let Some(i) = input.downcast_ref::<GetItemInput>() {
            let table = table_name(i.table_name().unwrap_or_default());
            let key = i.key().map(key_map_text);
            return Plan::GetItem {
                key,
                consistent: i.consistent_read().unwrap_or(false),
                whole_item: i.projection_expression().is_none() && i.attributes_to_get().is_empty(),
                table,
            };
        }
        if let Some(i) = input.downcast_ref::<QueryInput>() {
            return Plan::QueryOrScan {
                table: table_name(i.table_name().unwrap_or_default()),
                consistent: i.consistent_read().unwrap_or(false),
                learn: i.index_name().is_none()
                    && i.projection_expression().is_none()
                    && i.select().is_none()
                    && i.attributes_to_get().is_empty(),
            };
        }
        if let Some(i) = input.downcast_ref::<ScanInput>() {
            return Plan::QueryOrScan {
                table: table_name(i.table_name().unwrap_or_default()),
                consistent: i.consistent_read().unwrap_or(false),
                learn: i.index_name().is_none()
                    && i.projection_expression().is_none()
                    && i.select().is_none()
                    && i.attributes_to_get().is_empty(),
            };
        }
        if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
            let consistent = i
                .request_items()
                .into_iter()
                .flatten()
                .map(|(table, keys)| (table_name(table), keys.consistent_read().unwrap_or(false)))
                .collect();
            return Plan::BatchGet { consistent };
        }
        if let Some(i) = input.downcast_ref::<TransactGetItemsInput>() {
            let tables = i
                .transact_items()
                .iter()
                .map(|t| table_name(t.get().map(|g| g.table_name()).unwrap_or_default()))
                .collect();
            return Plan::TransactGet { tables };
        }
        Plan::Unmetered
    }

    fn batch_write(&self, table: &str, request: &WriteRequest) -> Option<Write> {
        if let Some(put) = request.put_request() {
            Some(self.put(table, put.item()))
        } else {
            request
                .delete_request()
                .map(|d| self.keyed(table, d.key(), Change::Delete))
        }
    }
}

fn key_shape(schema: Option<&TableSchema>, item: &Item) -> Shape {
    let Some(schema) = schema else {
        return Shape::new();
    };
    schema
        .key_attributes
        .iter()
        .filter_map(|name| item.get(name).map(|v| (name.clone(), attr_of(name, v))))
        .collect()
}

// ----------------------------------------------------- update expressions

const CLAUSES: [&str; 4] = ["SET", "REMOVE", "ADD", "DELETE"];

/// Splits `SET a = :a, b = :b REMOVE c` into its clauses. The clause
/// keywords are reserved words, so as bare words (preceded by whitespace or
/// the start) they can only be clause keywords.
fn clauses(expression: &str) -> Vec<(&'static str, &str)> {
    let bytes = expression.as_bytes();
    let mut starts: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_alphabetic() && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            let end = (i..bytes.len())
                .find(|&j| !bytes[j].is_ascii_alphanumeric() && bytes[j] != b'_')
                .unwrap_or(bytes.len());
            let word = &expression[i..end];
            if let Some(keyword) = CLAUSES.iter().find(|k| k.eq_ignore_ascii_case(word)) {
                starts.push((i, end, keyword));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &(_, body_start, keyword))| {
            let body_end = starts.get(n + 1).map_or(expression.len(), |s| s.0);
            (keyword, &expression[body_start..body_end])
        })
        .collect()
}

/// Splits on commas outside parentheses (`if_not_exists(a, :v)` is one action).
fn split_actions(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in body.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The top-level attribute a document path starts with, `#names` resolved,
/// and whether the path goes deeper (`a.b`, `a[0]`).
fn top_attribute(path: &str, names: Option<&HashMap<String, String>>) -> (String, bool) {
    let path = path.trim();
    let end = path.find(['.', '[']).unwrap_or(path.len());
    let first = &path[..end];
    let name = match names.and_then(|n| n.get(first)) {
        Some(resolved) => resolved.clone(),
        None => first.to_string(),
    };
    (name, end < path.len())
}

/// The `:placeholders` used in an operand, with their values.
fn placeholders<'v>(text: &str, values: Option<&'v Item>) -> Vec<&'v AttributeValue> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(':') {
        let tail = &rest[at..];
        let end = tail[1..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map_or(tail.len(), |e| e + 1);
        if let Some(value) = values.and_then(|v| v.get(&tail[..end])) {
            found.push(value);
        }
        rest = &tail[end..];
    }
    found
}

fn parse_update(
    expression: &str,
    names: Option<&HashMap<String, String>>,
    values: Option<&Item>,
) -> UpdateEffect {
    let mut effect = UpdateEffect::default();
    for (keyword, body) in clauses(expression) {
        for action in split_actions(body) {
            match keyword {
                "SET" => {
                    let Some((path, operand)) = action.split_once('=') else {
                        continue;
                    };
                    let (name, nested) = top_attribute(path, names);
                    let used = placeholders(operand, values);
                    let operand = operand.trim();
                    let assigned = match used.as_slice() {
                        [value]
                            if !nested && operand.starts_with(':') && !operand.contains(' ') =>
                        {
                            Assigned::Exact(attr_of(&name, value))
                        }
                        _ => {
                            let bytes: usize = used.iter().map(|v| value_size(v)).sum();
                            if nested {
                                Assigned::Grows(bytes)
                            } else {
                                Assigned::AtLeast(name.len() + bytes)
                            }
                        }
                    };
                    effect.assigned.push((name, assigned));
                }
                "REMOVE" => {
                    let (name, nested) = top_attribute(action, names);
                    if nested {
                        effect.assigned.push((name, Assigned::AtLeast(0)));
                    } else {
                        effect.removed.push(name);
                    }
                }
                // `ADD path :v` (number or set) and `DELETE path :v` (set elements).
                _ => {
                    let (path, operand) = action
                        .split_once(char::is_whitespace)
                        .unwrap_or((action, ""));
                    let (name, _) = top_attribute(path, names);
                    let used = placeholders(operand, values);
                    let bytes: usize = used.iter().map(|v| value_size(v)).sum();
                    let is_set = used.iter().any(|v| {
                        matches!(
                            v,
                            AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_)
                        )
                    });
                    let assigned = if keyword == "ADD" && is_set {
                        Assigned::Grows(bytes)
                    } else if keyword == "ADD" {
                        Assigned::AtLeast(name.len() + bytes)
                    } else {
                        Assigned::AtLeast(0)
                    };
                    effect.assigned.push((name, assigned));
                }
            }
        }
    }
    effect
}

// --------------------------------------------------------- settling costs

fn in_index(index: &IndexSchema, shape: &Shape) -> bool {
    index.key_attributes.iter().all(|k| shape.contains_key(k))
}

fn projected(index: &IndexSchema, table_keys: &[String], name: &str) -> bool {
    match &index.projection {
        Projection::All => true,
        Projection::KeysOnly => index
            .key_attributes
            .iter()
            .chain(table_keys)
            .any(|k| k == name),
        Projection::Include(extra) => index
            .key_attributes
            .iter()
            .chain(table_keys)
            .chain(extra)
            .any(|k| k == name),
    }
}

fn projected_size(index: &IndexSchema, table_keys: &[String], shape: &Shape) -> usize {
    shape
        .iter()
        .filter(|(name, _)| projected(index, table_keys, name))
        .map(|(_, a)| a.size)
        .sum()
}

fn changed(before: &Shape, after: &Shape, name: &str) -> bool {
    match (before.get(name), after.get(name)) {
        (None, None) => false,
        (Some(a), Some(b)) => a.fingerprint.is_none() || a != b,
        _ => true,
    }
}

/// Index write units for one successful write, the item before and after
/// being known (`before == None`: there was no item).
fn index_units_known(
    index: &IndexSchema,
    table_keys: &[String],
    before: Option<&Shape>,
    after: Option<&Shape>,
) -> u64 {
    let was = before.filter(|b| in_index(index, b));
    let is = after.filter(|a| in_index(index, a));
    let put = |s: &Shape| write_units(projected_size(index, table_keys, s));
    match (was, is) {
        (None, None) => 0,
        (None, Some(a)) => put(a),
        (Some(b), None) => put(b),
        (Some(b), Some(a)) => {
            let names: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            if index.key_attributes.iter().any(|k| changed(b, a, k)) {
                put(b) + put(a)
            } else if names
                .iter()
                .any(|n| projected(index, table_keys, n) && changed(b, a, n))
            {
                put(a)
            } else {
                0
            }
        }
    }
}

/// Index write units for an update of an item the meter has never seen: an
/// upper bound from what the request touches.
fn index_units_unknown(
    index: &IndexSchema,
    table_keys: &[String],
    effect: &UpdateEffect,
    after: &Shape,
) -> u64 {
    let projected_units = write_units(projected_size(index, table_keys, after));
    let is_key = |name: &String| index.key_attributes.contains(name);
    if effect.removed.iter().any(is_key) {
        1
    } else if effect.assigned.iter().any(|(n, _)| is_key(n)) {
        1 + projected_units
    } else if effect.touched().any(|n| projected(index, table_keys, n)) {
        projected_units
    } else {
        0
    }
}

/// What the answer said about the item before / after each write.
#[derive(Default)]
struct Returned {
    before: Option<Shape>,
    after: Option<Shape>,
}

fn returned(return_values: &Option<ReturnValue>, attributes: Option<&Item>) -> Returned {
    let shape = attributes.map(shape_of);
    match return_values {
        Some(ReturnValue::AllOld) => Returned {
            before: shape,
            after: None,
        },
        Some(ReturnValue::AllNew) => Returned {
            before: None,
            after: shape,
        },
        _ => Returned::default(),
    }
}

impl MeterInterceptor {
    fn settle_writes_ok(
        &self,
        state: &mut State,
        writes: &[Write],
        transactional: bool,
        answer: Returned,
        skipped: &BTreeSet<(String, String)>,
    ) {
        let factor = if transactional { 2 } else { 1 };
        for write in writes {
            if let Some(key) = &write.key {
                if skipped.contains(&(write.table.clone(), key.clone())) {
                    continue;
                }
            }
            let schema = self.schemas.get(&write.table);
            let recalled = state.recall(&write.table, &write.key);
            let before = answer.before.clone().or(recalled);
            let after = match &write.change {
                Change::Put(shape) => Some(shape.clone()),
                Change::Update(effect) => answer
                    .after
                    .clone()
                    .or_else(|| Some(effect.apply(before.as_ref().unwrap_or(&write.key_shape)))),
                Change::Delete => None,
                Change::Check => before.clone(),
            };
            let size = before
                .iter()
                .chain(after.iter())
                .map(shape_size)
                .max()
                .unwrap_or(0);
            state
                .usage
                .charge_write(&write.table, factor * write_units(size));
            if matches!(write.change, Change::Check) {
                continue;
            }
            if let Some(schema) = schema {
                // An update of an item never seen (and not returned whole) is
                // the one case where the old item is unknown.
                let unknown = before.is_none()
                    && matches!(write.change, Change::Update(_))
                    && answer.after.is_none();
                for index in &schema.indexes {
                    let units = match (&write.change, &after) {
                        (Change::Update(effect), Some(a)) if unknown => {
                            index_units_unknown(index, &schema.key_attributes, effect, a)
                        }
                        (Change::Delete, _) if before.is_none() => 1,
                        _ => index_units_known(
                            index,
                            &schema.key_attributes,
                            before.as_ref(),
                            after.as_ref(),
                        ),
                    };
                    state
                        .usage
                        .charge_index_write(&write.table, &index.name, units);
                }
            }
            // An update of an unknown item leaves it partly unknown: forget it.
            let known_after = match write.change {
                Change::Update(_) if before.is_none() && answer.after.is_none() => None,
                _ => after,
            };
            state.remember(&write.table, &write.key, known_after);
        }
    }

    /// Table writes billed without success: cancelled transactions and
    /// unanswered requests. Nothing reaches the indexes.
    fn settle_writes_billed_only(
        &self,
        state: &mut State,
        writes: &[Write],
        transactional: bool,
        forget: bool,
    ) {
        let factor = if transactional { 2 } else { 1 };
        for write in writes {
            let before = state.recall(&write.table, &write.key);
            let after = match &write.change {
                Change::Put(shape) => Some(shape.clone()),
                Change::Update(effect) => {
                    Some(effect.apply(before.as_ref().unwrap_or(&write.key_shape)))
                }
                _ => None,
            };
            let size = before
                .iter()
                .chain(after.iter())
                .map(shape_size)
                .max()
                .unwrap_or(0);
            state
                .usage
                .charge_write(&write.table, factor * write_units(size));
            if forget {
                state.remember(&write.table, &write.key, None);
            }
        }
    }

    /// A failed condition on a single write: 1 WRU per started KB of the
    /// existing item, at least 1.
    fn settle_failed_condition(&self, state: &mut State, write: &Write, existing: Option<&Item>) {
        if let Some(item) = existing {
            state.remember(&write.table, &write.key, Some(shape_of(item)));
        }
        let size = state
            .recall(&write.table, &write.key)
            .map(|s| shape_size(&s))
            .unwrap_or(0);
        state.usage.charge_write(&write.table, write_units(size));
        state.usage.failed_conditions += 1;
    }

    fn settle(&self, state: &mut State, plan: &Plan, context: &FinalizerInterceptorContextRef<'_>) {
        let answered = context.response().is_some();
        let result = context.output_or_error();
        let output = result.as_ref().and_then(|r| r.as_ref().ok());
        let error = result
            .as_ref()
            .and_then(|r| r.as_ref().err())
            .and_then(|e| e.as_operation_error());
        match plan {
            Plan::Writes {
                writes,
                transactional,
                return_values,
            } => {
                if let Some(output) = output {
                    let mut skipped = BTreeSet::new();
                    let answer = if let Some(o) = output.downcast_ref::<PutItemOutput>() {
                        returned(return_values, o.attributes())
                    } else if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
                        returned(return_values, o.attributes())
                    } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
                        returned(return_values, o.attributes())
                    } else {
                        if let Some(o) = output.downcast_ref::<BatchWriteItemOutput>() {
                            // Unprocessed requests were not written and are not billed.
                            let planner = Planner {
                                schemas: &self.schemas,
                            };
                            for (table, requests) in o.unprocessed_items().into_iter().flatten() {
                                for write in requests
                                    .iter()
                                    .filter_map(|r| planner.batch_write(table, r))
                                {
                                    if let Some(key) = write.key {
                                        skipped.insert((write.table, key));
                                    }
                                }
                            }
                        }
                        Returned::default()
                    };
                    self.settle_writes_ok(state, writes, *transactional, answer, &skipped);
                    return;
                }
                if let Some(error) = error {
                    let failed_item =
                        if let Some(PutItemError::ConditionalCheckFailedException(e)) =
                            error.downcast_ref::<PutItemError>()
                        {
                            Some(e.item())
                        } else if let Some(UpdateItemError::ConditionalCheckFailedException(e)) =
                            error.downcast_ref::<UpdateItemError>()
                        {
                            Some(e.item())
                        } else if let Some(DeleteItemError::ConditionalCheckFailedException(e)) =
                            error.downcast_ref::<DeleteItemError>()
                        {
                            Some(e.item())
                        } else {
                            None
                        };
                    if let (Some(existing), Some(write)) = (failed_item, writes.first()) {
                        self.settle_failed_condition(state, write, existing);
                        return;
                    }
                    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
                        error.downcast_ref::<TransactWriteItemsError>()
                    {
                        // Reasons come in the order of the request's items.
                        for (reason, write) in e.cancellation_reasons().iter().zip(writes) {
                            if reason.code() == Some("ConditionalCheckFailed") {
                                state.usage.failed_conditions += 1;
                            }
                            if let Some(item) = reason.item() {
                                state.remember(&write.table, &write.key, Some(shape_of(item)));
                            }
                        }
                        state.usage.cancelled_transactions += 1;
                        self.settle_writes_billed_only(state, writes, true, false);
                        return;
                    }
                }
                if answered {
                    state.usage.errors += 1;
                } else {
                    state.usage.unanswered += 1;
                    self.settle_writes_billed_only(state, writes, *transactional, true);
                }
            }
            _ if output.is_none() => {
                if answered {
                    state.usage.errors += 1;
                } else {
                    state.usage.unanswered += 1;
                }
            }
            Plan::GetItem {
                table,
                key,
                consistent,
                whole_item,
            } => {
                let item = output
                    .and_then(|o| o.downcast_ref::<GetItemOutput>())
                    .and_then(|o| o.item());
                if *whole_item {
                    state.remember(table, key, item.map(shape_of));
                }
                // Billed on the whole item even when a projection returns less.
                let size = match (whole_item, state.recall(table, key)) {
                    (false, Some(known)) => shape_size(&known),
                    _ => item.map(item_size).unwrap_or(0),
                };
                state
                    .usage
                    .charge_read(table, read_half_units(size, *consistent));
            }
            Plan::QueryOrScan {
                table,
                consistent,
                learn,
            } => {
                let items = output
                    .and_then(|o| o.downcast_ref::<QueryOutput>().map(|q| q.items()))
                    .or_else(|| {
                        output.and_then(|o| o.downcast_ref::<ScanOutput>().map(|s| s.items()))
                    })
                    .unwrap_or_default();
                let size: usize = items.iter().map(item_size).sum();
                state
                    .usage
                    .charge_read(table, read_half_units(size, *consistent));
                if *learn {
                    if let Some(schema) = self.schemas.get(table) {
                        for item in items {
                            state.remember(
                                table,
                                &key_text(Some(schema), item),
                                Some(shape_of(item)),
                            );
                        }
                    }
                }
            }
            Plan::BatchGet { consistent } => {
                let responses = output
                    .and_then(|o| o.downcast_ref::<BatchGetItemOutput>())
                    .and_then(|o| o.responses());
                for (table, items) in responses.into_iter().flatten() {
                    let table = table_name(table);
                    let consistent = consistent.get(&table).copied().unwrap_or(false);
                    for item in items {
                        state
                            .usage
                            .charge_read(&table, read_half_units(item_size(item), consistent));
                    }
                }
            }
            Plan::TransactGet { tables } => {
                let responses = output
                    .and_then(|o| o.downcast_ref::<TransactGetItemsOutput>())
                    .map(|o| o.responses())
                    .unwrap_or_default();
                for (table, response) in tables.iter().zip(responses) {
                    let size = response.item().map(item_size).unwrap_or(0);
                    state
                        .usage
                        .charge_read(table, 2 * read_half_units(size, true));
                }
            }
            Plan::Unmetered => {}
        }
    }
}

// ------------------------------------------------------------ interceptor

/// Charges the meter for each attempt.
///
/// The request's input is gone once it is serialised, so the plan made from
/// it in `read_before_execution` is kept until the execution ends. The usual
/// home for such state, the `ConfigBag`, needs the `Storable` trait of
/// `aws-smithy-types`, which this crate does not depend on directly; the plan
/// is instead keyed by the address of the execution's `InterceptorContext`,
/// which the orchestrator keeps in place (inside the pinned future) from the
/// first hook to the last.
#[derive(Debug)]
struct MeterInterceptor {
    meter: Meter,
    schemas: HashMap<String, TableSchema>,
    pending: Mutex<HashMap<usize, Pending>>,
}

fn execution_id(context: &InterceptorContext) -> usize {
    context as *const InterceptorContext as usize
}

impl MeterInterceptor {
    fn pending(&self) -> MutexGuard<'_, HashMap<usize, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "DynamoDbCapacityMeter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let plan = Planner {
            schemas: &self.schemas,
        }
        .plan(context.input());
        let mut pending = self.pending();
        // Executions dropped mid-flight never reach `read_after_execution`.
        if pending.len() > 10_000 {
            pending.clear();
        }
        pending.insert(execution_id(context.inner()), Pending { plan, attempts: 0 });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut pending = self.pending();
        let Some(entry) = pending.get_mut(&execution_id(context.inner())) else {
            return Ok(());
        };
        entry.attempts += 1;
        let mut state = self.meter.lock();
        if entry.attempts > 1 {
            state.usage.retries += 1;
        }
        self.settle(&mut state, &entry.plan, context);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.pending().remove(&execution_id(context.inner()));
        // The operation's metadata is in the bag only after the operation's
        // own configuration, i.e. not yet in `read_before_execution` for a
        // client-level interceptor.
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", |m| m.name())
            .to_string();
        *self.meter.lock().usage.calls.entry(operation).or_default() += 1;
        Ok(())
    }
}

// ------------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_string())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn item_size_follows_the_size_rules() {
        // Worked example of a public item-size calculator (ddbitemsizer's
        // README): 141 bytes.
        let slot = item(&[
            ("itemType", s("SLOT")),
            ("id", s("abc1231")),
            ("hostName", s("Harry Mason")),
            ("timeSlot", s("February 23, 1999")),
            ("slotStatus", s("OPEN")),
            ("createdAt", s("February 1, 1999")),
            ("updatedAt", s("February 1, 1999")),
            ("expiresAt", n("2099")),
        ]);
        assert_eq!(item_size(&slot), 141);

        assert_eq!(item_size(&item(&[("a", AttributeValue::Bool(true))])), 2);
        assert_eq!(item_size(&item(&[("a", AttributeValue::Null(true))])), 2);
        // UTF-8 bytes, not characters.
        assert_eq!(item_size(&item(&[("é", s("€"))])), 2 + 3);
        // Empty list or map: name + 3; each element 1 byte more.
        assert_eq!(item_size(&item(&[("l", AttributeValue::L(vec![]))])), 4);
        assert_eq!(
            item_size(&item(&[("l", AttributeValue::L(vec![s("ab"), s("c")]))])),
            1 + 3 + 3 + 2
        );
        let map = AttributeValue::M(item(&[("k", s("vv"))]));
        assert_eq!(item_size(&item(&[("m", map)])), 1 + 3 + 1 + 1 + 2);
        let set = AttributeValue::Ss(vec!["ab".into(), "cde".into()]);
        assert_eq!(item_size(&item(&[("s", set)])), 1 + 5);
        let blob = AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0u8; 10]));
        assert_eq!(item_size(&item(&[("b", blob)])), 11);
    }

    #[test]
    fn numbers_cost_a_byte_per_two_significant_digits_plus_one() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        // Leading and trailing zeroes are trimmed; sign and point are free.
        assert_eq!(number_size("1500000"), 2);
        assert_eq!(number_size("-0.0012"), 2);
        assert_eq!(number_size("100.001"), 4);
    }

    #[test]
    fn write_units_per_started_kilobyte() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        // Guide: a 1.5 KB item needs 2 write units (4 in a transaction).
        assert_eq!(write_units(1536), 2);
    }

    #[test]
    fn read_units_per_started_four_kilobytes() {
        // Guide: a 3,500-byte item costs what a 4 KB item costs.
        assert_eq!(read_half_units(3500, true), 2);
        assert_eq!(read_half_units(4096, true), 2);
        // Guide: an 8 KB item: 2 units strongly consistent, 1 eventually.
        assert_eq!(read_half_units(8192, true), 4);
        assert_eq!(read_half_units(8192, false), 2);
        // Guide: a 10 KB item is rounded up to 12 KB.
        assert_eq!(read_half_units(10 * 1024, true), 6);
        // Guide: a Query returning 40.8 KB is billed as 44 KB (11 units).
        assert_eq!(read_half_units(40 * 1024 + 820, true), 22);
        // A miss still costs the minimum.
        assert_eq!(read_half_units(0, false), 1);
        assert_eq!(format_half_units(1), "0.5");
        assert_eq!(format_half_units(6), "3");
        assert_eq!(format_half_units(7), "3.5");
    }

    #[test]
    fn update_expressions_are_read_by_clause() {
        let names: HashMap<String, String> = [("#s".to_string(), "status".to_string())].into();
        let values = item(&[
            (":s", s("open")),
            (":one", n("1")),
            (":tags", AttributeValue::Ss(vec!["x".into()])),
        ]);
        let effect = parse_update(
            "SET #s = :s, settled = if_not_exists(settled, :one), m.inner = :s \
             REMOVE open_shard, due_at ADD count :one, tags :tags",
            Some(&names),
            Some(&values),
        );
        let assigned: Vec<&str> = effect.assigned.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(assigned, ["status", "settled", "m", "count", "tags"]);
        assert_eq!(effect.removed, ["open_shard", "due_at"]);
        assert!(matches!(effect.assigned[0].1, Assigned::Exact(a) if a.size == 6 + 4));
        assert!(matches!(effect.assigned[1].1, Assigned::AtLeast(9)));
        assert!(matches!(effect.assigned[2].1, Assigned::Grows(4)));
        assert!(matches!(effect.assigned[4].1, Assigned::Grows(1)));
        // Lower-case keywords, and a name containing a keyword.
        let effect = parse_update("set settled_at = :s remove address", None, Some(&values));
        assert_eq!(effect.assigned[0].0, "settled_at");
        assert_eq!(effect.removed, ["address"]);
    }

    fn open_orders() -> IndexSchema {
        IndexSchema {
            name: "open-orders".into(),
            key_attributes: vec!["open_shard".into(), "due_at".into()],
            projection: Projection::KeysOnly,
        }
    }

    #[test]
    fn index_writes_follow_the_index_keys() {
        let keys = vec!["pk".to_string(), "sk".to_string()];
        let index = open_orders();
        let closed = shape_of(&item(&[
            ("pk", s("O#1")),
            ("sk", s("META")),
            ("qty", n("5")),
        ]));
        let open = shape_of(&item(&[
            ("pk", s("O#1")),
            ("sk", s("META")),
            ("qty", n("5")),
            ("open_shard", s("3")),
            ("due_at", n("100")),
        ]));
        let mut later = open.clone();
        later.insert("due_at".into(), attr_of("due_at", &n("200")));
        let mut filled = open.clone();
        filled.insert("qty".into(), attr_of("qty", &n("4")));

        // New item with the keys: one put; without: nothing.
        assert_eq!(index_units_known(&index, &keys, None, Some(&open)), 1);
        assert_eq!(index_units_known(&index, &keys, None, Some(&closed)), 0);
        // Key changed: delete + put; key removed: delete.
        assert_eq!(
            index_units_known(&index, &keys, Some(&open), Some(&later)),
            2
        );
        assert_eq!(
            index_units_known(&index, &keys, Some(&open), Some(&closed)),
            1
        );
        // A non-projected attribute changed: nothing on a keys-only index...
        assert_eq!(
            index_units_known(&index, &keys, Some(&open), Some(&filled)),
            0
        );
        // ...but one write on an index that projects everything.
        let all = IndexSchema {
            projection: Projection::All,
            ..open_orders()
        };
        assert_eq!(
            index_units_known(&all, &keys, Some(&open), Some(&filled)),
            1
        );
        assert_eq!(index_units_known(&all, &keys, Some(&open), Some(&open)), 0);
        // Deleting an indexed item: one delete.
        assert_eq!(index_units_known(&index, &keys, Some(&open), None), 1);
    }

    #[test]
    fn updates_of_unseen_items_are_bounded_from_the_request() {
        let keys = vec!["pk".to_string(), "sk".to_string()];
        let index = open_orders();
        let values = item(&[(":d", n("5")), (":q", n("1"))]);
        let key = shape_of(&item(&[("pk", s("O#1")), ("sk", s("META"))]));
        let unit = |expr: &str| {
            let effect = parse_update(expr, None, Some(&values));
            let after = effect.apply(&key);
            index_units_unknown(&index, &keys, &effect, &after)
        };
        assert_eq!(unit("REMOVE open_shard, due_at"), 1);
        assert_eq!(unit("SET due_at = :d"), 2);
        assert_eq!(unit("SET qty = :q"), 0);
    }

    #[test]
    fn usage_report_lists_tables_and_indexes() {
        let mut usage = Usage::default();
        usage.charge_write("Trading", 3);
        usage.charge_index_write("Trading", "open-orders", 1);
        usage.charge_read("Trading", 3);
        usage.calls.insert("PutItem".into(), 2);
        assert_eq!(usage.write_units, 4);
        assert_eq!(usage.read_units(), "1.5");
        let report = usage_report(&usage);
        assert!(
            report.contains("4 WRU (1 on indexes), 1.5 RRU, 2 calls"),
            "{report}"
        );
        assert!(report.contains("index open-orders"), "{report}");
        assert!(report.contains("PutItem 2"), "{report}");
    }
}
