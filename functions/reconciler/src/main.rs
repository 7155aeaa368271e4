//! Lambda entry point of the reconciler: build the clients once, run on each schedule tick.

use app::{Clock, SystemClock};
use aws_adapters::order_service::{aws_orders, OrderServiceSettings};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use reconciler::{run_once, Settings};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    let service = OrderServiceSettings::from_env()?;
    let settings = Settings::from_env()?;
    let config = aws_config::load_from_env().await;
    let orders = aws_orders(&config, &service)?;
    let (orders, settings) = (&orders, &settings);
    // The schedule's payload carries nothing the run needs.
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let time_left_ms = event.context.deadline.saturating_sub(SystemClock.now_ms());
            Ok::<_, Error>(run_once(orders, settings, time_left_ms).await)
        },
    ))
    .await
}
