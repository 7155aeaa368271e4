//! The exchange's fill webhook receiver (API Gateway + Lambda).
//!
//! `POST /webhooks/exchange`: verify the Standard Webhooks signature and
//! timestamp (`401` otherwise), parse the event (`400` for a well-signed but
//! unreadable one, which is set aside on the dead-letter queue), put the
//! report on the fill queue and answer `2xx` only once the queue accepted it
//! (`503` otherwise, so the exchange delivers again). Duplicates are harmless:
//! the fill processor de-duplicates on the execution id.
//!
//! - [`signature`]: Standard Webhooks verification (secrets, rotation, tolerance).
//! - [`payload`]: the exchange's event JSON to an `ExchangeReport`.
//! - [`routes`]: the route, generic over the `FillQueue` and `Clock` ports.
//! - [`settings`]: the environment variables, validated at cold start.
//!
//! The same [`router`] serves Lambda (`main.rs`), the local runner and tests.

pub mod payload;
mod problem;
pub mod routes;
pub mod settings;
pub mod signature;

pub use payload::MAX_BODY_BYTES;
pub use problem::{problem_type, Problem, PROBLEM_CONTENT_TYPE};
pub use routes::{router, Accepted, WEBHOOK_PATH};
pub use settings::{Settings, SettingsError};
