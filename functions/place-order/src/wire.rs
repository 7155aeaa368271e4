//! JSON of the orders API. Amounts are decimal strings; times are Unix
//! milliseconds (`*_ms`).

use domain::money::format_units;
use domain::order::{
    FillRecord, FillState, Order, OrderRequest, OrderType, Step, StepFailure, StepState,
    TimeInForce,
};
use domain::{Catalog, Price, Quantity, Side};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{field}: {detail}")]
    Field { field: &'static str, detail: String },
}

fn field(field: &'static str, detail: impl ToString) -> RequestError {
    RequestError::Field {
        field,
        detail: detail.to_string(),
    }
}

/// Body of `POST /orders`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderBody {
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub quantity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// `day` (default): rests until the session's close; `gtc`: until
    /// cancelled; `ioc`: what does not execute at once is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
}

impl PlaceOrderBody {
    pub fn parse(&self, catalog: &Catalog) -> Result<OrderRequest, RequestError> {
        let symbol = catalog
            .symbol(&self.symbol)
            .map_err(|e| field("symbol", e))?;
        let quantity = Quantity::parse(&self.quantity).map_err(|e| field("quantity", e))?;
        let limit_price = match &self.limit_price {
            Some(text) => {
                let price = Price::parse(text).map_err(|e| field("limit_price", e))?;
                catalog
                    .check_tick(&symbol, price)
                    .map_err(|e| field("limit_price", e))?;
                Some(price)
            }
            None => None,
        };
        OrderRequest::new(
            symbol,
            self.side,
            self.order_type,
            quantity,
            limit_price,
            self.time_in_force.unwrap_or_default(),
        )
        .map_err(|e| field("limit_price", e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountBody {
    pub asset: String,
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepBody {
    pub name: String,
    pub state: String,
    pub attempt: u32,
    /// The idempotency key the step's external call carries, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One execution of an order (`GET /orders/{id}/executions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionBody {
    pub exec_id: String,
    pub quantity: String,
    pub price: String,
    pub received_at_ms: u64,
    /// `settled`, or `waiting` for its turn to settle.
    pub settlement: String,
}

impl ExecutionBody {
    pub fn from_record(record: &FillRecord) -> Self {
        ExecutionBody {
            exec_id: record.exec_id.to_string(),
            quantity: record.quantity.to_string(),
            price: record.price.to_string(),
            received_at_ms: record.received_at_ms,
            settlement: match record.state {
                FillState::Settled { .. } => "settled",
                FillState::Recorded => "waiting",
            }
            .into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionListBody {
    pub order_id: String,
    pub executions: Vec<ExecutionBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An order as answered by every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderBody {
    pub id: String,
    pub status: domain::order::OrderStatus,
    /// Why the order is where it is, when that needs saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub time_in_force: TimeInForce,
    pub quantity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_price: Option<String>,
    /// The limit a market order is sent with: it never executes beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection_price: Option<String>,
    pub filled_quantity: String,
    /// Executions recorded (listed by `GET /orders/{id}/executions`).
    pub executions: u64,
    /// Volume-weighted execution price, to 4 decimals (rounded half up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_price: Option<String>,
    pub reserved: AmountBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_order_id: Option<String>,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_requested_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at_ms: Option<u64>,
    /// Every step with its state, attempts and times: what happened, in order.
    pub steps: Vec<StepBody>,
    /// Why an operator is needed, when one is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<String>,
}

fn step_body(name: String, step: &Step, key: Option<String>) -> StepBody {
    let (state, detail) = match &step.state {
        StepState::Processing => ("processing", None),
        StepState::Succeeded => ("succeeded", None),
        StepState::Failed(failure) => (
            "failed",
            Some(match failure {
                StepFailure::InsufficientFunds => "insufficient funds".to_owned(),
                StepFailure::ExchangeRejected { detail } => {
                    format!("rejected by the exchange: {detail}")
                }
                StepFailure::NotPlaced { detail } => format!("not placed: {detail}"),
                StepFailure::CancelRefused { detail } => format!("cancel refused: {detail}"),
            }),
        ),
    };
    StepBody {
        name,
        state: state.into(),
        attempt: step.attempt,
        key,
        detail,
        started_at_ms: step.started_at_ms,
        updated_at_ms: step.updated_at_ms,
    }
}

/// Σ(price x quantity) / Σ quantity in cents, to 4 decimals, rounded half up.
fn average_price(order: &Order) -> Option<String> {
    let slot = order.settling.as_ref();
    let shares = u128::from(order.filled_quantity());
    if shares == 0 {
        return None;
    }
    let cents = u128::from(order.fills.notional_cents)
        + slot.map_or(0, |f| {
            u128::from(f.price.cents()) * u128::from(f.quantity.shares())
        });
    // In units of 10^-4 dollars (a hundredth of a cent).
    let scaled = (cents * 100 + shares / 2) / shares;
    Some(format!("{}.{:04}", scaled / 10_000, scaled % 10_000))
}

impl OrderBody {
    pub fn from_order(order: &Order) -> Self {
        let mut steps = vec![step_body(
            "reserve".into(),
            &order.reserve,
            Some(order.id.reserve_key().to_string()),
        )];
        if let Some(place) = &order.place {
            let mut body = step_body("place".into(), &place.step, Some(order.id.to_string()));
            if body.detail.is_none() {
                body.detail = place
                    .last_error
                    .as_ref()
                    .map(|e| format!("{} send(s); last without an answer: {e}", place.sends));
            }
            steps.push(body);
        }
        if let Some(fill) = &order.settling {
            let key = order.id.settle_key(&fill.exec_id).to_string();
            steps.push(step_body(
                format!("settle#{}", fill.exec_id.as_str()),
                &fill.settle,
                Some(key),
            ));
        }
        if let Some(step) = order.cancel.as_ref().and_then(|c| c.step.as_ref()) {
            steps.push(step_body("cancel".into(), step, Some(order.id.to_string())));
        }
        if let Some(release) = &order.release {
            steps.push(step_body(
                "release".into(),
                release,
                Some(order.id.release_key().to_string()),
            ));
        }
        if let Some(closed_at_ms) = order.closed_at_ms {
            steps.push(step_body(
                "close".into(),
                &Step::done(StepState::Succeeded, closed_at_ms),
                None,
            ));
        }
        let asset = &order.reservation.asset;
        OrderBody {
            id: order.id.to_string(),
            status: order.status(),
            status_reason: order.status_reason(),
            symbol: order.request.symbol.to_string(),
            side: order.request.side,
            order_type: order.request.order_type,
            time_in_force: order.request.time_in_force,
            quantity: order.request.quantity.to_string(),
            limit_price: order.request.limit_price.map(|p| p.to_string()),
            protection_price: order.protection.map(|p| p.to_string()),
            filled_quantity: order.filled_quantity().to_string(),
            executions: order.fill_count(),
            average_price: average_price(order),
            reserved: AmountBody {
                asset: asset.code().to_owned(),
                amount: format_units(order.reservation.amount.units(), asset.scale()),
            },
            exchange_order_id: order.exchange_order_id.clone(),
            created_at_ms: order.created_at_ms,
            cancel_requested_at_ms: order.cancel.as_ref().map(|c| c.requested_at_ms),
            closed_at_ms: order.closed_at_ms,
            steps,
            flags: order
                .recovery
                .flags
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            flagged: order.recovery.flag_detail.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderListBody {
    pub orders: Vec<OrderBody>,
    /// Opaque; pass as `cursor` for the next page. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
