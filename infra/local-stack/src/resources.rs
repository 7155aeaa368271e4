//! Creates the template's tables and queues under a name prefix. Idempotent:
//! existing resources with the same names are reused, and two processes doing
//! this at once for one prefix both succeed.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::template::{IndexSpec, KeyElement, QueueSpec, TableSpec, TemplateResources};
use crate::{QueueInfo, Resources, StackError};

pub(crate) async fn create(
    config: &aws_config::SdkConfig,
    spec: &TemplateResources,
    prefix: &str,
) -> Result<Resources, StackError> {
    validate_prefix(prefix)?;
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Resources::default();
    for table in &spec.tables {
        let name = format!("{prefix}{}", table.logical_id);
        create_table(&ddb, table, &name).await?;
        out.tables.insert(table.logical_id.clone(), name);
    }
    // Queues first without redrive policies, then the policies: a policy needs
    // its dead-letter queue's ARN, whatever order the template lists them in.
    for queue in &spec.queues {
        let info = create_queue(&sqs, queue, prefix).await?;
        out.queues.insert(queue.logical_id.clone(), info);
    }
    for queue in &spec.queues {
        let Some(redrive) = &queue.redrive else {
            continue;
        };
        let dlq = out.queues.get(&redrive.dead_letter_queue).ok_or_else(|| {
            StackError::Template(format!(
                "{}: dead-letter queue {} is not an AWS::SQS::Queue of the template",
                queue.logical_id, redrive.dead_letter_queue
            ))
        })?;
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq.arn,
            "maxReceiveCount": redrive.max_receive_count,
        });
        let url = &out.queues[&queue.logical_id].url;
        sqs.set_queue_attributes()
            .queue_url(url)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(|e| StackError::aws("SQS SetQueueAttributes(RedrivePolicy)", e))?;
    }
    Ok(out)
}

/// DynamoDB allows `[A-Za-z0-9_.-]{3,255}`, SQS `[A-Za-z0-9_-]{1,80}`: take the
/// intersection, leaving room for the logical id.
fn validate_prefix(prefix: &str) -> Result<(), StackError> {
    let ok = prefix.len() <= 40
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StackError::Prefix(prefix.to_string()))
    }
}

fn key_elements(keys: &[KeyElement]) -> Result<Vec<KeySchemaElement>, StackError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| StackError::Template(format!("key schema: {e}")))
        })
        .collect()
}

fn projection(ix: &IndexSpec) -> Projection {
    let mut p =
        Projection::builder().projection_type(ProjectionType::from(ix.projection_type.as_str()));
    for attr in &ix.non_key_attributes {
        p = p.non_key_attributes(attr);
    }
    p.build()
}

async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    spec: &TableSpec,
    name: &str,
) -> Result<(), StackError> {
    let exists = match ddb.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(e) => return Err(StackError::aws("DynamoDB DescribeTable", e)),
    };
    if !exists {
        // Billing mode is always on-demand locally: the emulator neither
        // meters nor throttles, and GSIs then need no throughput settings.
        let mut req = ddb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_elements(&spec.key_schema)?));
        for (attr, ty) in &spec.attribute_definitions {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::from(ty.as_str()))
                    .build()
                    .map_err(|e| StackError::Template(format!("{}: {e}", spec.logical_id)))?,
            );
        }
        for ix in &spec.global_indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&ix.name)
                    .set_key_schema(Some(key_elements(&ix.key_schema)?))
                    .projection(projection(ix))
                    .build()
                    .map_err(|e| StackError::Template(format!("{}: {e}", spec.logical_id)))?,
            );
        }
        for ix in &spec.local_indexes {
            req = req.local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(&ix.name)
                    .set_key_schema(Some(key_elements(&ix.key_schema)?))
                    .projection(projection(ix))
                    .build()
                    .map_err(|e| StackError::Template(format!("{}: {e}", spec.logical_id)))?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            // Another process created it between our describe and create.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(StackError::aws("DynamoDB CreateTable", e)),
        }
    }
    if let Some(attr) = &spec.ttl_attribute {
        ensure_ttl(ddb, name, attr).await?;
    }
    Ok(())
}

async fn ttl_enabled(ddb: &aws_sdk_dynamodb::Client, name: &str) -> Result<bool, StackError> {
    let d = ddb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| StackError::aws("DynamoDB DescribeTimeToLive", e))?;
    Ok(d.time_to_live_description()
        .and_then(|t| t.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)))
}

async fn ensure_ttl(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    attr: &str,
) -> Result<(), StackError> {
    if ttl_enabled(ddb, name).await? {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attr)
        .enabled(true)
        .build()
        .map_err(|e| StackError::Template(format!("TTL: {e}")))?;
    let result = ddb
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // A concurrent creator enabled it first ("TimeToLive is already enabled").
        Err(_) if ttl_enabled(ddb, name).await? => Ok(()),
        Err(e) => Err(StackError::aws("DynamoDB UpdateTimeToLive", e)),
    }
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    spec: &QueueSpec,
    prefix: &str,
) -> Result<QueueInfo, StackError> {
    let suffix = if spec.fifo { ".fifo" } else { "" };
    let name = format!("{prefix}{}{suffix}", spec.logical_id);
    let url = match sqs.get_queue_url().queue_name(&name).send().await {
        Ok(found) => found.queue_url().map(str::to_string),
        Err(_) => None, // does not exist (or the lookup failed: CreateQueue will say)
    };
    let url = match url {
        Some(url) => url,
        None => {
            let attributes: BTreeMap<QueueAttributeName, String> = spec
                .attributes
                .iter()
                .map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone()))
                .collect();
            sqs.create_queue()
                .queue_name(&name)
                .set_attributes(Some(attributes.into_iter().collect()))
                .send()
                .await
                .map_err(|e| StackError::aws("SQS CreateQueue", e))?
                .queue_url()
                .map(str::to_string)
                .ok_or_else(|| StackError::Aws {
                    operation: "SQS CreateQueue".into(),
                    message: format!("no QueueUrl for {name}"),
                })?
        }
    };
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| StackError::aws("SQS GetQueueAttributes(QueueArn)", e))?;
    let arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| StackError::Aws {
            operation: "SQS GetQueueAttributes".into(),
            message: format!("no QueueArn for {name}"),
        })?;
    Ok(QueueInfo { name, url, arn })
}

/// Creates the secret, or puts a new current version of it; returns its ARN.
pub(crate) async fn put_secret(
    config: &aws_config::SdkConfig,
    name: &str,
    secret_string: &str,
) -> Result<String, StackError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let created = client
        .create_secret()
        .name(name)
        .secret_string(secret_string)
        .send()
        .await;
    let arn = match created {
        Ok(created) => created.arn().map(str::to_owned),
        // It exists (another run, or a rotation): a new current version.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_exists_exception()) =>
        {
            client
                .put_secret_value()
                .secret_id(name)
                .secret_string(secret_string)
                .send()
                .await
                .map_err(|e| StackError::aws("Secrets Manager PutSecretValue", e))?
                .arn()
                .map(str::to_owned)
        }
        Err(e) => return Err(StackError::aws("Secrets Manager CreateSecret", e)),
    };
    arn.ok_or_else(|| StackError::Aws {
        operation: "Secrets Manager CreateSecret".into(),
        message: format!("no ARN for {name}"),
    })
}
