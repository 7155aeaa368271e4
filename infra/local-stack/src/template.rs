//! Reads the table and queue definitions out of `template.yaml`, the single
//! source of truth for them (nothing is redeclared in code).
//!
//! Only `AWS::DynamoDB::Table`, `AWS::Serverless::SimpleTable` and
//! `AWS::SQS::Queue` are read; every other resource is ignored. CloudFormation
//! short-form tags (`!GetAtt X.Arn`, `!Ref X`, ...) arrive from serde_yaml as
//! tagged values; the only intrinsic these resources need resolved is the
//! dead-letter queue's ARN in a `RedrivePolicy`.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::StackError;

/// The tables and queues of a template, in template order.
#[derive(Debug, Clone, Default)]
pub struct TemplateResources {
    pub tables: Vec<TableSpec>,
    pub queues: Vec<QueueSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    /// (name, `S`|`N`|`B`)
    pub attribute_definitions: Vec<(String, String)>,
    pub key_schema: Vec<KeyElement>,
    pub global_indexes: Vec<IndexSpec>,
    pub local_indexes: Vec<IndexSpec>,
    /// The TTL attribute, when `TimeToLiveSpecification.Enabled` is true.
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub fifo: bool,
    /// SQS attribute name -> value, as CreateQueue takes them.
    pub attributes: BTreeMap<String, String>,
    pub redrive: Option<Redrive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// Logical id of the dead-letter queue.
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// Queue properties passed through as SQS attributes. `QueueName` is replaced
/// by `<prefix><LogicalId>`; SSE/KMS settings and tags mean nothing locally.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

pub fn parse(text: &str) -> Result<TemplateResources, StackError> {
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| StackError::Template(format!("not YAML: {e}")))?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or_else(|| StackError::Template("no Resources section".into()))?;
    let mut out = TemplateResources::default();
    for (id, resource) in resources {
        let id = id
            .as_str()
            .ok_or_else(|| StackError::Template(format!("non-string logical id {id:?}")))?;
        let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
        match resource.get("Type").and_then(Value::as_str) {
            Some("AWS::DynamoDB::Table") => out.tables.push(table(id, &props)?),
            Some("AWS::Serverless::SimpleTable") => out.tables.push(simple_table(id, &props)?),
            Some("AWS::SQS::Queue") => out.queues.push(queue(id, &props)?),
            _ => {}
        }
    }
    Ok(out)
}

fn err(id: &str, what: impl std::fmt::Display) -> StackError {
    StackError::Template(format!("{id}: {what}"))
}

/// A scalar property as a string (YAML numbers and booleans included).
fn scalar(id: &str, field: &str, v: &Value) -> Result<String, StackError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(err(
            id,
            format!("{field} must be a literal here (intrinsics are not resolved locally), got {other:?}"),
        )),
    }
}

fn str_field(id: &str, v: &Value, field: &str) -> Result<String, StackError> {
    let value = v
        .get(field)
        .ok_or_else(|| err(id, format!("missing {field}")))?;
    scalar(id, field, value)
}

fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn key_schema(id: &str, v: &Value) -> Result<Vec<KeyElement>, StackError> {
    list(v, "KeySchema")
        .iter()
        .map(|k| {
            Ok(KeyElement {
                attribute: str_field(id, k, "AttributeName")?,
                key_type: str_field(id, k, "KeyType")?,
            })
        })
        .collect()
}

fn indexes(id: &str, props: &Value, field: &str) -> Result<Vec<IndexSpec>, StackError> {
    list(props, field)
        .iter()
        .map(|ix| {
            let projection = ix.get("Projection").cloned().unwrap_or(Value::Null);
            Ok(IndexSpec {
                name: str_field(id, ix, "IndexName")?,
                key_schema: key_schema(id, ix)?,
                projection_type: match projection.get("ProjectionType") {
                    Some(v) => scalar(id, "ProjectionType", v)?,
                    None => "KEYS_ONLY".to_string(),
                },
                non_key_attributes: list(&projection, "NonKeyAttributes")
                    .iter()
                    .map(|a| scalar(id, "NonKeyAttributes", a))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

fn table(id: &str, props: &Value) -> Result<TableSpec, StackError> {
    let attribute_definitions = list(props, "AttributeDefinitions")
        .iter()
        .map(|a| {
            Ok((
                str_field(id, a, "AttributeName")?,
                str_field(id, a, "AttributeType")?,
            ))
        })
        .collect::<Result<Vec<_>, StackError>>()?;
    let key_schema = key_schema(id, props)?;
    if key_schema.is_empty() {
        return Err(err(id, "no KeySchema"));
    }
    let ttl_attribute = match props.get("TimeToLiveSpecification") {
        Some(ttl) if ttl.get("Enabled").and_then(Value::as_bool) == Some(true) => {
            Some(str_field(id, ttl, "AttributeName")?)
        }
        _ => None,
    };
    Ok(TableSpec {
        logical_id: id.to_string(),
        attribute_definitions,
        key_schema,
        global_indexes: indexes(id, props, "GlobalSecondaryIndexes")?,
        local_indexes: indexes(id, props, "LocalSecondaryIndexes")?,
        ttl_attribute,
    })
}

/// SAM's SimpleTable: a hash key only (`PrimaryKey`, default `id: String`).
fn simple_table(id: &str, props: &Value) -> Result<TableSpec, StackError> {
    let pk = props.get("PrimaryKey").cloned().unwrap_or(Value::Null);
    let name = match pk.get("Name") {
        Some(v) => scalar(id, "PrimaryKey.Name", v)?,
        None => "id".to_string(),
    };
    let ty = match pk.get("Type") {
        Some(v) => scalar(id, "PrimaryKey.Type", v)?,
        None => "String".to_string(),
    };
    let ty = match ty.as_str() {
        "String" => "S",
        "Number" => "N",
        "Binary" => "B",
        other => return Err(err(id, format!("unknown PrimaryKey.Type {other}"))),
    };
    Ok(TableSpec {
        logical_id: id.to_string(),
        attribute_definitions: vec![(name.clone(), ty.to_string())],
        key_schema: vec![KeyElement {
            attribute: name,
            key_type: "HASH".into(),
        }],
        global_indexes: vec![],
        local_indexes: vec![],
        ttl_attribute: None,
    })
}

fn queue(id: &str, props: &Value) -> Result<QueueSpec, StackError> {
    let mut attributes = BTreeMap::new();
    for name in QUEUE_ATTRIBUTES {
        if let Some(v) = props.get(*name) {
            attributes.insert(name.to_string(), scalar(id, name, v)?);
        }
    }
    let fifo = attributes.get("FifoQueue").map(String::as_str) == Some("true");
    if !fifo {
        // SQS rejects FifoQueue=false on CreateQueue; absent means standard.
        attributes.remove("FifoQueue");
    }
    let redrive = match props.get("RedrivePolicy") {
        None => None,
        Some(policy) => Some(redrive(id, policy)?),
    };
    Ok(QueueSpec {
        logical_id: id.to_string(),
        fifo,
        attributes,
        redrive,
    })
}

fn redrive(id: &str, policy: &Value) -> Result<Redrive, StackError> {
    // RedrivePolicy may also be written as a JSON string.
    let policy = match policy {
        Value::String(s) => serde_yaml::from_str(s)
            .map_err(|e| err(id, format!("RedrivePolicy is not JSON: {e}")))?,
        other => other.clone(),
    };
    let target = policy
        .get("deadLetterTargetArn")
        .ok_or_else(|| err(id, "RedrivePolicy without deadLetterTargetArn"))?;
    let dead_letter_queue = get_att_arn(target).ok_or_else(|| {
        err(
            id,
            format!("deadLetterTargetArn must be !GetAtt <Queue>.Arn, got {target:?}"),
        )
    })?;
    let max_receive_count = policy
        .get("maxReceiveCount")
        .map(|v| scalar(id, "maxReceiveCount", v))
        .transpose()?
        .ok_or_else(|| err(id, "RedrivePolicy without maxReceiveCount"))?
        .parse()
        .map_err(|e| err(id, format!("maxReceiveCount: {e}")))?;
    Ok(Redrive {
        dead_letter_queue,
        max_receive_count,
    })
}

/// `!GetAtt X.Arn`, `!GetAtt [X, Arn]` or `{Fn::GetAtt: [X, Arn]}` -> `X`.
fn get_att_arn(v: &Value) -> Option<String> {
    let inner = match v {
        Value::Tagged(t) if t.tag == "GetAtt" => t.value.clone(),
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::GetAtt")?.clone(),
        _ => return None,
    };
    let (resource, attribute) = match &inner {
        Value::String(s) => s.split_once('.')?,
        Value::Sequence(seq) if seq.len() == 2 => (seq[0].as_str()?, seq[1].as_str()?),
        _ => return None,
    };
    (attribute == "Arn").then(|| resource.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_project_template() {
        let path = crate::workspace_root().join("template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml");
        let t = parse(&text).expect("parses");
        let trading = t
            .tables
            .iter()
            .find(|t| t.logical_id == "TradingTable")
            .expect("TradingTable");
        assert_eq!(trading.ttl_attribute.as_deref(), Some("expires_at"));
        assert!(trading
            .global_indexes
            .iter()
            .any(|i| i.name == "open-orders"));
        let fill = t
            .queues
            .iter()
            .find(|q| q.logical_id == "FillQueue")
            .expect("FillQueue");
        assert_eq!(
            fill.redrive,
            Some(Redrive {
                dead_letter_queue: "FillDeadLetterQueue".into(),
                max_receive_count: 10
            })
        );
        assert_eq!(
            fill.attributes.get("VisibilityTimeout").map(String::as_str),
            Some("180")
        );
        assert_eq!(
            fill.attributes.get("FifoQueue").map(String::as_str),
            Some("true")
        );
    }

    #[test]
    fn other_spellings_of_get_att_and_simple_tables() {
        let t = parse(
            r#"
Resources:
  T:
    Type: AWS::Serverless::SimpleTable
    Properties: { PrimaryKey: { Name: k, Type: Number } }
  Q:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [D, Arn] }, maxReceiveCount: "3" }
  D:
    Type: AWS::SQS::Queue
    Properties: { FifoQueue: true }
  Other:
    Type: AWS::SNS::Topic
"#,
        )
        .expect("parses");
        assert_eq!(
            t.tables[0].attribute_definitions,
            vec![("k".into(), "N".into())]
        );
        assert!(t.queues[0].fifo);
        assert_eq!(
            t.queues[0].redrive.as_ref().map(|r| r.max_receive_count),
            Some(3)
        );
        assert_eq!(t.queues.len(), 2);
    }
}
