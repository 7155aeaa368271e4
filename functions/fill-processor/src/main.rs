//! Lambda entry point of the fill processor: build the clients once, handle batches.

use aws_adapters::order_service::{aws_orders, required_env, OrderServiceSettings};
use aws_adapters::sqs::SqsFillQueue;
use aws_lambda_events::event::sqs::SqsEvent;
use fill_processor::{handle_batch, metrics_line};
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
    // Reports that must not be applied go to the dead-letter queue with their reason.
    let dead_letters = required_env("FILL_DEAD_LETTER_QUEUE_URL")?;
    let set_aside = SqsFillQueue::new(aws_sdk_sqs::Client::new(&config), "", dead_letters);
    let (orders, set_aside) = (&orders, &set_aside);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline_ms = event.context.deadline;
        let (response, summary) = handle_batch(orders, set_aside, event.payload, deadline_ms).await;
        println!("{}", metrics_line(&summary));
        Ok::<_, Error>(response)
    }))
    .await
}
