//! Lambda entry point of the fill webhook: build the SQS and Secrets Manager
//! clients once, serve the router through API Gateway.

use app::SystemClock;
use aws_adapters::secrets::SecretsManagerSecret;
use aws_adapters::sqs::SqsFillQueue;
use fill_webhook::{router, CachedKeys, Settings};

mod metrics;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_current_span(true)
        .without_time() // CloudWatch stamps each line.
        .init();

    // A bad variable stops the cold start with a message naming it.
    let settings = Settings::from_env()?;
    let config = aws_config::load_from_env().await;
    let queue = SqsFillQueue::new(
        aws_sdk_sqs::Client::new(&config),
        settings.fill_queue_url,
        settings.fill_dead_letter_queue_url,
    );
    let secret = SecretsManagerSecret::from_config(&config, settings.secret_id);
    let keys = CachedKeys::new(secret, SystemClock, settings.secret_cache);
    let app = router(queue, SystemClock, keys, settings.tolerance)
        // One metric line per delivery, once the handler has finished.
        .layer(axum::middleware::from_fn(metrics::record));
    lambda_http::run(app).await
}
