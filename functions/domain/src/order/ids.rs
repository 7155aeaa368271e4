//! Ids of an order and of its executions, and the idempotency keys derived
//! from them for the calls each step makes.

use serde::{Deserialize, Serialize};

use super::OrderError;
use crate::ids::IdempotencyKey;

/// Longest execution id accepted from a venue (FIX `ExecID`s are far shorter).
pub const MAX_EXEC_ID_LEN: usize = 128;

/// The platform's id of an order; also its `client_order_id` at the exchange.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(text: &str) -> Result<Self, OrderError> {
        let bytes = text.as_bytes();
        let valid = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            });
        valid
            .then(|| OrderId(text.to_owned()))
            .ok_or(OrderError::InvalidOrderId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Idempotency key of this order's reservation at Balances.
    pub fn reserve_key(&self) -> IdempotencyKey {
        self.derived_key("reserve")
    }

    /// Idempotency key of the settlement of one execution.
    pub fn settle_key(&self, exec_id: &ExecId) -> IdempotencyKey {
        self.derived_key(&format!("fill:{}", exec_id.as_str()))
    }

    /// Idempotency key of the release of what is left of the reservation
    /// (when it does not ride on the last settlement).
    pub fn release_key(&self) -> IdempotencyKey {
        self.derived_key("release")
    }

    fn derived_key(&self, suffix: &str) -> IdempotencyKey {
        // 36 + 6 + at most 128 characters, all printable ASCII: always a valid key.
        IdempotencyKey::parse(&format!("{}:{suffix}", self.0))
            .unwrap_or_else(|_| unreachable!("derived keys are valid by construction"))
    }
}

impl TryFrom<String> for OrderId {
    type Error = OrderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        OrderId::parse(&value)
    }
}

impl From<OrderId> for String {
    fn from(value: OrderId) -> Self {
        value.0
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exchange's unique id of one execution; executions are de-duplicated on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExecId(String);

impl ExecId {
    pub fn parse(text: &str) -> Result<Self, OrderError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_EXEC_ID_LEN
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        valid
            .then(|| ExecId(text.to_owned()))
            .ok_or(OrderError::InvalidExecId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExecId {
    type Error = OrderError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ExecId::parse(&value)
    }
}

impl From<ExecId> for String {
    fn from(value: ExecId) -> Self {
        value.0
    }
}

impl std::fmt::Display for ExecId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
