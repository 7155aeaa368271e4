//! Fault injection for the REST API and webhook delivery, driven by its own
//! seeded RNG (separate from the engine's, so turning faults on or off never
//! changes what the engine does with the same inputs).
//!
//! REST faults, per operation, each a probability drawn once per request:
//! - `fail_before_5xx` / `fail_before_reset`: fail without taking effect;
//! - `fail_after_5xx` / `fail_after_reset` / `fail_after_timeout`: take effect
//!   (the order is stored, the cancel done), then answer 503, reset the
//!   connection, or answer only after `timeout_delay_ms` (past any sane
//!   caller timeout);
//! - `latency_probability` × `latency_ms`: added delay before handling.
//!
//! Webhook faults, per event: drop, duplicate, reorder (swap with the next
//! event), delay; and `outage_ms`, a period from when the configuration is
//! applied during which nothing is delivered (deliveries wait, then resume).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The REST operations faults can be set for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Place,
    GetOrder,
    GetOrderByClientId,
    ListExecutions,
    /// Cancel by client order id or by the venue's order id.
    Cancel,
    Quote,
    /// `GET /v1/orders?trade_date=`: the day's orders.
    ListOrders,
    /// `GET /v1/executions?trade_date=`: the day's executions.
    ListDayExecutions,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::Place,
        Operation::GetOrder,
        Operation::GetOrderByClientId,
        Operation::ListExecutions,
        Operation::Cancel,
        Operation::Quote,
        Operation::ListOrders,
        Operation::ListDayExecutions,
    ];
}

/// Default for `timeout_delay_ms`: past API Gateway's 30 s limit.
pub const DEFAULT_TIMEOUT_DELAY_MS: u64 = 35_000;
/// Largest accepted added latency or delay, so a typo cannot hang a test run.
pub const MAX_DELAY_MS: u64 = 600_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpFaults {
    pub fail_before_5xx: f64,
    pub fail_before_reset: f64,
    pub fail_after_5xx: f64,
    pub fail_after_reset: f64,
    pub fail_after_timeout: f64,
    pub latency_probability: f64,
    pub latency_ms: u64,
}

impl OpFaults {
    fn failure_rates(&self) -> [(Failure, bool, f64); 5] {
        [
            (Failure::Status5xx, true, self.fail_before_5xx),
            (Failure::Reset, true, self.fail_before_reset),
            (Failure::Status5xx, false, self.fail_after_5xx),
            (Failure::Reset, false, self.fail_after_reset),
            (Failure::Timeout, false, self.fail_after_timeout),
        ]
    }

    fn validate(&self, name: &str) -> Result<(), FaultConfigError> {
        let sum: f64 = self.failure_rates().iter().map(|r| r.2).sum();
        let rates = self.failure_rates().map(|r| r.2);
        if rates
            .iter()
            .chain([&self.latency_probability])
            .any(|p| !(0.0..=1.0).contains(p))
            || sum > 1.0
        {
            return Err(FaultConfigError(format!(
                "{name}: probabilities must be in [0, 1] and the five failure rates must sum to at most 1"
            )));
        }
        if self.latency_ms > MAX_DELAY_MS {
            return Err(FaultConfigError(format!(
                "{name}: latency_ms above {MAX_DELAY_MS}"
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFaults {
    pub drop: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub delay: f64,
    pub delay_ms: u64,
    /// Deliver nothing for this long after the configuration is applied.
    pub outage_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Faults for every operation without its own entry in `operations`.
    pub all: OpFaults,
    pub operations: BTreeMap<Operation, OpFaults>,
    pub webhooks: WebhookFaults,
    /// How long a `fail_after_timeout` answer is held back.
    pub timeout_delay_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            all: OpFaults::default(),
            operations: BTreeMap::new(),
            webhooks: WebhookFaults::default(),
            timeout_delay_ms: DEFAULT_TIMEOUT_DELAY_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault configuration: {0}")]
pub struct FaultConfigError(pub String);

impl FaultConfig {
    /// The healthy configuration: no faults at all.
    pub fn healthy() -> FaultConfig {
        FaultConfig::default()
    }

    pub fn validate(&self) -> Result<(), FaultConfigError> {
        self.all.validate("all")?;
        for (op, f) in &self.operations {
            f.validate(&format!("{op:?}"))?;
        }
        let w = &self.webhooks;
        if [w.drop, w.duplicate, w.reorder, w.delay]
            .iter()
            .any(|p| !(0.0..=1.0).contains(p))
        {
            return Err(FaultConfigError(
                "webhooks: probabilities must be in [0, 1]".into(),
            ));
        }
        if w.delay_ms > MAX_DELAY_MS
            || w.outage_ms > MAX_DELAY_MS
            || self.timeout_delay_ms > MAX_DELAY_MS
        {
            return Err(FaultConfigError(format!(
                "delays must be at most {MAX_DELAY_MS} ms"
            )));
        }
        Ok(())
    }

    pub fn for_operation(&self, op: Operation) -> &OpFaults {
        self.operations.get(&op).unwrap_or(&self.all)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    Status5xx,
    Reset,
    Timeout,
}

/// What to do to one REST request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestDecision {
    pub latency_ms: u64,
    /// Fail without taking effect.
    pub before: Option<Failure>,
    /// Take effect, then fail.
    pub after: Option<Failure>,
}

/// What to do to one webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookDecision {
    Drop,
    Deliver {
        copies: u8,
        reorder: bool,
        delay_ms: u64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpCounters {
    pub before_5xx: u64,
    pub before_reset: u64,
    pub after_5xx: u64,
    pub after_reset: u64,
    pub after_timeout: u64,
    pub latency: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookCounters {
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delayed: u64,
    /// Deliveries that had to wait for an outage to end.
    pub outage_deferred: u64,
    pub attempts: u64,
    pub failed_attempts: u64,
    pub delivered: u64,
    /// Deliveries abandoned after the maximum number of attempts.
    pub gave_up: u64,
}

/// Counts of injected faults (and webhook delivery outcomes), for the audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounters {
    pub rest: BTreeMap<Operation, OpCounters>,
    pub webhooks: WebhookCounters,
}

#[derive(Debug)]
pub struct FaultInjector {
    config: FaultConfig,
    rng: ChaCha8Rng,
    outage_until_ms: u64,
    counters: FaultCounters,
}

impl FaultInjector {
    pub fn new(
        config: FaultConfig,
        seed: u64,
        now_ms: u64,
    ) -> Result<FaultInjector, FaultConfigError> {
        config.validate()?;
        let mut f = FaultInjector {
            config: FaultConfig::healthy(),
            // A stream apart from the engine's, so faults never shift fills.
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17_FA17_FA17_FA17),
            outage_until_ms: 0,
            counters: FaultCounters::default(),
        };
        f.set(config, now_ms)?;
        Ok(f)
    }

    /// Replaces the configuration; an `outage_ms` starts now.
    pub fn set(&mut self, config: FaultConfig, now_ms: u64) -> Result<(), FaultConfigError> {
        config.validate()?;
        self.outage_until_ms = if config.webhooks.outage_ms > 0 {
            now_ms.saturating_add(config.webhooks.outage_ms)
        } else {
            0
        };
        self.config = config;
        Ok(())
    }

    /// Everything healthy from now on, any outage ended. Counters are kept.
    pub fn heal(&mut self) {
        self.config = FaultConfig::healthy();
        self.outage_until_ms = 0;
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn outage_until_ms(&self) -> u64 {
        self.outage_until_ms
    }

    pub fn counters(&self) -> &FaultCounters {
        &self.counters
    }

    pub fn webhook_counters_mut(&mut self) -> &mut WebhookCounters {
        &mut self.counters.webhooks
    }

    pub fn decide_rest(&mut self, op: Operation) -> RestDecision {
        let f = self.config.for_operation(op).clone();
        let mut d = RestDecision::default();
        let latency_roll: f64 = self.rng.gen();
        if f.latency_ms > 0 && latency_roll < f.latency_probability {
            d.latency_ms = f.latency_ms;
        }
        let roll: f64 = self.rng.gen();
        let mut acc = 0.0;
        for (failure, before, p) in f.failure_rates() {
            acc += p;
            if roll < acc {
                if before {
                    d.before = Some(failure);
                } else {
                    d.after = Some(failure);
                }
                break;
            }
        }
        let c = self.counters.rest.entry(op).or_default();
        c.latency += u64::from(d.latency_ms > 0);
        match (d.before, d.after) {
            (Some(Failure::Status5xx), _) => c.before_5xx += 1,
            (Some(_), _) => c.before_reset += 1,
            (_, Some(Failure::Status5xx)) => c.after_5xx += 1,
            (_, Some(Failure::Reset)) => c.after_reset += 1,
            (_, Some(Failure::Timeout)) => c.after_timeout += 1,
            (None, None) => {}
        }
        d
    }

    pub fn timeout_delay_ms(&self) -> u64 {
        self.config.timeout_delay_ms
    }

    pub fn decide_webhook(&mut self) -> WebhookDecision {
        let w = self.config.webhooks.clone();
        let rolls: [f64; 4] = self.rng.gen();
        let c = &mut self.counters.webhooks;
        if rolls[0] < w.drop {
            c.dropped += 1;
            return WebhookDecision::Drop;
        }
        let duplicate = rolls[1] < w.duplicate;
        let reorder = rolls[2] < w.reorder;
        let delay = rolls[3] < w.delay && w.delay_ms > 0;
        c.duplicated += u64::from(duplicate);
        c.reordered += u64::from(reorder);
        c.delayed += u64::from(delay);
        WebhookDecision::Deliver {
            copies: if duplicate { 2 } else { 1 },
            reorder,
            delay_ms: if delay { w.delay_ms } else { 0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_one_always_fire_and_zero_never() {
        let mut cfg = FaultConfig::default();
        cfg.operations.insert(
            Operation::Place,
            OpFaults {
                fail_after_timeout: 1.0,
                ..OpFaults::default()
            },
        );
        let mut f = FaultInjector::new(cfg, 1, 0).expect("config");
        for _ in 0..100 {
            assert_eq!(
                f.decide_rest(Operation::Place).after,
                Some(Failure::Timeout)
            );
            assert_eq!(f.decide_rest(Operation::Quote), RestDecision::default());
        }
        assert_eq!(f.counters().rest[&Operation::Place].after_timeout, 100);
        f.heal();
        assert_eq!(f.decide_rest(Operation::Place), RestDecision::default());
    }

    #[test]
    fn rates_are_roughly_honoured_and_seeded() {
        let cfg = FaultConfig {
            all: OpFaults {
                fail_before_5xx: 0.1,
                fail_after_reset: 0.2,
                ..OpFaults::default()
            },
            ..FaultConfig::default()
        };
        let run = |seed| {
            let mut f = FaultInjector::new(cfg.clone(), seed, 0).expect("config");
            (0..10_000)
                .map(|_| f.decide_rest(Operation::Cancel))
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3));
        let before = a.iter().filter(|d| d.before.is_some()).count();
        let after = a.iter().filter(|d| d.after.is_some()).count();
        assert!((800..1200).contains(&before), "{before}");
        assert!((1700..2300).contains(&after), "{after}");
    }

    #[test]
    fn invalid_configurations_are_refused() {
        let too_much = FaultConfig {
            all: OpFaults {
                fail_before_5xx: 0.6,
                fail_after_5xx: 0.6,
                ..OpFaults::default()
            },
            ..FaultConfig::default()
        };
        assert!(FaultInjector::new(too_much, 0, 0).is_err());
        let mut negative = FaultConfig::default();
        negative.webhooks.drop = -0.1;
        assert!(negative.validate().is_err());
        let parsed: Result<FaultConfig, _> = serde_json::from_str(r#"{"al": {}}"#);
        assert!(parsed.is_err(), "unknown keys are refused, not ignored");
    }

    #[test]
    fn an_outage_starts_when_applied_and_heal_ends_it() {
        let mut cfg = FaultConfig::default();
        cfg.webhooks.outage_ms = 5_000;
        let mut f = FaultInjector::new(cfg, 0, 1_000).expect("config");
        assert_eq!(f.outage_until_ms(), 6_000);
        f.heal();
        assert_eq!(f.outage_until_ms(), 0);
    }
}
