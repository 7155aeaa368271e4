//! In-memory adapters of the ports.

mod fill_queue;
mod ledger_store;
mod order_store;

pub use fill_queue::MemoryFillQueue;
pub use ledger_store::MemoryLedgerStore;
pub use order_store::MemoryOrderStore;
