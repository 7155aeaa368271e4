//! Conformance suites: one set of checks per port, run against every adapter
//! of it (in-memory and real), so the in-memory adapters used by the
//! simulation can be trusted to behave as the real ones do.

pub mod balances;
pub mod exchange;
pub mod order_store;
