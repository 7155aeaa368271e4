//! The exchange's fill webhook receiver (API Gateway + Lambda).
//!
//! `POST /webhooks/exchange`, cheapest refusals first: a body over the limit
//! is `413` and an unsigned delivery (or one outside the timestamp
//! tolerance) `401`, before the body is read or a secret looked up; then the
//! Standard Webhooks signature is verified against the signing secrets read
//! at run time (`401` otherwise; `503` when no secret can be had), the event
//! parsed (a well-signed but unreadable one is acknowledged `202` and set
//! aside on the dead-letter queue, once per webhook id), the report put on
//! the fill queue, and `2xx` answered only once the queue accepted it
//! (`503` otherwise, so the exchange delivers again). Duplicates are
//! harmless: the fill processor de-duplicates on the execution id.
//!
//! - [`signature`]: Standard Webhooks verification (secrets, rotation, tolerance).
//! - [`secrets`]: the signing secrets from Secrets Manager, cached for a
//!   period, so a rotation needs no redeploy.
//! - [`payload`]: the exchange's event JSON to an `ExchangeReport`.
//! - [`routes`]: the route, generic over the `FillQueue` and `Clock` ports.
//! - [`settings`]: the environment variables, validated at cold start.
//!
//! The same [`router`] serves Lambda (`main.rs`), the local runner and tests.

pub mod payload;
mod problem;
pub mod routes;
pub mod secrets;
pub mod settings;
pub mod signature;

pub use payload::MAX_BODY_BYTES;
pub use problem::{problem_type, Problem, PROBLEM_CONTENT_TYPE};
pub use routes::{router, Accepted, WEBHOOK_PATH};
pub use secrets::{CachedKeys, FixedKeys, SecretValue, SigningKeys};
pub use settings::{Settings, SettingsError};
