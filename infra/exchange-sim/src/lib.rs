//! A broker-like exchange for tests and local runs.
//!
//! The matching logic is a plain library ([`engine::Engine`]): seeded
//! randomness (`ChaCha8Rng`), time passed in as `now_ms`, no I/O, so a
//! deterministic simulation can drive it in-process. Around it, and separate
//! from it: the REST API ([`http`]), the accept loop that can reset a
//! connection ([`server`]), signed webhook delivery ([`webhooks`],
//! [`signature`]) and fault injection ([`faults`]).
//!
//! Module map:
//! - [`money`]: `Price` (integer cents) and `Quantity` (whole shares), parsed
//!   from decimal strings, never floats;
//! - [`quotes`]: the symbol table and its seeded random-walk quotes;
//! - [`order`]: order, execution and event types; place-request validation;
//! - [`engine`]: place / lookup / cancel / tombstone / fills / audit;
//! - [`faults`]: REST and webhook fault configuration and seeded decisions;
//! - [`signature`]: Standard Webhooks `sign` / `verify` (reusable by receivers);
//! - [`webhooks`]: delivery with retries, backoff and webhook faults;
//! - [`http`]: the axum router; [`server`]: the accept loop; [`app`]: wiring;
//! - [`cli`]: command-line options; [`time`]: `Clock` and RFC 3339.
//!
//! REST routes (errors are `application/problem+json`):
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/orders` | `201` new order, `200` same request again, `400` invalid, `409` id tombstoned, `413` body over 16 KiB, `422` id reused with another request or deadline passed |
//! | `GET /v1/orders/{order_id}` | the order with its executions, or `404` |
//! | `GET /v1/orders:by-client-id/{client_order_id}` | the same, by client id |
//! | `DELETE /v1/orders:by-client-id/{client_order_id}` | `200` `{client_order_id, outcome: cancelled\|already_terminal\|tombstoned, order}` |
//! | `GET /v1/orders/{order_id}/executions?page_token=&limit=` | `{executions, next_page_token}` |
//! | `GET /v1/quotes/{symbol}` | `{symbol, bid, ask, last, at}` |
//! | `GET /admin/audit` | every order and execution, tombstones, rejected requests, fault counters |
//! | `GET`/`PUT /admin/faults`, `POST /admin/heal` | read / replace the fault configuration; heal |
//!
//! Place body: `{"client_order_id", "account", "symbol", "side": "buy"|"sell",
//! "type": "market"|"limit", "quantity": "100", "limit_price": "187.25",
//! "expire_at": "2024-03-01T12:00:05Z" | <unix ms>}`.
//!
//! A "reset" fault closes the TCP connection with `SO_LINGER` = 0 (an RST)
//! instead of answering; see [`server`].

pub mod app;
pub mod cli;
pub mod engine;
pub mod faults;
pub mod http;
pub mod money;
pub mod order;
pub mod quotes;
pub mod server;
pub mod signature;
pub mod time;
pub mod webhooks;

pub use engine::{Engine, EngineConfig};
pub use order::{ExchangeEvent, Order, OrderStatus, PlaceOrder};
