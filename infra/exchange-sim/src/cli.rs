//! Command-line options (also readable from `EXCHANGE_SIM_*` variables).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::app::{Settings, DEFAULT_TICK_MS};
use crate::engine::EngineConfig;
use crate::faults::FaultConfig;
use crate::signature::Secret;
use crate::webhooks::WebhookConfig;

const AFTER_HELP: &str = "\
ROUTES:
  POST   /v1/orders                                 place (idempotent on client_order_id; 201 new, 200 replay)
  GET    /v1/orders/{order_id}                      order by exchange order id
  GET    /v1/orders:by-client-id/{client_order_id}  order by client order id
  DELETE /v1/orders:by-client-id/{client_order_id}  cancel; an unknown id is tombstoned
  GET    /v1/orders/{order_id}/executions?page_token=&limit=
  GET    /v1/quotes/{symbol}
  GET    /admin/audit          every order, execution, tombstone, rejected request; fault counters
  GET    /admin/faults         current fault configuration
  PUT    /admin/faults         replace it (JSON, same shape as --faults)
  POST   /admin/heal           no faults from now on
  GET    /healthz

FAULTS JSON (--faults / --faults-file / PUT /admin/faults), every field optional:
  {\"all\": {\"fail_before_5xx\": 0.1, \"fail_before_reset\": 0, \"fail_after_5xx\": 0.1,
           \"fail_after_reset\": 0, \"fail_after_timeout\": 0, \"latency_probability\": 0, \"latency_ms\": 0},
   \"operations\": {\"place\": {...}, \"get_order\": {...}, \"get_order_by_client_id\": {...},
                  \"list_executions\": {...}, \"cancel\": {...}, \"quote\": {...}},
   \"webhooks\": {\"drop\": 0, \"duplicate\": 0, \"reorder\": 0, \"delay\": 0, \"delay_ms\": 0, \"outage_ms\": 0},
   \"timeout_delay_ms\": 35000}
  `operations` entries replace `all` for that operation. The --fail-*/--latency-*/--webhook-* flags
  below override the matching fields of `all` / `webhooks`.";

/// A broker-like exchange for tests and local runs: places and fills orders,
/// reports executions by signed webhooks (Standard Webhooks), injects faults,
/// and exposes an audit of everything it holds.
#[derive(Debug, Clone, Parser)]
#[command(name = "exchange-sim", version, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "EXCHANGE_SIM_LISTEN", default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// Seed of every random choice (fills, quotes, faults); random if absent.
    /// Printed on start so a run can be replayed.
    #[arg(long, env = "EXCHANGE_SIM_SEED")]
    pub seed: Option<u64>,
    /// Where to POST execution and order-status webhooks; none sent if absent.
    #[arg(long, env = "EXCHANGE_SIM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Signing secret, `whsec_<base64>` (required with --webhook-url).
    #[arg(long, env = "EXCHANGE_SIM_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Attempts per webhook delivery before giving up.
    #[arg(long, default_value_t = 30)]
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook attempt, ms.
    #[arg(long, default_value_t = 5_000)]
    pub webhook_attempt_timeout_ms: u64,
    /// Fewest executions an order fills in.
    #[arg(long, default_value_t = 1)]
    pub min_chunks: u32,
    /// Most executions an order fills in (at most 50).
    #[arg(long, default_value_t = 3)]
    pub max_chunks: u32,
    /// Shortest time to the first / next fill, ms.
    #[arg(long, default_value_t = 50)]
    pub fill_interval_min_ms: u64,
    /// Longest time to the first / next fill, ms.
    #[arg(long, default_value_t = 500)]
    pub fill_interval_max_ms: u64,
    /// Chance an order is cancelled by the exchange part-way.
    #[arg(long, default_value_t = 0.05)]
    pub cancel_probability: f64,
    /// Chance an order expires part-way.
    #[arg(long, default_value_t = 0.05)]
    pub expire_probability: f64,
    /// An order still open this long after acceptance expires, ms.
    #[arg(long, default_value_t = 60_000)]
    pub order_lifetime_ms: u64,
    /// Market orders fill within this many basis points of the quote at acceptance.
    #[arg(long, default_value_t = 500)]
    pub collar_bps: u64,
    /// How often the engine is advanced in the background, ms.
    #[arg(long, default_value_t = DEFAULT_TICK_MS)]
    pub tick_ms: u64,
    /// Fault configuration as JSON (see FAULTS JSON below).
    #[arg(long, conflicts_with = "faults_file")]
    pub faults: Option<String>,
    /// Fault configuration from a JSON file.
    #[arg(long)]
    pub faults_file: Option<PathBuf>,
    /// Every operation: chance to answer 503 without taking effect.
    #[arg(long)]
    pub fail_before_5xx: Option<f64>,
    /// Every operation: chance to reset the connection without taking effect.
    #[arg(long)]
    pub fail_before_reset: Option<f64>,
    /// Every operation: chance to take effect, then answer 503.
    #[arg(long)]
    pub fail_after_5xx: Option<f64>,
    /// Every operation: chance to take effect, then reset the connection.
    #[arg(long)]
    pub fail_after_reset: Option<f64>,
    /// Every operation: chance to take effect, then answer after --timeout-delay-ms.
    #[arg(long)]
    pub fail_after_timeout: Option<f64>,
    /// Every operation: chance of added latency.
    #[arg(long)]
    pub latency_probability: Option<f64>,
    /// Added latency, ms.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// How long a "timeout" answer is held back, ms (default 35000).
    #[arg(long)]
    pub timeout_delay_ms: Option<u64>,
    /// Chance a webhook is never delivered.
    #[arg(long)]
    pub webhook_drop: Option<f64>,
    /// Chance a webhook is delivered twice.
    #[arg(long)]
    pub webhook_duplicate: Option<f64>,
    /// Chance a webhook is delivered after the next one.
    #[arg(long)]
    pub webhook_reorder: Option<f64>,
    /// Chance a webhook is delayed by --webhook-delay-ms.
    #[arg(long)]
    pub webhook_delay: Option<f64>,
    /// Webhook delay, ms.
    #[arg(long)]
    pub webhook_delay_ms: Option<u64>,
    /// Deliver no webhooks for this long after start, ms.
    #[arg(long)]
    pub webhook_outage_ms: Option<u64>,
}

impl Cli {
    /// The seed to use: the given one, or one from the clock.
    pub fn seed_or_random(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            (t as u64) ^ ((t >> 64) as u64)
        })
    }

    pub fn settings(&self, seed: u64) -> anyhow::Result<Settings> {
        let engine = EngineConfig {
            seed,
            min_chunks: self.min_chunks,
            max_chunks: self.max_chunks,
            fill_interval_min_ms: self.fill_interval_min_ms,
            fill_interval_max_ms: self.fill_interval_max_ms,
            cancel_probability: self.cancel_probability,
            expire_probability: self.expire_probability,
            order_lifetime_ms: self.order_lifetime_ms,
            collar_bps: self.collar_bps,
        };
        engine.validate()?;
        let webhook = match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => {
                let secret = Secret::parse(secret).context("--webhook-secret")?;
                let mut cfg = WebhookConfig::new(url.clone(), secret);
                cfg.max_attempts = self.webhook_max_attempts.max(1);
                cfg.attempt_timeout_ms = self.webhook_attempt_timeout_ms.max(1);
                Some(cfg)
            }
            (Some(_), None) => anyhow::bail!("--webhook-url needs --webhook-secret"),
            (None, _) => None,
        };
        let faults = self.faults()?;
        Ok(Settings {
            engine,
            faults,
            webhook,
            tick_ms: self.tick_ms.max(1),
        })
    }

    fn faults(&self) -> anyhow::Result<FaultConfig> {
        let mut f: FaultConfig = match (&self.faults, &self.faults_file) {
            (Some(json), _) => serde_json::from_str(json).context("--faults")?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            (None, None) => FaultConfig::healthy(),
        };
        let set = |dst: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut f.all.fail_before_5xx, self.fail_before_5xx);
        set(&mut f.all.fail_before_reset, self.fail_before_reset);
        set(&mut f.all.fail_after_5xx, self.fail_after_5xx);
        set(&mut f.all.fail_after_reset, self.fail_after_reset);
        set(&mut f.all.fail_after_timeout, self.fail_after_timeout);
        set(&mut f.all.latency_probability, self.latency_probability);
        set(&mut f.webhooks.drop, self.webhook_drop);
        set(&mut f.webhooks.duplicate, self.webhook_duplicate);
        set(&mut f.webhooks.reorder, self.webhook_reorder);
        set(&mut f.webhooks.delay, self.webhook_delay);
        f.all.latency_ms = self.latency_ms.unwrap_or(f.all.latency_ms);
        f.timeout_delay_ms = self.timeout_delay_ms.unwrap_or(f.timeout_delay_ms);
        f.webhooks.delay_ms = self.webhook_delay_ms.unwrap_or(f.webhooks.delay_ms);
        f.webhooks.outage_ms = self.webhook_outage_ms.unwrap_or(f.webhooks.outage_ms);
        f.validate()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_faults_json() {
        let cli = Cli::parse_from([
            "exchange-sim",
            "--faults",
            r#"{"all":{"fail_after_5xx":0.3},"webhooks":{"drop":0.1}}"#,
            "--fail-before-reset",
            "0.2",
            "--webhook-outage-ms",
            "1000",
        ]);
        let s = cli.settings(7).expect("settings");
        assert_eq!(s.faults.all.fail_after_5xx, 0.3);
        assert_eq!(s.faults.all.fail_before_reset, 0.2);
        assert_eq!(s.faults.webhooks.drop, 0.1);
        assert_eq!(s.faults.webhooks.outage_ms, 1000);
        assert_eq!(s.engine.seed, 7);
    }

    #[test]
    fn bad_options_are_refused() {
        let bad = |args: &[&str]| {
            let mut all = vec!["exchange-sim"];
            all.extend_from_slice(args);
            Cli::parse_from(all).settings(1).is_err()
        };
        assert!(bad(&["--webhook-url", "http://127.0.0.1:1/h"]));
        assert!(bad(&[
            "--webhook-url",
            "http://127.0.0.1:1/h",
            "--webhook-secret",
            "nope"
        ]));
        assert!(bad(&["--fail-before-5xx", "1.5"]));
        assert!(bad(&["--min-chunks", "5", "--max-chunks", "2"]));
        assert!(bad(&["--faults", "{\"nonsense\":1}"]));
    }
}
