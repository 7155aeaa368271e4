//! The Balances service over HTTP: its wire format and a client.

mod client;
pub mod wire;

pub use client::{HttpBalances, DEFAULT_TIMEOUT};
