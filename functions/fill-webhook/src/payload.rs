//! The exchange's webhook payload, parsed into the platform's
//! [`ExchangeReport`] ("parse, don't validate").
//!
//! An `execution` becomes an execution report; an `order_status` with a final
//! status becomes a final report; an `order_status` that is not final says
//! nothing the processor needs and is acknowledged without being queued.
//! Money and quantities arrive as decimal strings and never pass through a
//! float: a JSON number where a decimal string belongs is an error.

use domain::money::{parse_units, MAX_QUANTITY};
use domain::order::{ExchangeReport, ExecId, Execution, FinalReport, FinalStatus, OrderId};
use domain::{Price, Quantity};
use serde::Deserialize;

/// Largest accepted body; an event is well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest accepted exchange order id.
pub const MAX_EXCHANGE_ORDER_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the shape of an event (including an unknown `type`
    /// or `status`, and a number where a decimal string belongs).
    #[error("not an exchange event: {0}")]
    Shape(String),
    #[error("`{0}` is required in an execution event")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// What a well-formed webhook asks of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Put this on the fill queue.
    Report(ExchangeReport),
    /// A status the exchange may still move on from (`new`,
    /// `partially_filled`): nothing to queue, the executions carry the news.
    NotFinal {
        client_order_id: OrderId,
        status: EventStatus,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventType {
    Execution,
    OrderStatus,
}

/// The order's status as the exchange reports it with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    New,
    PartiallyFilled,
    Filled,
    Cancelled,
    Expired,
    Rejected,
}

impl EventStatus {
    fn final_status(self) -> Option<FinalStatus> {
        match self {
            EventStatus::New | EventStatus::PartiallyFilled => None,
            EventStatus::Filled => Some(FinalStatus::Filled),
            EventStatus::Cancelled => Some(FinalStatus::Cancelled),
            EventStatus::Expired => Some(FinalStatus::Expired),
            EventStatus::Rejected => Some(FinalStatus::Rejected),
        }
    }
}

/// The fields the platform reads; others (account, symbol, times) are the
/// exchange's to add and are ignored.
#[derive(Debug, Deserialize)]
struct EventBody {
    #[serde(rename = "type")]
    event_type: EventType,
    client_order_id: String,
    order_id: String,
    status: EventStatus,
    exec_id: Option<String>,
    quantity: Option<String>,
    price: Option<String>,
    cum_quantity: Option<String>,
}

fn invalid(field: &'static str, reason: impl ToString) -> PayloadError {
    PayloadError::Invalid {
        field,
        reason: reason.to_string(),
    }
}

fn exchange_order_id(text: String) -> Result<String, PayloadError> {
    let valid = !text.is_empty()
        && text.len() <= MAX_EXCHANGE_ORDER_ID_LEN
        && text.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(text)
    } else {
        Err(invalid(
            "order_id",
            format!("must be 1 to {MAX_EXCHANGE_ORDER_ID_LEN} printable ASCII characters"),
        ))
    }
}

/// A cumulative quantity may be zero (cancelled before any execution).
fn cum_quantity(text: &str) -> Result<u64, PayloadError> {
    let shares = parse_units(text, 0).map_err(|e| invalid("cum_quantity", e))?;
    if shares > MAX_QUANTITY {
        return Err(invalid("cum_quantity", format!("at most {MAX_QUANTITY}")));
    }
    Ok(shares)
}

/// Parses one webhook body.
pub fn parse(body: &[u8]) -> Result<Parsed, PayloadError> {
    let event: EventBody =
        serde_json::from_slice(body).map_err(|e| PayloadError::Shape(e.to_string()))?;
    let client_order_id =
        OrderId::parse(&event.client_order_id).map_err(|e| invalid("client_order_id", e))?;
    let exchange_order_id = exchange_order_id(event.order_id)?;
    match event.event_type {
        EventType::Execution => {
            let required = |value: Option<String>, field| value.ok_or(PayloadError::Missing(field));
            let exec_id = required(event.exec_id, "exec_id")?;
            let quantity = required(event.quantity, "quantity")?;
            let price = required(event.price, "price")?;
            let execution = Execution {
                exec_id: ExecId::parse(&exec_id).map_err(|e| invalid("exec_id", e))?,
                exchange_order_id,
                quantity: Quantity::parse(&quantity).map_err(|e| invalid("quantity", e))?,
                price: Price::parse(&price).map_err(|e| invalid("price", e))?,
                cum_quantity: event
                    .cum_quantity
                    .as_deref()
                    .map(cum_quantity)
                    .transpose()?,
            };
            Ok(Parsed::Report(ExchangeReport::Execution {
                client_order_id,
                execution,
            }))
        }
        EventType::OrderStatus => {
            let Some(status) = event.status.final_status() else {
                return Ok(Parsed::NotFinal {
                    client_order_id,
                    status: event.status,
                });
            };
            let text = event
                .cum_quantity
                .ok_or(invalid("cum_quantity", "required with a final status"))?;
            Ok(Parsed::Report(ExchangeReport::Final {
                client_order_id,
                exchange_order_id,
                report: FinalReport {
                    status,
                    cum_quantity: cum_quantity(&text)?,
                },
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const ORDER: &str = "0190a6e4-5b7e-7c2a-9f1e-3b2c4d5e6f70";

    /// An execution event as the exchange simulator sends it.
    fn execution() -> Value {
        json!({
            "type": "execution", "event_id": "evt-1", "client_order_id": ORDER,
            "order_id": "x-42", "account": "acc-1", "symbol": "AAPL", "side": "buy",
            "exec_id": "exec-7", "quantity": "30", "price": "187.25",
            "cum_quantity": "30", "leaves_quantity": "70", "status": "partially_filled",
            "occurred_at": "2024-03-01T12:00:01.000Z"
        })
    }

    fn status(status: &str, cum: &str) -> Value {
        json!({
            "type": "order_status", "event_id": "evt-2", "client_order_id": ORDER,
            "order_id": "x-42", "account": "acc-1", "symbol": "AAPL", "side": "buy",
            "cum_quantity": cum, "leaves_quantity": "0", "status": status,
            "occurred_at": "2024-03-01T12:00:02.000Z"
        })
    }

    fn parse_value(v: &Value) -> Result<Parsed, PayloadError> {
        parse(&serde_json::to_vec(v).expect("json"))
    }

    fn with(mut v: Value, field: &str, value: Value) -> Value {
        v[field] = value;
        v
    }

    fn without(mut v: Value, field: &str) -> Value {
        v.as_object_mut().expect("object").remove(field);
        v
    }

    #[test]
    fn an_execution_becomes_an_execution_report() {
        let expected = ExchangeReport::Execution {
            client_order_id: OrderId::parse(ORDER).expect("id"),
            execution: Execution {
                exec_id: ExecId::parse("exec-7").expect("exec id"),
                exchange_order_id: "x-42".into(),
                quantity: Quantity::new(30).expect("quantity"),
                price: Price::from_cents(18725).expect("price"),
                cum_quantity: Some(30),
            },
        };
        assert_eq!(parse_value(&execution()), Ok(Parsed::Report(expected)));
    }

    #[test]
    fn a_final_status_becomes_a_final_report() {
        for (text, final_status, cum) in [
            ("filled", FinalStatus::Filled, 100),
            ("cancelled", FinalStatus::Cancelled, 30),
            ("expired", FinalStatus::Expired, 0),
            ("rejected", FinalStatus::Rejected, 0),
        ] {
            let expected = ExchangeReport::Final {
                client_order_id: OrderId::parse(ORDER).expect("id"),
                exchange_order_id: "x-42".into(),
                report: FinalReport {
                    status: final_status,
                    cum_quantity: cum,
                },
            };
            assert_eq!(
                parse_value(&status(text, &cum.to_string())),
                Ok(Parsed::Report(expected)),
                "{text}"
            );
        }
    }

    #[test]
    fn a_status_that_is_not_final_is_acknowledged_only() {
        for (text, event_status) in [
            ("new", EventStatus::New),
            ("partially_filled", EventStatus::PartiallyFilled),
        ] {
            assert_eq!(
                parse_value(&status(text, "0")),
                Ok(Parsed::NotFinal {
                    client_order_id: OrderId::parse(ORDER).expect("id"),
                    status: event_status,
                })
            );
        }
    }

    #[test]
    fn unknown_types_and_statuses_and_bad_json_are_refused() {
        for body in [
            with(execution(), "type", json!("bust")),
            with(status("filled", "1"), "status", json!("done")),
            without(execution(), "type"),
            without(execution(), "client_order_id"),
            json!([1, 2]),
        ] {
            assert!(
                matches!(parse_value(&body), Err(PayloadError::Shape(_))),
                "{body}"
            );
        }
        assert!(matches!(parse(b"{not json"), Err(PayloadError::Shape(_))));
        assert!(matches!(parse(b""), Err(PayloadError::Shape(_))));
    }

    #[test]
    fn money_comes_from_decimal_strings_only() {
        for (field, value) in [
            ("quantity", json!(30)),
            ("price", json!(187.25)),
            ("quantity", json!(null)),
        ] {
            let result = parse_value(&with(execution(), field, value.clone()));
            assert!(
                matches!(
                    result,
                    Err(PayloadError::Shape(_)) | Err(PayloadError::Missing(_))
                ),
                "{field}={value}: {result:?}"
            );
        }
        for (field, value) in [
            ("quantity", "1.5"),
            ("quantity", "0"),
            ("quantity", "-3"),
            ("quantity", "1e2"),
            ("price", "-1.00"),
            ("price", "187.255"),
            ("price", "0"),
            ("price", ""),
        ] {
            let result = parse_value(&with(execution(), field, json!(value)));
            assert!(
                matches!(result, Err(PayloadError::Invalid { field: f, .. }) if f == field),
                "{field}={value}: {result:?}"
            );
        }
        assert!(matches!(
            parse_value(&status("filled", "2.5")),
            Err(PayloadError::Invalid {
                field: "cum_quantity",
                ..
            })
        ));
    }

    #[test]
    fn an_execution_needs_its_execution_fields() {
        for field in ["exec_id", "quantity", "price"] {
            assert_eq!(
                parse_value(&without(execution(), field)),
                Err(PayloadError::Missing(field))
            );
        }
        assert!(matches!(
            parse_value(&with(execution(), "exec_id", json!(""))),
            Err(PayloadError::Invalid {
                field: "exec_id",
                ..
            })
        ));
        assert!(matches!(
            parse_value(&with(execution(), "client_order_id", json!("c-1"))),
            Err(PayloadError::Invalid {
                field: "client_order_id",
                ..
            })
        ));
        assert!(matches!(
            parse_value(&with(execution(), "order_id", json!(""))),
            Err(PayloadError::Invalid {
                field: "order_id",
                ..
            })
        ));
    }
}
