//! What one seed draws: the venue (profile, clock offset, market, hostile
//! reports), the platform's timings, the fault rates, the webhook faults
//! and the workload. Seeds go round the venue profiles, so any stretch of
//! seeds covers each alike.

use app::orders::OrderSettings;
use domain::order::RecoveryPolicy;
use exchange_sim::hostile::HostileConfig;
use exchange_sim::venue::VenueProfile;
use exchange_sim::EngineConfig;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::faults::{all_crash_points, FaultRates, Outage, Port};

/// 2024-03-01 00:00 UTC, a day the runs start on (or a few after).
const FIRST_DAY: u64 = 19_783;
const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
const MINUTE_MS: u64 = 60_000;

/// The venue's webhook deliveries go wrong this often.
#[derive(Debug, Clone)]
pub struct WebhookFaults {
    /// Chance that one delivery attempt never arrives (the venue retries).
    pub lose_attempt: f64,
    /// Chance that a delivered webhook is delivered again later.
    pub duplicate: f64,
    /// Chance that the venue gives up on a webhook for good.
    pub give_up: f64,
    /// Longest time from the event to its first attempt.
    pub max_latency_ms: u64,
}

/// What the clients do.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Resting orders a crowd places early (thousands in some seeds).
    pub crowd_orders: usize,
    /// Share of orders that are big (hundreds of executions at a venue
    /// with heavy-tailed executions).
    pub big_share: f64,
    /// Chance that a client's request lands late (its copy after the retry).
    pub late_request: f64,
    /// Chance that a client cancels an order it just placed, soon.
    pub quick_cancel: f64,
    /// Chance that a client cancels an order answered as still pending at
    /// the venue the moment the answer arrives (an algorithm replacing it),
    /// while its placement may still be on its way.
    pub cancel_on_ack: f64,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub venue: VenueProfile,
    pub start_ms: u64,
    /// The venue's clock minus ours.
    pub clock_offset_ms: i64,
    /// How far the platform's measurement of that offset is off (within the
    /// policy's `clock_skew_margin_ms`).
    pub clock_error_ms: i64,
    /// Scheduler steps before the faults stop.
    pub steps: usize,
    pub rates: FaultRates,
    pub webhooks: WebhookFaults,
    pub engine: EngineConfig,
    pub settings: OrderSettings,
    pub reconciler: reconciler::Settings,
    pub workload: Workload,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, choices: &[T]) -> T {
    *choices.choose(rng).expect("a non-empty choice")
}

impl Scenario {
    pub fn of_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let venue = match seed % 3 {
            0 => VenueProfile::Tombstone,
            1 => VenueProfile::Deadline,
            _ => VenueProfile::Plain,
        };
        // Some runs cross the session's close and its end-of-day check.
        let day = FIRST_DAY + rng.gen_range(0..5);
        let time_of_day = if rng.gen_bool(0.35) {
            rng.gen_range(19 * HOUR_MS..20 * HOUR_MS + 20 * MINUTE_MS)
        } else {
            rng.gen_range(8 * HOUR_MS..19 * HOUR_MS)
        };
        let start_ms = day * DAY_MS + time_of_day;

        let recovery = RecoveryPolicy {
            clock_skew_margin_ms: rng.gen_range(1_000..=3_000),
            max_in_flight_ms: rng.gen_range(3_000..=15_000),
            retry_base_ms: pick(&mut rng, &[5_000, 15_000, 30_000]),
            retry_max_ms: pick(&mut rng, &[60_000, 180_000, 600_000]),
            gap_grace_ms: pick(&mut rng, &[10_000, 30_000, 60_000]),
            market_silence_ms: pick(&mut rng, &[30_000, 120_000]),
            flag_after_ms: pick(&mut rng, &[5 * MINUTE_MS, 10 * MINUTE_MS, 30 * MINUTE_MS]),
            ..RecoveryPolicy::default()
        };
        let margin = recovery.clock_skew_margin_ms as i64;
        let clock_offset_ms = rng.gen_range(-5_000..=5_000);
        let clock_error_ms = rng.gen_range(-margin..=margin);
        let settings = OrderSettings {
            market_collar_bps: pick(&mut rng, &[500, 500, 500, 200, 0]),
            submit_window_ms: pick(&mut rng, &[MINUTE_MS, 5 * MINUTE_MS]),
            placement_window_ms: rng.gen_range(5_000..=20_000),
            handler_budget_ms: rng.gen_range(2_000..=8_000),
            recovery,
            ..OrderSettings::default()
        };
        // A request lands within the bound the platform assumes, with room
        // for a handler's pause between two port calls.
        let max_flight_ms = settings.recovery.max_in_flight_ms - 2_500;

        let clean = rng.gen_bool(0.08);
        let rate = |rng: &mut ChaCha8Rng, most: f64| {
            if clean {
                0.0
            } else {
                rng.gen_range(0.0..most)
            }
        };
        let points = all_crash_points();
        let focus = (!clean).then(|| {
            let point = *points.choose(&mut rng).expect("crash points");
            (point, rng.gen_range(0.15..0.5))
        });
        let mut outages = Vec::new();
        if !clean {
            for port in [Port::Balances, Port::Exchange] {
                if rng.gen_bool(0.25) {
                    let from_ms = start_ms + rng.gen_range(0..30 * MINUTE_MS);
                    let until_ms = from_ms + rng.gen_range(5_000..=4 * MINUTE_MS);
                    outages.push(Outage {
                        port,
                        from_ms,
                        until_ms,
                    });
                }
            }
        }
        let rates = FaultRates {
            fail: rate(&mut rng, 0.12),
            crash: rate(&mut rng, 0.04),
            // Some days the venue's order gateway is slow: most requests
            // outlive their caller's wait (each still lands within the bound).
            in_flight: if !clean && rng.gen_bool(0.25) {
                rng.gen_range(0.5..0.9)
            } else {
                rate(&mut rng, 0.3)
            },
            max_flight_ms,
            yield_: pick(&mut rng, &[0.0, 0.2, 0.5]),
            focus,
            outages,
        };
        let webhooks = WebhookFaults {
            lose_attempt: rate(&mut rng, 0.2),
            duplicate: rate(&mut rng, 0.15),
            give_up: if rng.gen_bool(0.3) {
                rate(&mut rng, 0.03)
            } else {
                0.0
            },
            max_latency_ms: pick(&mut rng, &[50, 500, 3_000]),
        };

        let big = rng.gen_bool(0.25);
        let (min_chunks, max_chunks, chunk_tail_alpha) = if big {
            (1, rng.gen_range(200..=1_000), Some(rng.gen_range(0.5..1.2)))
        } else {
            (1, rng.gen_range(1..=6), None)
        };
        let (fill_interval_min_ms, fill_interval_max_ms) = match rng.gen_range(0..4) {
            0 => (0, 50),
            1 => (5, 500),
            2 => (100, 5_000),
            _ => (1_000, 30_000),
        };
        let ends_early = rng.gen_bool(0.4);
        let gaps = rng.gen_bool(0.2);
        let hostile = rng.gen_bool(0.3).then(|| HostileConfig {
            phantom_order: rng.gen_range(0.0..0.05),
            refused_order_fill: rng.gen_range(0.0..0.5),
            exec_id_reused: rng.gen_range(0.0..0.1),
            status_before_executions: rng.gen_range(0.0..0.2),
            execution_after_status: rng.gen_range(0.0..0.2),
            late_execution_ms: rng.gen_range(500..=60_000),
        });
        let engine = EngineConfig {
            seed: rng.gen(),
            venue,
            min_chunks,
            max_chunks,
            chunk_tail_alpha,
            fill_interval_min_ms,
            fill_interval_max_ms,
            cancel_probability: if ends_early { 0.05 } else { 0.0 },
            expire_probability: if ends_early { 0.05 } else { 0.0 },
            order_lifetime_ms: rng.gen_range(10 * MINUTE_MS..=3 * HOUR_MS),
            honours_limits: !rng.gen_bool(0.05),
            gap_probability: if gaps {
                rng.gen_range(0.002..0.02)
            } else {
                0.0
            },
            gap_max_bps: if gaps {
                rng.gen_range(300..=2_000)
            } else {
                2_000
            },
            hostile,
            ..EngineConfig::default()
        };
        let reconciler = reconciler::Settings {
            page_size: pick(&mut rng, &[3, 25, 100]),
            max_run_ms: pick(&mut rng, &[3_000, 45_000]),
            safety_margin_ms: 1_000,
        };
        let crowd = rng.gen_bool(0.03);
        let workload = Workload {
            crowd_orders: if crowd { rng.gen_range(500..=3_000) } else { 0 },
            big_share: if big { rng.gen_range(0.05..0.3) } else { 0.0 },
            late_request: rate(&mut rng, 0.1),
            quick_cancel: rng.gen_range(0.0..0.3),
            cancel_on_ack: pick(&mut rng, &[0.0, 0.5, 1.0]),
        };
        let steps = rng.gen_range(60..=220);
        Scenario {
            seed,
            venue,
            start_ms,
            clock_offset_ms,
            clock_error_ms,
            steps,
            rates,
            webhooks,
            engine,
            settings,
            reconciler,
            workload,
        }
    }

    /// Faults of any kind are drawn in this seed.
    pub fn faulty(&self) -> bool {
        self.rates.fail > 0.0 || self.rates.crash > 0.0 || self.rates.focus.is_some()
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.settings.recovery;
        write!(
            f,
            "seed {}: venue {} offset {} ms (measured off by {} ms), {} steps; faults {:?}; webhooks {:?}; \
             collar {} bps, window {} ms, margin {} ms, in flight {} ms, retry {}..{} ms, grace {} ms, silence {} ms, flag after {} ms; \
             engine chunks {}..{} tail {:?}, interval {}..{} ms, lifetime {} ms, honours limits {}, gaps {}, hostile {:?}; \
             reconciler {:?}; workload {:?}",
            self.seed,
            self.venue.as_str(),
            self.clock_offset_ms,
            self.clock_error_ms,
            self.steps,
            self.rates,
            self.webhooks,
            self.settings.market_collar_bps,
            self.settings.placement_window_ms,
            r.clock_skew_margin_ms,
            r.max_in_flight_ms,
            r.retry_base_ms,
            r.retry_max_ms,
            r.gap_grace_ms,
            r.market_silence_ms,
            r.flag_after_ms,
            self.engine.min_chunks,
            self.engine.max_chunks,
            self.engine.chunk_tail_alpha,
            self.engine.fill_interval_min_ms,
            self.engine.fill_interval_max_ms,
            self.engine.order_lifetime_ms,
            self.engine.honours_limits,
            self.engine.gap_probability,
            self.engine.hostile,
            self.reconciler,
            self.workload,
        )
    }
}
