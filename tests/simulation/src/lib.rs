//! The deterministic simulation of the whole order flow (FoundationDB /
//! TigerBeetle VOPR style): one thread per seed, a manual clock, the real
//! handlers over the in-memory adapters and the exchange engine, and seeded
//! faults at every port call. A seed is one run; its number is all it takes
//! to replay it (`SIM_SEED=<n>`).
//!
//! What runs, as in production:
//! - clients call the orders API through `place_order::router` (the router
//!   the Lambda serves), with `Idempotency-Key` retries and late copies;
//! - the venue's webhooks go through `fill_webhook::router` (signed) onto a
//!   FIFO queue model, and `fill_processor::handle_batch` takes batches;
//! - the reconciler's runs (and the end-of-day check within them), alone or
//!   two at once, and any of these interleaved at port calls.
//!
//! Module map:
//! - [`scenario`]: what a seed draws (venue profile, clock offset, timings,
//!   market, fault rates, workload);
//! - [`faults`]: crash points, the fault plan, an invocation's port calls;
//! - [`world`]: the state of one run and the clock that delivers late
//!   requests on time; [`ports`]: the fault-wrapped ports;
//! - [`network`]: requests to the venue that land late;
//! - [`webhooks`]: the venue's deliveries (retried, lost, duplicated,
//!   reordered); [`queue`]: SQS FIFO's rules;
//! - [`clients`]: API calls over the router;
//! - [`scheduler`]: the steps; [`oracle`]: the invariants, checked from the
//!   venue's audit and the Balances ledger, never from the platform's own
//!   summaries;
//! - [`mutants`]: deliberate bugs the oracle must catch;
//! - [`campaign`]: many seeds over the worker threads, and their report;
//! - [`trace`]: what a replayed seed did, line by line.
//!
//! [`sim_exchange`] is the system tests' in-process exchange adapter (the
//! one the `Exchange` conformance suite runs against), compiled into this
//! crate as it is.

#[path = "../../support/sim_exchange.rs"]
pub mod sim_exchange;

pub mod campaign;
pub mod clients;
pub mod faults;
pub mod mutants;
pub mod network;
pub mod oracle;
pub mod ports;
pub mod queue;
pub mod scenario;
pub mod scheduler;
pub mod trace;
pub mod webhooks;
pub mod world;

pub use campaign::{run_seed, run_seeds, Campaign, RunReport};
pub use faults::{all_crash_points, CrashPoint};
pub use mutants::Mutant;
