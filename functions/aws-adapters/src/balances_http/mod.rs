//! The Balances service over HTTP: its wire format and its clients (the
//! trading route's, implementing `Balances`, and the admin route's).

mod client;
pub mod wire;

pub use client::{HttpBalances, HttpBalancesAdmin, ADMIN_PREFIX, DEFAULT_TIMEOUT};
