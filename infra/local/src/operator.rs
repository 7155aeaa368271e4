//! What someone on call needs when an order looks stuck: its whole timeline
//! and what recovery would do next, the orders flagged for an operator, the
//! dead-letter queue with a safe way to send its reports back, and a way to
//! record an operator's decision. Each command's core is a function that
//! returns its output, so tests can call it.
//!
//! Nothing here decides anything about an order: what is left to do comes
//! from `domain::order::next_actions`, decisions go through `Orders::resolve`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{bail, Context};
use app::balances::Balances;
use app::exchange::Exchange;
use app::order_store::OrderStore;
use app::orders::{Orders, Resolution};
use app::Clock;
use aws_adapters::dynamodb::DynamoOrderStore;
use aws_adapters::sqs::{
    parse_report, ATTRIBUTE_CLIENT_ORDER_ID, ATTRIBUTE_KIND, ATTRIBUTE_REASON,
};
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use domain::order::{
    absence_final_at_ms, next_actions, pending_condition, Action, Decision, Driver, ExchangeReport,
    FillRecord, FillState, Order, OrderId, OrderType, RecoveryPolicy, Step, StepFailure, StepState,
};
use serde::Serialize;

use crate::format::{amount, cents, duration, rfc3339, signed_duration};

/// Execution records read per page.
const PAGE: usize = 100;

fn sqs_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &str,
    error: aws_sdk_sqs::error::SdkError<E, R>,
) -> anyhow::Error {
    anyhow::anyhow!("SQS {operation}: {}", DisplayErrorContext(error))
}

// -- one order -----------------------------------------------------------------

/// Every execution of the order: each record of its own (paged through all
/// of them), and the one in the settling slot whose record is not written
/// yet (as `Orders::all_executions` lists them).
pub async fn all_executions<S: OrderStore>(
    store: &S,
    order: &Order,
) -> anyhow::Result<Vec<FillRecord>> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .fills(&order.id, after.as_ref(), PAGE)
            .await
            .with_context(|| format!("reading the executions of {}", order.id))?;
        records.extend(page.fills);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some(slot) = &order.settling {
        if !slot.archived && !records.iter().any(|r| r.exec_id == slot.exec_id) {
            let mut record = FillRecord::settled(slot);
            if slot.settle.is_processing() {
                record.state = FillState::Recorded;
            }
            records.insert(0, record);
        }
    }
    Ok(records)
}

fn status_name(order: &Order) -> String {
    serde_json::to_value(order.status())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", order.status()))
}

fn state_text(step: &Step) -> String {
    match &step.state {
        StepState::Processing => "processing".into(),
        StepState::Succeeded => "succeeded".into(),
        StepState::Failed(failure) => format!("failed: {}", failure_text(failure)),
    }
}

fn failure_text(failure: &StepFailure) -> String {
    match failure {
        StepFailure::InsufficientFunds => "insufficient funds".into(),
        StepFailure::ExchangeRejected { detail } => format!("rejected by the exchange: {detail}"),
        StepFailure::NotPlaced { detail } => format!("not placed: {detail}"),
        StepFailure::CancelRefused { detail } => format!("cancel refused: {detail}"),
    }
}

/// `buy 10 AAPL limit 187.25 day`, `sell 5 MSFT market (protective limit 180.00) ioc`.
pub fn describe_request(order: &Order) -> String {
    let request = &order.request;
    let pricing = match (request.order_type, request.limit_price, order.protection) {
        (OrderType::Limit, Some(limit), _) => format!("limit {limit}"),
        (_, _, Some(protection)) => format!("market (protective limit {protection})"),
        _ => "market".into(),
    };
    format!(
        "{} {} {} {pricing} {}",
        request.side.as_str(),
        request.quantity,
        request.symbol,
        request.time_in_force.as_str()
    )
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    pub at: String,
    pub what: String,
}

fn step_events(events: &mut Vec<(u64, String)>, name: &str, step: &Step, key: Option<String>) {
    let key = key.map(|k| format!(", key {k}")).unwrap_or_default();
    events.push((
        step.started_at_ms,
        format!("{name} started (attempt 1{key})"),
    ));
    match &step.state {
        StepState::Processing if step.attempt > 1 || step.updated_at_ms > step.started_at_ms => {
            events.push((
                step.updated_at_ms,
                format!("{name} still processing, attempt {}", step.attempt),
            ));
        }
        StepState::Processing => {}
        _ => events.push((
            step.updated_at_ms,
            format!("{name} {} (attempt {})", state_text(step), step.attempt),
        )),
    }
}

/// Everything recorded about the order, in time order.
pub fn events(order: &Order, executions: &[FillRecord]) -> Vec<Event> {
    let mut events: Vec<(u64, String)> = vec![(
        order.created_at_ms,
        format!(
            "created: {}; placement window until {}",
            describe_request(order),
            rfc3339(order.place_deadline_ms)
        ),
    )];
    step_events(
        &mut events,
        &format!(
            "reserve {}",
            amount(order.reservation.amount.units(), &order.reservation.asset)
        ),
        &order.reserve,
        Some(order.id.reserve_key().to_string()),
    );
    if let Some(placement) = &order.place {
        let deadline = placement
            .venue_deadline_ms
            .map(|d| format!(", venue deadline {}", rfc3339(d)))
            .unwrap_or_default();
        events.push((
            placement.step.started_at_ms,
            format!("placement started (client_order_id {}{deadline})", order.id),
        ));
        let mut what = format!(
            "placement {} ({} send(s), attempt {})",
            state_text(&placement.step),
            placement.sends,
            placement.step.attempt
        );
        if let Some(exchange_id) = &order.exchange_order_id {
            let _ = write!(what, "; exchange order {exchange_id}");
        }
        if let Some(error) = &placement.last_error {
            let _ = write!(what, "; last send unanswered: {error}");
        }
        if placement.resend {
            what.push_str("; the last send provably never arrived (may be sent again)");
        }
        if placement.awaiting_day_list {
            what.push_str("; waiting for the venue's end-of-day list");
        }
        events.push((placement.step.updated_at_ms, what));
    }
    if let Some(cancel) = &order.cancel {
        events.push((cancel.requested_at_ms, "cancel requested".into()));
        if let Some(step) = &cancel.step {
            step_events(&mut events, "cancel at the exchange", step, None);
        }
    }
    for record in executions {
        let value =
            u64::try_from(u128::from(record.price.cents()) * u128::from(record.quantity.shares()))
                .map(cents)
                .unwrap_or_else(|_| "?".into());
        let state = match record.state {
            FillState::Recorded => "recorded, not settled yet".to_owned(),
            FillState::Settled {
                from_reserved_units,
                release_units,
            } => {
                let mut text = format!(
                    "settled ({} from the reservation",
                    amount(from_reserved_units, &order.reservation.asset)
                );
                if release_units > 0 {
                    let _ = write!(
                        text,
                        ", releasing the rest {}",
                        amount(release_units, &order.reservation.asset)
                    );
                }
                text.push(')');
                text
            }
        };
        events.push((
            record.received_at_ms,
            format!(
                "execution {}: {} @ {} = {value} USD, {state}",
                record.exec_id, record.quantity, record.price
            ),
        ));
    }
    if let Some(slot) = &order.settling {
        step_events(
            &mut events,
            &format!("settlement of {}", slot.exec_id),
            &slot.settle,
            Some(order.id.settle_key(&slot.exec_id).to_string()),
        );
    }
    if let Some(release) = &order.release {
        let asset = &order.reservation.asset;
        let riding = order.settling.as_ref().filter(|f| f.release_units > 0);
        let units = match riding {
            _ if order.release_units > 0 => format!(" {}", amount(order.release_units, asset)),
            Some(slot) => format!(
                " {} with the settlement of {}",
                amount(slot.release_units, asset),
                slot.exec_id
            ),
            None if order.released_units > 0 => format!(" {}", amount(order.released_units, asset)),
            None => String::new(),
        };
        step_events(
            &mut events,
            &format!("release{units}"),
            release,
            Some(order.id.release_key().to_string()),
        );
    }
    if let Some(at) = order.recovery.flagged_at_ms {
        let reasons: Vec<&str> = order.recovery.flags.iter().map(|f| f.as_str()).collect();
        events.push((
            at,
            format!(
                "flagged for an operator: {} — {}",
                reasons.join(", "),
                order.recovery.flag_detail.as_deref().unwrap_or("")
            ),
        ));
    }
    if let Some(decision) = &order.recovery.resolved {
        let cleared: Vec<&str> = decision.cleared.iter().map(|f| f.as_str()).collect();
        events.push((
            decision.at_ms,
            format!(
                "operator decision: {} — {}{}",
                decision_name(decision.decision),
                decision.evidence,
                if cleared.is_empty() {
                    String::new()
                } else {
                    format!(" (cleared {})", cleared.join(", "))
                }
            ),
        ));
    }
    if let Some(closed) = order.closed_at_ms {
        events.push((closed, format!("closed as {}", status_name(order))));
    }
    events.sort_by_key(|(at, _)| *at);
    events
        .into_iter()
        .map(|(at_ms, what)| Event {
            at_ms,
            at: rfc3339(at_ms),
            what,
        })
        .collect()
}

fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::NotPlaced => "not-placed",
        Decision::Acknowledged => "acknowledged",
    }
}

/// What recovery would do next, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStep {
    pub action: String,
    pub why: String,
}

/// `next_actions` with recovery's powers, each with its reason.
pub fn next_steps(order: &Order, now_ms: u64, policy: &RecoveryPolicy) -> Vec<NextStep> {
    let asset = &order.reservation.asset;
    let actions = next_actions(order, now_ms, policy, Driver::Recovery);
    if actions.is_empty() {
        let why = if order.is_closed() {
            "nothing: the order is closed".to_owned()
        } else if order.place.as_ref().is_some_and(|p| p.awaiting_day_list) {
            "nothing until the venue's end-of-day list says whether it received the placement"
                .into()
        } else if order.is_placed() {
            "nothing: the order rests at the exchange; its executions and final status arrive by webhook (checked again at the end of the day)".into()
        } else {
            "nothing now: waiting for an answer already on its way".into()
        };
        return vec![NextStep {
            action: "none".into(),
            why,
        }];
    }
    actions
        .into_iter()
        .map(|action| {
            let why = match &action {
                Action::Reserve => format!(
                    "the reservation's outcome is unknown: ask Balances again with key {} (a repeat is answered from its record)",
                    order.id.reserve_key()
                ),
                Action::Place => format!(
                    "not sent yet; the placement may be sent until {}",
                    rfc3339(order.place_deadline_ms)
                ),
                Action::Resend => format!(
                    "the last send provably never reached the exchange and the deadline {} has not passed",
                    rfc3339(order.place_deadline_ms)
                ),
                Action::AbandonUnsent => "nothing was sent and the cancel came first or the deadline passed: record it as not placed without calling the exchange".into(),
                Action::LookupPlacement => format!(
                    "the placement's answer was lost: look it up by client order id {}; absence can be final from {}",
                    order.id,
                    rfc3339(absence_final_at_ms(order, policy))
                ),
                Action::Settle => match &order.settling {
                    Some(slot) => format!(
                        "settlement of execution {} not confirmed: settle again with key {}",
                        slot.exec_id,
                        order.id.settle_key(&slot.exec_id)
                    ),
                    None => "settle the execution in the slot".into(),
                },
                Action::DrainBacklog => "executions wait in their records for the settling slot: take the next".into(),
                Action::Cancel => format!(
                    "the cancel requested at {} is not confirmed by the exchange: send it again",
                    order.cancel.as_ref().map(|c| rfc3339(c.requested_at_ms)).unwrap_or_default()
                ),
                Action::PullExecutions if order.missing_quantity() > 0 => format!(
                    "the exchange reported {} share(s) more than recorded: pull its status and executions",
                    order.missing_quantity()
                ),
                Action::PullExecutions => "a market or IOC order that should have ended is silent: pull its status and executions".into(),
                Action::Release { units } => format!(
                    "finished at the exchange: return {} of the reservation with key {}",
                    amount(*units, asset),
                    order.id.release_key()
                ),
                Action::Close => "everything is finished: close the order".into(),
            };
            NextStep {
                action: format!("{action:?}"),
                why,
            }
        })
        .collect()
}

/// The whole story of one order, for a person.
pub fn timeline(
    order: &Order,
    executions: &[FillRecord],
    now_ms: u64,
    policy: &RecoveryPolicy,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "order {} — {}", order.id, status_name(order));
    let _ = writeln!(out, "  account        {}", order.account);
    let _ = writeln!(out, "  request        {}", describe_request(order));
    let _ = writeln!(
        out,
        "  reserved       {} ({} used, {} returned)",
        amount(order.reservation.amount.units(), &order.reservation.asset),
        amount(order.consumed_units(), &order.reservation.asset),
        amount(order.released_units, &order.reservation.asset)
    );
    let notional: u128 = executions
        .iter()
        .map(|r| u128::from(r.price.cents()) * u128::from(r.quantity.shares()))
        .sum();
    let shares: u64 = executions.iter().map(|r| r.quantity.shares()).sum();
    let average = if shares > 0 {
        let hundredths = (notional * 100 + u128::from(shares) / 2) / u128::from(shares);
        format!(
            ", average {}",
            domain::money::format_units(u64::try_from(hundredths).unwrap_or(u64::MAX), 4)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  filled         {shares} of {} shares in {} execution(s), {} USD{average}",
        order.request.quantity,
        executions.len(),
        cents(u64::try_from(notional).unwrap_or(u64::MAX))
    );
    if let Some(report) = &order.final_report {
        let status = serde_json::to_value(report.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{:?}", report.status));
        let _ = writeln!(
            out,
            "  exchange says  {status}, cumulative {} shares",
            report.cum_quantity
        );
    }
    if let Some(reason) = order.status_reason() {
        let _ = writeln!(out, "  why            {reason}");
    }
    let _ = writeln!(out, "\ntimeline (UTC){:>31}", "since previous");
    let events = events(order, executions);
    let mut previous = order.created_at_ms;
    for event in &events {
        let _ = writeln!(
            out,
            "  {}  {:>9}  {}",
            event.at,
            signed_duration(previous, event.at_ms),
            event.what
        );
        previous = event.at_ms;
    }
    let end = order.closed_at_ms.unwrap_or(now_ms);
    let _ = writeln!(
        out,
        "  {} from creation to {}",
        duration(end.saturating_sub(order.created_at_ms)),
        if order.is_closed() { "close" } else { "now" }
    );

    let recovery = &order.recovery;
    let _ = writeln!(out, "\nrecovery");
    if recovery.is_flagged() {
        let reasons: Vec<&str> = recovery.flags.iter().map(|f| f.as_str()).collect();
        let _ = writeln!(
            out,
            "  FLAGGED        {} since {}: {}",
            reasons.join(", "),
            recovery.flagged_at_ms.map(rfc3339).unwrap_or_default(),
            recovery.flag_detail.as_deref().unwrap_or("")
        );
    } else {
        let _ = writeln!(out, "  flags          none");
    }
    if !order.is_closed() {
        let waiting = match pending_condition(order, now_ms, policy) {
            Some(kind) => match recovery.condition.filter(|c| c.kind == kind) {
                Some(condition) => format!(
                    "{} since {} ({} ago), {} attempt(s)",
                    kind.as_str(),
                    rfc3339(condition.since_ms),
                    duration(now_ms.saturating_sub(condition.since_ms)),
                    condition.attempts
                ),
                None => format!("{} (not attempted yet)", kind.as_str()),
            },
            None => "nothing (no signal: a healthy resting order, or one waiting for the venue's day list)".into(),
        };
        let _ = writeln!(out, "  waits on       {waiting}");
        let due = recovery.due_at_ms;
        let _ = writeln!(
            out,
            "  next look      {} ({})",
            rfc3339(due),
            if due > now_ms {
                format!("in {}", duration(due - now_ms))
            } else {
                format!("due {} ago", duration(now_ms - due))
            }
        );
    }
    for step in next_steps(order, now_ms, policy) {
        let _ = writeln!(out, "  next           {}: {}", step.action, step.why);
    }
    out.truncate(out.trim_end().len());
    out
}

/// The same as one JSON document.
pub fn timeline_json(
    order: &Order,
    executions: &[FillRecord],
    now_ms: u64,
    policy: &RecoveryPolicy,
) -> serde_json::Value {
    serde_json::json!({
        "now": rfc3339(now_ms),
        "order": order,
        "status": order.status(),
        "status_reason": order.status_reason(),
        "executions": executions,
        "timeline": events(order, executions),
        "flags": order.recovery.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "flag_detail": order.recovery.flag_detail,
        "waits_on": pending_condition(order, now_ms, policy).map(|k| k.as_str()),
        "condition": order.recovery.condition,
        "next": next_steps(order, now_ms, policy),
    })
}

/// `order <id>`: the order's timeline (or one JSON document).
pub async fn order_timeline<S: OrderStore>(
    store: &S,
    id: &str,
    policy: &RecoveryPolicy,
    now_ms: u64,
    json: bool,
) -> anyhow::Result<String> {
    let id = OrderId::parse(id).context("not an order id")?;
    let order = store
        .load(&id)
        .await
        .context("reading the order")?
        .with_context(|| format!("no order {id}"))?
        .value;
    let executions = all_executions(store, &order).await?;
    Ok(if json {
        serde_json::to_string_pretty(&timeline_json(&order, &executions, now_ms, policy))?
    } else {
        timeline(&order, &executions, now_ms, policy)
    })
}

// -- flagged orders --------------------------------------------------------------

/// One line per flagged order: id, status, since when, reasons, detail.
pub fn flagged_line(order: &Order) -> String {
    let reasons: Vec<&str> = order.recovery.flags.iter().map(|f| f.as_str()).collect();
    format!(
        "{}  {:<16} flagged {}  {}  — {}",
        order.id,
        status_name(order),
        order
            .recovery
            .flagged_at_ms
            .map(rfc3339)
            .unwrap_or_else(|| "?".into()),
        reasons.join(","),
        order.recovery.flag_detail.as_deref().unwrap_or("")
    )
}

/// `flagged`: every order on the sparse flagged-orders index, page by page
/// (never a table scan).
pub async fn flagged_orders(store: &DynamoOrderStore, page_size: usize) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    let mut after: Option<OrderId> = None;
    loop {
        let (orders, next) = store
            .flagged(after.as_ref(), page_size.max(1))
            .await
            .context("reading the flagged-orders index")?;
        lines.extend(orders.iter().map(flagged_line));
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut out = match lines.len() {
        0 => "no order is flagged for an operator".to_owned(),
        n => format!("{n} order(s) flagged for an operator:"),
    };
    for line in lines {
        out.push_str("\n  ");
        out.push_str(&line);
    }
    Ok(out)
}

// -- dead letters ------------------------------------------------------------------

/// One message of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub kind: String,
    pub reason: String,
    pub client_order_id: Option<String>,
    pub receive_count: Option<u32>,
    pub sent_at_ms: Option<u64>,
    pub body: String,
}

/// The report a dead letter carries: its body, or the payload a set-aside
/// message kept. `None`: nothing a processor could apply (an unreadable webhook).
pub fn report_in(body: &str) -> Option<ExchangeReport> {
    if let Ok(report) = parse_report(body) {
        return Some(report);
    }
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let payload = value.get("set_aside")?.get("payload")?.as_str()?;
    parse_report(payload).ok()
}

/// Why a message is on the dead-letter queue: its `reason` attribute, or
/// the reason in a set-aside body; a report without either was moved there
/// by the fill queue's redrive policy.
pub fn dead_letter_reason(reason_attribute: Option<&str>, body: &str) -> String {
    if let Some(reason) = reason_attribute.filter(|r| !r.trim().is_empty()) {
        return reason.to_owned();
    }
    let set_aside = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("set_aside")?
                .get("reason")?
                .as_str()
                .map(str::to_owned)
        });
    if let Some(reason) = set_aside {
        return reason;
    }
    if parse_report(body).is_ok() {
        return "not recorded after the fill queue's maxReceiveCount deliveries (moved by its redrive policy)".into();
    }
    "unknown: no reason attribute, and the body is neither a report nor a set-aside message".into()
}

/// What a message is: its `kind` attribute, else what its body says.
pub fn dead_letter_kind(kind_attribute: Option<&str>, body: &str) -> String {
    if let Some(kind) = kind_attribute.filter(|k| !k.trim().is_empty()) {
        return kind.to_owned();
    }
    match parse_report(body) {
        Ok(ExchangeReport::Execution { .. }) => "execution".into(),
        Ok(ExchangeReport::Final { .. }) => "final".into(),
        Err(_) if body.contains("\"set_aside\"") => "set_aside".into(),
        Err(_) => "unknown".into(),
    }
}

fn string_attribute(message: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    message
        .message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

fn system_attribute(
    message: &aws_sdk_sqs::types::Message,
    name: MessageSystemAttributeName,
) -> Option<String> {
    message.attributes()?.get(&name).cloned()
}

fn dead_letter(message: &aws_sdk_sqs::types::Message) -> DeadLetter {
    let body = message.body().unwrap_or_default().to_owned();
    DeadLetter {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        kind: dead_letter_kind(string_attribute(message, ATTRIBUTE_KIND).as_deref(), &body),
        reason: dead_letter_reason(
            string_attribute(message, ATTRIBUTE_REASON).as_deref(),
            &body,
        ),
        client_order_id: string_attribute(message, ATTRIBUTE_CLIENT_ORDER_ID)
            .or_else(|| report_in(&body).map(|r| r.client_order_id().to_string())),
        receive_count: system_attribute(
            message,
            MessageSystemAttributeName::ApproximateReceiveCount,
        )
        .and_then(|n| n.parse().ok()),
        sent_at_ms: system_attribute(message, MessageSystemAttributeName::SentTimestamp)
            .and_then(|n| n.parse().ok()),
        body,
    }
}

/// How many messages SQS counts in the queue (visible, in flight, delayed).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<u64> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", e))?;
    Ok(attributes
        .attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0))
}

/// Hides what it receives for this long while paging, so each message is
/// seen once; everything is made visible again at the end.
const PAGING_VISIBILITY_S: i32 = 60;
/// Most messages one listing or redrive pass handles.
const MAX_MESSAGES: usize = 100_000;

async fn receive_page(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> anyhow::Result<Vec<aws_sdk_sqs::types::Message>> {
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .visibility_timeout(PAGING_VISIBILITY_S)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| sqs_error("ReceiveMessage", e))?;
    Ok(received.messages.unwrap_or_default())
}

async fn make_visible(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: &[String],
) -> anyhow::Result<()> {
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        sqs.change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sqs_error("ChangeMessageVisibilityBatch", e))?;
    }
    Ok(())
}

/// Every message of the queue SQS hands out (each seen once: received with
/// a visibility timeout, de-duplicated by message id, made visible again
/// at the end), and the queue's depth as SQS counts it before the pass.
pub async fn list_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
) -> anyhow::Result<(Vec<DeadLetter>, u64)> {
    let depth = queue_depth(sqs, dlq_url).await?;
    let mut seen = BTreeSet::new();
    let mut letters = Vec::new();
    let mut handles = Vec::new();
    let mut empty_receives = 0;
    let result = async {
        while empty_receives < 2 && letters.len() < MAX_MESSAGES {
            let page = receive_page(sqs, dlq_url).await?;
            if page.is_empty() {
                empty_receives += 1;
                continue;
            }
            empty_receives = 0;
            for message in page {
                if let Some(handle) = message.receipt_handle() {
                    handles.push(handle.to_owned());
                }
                if seen.insert(message.message_id().unwrap_or_default().to_owned()) {
                    letters.push(dead_letter(&message));
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    make_visible(sqs, dlq_url, &handles).await?;
    result?;
    Ok((letters, depth))
}

/// `dead-letters`: every message with its reason and kind.
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> anyhow::Result<String> {
    let (letters, depth) = list_dead_letters(sqs, dlq_url).await?;
    if letters.is_empty() && depth == 0 {
        return Ok(format!("the dead-letter queue is empty ({dlq_url})"));
    }
    let mut out = format!("{} message(s) on the dead-letter queue", letters.len());
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for letter in &letters {
        *by_reason.entry(letter.reason.as_str()).or_default() += 1;
    }
    for letter in &letters {
        let _ = write!(
            out,
            "\n  {}  {:<10} order {}  sent {}  received {} time(s)\n    reason: {}\n    body:   {}",
            letter.message_id,
            letter.kind,
            letter.client_order_id.as_deref().unwrap_or("?"),
            letter.sent_at_ms.map(rfc3339).unwrap_or_else(|| "?".into()),
            letter.receive_count.map_or("?".into(), |n| n.to_string()),
            letter.reason,
            letter.body.chars().take(300).collect::<String>()
        );
    }
    let _ = write!(out, "\nby reason:");
    for (reason, count) in by_reason {
        let _ = write!(out, "\n  {count:>5}  {reason}");
    }
    let hidden = depth.saturating_sub(letters.len() as u64);
    if hidden > 0 {
        let _ = write!(
            out,
            "\nSQS counts {depth}: {hidden} more wait behind these in their message groups, or are in flight \
             (a FIFO queue hands out a group's next messages only once the earlier ones are deleted; \
             --redrive moves the reports and so uncovers what is behind them)"
        );
    }
    Ok(out)
}

/// `dead-letters --redrive`: every message that carries a report goes back
/// to the fill queue (FIFO: group = the report's order, de-duplication id =
/// the message id) and is deleted. Safe: each report applies at most once,
/// so one that did apply is a no-op. Messages without a report (unreadable
/// webhooks) stay for a person to read.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    fill_queue_url: &str,
) -> anyhow::Result<String> {
    let mut moved = 0usize;
    let mut left: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept_handles = Vec::new();
    let mut seen = BTreeSet::new();
    let mut empty_receives = 0;
    let result = async {
        while empty_receives < 2 && moved + kept_handles.len() < MAX_MESSAGES {
            let page = receive_page(sqs, dlq_url).await?;
            if page.is_empty() {
                empty_receives += 1;
                continue;
            }
            empty_receives = 0;
            for message in page {
                let body = message.body().unwrap_or_default();
                let message_id = message.message_id().unwrap_or_default().to_owned();
                let handle = message.receipt_handle().unwrap_or_default().to_owned();
                let Some(report) = report_in(body) else {
                    if seen.insert(message_id) {
                        *left
                            .entry(dead_letter_reason(
                                string_attribute(&message, ATTRIBUTE_REASON).as_deref(),
                                body,
                            ))
                            .or_default() += 1;
                    }
                    kept_handles.push(handle);
                    continue;
                };
                let order = report.client_order_id().to_string();
                let kind = match report {
                    ExchangeReport::Execution { .. } => "execution",
                    ExchangeReport::Final { .. } => "final",
                };
                let attribute = |value: &str| {
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value)
                        .build()
                        .map_err(|e| anyhow::anyhow!("message attribute: {e}"))
                };
                sqs.send_message()
                    .queue_url(fill_queue_url)
                    .message_body(serde_json::to_string(&report)?)
                    .message_group_id(&order)
                    .message_deduplication_id(&message_id)
                    .message_attributes(ATTRIBUTE_CLIENT_ORDER_ID, attribute(&order)?)
                    .message_attributes(ATTRIBUTE_KIND, attribute(kind)?)
                    .send()
                    .await
                    .map_err(|e| sqs_error("SendMessage", e))?;
                sqs.delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(&handle)
                    .send()
                    .await
                    .map_err(|e| sqs_error("DeleteMessage", e))?;
                moved += 1;
            }
        }
        anyhow::Ok(())
    }
    .await;
    make_visible(sqs, dlq_url, &kept_handles).await?;
    result?;
    let mut out = format!("moved {moved} report(s) back to the fill queue");
    let remaining = queue_depth(sqs, dlq_url).await?;
    let _ = write!(
        out,
        "; {remaining} message(s) remain on the dead-letter queue"
    );
    let kept: usize = left.values().sum();
    if kept > 0 {
        let _ = write!(
            out,
            "; left {kept} message(s) that carry no report, for a person to read:"
        );
        for (reason, count) in left {
            let _ = write!(out, "\n  {count:>5}  {reason}");
        }
    }
    Ok(out)
}

// -- an operator's decision ----------------------------------------------------------

/// `resolve <id>`: records the decision through `Orders::resolve` (which
/// drives the order on), then shows the order as it is after.
pub async fn resolve_order<S, B, E, C>(
    orders: &Orders<S, B, E, C>,
    id: &str,
    decision: Decision,
    evidence: &str,
) -> anyhow::Result<String>
where
    S: OrderStore,
    B: Balances,
    E: Exchange,
    C: Clock,
{
    let id = OrderId::parse(id).context("not an order id")?;
    let resolution = Resolution {
        decision,
        evidence: evidence.to_owned(),
    };
    let order = match orders.resolve(&id, &resolution).await {
        Ok(order) => order,
        Err(error) => bail!("the decision was not recorded: {error}"),
    };
    let executions = all_executions(orders.store(), &order).await?;
    Ok(format!(
        "recorded: {} — {}\n\n{}",
        decision_name(decision),
        evidence.trim(),
        timeline(
            &order,
            &executions,
            orders.now(),
            &orders.settings().recovery
        )
    ))
}

/// `not-placed` / `acknowledged`.
pub fn parse_decision(text: &str) -> anyhow::Result<Decision> {
    match text {
        "not-placed" | "not_placed" => Ok(Decision::NotPlaced),
        "acknowledged" => Ok(Decision::Acknowledged),
        other => bail!("decision must be not-placed or acknowledged, not {other:?}"),
    }
}

#[cfg(test)]
mod tests;
