//! Command-line options (also readable from `EXCHANGE_SIM_*` variables).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use crate::app::{Settings, DEFAULT_TICK_MS};
use crate::calendar::{DEFAULT_CLOSE_UTC_MS, DEFAULT_GTC_MAX_DAYS};
use crate::engine::EngineConfig;
use crate::faults::FaultConfig;
use crate::hostile::HostileConfig;
use crate::http::ResponseLatency;
use crate::signature::Secret;
use crate::venue::VenueProfile;
use crate::webhooks::WebhookConfig;

const AFTER_HELP: &str = "\
ROUTES (problems are application/problem+json, type urn:exchange-sim:problem:<slug>):
  POST   /v1/orders                                 place (idempotent on client_order_id; 201 new, 200 replay)
  GET    /v1/orders?trade_date=YYYY-MM-DD&page_token=&limit=
                                                    the orders accepted that trade date, without executions
  GET    /v1/orders/{order_id}                      order by exchange order id, with its executions
  DELETE /v1/orders/{order_id}                      cancel by exchange order id (every venue); 404 unknown_order
  GET    /v1/orders:by-client-id/{client_order_id}  order by client order id
  DELETE /v1/orders:by-client-id/{client_order_id}  cancel by client order id: a tombstone venue tombstones an
                                                    unknown id, a deadline venue answers 404 unknown_order,
                                                    a plain venue 405 cancel_by_order_id_only
  GET    /v1/orders/{order_id}/executions?page_token=&limit=
  GET    /v1/executions?trade_date=YYYY-MM-DD&page_token=&limit=
                                                    every execution of that trade date, oldest first
  GET    /v1/quotes/{symbol}
  GET    /v1/time              {\"now_ms\", \"now\"}: the venue's clock (every response's Date header has it too)
  GET    /v1/venue             the venue profile and what a client may rely on
  GET    /admin/audit          every order, execution, tombstone, rejected request, hostile event; fault counters
  POST   /admin/events         send any event (webhook payload shape; event_id, occurred_at optional) as a webhook
  GET    /admin/faults         current fault configuration
  PUT    /admin/faults         replace it (JSON, same shape as --faults)
  POST   /admin/heal           no faults from now on
  GET    /healthz

VENUE PROFILES (--venue):
  tombstone  expire_at required and enforced on arrival; cancelling an unknown client id tombstones it (default)
  deadline   expire_at required and enforced on arrival; cancelling an unknown client id is 404, stores nothing
  plain      no request deadline (a body with expire_at is 400 unsupported_field); cancel by order id only

TIME IN FORCE (place body \"time_in_force\"):
  day  (default) expires at the first session close (--close-utc-ms) after acceptance
  gtc  rests across closes, expires --gtc-max-days days after its first close
  ioc  fills at once whatever is marketable at acceptance, cancels the rest

FAULTS JSON (--faults / --faults-file / PUT /admin/faults), every field optional:
  {\"all\": {\"fail_before_5xx\": 0.1, \"fail_before_reset\": 0, \"fail_after_5xx\": 0.1,
           \"fail_after_reset\": 0, \"fail_after_timeout\": 0, \"latency_probability\": 0, \"latency_ms\": 0},
   \"operations\": {\"place\": {...}, \"get_order\": {...}, \"get_order_by_client_id\": {...},
                  \"list_executions\": {...}, \"cancel\": {...}, \"quote\": {...},
                  \"list_orders\": {...}, \"list_day_executions\": {...}},
   \"webhooks\": {\"drop\": 0, \"duplicate\": 0, \"reorder\": 0, \"delay\": 0, \"delay_ms\": 0, \"outage_ms\": 0},
   \"timeout_delay_ms\": 35000}
  `operations` entries replace `all` for that operation. The --fail-*/--latency-probability/--latency-ms/
  --webhook-* flags below override the matching fields of `all` / `webhooks`. (Fault latency is random
  per request; --latency-ms-min/--latency-ms-max is the venue's own latency on every /v1 request.)

HOSTILE JSON (--hostile-config; implies --hostile), every field optional, defaults are the --hostile rates:
  {\"phantom_order\": 0.01, \"refused_order_fill\": 0.1, \"exec_id_reused\": 0.02,
   \"status_before_executions\": 0.05, \"execution_after_status\": 0.05, \"late_execution_ms\": 2000}
  phantom_order: per accepted order, an execution + filled status for an order the venue never held;
  refused_order_fill: per refused place or unknown-id cancel, an execution for that client order id;
  exec_id_reused: per execution, the same exec_id again with another quantity or price;
  status_before_executions: per order, its final status sent before its last 1-3 executions;
  execution_after_status: per order, its last execution sent late_execution_ms after its final status.
  REST stays truthful; every such event is listed in GET /admin/audit (hostile_events).";

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
    /// What the venue guarantees: tombstone (the original behaviour), deadline (Binance-like)
    /// or plain (Alpaca-like); see VENUE PROFILES below.
    #[arg(long, value_enum, default_value_t = VenueProfile::Tombstone)]
    pub venue: VenueProfile,
    /// Fewest executions an order fills in.
    #[arg(long, default_value_t = 1)]
    pub min_chunks: u32,
    /// Most executions an order fills in (at most 10000; never more than its
    /// quantity in shares).
    #[arg(long, default_value_t = 3)]
    pub max_chunks: u32,
    /// Heavy-tailed executions per order: Pareto shape (0.1 to 10) with scale
    /// --min-chunks, capped at --max-chunks. 1.0 gives half the orders 1
    /// execution, 1% 100+, 0.1% 1000+. Absent: uniform in min..=max.
    #[arg(long)]
    pub chunk_tail_alpha: Option<f64>,
    /// Shortest time to the first / next fill, ms (0: many executions can
    /// share one millisecond).
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
    /// Session close, ms after UTC midnight, every day (default 20:00 UTC).
    #[arg(long, default_value_t = DEFAULT_CLOSE_UTC_MS)]
    pub close_utc_ms: u64,
    /// A GTC order expires this many days after its first close.
    #[arg(long, default_value_t = DEFAULT_GTC_MAX_DAYS)]
    pub gtc_max_days: u32,
    /// An order still open this long after acceptance expires, ms, whatever
    /// its time in force; 0 (default) = off.
    #[arg(long, default_value_t = 0)]
    pub order_lifetime_ms: u64,
    /// Cap market orders this many basis points from the quote at
    /// acceptance; absent (default): no venue collar, a market order fills at
    /// whatever the price is.
    #[arg(long)]
    pub collar_bps: Option<u64>,
    /// `false`: a broken venue that fills limit orders at the quote however
    /// far through their limit.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub honours_limits: bool,
    /// Chance per quote step (1 s) that a price gaps by up to --gap-max-bps,
    /// up or down; 0 (default): a slow random walk only.
    #[arg(long, default_value_t = 0.0)]
    pub gap_probability: f64,
    /// Largest gap, basis points (2000 = 20%; at most 5000).
    #[arg(long, default_value_t = 2_000)]
    pub gap_max_bps: u64,
    /// The venue's clock runs this far ahead of the system clock, ms
    /// (negative: behind). Deadlines, trade dates, timestamps, Date headers
    /// and /v1/time use it.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_ms: i64,
    /// Shortest venue latency of every /v1 request, ms, waited before the
    /// request is processed (so a deadline is checked at send + latency).
    #[arg(long, default_value_t = 0)]
    pub latency_ms_min: u64,
    /// Longest venue latency, ms (0: none).
    #[arg(long, default_value_t = 0)]
    pub latency_ms_max: u64,
    /// Also wait a latency draw after processing, before answering.
    #[arg(long)]
    pub latency_after: bool,
    /// Send contradicting webhook reports at the default rates (see HOSTILE
    /// JSON below); REST stays truthful.
    #[arg(long)]
    pub hostile: bool,
    /// Hostile rates as JSON (implies --hostile).
    #[arg(long)]
    pub hostile_config: Option<String>,
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
        let hostile = match (&self.hostile_config, self.hostile) {
            (Some(json), _) => {
                Some(serde_json::from_str::<HostileConfig>(json).context("--hostile-config")?)
            }
            (None, true) => Some(HostileConfig::default()),
            (None, false) => None,
        };
        let engine = EngineConfig {
            seed,
            venue: self.venue,
            min_chunks: self.min_chunks,
            max_chunks: self.max_chunks,
            chunk_tail_alpha: self.chunk_tail_alpha,
            fill_interval_min_ms: self.fill_interval_min_ms,
            fill_interval_max_ms: self.fill_interval_max_ms,
            cancel_probability: self.cancel_probability,
            expire_probability: self.expire_probability,
            close_utc_ms: self.close_utc_ms,
            gtc_max_days: self.gtc_max_days,
            order_lifetime_ms: self.order_lifetime_ms,
            collar_bps: self.collar_bps,
            honours_limits: self.honours_limits,
            gap_probability: self.gap_probability,
            gap_max_bps: self.gap_max_bps,
            hostile,
        };
        engine.validate()?;
        let latency = ResponseLatency {
            min_ms: self.latency_ms_min,
            max_ms: self.latency_ms_max,
            after: self.latency_after,
        };
        latency.validate().map_err(anyhow::Error::msg)?;
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
            clock_offset_ms: self.clock_offset_ms,
            latency,
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
        assert!(bad(&["--max-chunks", "10001"]));
        assert!(bad(&["--gap-probability", "0.1", "--gap-max-bps", "9000"]));
        assert!(bad(&["--latency-ms-min", "50", "--latency-ms-max", "10"]));
        assert!(bad(&["--hostile-config", "{\"phantom_order\":2}"]));
        assert!(bad(&["--chunk-tail-alpha", "0"]));
    }

    #[test]
    fn venue_market_and_hostile_options_reach_the_settings() {
        let cli = Cli::parse_from([
            "exchange-sim",
            "--venue",
            "plain",
            "--clock-offset-ms",
            "-2500",
            "--latency-ms-min",
            "5",
            "--latency-ms-max",
            "20",
            "--honours-limits",
            "false",
            "--gap-probability",
            "0.01",
            "--max-chunks",
            "10000",
            "--chunk-tail-alpha",
            "1.0",
            "--hostile-config",
            r#"{"phantom_order":0.5}"#,
        ]);
        let s = cli.settings(1).expect("settings");
        assert_eq!(s.engine.venue, VenueProfile::Plain);
        assert_eq!(s.clock_offset_ms, -2_500);
        assert_eq!((s.latency.min_ms, s.latency.max_ms), (5, 20));
        assert!(!s.engine.honours_limits);
        assert_eq!(s.engine.max_chunks, 10_000);
        assert_eq!(s.engine.collar_bps, None);
        let hostile = s.engine.hostile.expect("hostile");
        assert_eq!(hostile.phantom_order, 0.5);
        assert_eq!(
            hostile.exec_id_reused,
            HostileConfig::default().exec_id_reused
        );
        let defaults = Cli::parse_from(["exchange-sim"])
            .settings(1)
            .expect("defaults");
        assert_eq!(
            defaults.engine,
            EngineConfig {
                seed: 1,
                ..EngineConfig::default()
            }
        );
    }
}
