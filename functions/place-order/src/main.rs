//! Lambda entry point of the orders API: build the clients once, serve the router.

use aws_adapters::order_service::{aws_orders, OrderServiceSettings};
use domain::Catalog;
use place_order::{router_with, AccountMapping};

mod metrics;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    let settings = OrderServiceSettings::from_env()?;
    let config = aws_config::load_from_env().await;
    let orders = aws_orders(&config, &settings)?;
    let app = router_with(orders, Catalog::us_equities(), AccountMapping::from_env())
        // One metric line per answer, once the handler has finished.
        .layer(axum::middleware::from_fn(metrics::record));
    lambda_http::run(app).await
}
