//! What someone on call needs when an order looks stuck: its whole timeline
//! and what recovery would do next, the orders flagged for an operator, and
//! the dead-letter queue with a safe way to send its messages back.

use anyhow::Context;
use app::orders::OrderSettings;
use aws_adapters::dynamodb::DynamoOrderStore;
use domain::order::{next_actions, Driver, Order, OrderId, Step};

fn step_line(name: &str, step: &Step, key: Option<String>) -> String {
    format!(
        "  {name:<24} {:<34} attempt {:<3} started {} updated {}{}",
        format!("{:?}", step.state),
        step.attempt,
        step.started_at_ms,
        step.updated_at_ms,
        key.map(|k| format!("  key {k}")).unwrap_or_default()
    )
}

/// Every record of the order, and what the reconciler would do next.
pub fn timeline(order: &Order, now_ms: u64) -> String {
    let mut lines = vec![
        format!(
            "order {} ({:?}) account {} key {}",
            order.id,
            order.status(),
            order.account,
            order.idempotency_key
        ),
        format!(
            "  {:?} {} {} {:?} limit {:?}; reserved {} {}; created {} deadline {}",
            order.request.side,
            order.request.quantity,
            order.request.symbol,
            order.request.order_type,
            order.request.limit_price.map(|p| p.to_string()),
            order
                .reservation
                .amount
                .format(order.reservation.asset.scale()),
            order.reservation.asset,
            order.created_at_ms,
            order.place_deadline_ms
        ),
        step_line(
            "reserve",
            &order.reserve,
            Some(order.id.reserve_key().to_string()),
        ),
    ];
    if let Some(place) = &order.place {
        lines.push(step_line(
            "place",
            place,
            Some(format!("client_order_id {}", order.id)),
        ));
    }
    for fill in &order.fills {
        lines.push(format!(
            "  fill {:<19} {} @ {} received {}",
            fill.exec_id.as_str(),
            fill.quantity,
            fill.price,
            fill.received_at_ms
        ));
        lines.push(step_line(
            &format!("settle#{}", fill.exec_id.as_str()),
            &fill.settle,
            Some(order.id.settle_key(&fill.exec_id).to_string()),
        ));
    }
    if let Some(report) = &order.final_report {
        lines.push(format!(
            "  exchange final status     {:?}, cumulative {}",
            report.status, report.cum_quantity
        ));
    }
    if let Some(release) = &order.release {
        lines.push(step_line(
            "release",
            release,
            Some(order.id.release_key().to_string()),
        ));
    }
    if let Some(closed) = order.closed_at_ms {
        lines.push(format!("  closed                    at {closed}"));
    }
    let recovery = &order.recovery;
    lines.push(format!(
        "  recovery                  attempts {}, next look at {}, lease until {}{}",
        recovery.attempts,
        recovery.next_attempt_at_ms,
        recovery.lease_until_ms,
        recovery
            .flagged
            .as_ref()
            .map(|f| format!(", FLAGGED: {f}"))
            .unwrap_or_default()
    ));
    let settings = OrderSettings::default();
    let next = next_actions(order, now_ms, &settings.recovery, Driver::Recovery);
    lines.push(format!("  next (recovery)           {next:?}"));
    lines.join("\n")
}

pub async fn show_order(store: &DynamoOrderStore, id: &str) -> anyhow::Result<String> {
    let id = OrderId::parse(id).context("not an order id")?;
    let order = app::order_store::OrderStore::load(store, &id)
        .await?
        .context("no such order")?;
    Ok(timeline(
        &order.value,
        app::Clock::now_ms(&app::SystemClock),
    ))
}

pub async fn flagged(store: &DynamoOrderStore) -> anyhow::Result<Vec<String>> {
    let orders = store.scan_orders().await?;
    Ok(orders
        .iter()
        .filter_map(|o| {
            o.recovery
                .flagged
                .as_ref()
                .map(|reason| format!("{} {:?}: {reason}", o.id, o.status()))
        })
        .collect())
}

/// The dead-letter queue's messages, without consuming them (they become
/// visible again at once).
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> anyhow::Result<Vec<String>> {
    let received = sqs
        .receive_message()
        .queue_url(dlq_url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(received
        .messages()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect())
}

/// Moves dead letters back to the fill queue. Safe: the processor applies
/// each report at most once, so a report that did apply is a no-op. Messages
/// set aside by the webhook (malformed payloads) stay where they are.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    queue_url: &str,
) -> anyhow::Result<usize> {
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(moved);
        }
        for message in messages {
            let body = message.body().unwrap_or_default();
            if aws_adapters::sqs::parse_report(body).is_err() {
                continue; // set aside for a person to read, not to replay
            }
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e))
                    })?;
            }
            moved += 1;
        }
    }
}
