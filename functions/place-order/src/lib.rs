//! The public orders API (API Gateway HTTP API with a JWT authorizer).
//!
//! Every route takes the caller's account from the verified token, mapped
//! from its `iss` and `sub` (any identity provider's subject works), and
//! needs a scope: `orders:read` for `GET`, `orders:write` for `POST` and
//! `DELETE` (`403` without it). See [`auth`].
//!
//! - `POST /orders` with `Idempotency-Key`: records the order and its key,
//!   reserves at Balances, places at the exchange. `201` placed (or further),
//!   `202` pending (an outcome is unknown; recovery finishes it), `422`
//!   rejected. A repeat with the same key answers the order as it stands,
//!   marked `Idempotent-Replayed: true`; the same key with another body is `422`.
//! - `GET /orders/{id}`: the order, its status, fills and every step record.
//! - `GET /orders?cursor=&limit=`: the account's orders, newest first.
//! - `DELETE /orders/{id}`: cancel at the exchange; the order closes through
//!   the normal path.
//!
//! The OpenAPI document is `openapi.yaml` beside this crate's manifest; a
//! test keeps it and [`ROUTES`] in step.

pub mod auth;
mod problem;
mod routes;
pub mod wire;

pub use auth::{
    required_scope, AccountMapping, ACCOUNT_CLAIM, ISSUER_CLAIM, READ_SCOPE, WRITE_SCOPE,
};
pub use problem::{problem_type, Problem, PROBLEM_CONTENT_TYPE};
pub use routes::{
    router, router_with, IDEMPOTENCY_KEY_HEADER, MAX_BODY_BYTES, REPLAYED_HEADER, ROUTES,
};
