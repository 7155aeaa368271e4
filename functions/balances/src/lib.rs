//! The Balances service as an HTTP API (API Gateway HTTP API, IAM-authorised).
//!
//! Routes (each caller's IAM role is checked first, see [`authz`]):
//! - `POST /accounts/{account}/operations` (trading roles) with header
//!   `Idempotency-Key` and an operation (`reserve`, `release`, `settle`):
//!   runs it once per key. `200` with the record; `422` (problem+json
//!   carrying the record) when refused for insufficient funds; a replay
//!   answers the same, with `Idempotent-Replayed: true`.
//! - `POST /admin/accounts/{account}/operations` (admin roles): the same
//!   for a `deposit`, the one operation that creates value.
//! - `GET /accounts/{account}/operations/{key}`: the stored record, or `404`.
//! - `GET /accounts/{account}/balances`: available and reserved per asset.
//!
//! A caller not allowed, or an operation sent to the other route, is `403`
//! (problem+json) and nothing is written.
//!
//! The same [`router`] serves Lambda (`main.rs`), the local runner and tests.

pub mod authz;
mod problem;
mod routes;
mod settings;

pub use authz::Roles;
pub use routes::{router, ADMIN_OPERATIONS_PATH, MAX_BODY_BYTES, TRADING_OPERATIONS_PATH};
pub use settings::{Settings, SettingsError};
