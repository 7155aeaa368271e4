//! In-memory adapters of the ports.

mod ledger_store;
mod order_store;

pub use ledger_store::MemoryLedgerStore;
pub use order_store::MemoryOrderStore;
