//! Lambda entry point of the fill processor: build the clients once, handle batches.

use app::orders::Orders;
use app::SystemClock;
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::DynamoOrderStore;
use aws_adapters::exchange_http::HttpExchange;
use aws_lambda_events::event::sqs::SqsEvent;
use domain::Catalog;
use fill_processor::{handle_batch, Settings};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    let settings = Settings::from_env()?;
    let config = aws_config::load_from_env().await;
    let catalog = Catalog::us_equities();
    let store = DynamoOrderStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        settings.trading_table.clone(),
    );
    let balances = HttpBalances::new(
        &settings.balances_url,
        catalog.clone(),
        settings.call_timeout,
    )?;
    // The Balances API is IAM-authorised in AWS (SigV4); the local stack's is not.
    let balances = match std::env::var("BALANCES_IAM_AUTH").as_deref() {
        Ok("true") => balances.signed_with(&config)?,
        _ => balances,
    };
    let exchange = HttpExchange::new(&settings.exchange_base_url, catalog, settings.call_timeout)?;
    let orders = Orders::new(store, balances, exchange, SystemClock, settings.orders);
    let orders = &orders;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_batch(orders, event.payload).await)
    }))
    .await
}
