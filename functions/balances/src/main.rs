//! Lambda entry point of the Balances service: build the clients once, serve
//! the router through API Gateway.

use app::{BalancesService, SystemClock};
use aws_adapters::dynamodb::DynamoLedgerStore;
use balances::{router, Settings};

mod metrics;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    let settings = Settings::from_env()?;
    let config = aws_config::load_from_env().await;
    let store = DynamoLedgerStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        settings.balances_table,
        settings.catalog.clone(),
    );
    let service = BalancesService::new(store, SystemClock);
    let app = router(service, settings.catalog, settings.roles)
        // One metric line per answer, once the handler has finished.
        .layer(axum::middleware::from_fn(metrics::record));
    lambda_http::run(app).await
}
