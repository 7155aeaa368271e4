//! Use cases of the platform, written once against port traits.
//!
//! - [`clock`]: the `Clock` port (system and manual clocks).
//! - [`fill_queue`]: the `FillQueue` port between the webhook and the processor.
//! - [`ledger_store`]: the `LedgerStore` port, storage of the Balances service.
//! - [`balances`]: the Balances use case ([`balances::BalancesService`]) and the
//!   `Balances` port that other functions call it through. The service itself
//!   implements the port, so in-process callers (tests, the simulation) use it
//!   directly and remote callers use the HTTP adapter.
//! - [`exchange`]: the `Exchange` port (place, look up, cancel by client order id).
//! - [`order_store`]: the `OrderStore` port (orders with their step records, versioned).
//! - [`orders`]: the order use cases and the driver shared by every handler.
//! - [`memory`]: in-memory adapters of the ports, for unit tests and the
//!   deterministic simulation. They pass the same conformance suites as the
//!   DynamoDB/HTTP adapters (see `tests/`).

pub mod balances;
pub mod clock;
pub mod exchange;
pub mod fill_queue;
pub mod ledger_store;
pub mod memory;
pub mod order_store;
pub mod orders;

pub use balances::{Balances, BalancesCallError, BalancesError, BalancesService, Executed};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use ledger_store::{Applied, LedgerStore, StoreError};
