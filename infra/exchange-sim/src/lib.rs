//! A broker-like exchange for tests and local runs.
//!
//! The matching logic is a plain library ([`engine::Engine`]): seeded
//! randomness (`ChaCha8Rng`), time passed in as `now_ms` (the venue's time),
//! no I/O, so a deterministic simulation can drive it in-process. Around it,
//! and separate from it: the REST API ([`http`]), the accept loop that can
//! reset a connection ([`server`]), signed webhook delivery ([`webhooks`],
//! [`signature`]) and fault injection ([`faults`]).
//!
//! Module map:
//! - [`money`]: `Price` (integer cents) and `Quantity` (whole shares), parsed
//!   from decimal strings, never floats;
//! - [`quotes`]: the symbol table and its seeded random-walk quotes, with
//!   optional gaps;
//! - [`order`]: order, execution and event types, time in force; place-request
//!   validation;
//! - [`engine`]: place / lookup / cancel / tombstone / fills / time in force /
//!   resting books / day lists / audit;
//! - [`venue`]: venue profiles (`tombstone`, `deadline`, `plain`) and what each
//!   guarantees; [`calendar`]: session closes and trade dates;
//! - [`hostile`]: webhook reports that contradict the venue's records;
//! - [`faults`]: REST and webhook fault configuration and seeded decisions;
//! - [`signature`]: Standard Webhooks `sign` / `verify` (reusable by receivers);
//! - [`webhooks`]: delivery with retries, backoff and webhook faults;
//! - [`http`]: the axum router, venue latency and `Date` headers;
//!   [`server`]: the accept loop; [`app`]: wiring;
//! - [`cli`]: command-line options; [`time`]: `Clock`, the venue's
//!   `OffsetClock`, RFC 3339 and HTTP dates.
//!
//! REST routes (errors are `application/problem+json`, `type`
//! `urn:exchange-sim:problem:<slug>`; every response has a `Date` header from
//! the venue's clock):
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/orders` | `201` new order, `200` same request again, `400` invalid (`validation`, `malformed-json`; `unsupported_field` for `expire_at` at a `plain` venue), `409` id tombstoned, `413` body over 16 KiB, `422` id reused with another request (`idempotency-mismatch`) or deadline passed (`deadline-passed`) |
//! | `GET /v1/orders?trade_date=YYYY-MM-DD&page_token=&limit=` | `{orders, next_page_token}`: the orders accepted into that session, without executions (each with `execution_count`) |
//! | `GET /v1/orders/{order_id}` | the order with its executions, or `404` (`order-not-found`) |
//! | `DELETE /v1/orders/{order_id}` | cancel by the venue's id (every venue): `200` `{client_order_id, outcome: cancelled\|already_terminal, order}`, or `404` `unknown_order` |
//! | `GET /v1/orders:by-client-id/{client_order_id}` | the same, by client id |
//! | `DELETE /v1/orders:by-client-id/{client_order_id}` | `200` `{client_order_id, outcome: cancelled\|already_terminal\|tombstoned, order}`; an unknown id is tombstoned (`tombstone` venue) or `404` `unknown_order` (`deadline`); `405` `cancel_by_order_id_only` with `Allow: GET` at a `plain` venue |
//! | `GET /v1/orders/{order_id}/executions?page_token=&limit=` | `{executions, next_page_token}` |
//! | `GET /v1/executions?trade_date=YYYY-MM-DD&page_token=&limit=` | `{executions, next_page_token}`: every execution of that session, oldest first |
//! | `GET /v1/quotes/{symbol}` | `{symbol, bid, ask, last, at}` |
//! | `GET /v1/time` | `{now_ms, now}`: the venue's clock |
//! | `GET /v1/venue` | the profile and its capabilities ([`venue::VenueCapabilities`]) |
//! | `GET /admin/audit` | every order and execution, tombstones, rejected requests, hostile events, fault counters |
//! | `POST /admin/events` | `202`: sends the given event (webhook payload shape; `event_id`, `occurred_at` optional) as a signed webhook |
//! | `GET`/`PUT /admin/faults`, `POST /admin/heal` | read / replace the fault configuration; heal |
//!
//! Pages: `limit` defaults to 100, at most 500; `page_token` is the opaque
//! offset the previous page returned.
//!
//! Place body: `{"client_order_id", "account", "symbol", "side": "buy"|"sell",
//! "type": "market"|"limit", "quantity": "100", "limit_price": "187.25",
//! "expire_at": "2024-03-01T12:00:05Z" | <unix ms>, "time_in_force":
//! "day"|"gtc"|"ioc"}`. `expire_at` is required at `tombstone` and
//! `deadline` venues and refused at `plain` ones; `time_in_force` defaults to
//! `day`.
//!
//! Behaviour, all seeded (see [`engine::EngineConfig`]):
//! - **Venue profile** (`venue`): what proves a lost order was never placed;
//!   see [`venue`].
//! - **Time in force**: DAY expires at the first session close after
//!   acceptance (`close_utc_ms`, default 20:00 UTC, every calendar day), GTC
//!   `gtc_max_days` (90) later, IOC fills what is marketable at acceptance and
//!   cancels the rest. Each order carries `time_in_force`, `trade_date` (date
//!   of its first close) and `good_until`; each execution its own
//!   `trade_date`. `order_lifetime_ms` (0 = off) ends any order sooner.
//! - **Market**: quotes take a slow random walk and, with `gap_probability`
//!   per second, gap by up to `gap_max_bps`. Market orders have no venue
//!   collar unless `collar_bps` is set. A limit that is not marketable rests
//!   until the quote reaches it; `honours_limits: false` fills limits at the
//!   quote however far through their price. Executions per order are uniform
//!   in `min_chunks..=max_chunks` (at most 10,000) or, with
//!   `chunk_tail_alpha`, Pareto-distributed; `fill_interval_min_ms` may be 0.
//! - **Venue clock and latency** ([`app::Settings`]): `clock_offset_ms` moves
//!   the venue's clock off the platform's; `latency` delays every `/v1`
//!   request before (and optionally after) it is processed.
//! - **Hostile reports** (`hostile`): webhook events that contradict the
//!   venue's records; REST stays truthful; see [`hostile`].
//!
//! A "reset" fault closes the TCP connection with `SO_LINGER` = 0 (an RST)
//! instead of answering; see [`server`].

pub mod app;
pub mod calendar;
pub mod cli;
pub mod engine;
pub mod faults;
pub mod hostile;
pub mod http;
pub mod money;
pub mod order;
pub mod quotes;
pub mod server;
pub mod signature;
pub mod time;
pub mod venue;
pub mod webhooks;

pub use engine::{Engine, EngineConfig};
pub use order::{ExchangeEvent, Order, OrderStatus, PlaceOrder};
