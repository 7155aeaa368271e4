//! Lambda entry point of the fill processor: build the clients once, handle batches.

use aws_adapters::order_service::{aws_orders, OrderServiceSettings};
use aws_lambda_events::event::sqs::SqsEvent;
use fill_processor::handle_batch;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    let settings = OrderServiceSettings::from_env()?;
    let config = aws_config::load_from_env().await;
    let orders = aws_orders(&config, &settings)?;
    let orders = &orders;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle_batch(orders, event.payload).await)
    }))
    .await
}
