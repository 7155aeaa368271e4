//! Adapters of the application's ports to AWS services and HTTP.
//!
//! - [`dynamodb`]: the DynamoDB `LedgerStore` (Balances table) and `OrderStore`
//!   (trading table), and the metering layer.
//! - [`balances_http`]: the Balances service's JSON wire format (shared by the
//!   service and its client) and the HTTP client implementing `Balances`.
//! - [`exchange_http`]: the HTTP client of the exchange's REST API,
//!   implementing `Exchange`.
//! - [`sqs`]: the SQS `FillQueue` (fill queue and its dead-letter queue).
//! - [`secrets`]: a secret's current value from Secrets Manager, read at run time.
//! - [`http_edge`]: reading the idempotency key and content type of a request.
//! - [`https`]: the HTTPS client of the HTTP adapters (one TLS stack, compiled-in roots).
//! - [`metrics`]: CloudWatch Embedded Metric Format lines, one shape for every function.
//! - [`order_service`]: settings and use cases shared by the functions that drive orders.
//!
//! Endpoints come from the SDK's standard configuration
//! (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`,
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`, ...), so the local
//! stack needs no code path of its own.

pub mod balances_http;
pub mod dynamodb;
pub mod exchange_http;
pub mod http_edge;
pub mod https;
pub mod metrics;
pub mod order_service;
pub mod secrets;
pub mod sqs;

/// An error with every source under it (`a: b: c`): an HTTP client's own
/// message ("error sending request") does not say whether it timed out, was
/// reset or refused; its sources do.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}
