//! The Balances service as an HTTP API (API Gateway HTTP API, IAM-authorised).
//!
//! Routes:
//! - `POST /accounts/{account}/operations` with header `Idempotency-Key` and an
//!   operation (`deposit`, `reserve`, `release`, `settle`): runs it once per key.
//!   `200` with the record; `422` (problem+json carrying the record) when
//!   refused for insufficient funds; a replay answers the same, with
//!   `Idempotent-Replayed: true`.
//! - `GET /accounts/{account}/operations/{key}`: the stored record, or `404`.
//! - `GET /accounts/{account}/balances`: available and reserved per asset.
//!
//! The same [`router`] serves Lambda (`main.rs`), the local runner and tests.

mod problem;
mod routes;
mod settings;

pub use routes::{router, MAX_BODY_BYTES};
pub use settings::{Settings, SettingsError};
