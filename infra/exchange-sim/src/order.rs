//! Order, execution and event types, and the parsing of a place request from
//! its JSON form into a validated [`PlaceOrder`] ("parse, don't validate").

use serde::{Deserialize, Serialize};

use crate::calendar::TradeDate;
use crate::money::{MoneyError, Price, Quantity};
use crate::quotes::QuoteBook;

/// Longest accepted `client_order_id`.
pub const MAX_CLIENT_ORDER_ID_LEN: usize = 128;
/// Longest accepted account id.
pub const MAX_ACCOUNT_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Market,
    Limit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

impl OrderStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Expired
                | OrderStatus::Rejected
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::New => "new",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
        }
    }
}

/// How long an order may rest. DAY ends at the first session close after
/// acceptance, GTC rests across closes (up to `gtc_max_days`), IOC fills at
/// once what is marketable at acceptance and cancels the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    #[default]
    Day,
    Gtc,
    Ioc,
}

impl TimeInForce {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Day => "day",
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
        }
    }
}

/// A validated place request. Fields are public so a simulation can build one
/// directly; `Quantity` and `Price` can only hold valid values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaceOrder {
    pub client_order_id: String,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub quantity: Quantity,
    /// Required for limit orders, absent for market orders.
    pub limit_price: Option<Price>,
    /// The request's deadline (Unix ms): arriving later, it is rejected.
    /// Required by venues that enforce one, refused by venues that do not
    /// (see [`crate::venue::VenueProfile`]).
    #[serde(
        serialize_with = "crate::time::ser_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expire_at: Option<u64>,
    pub time_in_force: TimeInForce,
}

/// The JSON body of `POST /v1/orders`, before validation. Everything is
/// optional so a missing field gets our message, not serde's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderBody {
    pub client_order_id: Option<String>,
    pub account: Option<String>,
    pub symbol: Option<String>,
    pub side: Option<String>,
    #[serde(rename = "type")]
    pub order_type: Option<String>,
    pub quantity: Option<serde_json::Value>,
    pub limit_price: Option<serde_json::Value>,
    /// RFC 3339 UTC string or Unix milliseconds.
    pub expire_at: Option<serde_json::Value>,
    /// `"day"` (default), `"gtc"` or `"ioc"`.
    pub time_in_force: Option<String>,
}

/// Why a place request is malformed: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

fn required<T>(field: &'static str, v: Option<T>) -> Result<T, ValidationError> {
    v.ok_or_else(|| invalid(field, "is required"))
}

/// Ids are printable ASCII without spaces or `/`, so they are safe in a URL path.
fn valid_id(field: &'static str, s: String, max: usize) -> Result<String, ValidationError> {
    if s.is_empty() || s.len() > max {
        return Err(invalid(field, format!("must be 1 to {max} characters")));
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !ok {
        return Err(invalid(field, "may only contain A-Z a-z 0-9 - _ . :"));
    }
    Ok(s)
}

fn money(field: &'static str, e: MoneyError) -> ValidationError {
    invalid(field, e.to_string())
}

impl TryFrom<PlaceOrderBody> for PlaceOrder {
    type Error = ValidationError;

    fn try_from(b: PlaceOrderBody) -> Result<PlaceOrder, ValidationError> {
        let client_order_id = valid_id(
            "client_order_id",
            required("client_order_id", b.client_order_id)?,
            MAX_CLIENT_ORDER_ID_LEN,
        )?;
        let account = valid_id("account", required("account", b.account)?, MAX_ACCOUNT_LEN)?;
        let symbol = required("symbol", b.symbol)?;
        if !QuoteBook::is_listed(&symbol) {
            return Err(invalid("symbol", format!("`{symbol:.16}` is not listed")));
        }
        let side = match required("side", b.side)?.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err(invalid("side", "must be \"buy\" or \"sell\"")),
        };
        let order_type = match required("type", b.order_type)?.as_str() {
            "market" => OrderType::Market,
            "limit" => OrderType::Limit,
            _ => return Err(invalid("type", "must be \"market\" or \"limit\"")),
        };
        let quantity = Quantity::from_json(&required("quantity", b.quantity)?)
            .map_err(|e| money("quantity", e))?;
        let limit_price = match (order_type, b.limit_price) {
            (OrderType::Limit, None | Some(serde_json::Value::Null)) => {
                return Err(invalid("limit_price", "is required for a limit order"))
            }
            (OrderType::Limit, Some(serde_json::Value::String(s))) => {
                Some(Price::parse(&s).map_err(|e| money("limit_price", e))?)
            }
            (OrderType::Limit, Some(_)) => {
                return Err(invalid(
                    "limit_price",
                    "must be a decimal string such as \"187.25\" (JSON numbers are not accepted for money)",
                ))
            }
            (OrderType::Market, None | Some(serde_json::Value::Null)) => None,
            (OrderType::Market, Some(_)) => {
                return Err(invalid("limit_price", "must be absent for a market order"))
            }
        };
        // Whether the venue wants a deadline is the engine's call (it knows
        // the venue profile); here only its form is checked.
        let expire_at = match b.expire_at {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => {
                Some(crate::time::parse_rfc3339_ms(&s).ok_or_else(|| {
                    invalid(
                        "expire_at",
                        "must be an RFC 3339 UTC time such as \"2024-03-01T12:00:05Z\"",
                    )
                })?)
            }
            Some(serde_json::Value::Number(n)) => Some(
                n.as_u64()
                    .ok_or_else(|| invalid("expire_at", "must be whole Unix milliseconds"))?,
            ),
            Some(_) => {
                return Err(invalid(
                    "expire_at",
                    "must be an RFC 3339 string or Unix milliseconds",
                ))
            }
        };
        let time_in_force = match b.time_in_force.as_deref() {
            None | Some("day") => TimeInForce::Day,
            Some("gtc") => TimeInForce::Gtc,
            Some("ioc") => TimeInForce::Ioc,
            Some(_) => {
                return Err(invalid(
                    "time_in_force",
                    "must be \"day\", \"gtc\" or \"ioc\"",
                ))
            }
        };
        Ok(PlaceOrder {
            client_order_id,
            account,
            symbol,
            side,
            order_type,
            quantity,
            limit_price,
            expire_at,
            time_in_force,
        })
    }
}

/// One fill of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Execution {
    pub exec_id: String,
    pub order_id: String,
    pub client_order_id: String,
    pub quantity: Quantity,
    pub price: Price,
    pub cum_quantity: Quantity,
    pub leaves_quantity: Quantity,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub occurred_at: u64,
    /// The session this execution belongs to (a GTC order's executions can
    /// fall on later trade dates than the order).
    pub trade_date: TradeDate,
}

/// An order as the exchange reports it.
///
/// `leaves_quantity` follows FIX: `quantity - cum_quantity` while the order is
/// open, zero once it is terminal (a cancelled order has nothing left to fill).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub order_id: String,
    pub client_order_id: String,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
    /// The place request's deadline; absent at venues without one.
    #[serde(
        serialize_with = "crate::time::ser_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expire_at: Option<u64>,
    pub time_in_force: TimeInForce,
    /// The session the order was accepted into (date of the first close
    /// after acceptance).
    pub trade_date: TradeDate,
    /// When the venue expires the order if it is still open: the close for
    /// DAY, the GTC limit for GTC, acceptance itself for IOC (or earlier, with
    /// `order_lifetime_ms`).
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub good_until: u64,
    pub status: OrderStatus,
    pub cum_quantity: Quantity,
    pub leaves_quantity: Quantity,
    /// Volume-weighted, four decimals; `None` until the first fill.
    pub average_price: Option<String>,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub created_at: u64,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub updated_at: u64,
    pub executions: Vec<Execution>,
}

/// An order without its executions: the rows of the day's order list, small
/// whatever the order's fill count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub client_order_id: String,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    pub quantity: Quantity,
    pub limit_price: Option<Price>,
    #[serde(
        serialize_with = "crate::time::ser_rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expire_at: Option<u64>,
    pub time_in_force: TimeInForce,
    pub trade_date: TradeDate,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub good_until: u64,
    pub status: OrderStatus,
    pub cum_quantity: Quantity,
    pub leaves_quantity: Quantity,
    pub average_price: Option<String>,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub created_at: u64,
    #[serde(serialize_with = "crate::time::ser_rfc3339")]
    pub updated_at: u64,
    /// How many executions `GET /v1/orders/{order_id}/executions` lists.
    pub execution_count: usize,
}

impl From<&Order> for OrderSummary {
    fn from(o: &Order) -> OrderSummary {
        OrderSummary {
            order_id: o.order_id.clone(),
            client_order_id: o.client_order_id.clone(),
            account: o.account.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            order_type: o.order_type,
            quantity: o.quantity,
            limit_price: o.limit_price,
            expire_at: o.expire_at,
            time_in_force: o.time_in_force,
            trade_date: o.trade_date,
            good_until: o.good_until,
            status: o.status,
            cum_quantity: o.cum_quantity,
            leaves_quantity: o.leaves_quantity,
            average_price: o.average_price.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            execution_count: o.executions.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Execution,
    OrderStatus,
}

/// What the exchange reports asynchronously (one webhook each): an execution,
/// or an order reaching a terminal status. Serialises to the webhook payload
/// (and parses back from it, for receivers' tests and `POST /admin/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Unique per event; also the `webhook-id` of its delivery.
    pub event_id: String,
    pub client_order_id: String,
    pub order_id: String,
    pub account: String,
    pub symbol: String,
    pub side: Side,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    pub cum_quantity: Quantity,
    pub leaves_quantity: Quantity,
    pub status: OrderStatus,
    #[serde(
        serialize_with = "crate::time::ser_rfc3339",
        deserialize_with = "crate::time::de_rfc3339_or_ms"
    )]
    pub occurred_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Result<PlaceOrder, ValidationError> {
        let b: PlaceOrderBody =
            serde_json::from_value(v).map_err(|e| invalid("body", e.to_string()))?;
        PlaceOrder::try_from(b)
    }

    fn good() -> serde_json::Value {
        json!({"client_order_id":"c-1","account":"acc-1","symbol":"AAPL","side":"buy",
               "type":"limit","quantity":"100","limit_price":"187.25","expire_at":"2024-03-01T12:00:05Z"})
    }

    #[test]
    fn a_good_body_parses() {
        let o = body(good()).expect("valid");
        assert_eq!(o.quantity.shares(), 100);
        assert_eq!(o.limit_price.map(Price::cents), Some(18_725));
        assert_eq!(o.expire_at, Some(1_709_294_405_000));
        assert_eq!(o.time_in_force, TimeInForce::Day);
    }

    #[test]
    fn time_in_force_and_deadline_are_optional_but_checked() {
        let mut v = good();
        v.as_object_mut().map(|m| m.remove("expire_at"));
        v["time_in_force"] = json!("ioc");
        let o = body(v.clone()).expect("valid");
        assert_eq!((o.expire_at, o.time_in_force), (None, TimeInForce::Ioc));
        v["time_in_force"] = json!("fok");
        assert_eq!(body(v).expect_err("fok").field, "time_in_force");
    }

    #[test]
    fn an_event_parses_back_from_its_webhook_payload() {
        let event = ExchangeEvent {
            event_type: EventType::Execution,
            event_id: "evt_x".into(),
            client_order_id: "c-1".into(),
            order_id: "o-1".into(),
            account: "acc-1".into(),
            symbol: "AAPL".into(),
            side: Side::Buy,
            exec_id: Some("x".into()),
            quantity: Quantity::new(5).ok(),
            price: Price::from_cents(18_725),
            cum_quantity: Quantity::from_shares(5),
            leaves_quantity: Quantity::ZERO,
            status: OrderStatus::Filled,
            occurred_at: 1_709_294_400_250,
        };
        let text = serde_json::to_string(&event).expect("json");
        let back: ExchangeEvent = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, event);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&str, serde_json::Value, &str)] = &[
            ("client_order_id", json!(null), "client_order_id"),
            ("client_order_id", json!("has space"), "client_order_id"),
            ("client_order_id", json!("x".repeat(129)), "client_order_id"),
            ("symbol", json!("ZZZZ"), "symbol"),
            ("side", json!("short"), "side"),
            ("type", json!("stop"), "type"),
            ("quantity", json!("0"), "quantity"),
            ("quantity", json!(1.5), "quantity"),
            ("limit_price", json!(187.25), "limit_price"),
            ("limit_price", json!("187.255"), "limit_price"),
            ("expire_at", json!("soon"), "expire_at"),
        ];
        for (key, value, field) in cases {
            let mut v = good();
            v[*key] = value.clone();
            if value.is_null() {
                v.as_object_mut().map(|m| m.remove(*key));
            }
            let err = body(v).expect_err(key);
            assert_eq!(err.field, *field, "{key}: {err}");
        }
    }

    #[test]
    fn market_orders_take_no_limit_price() {
        let mut v = good();
        v["type"] = json!("market");
        assert_eq!(
            body(v.clone()).expect_err("price given").field,
            "limit_price"
        );
        v.as_object_mut().map(|m| m.remove("limit_price"));
        assert!(body(v).expect("market").limit_price.is_none());
    }
}
