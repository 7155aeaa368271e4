//! In-memory adapters of the ports.

mod ledger_store;

pub use ledger_store::MemoryLedgerStore;
