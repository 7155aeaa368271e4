//! The trading domain: values and rules only.
//!
//! No I/O, no async, no clock reads: every function here is deterministic, so
//! the same code runs in Lambda, in the local stack and in the deterministic
//! simulation.
//!
//! - [`money`]: amounts, prices and quantities as integers, decimal-string parsing.
//! - [`asset`]: cash and share assets, the instrument catalog.
//! - [`ids`]: account ids and idempotency keys, parsed at the edge.
//! - [`order`]: an order, the records of its steps, its status, and
//!   [`order::next_actions`], what is left to do, derived from those records.
//! - [`ledger`]: balances and the operations that move them (deposit, reserve,
//!   settle, release), with the rule that nothing ever goes negative.

pub mod asset;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod order;

pub use asset::{Asset, Catalog, Instrument, Symbol};
pub use ids::{AccountId, IdempotencyKey};
pub use ledger::{AssetChange, Balance, Failure, Operation, OperationRecord, Outcome, Side};
pub use money::{Amount, Price, Quantity};
