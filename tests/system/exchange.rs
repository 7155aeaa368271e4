//! The Exchange port's conformance suite against each adapter: the engine
//! in-process on a manual clock, and the HTTP client against the simulator
//! served in-process. Then the HTTP client under the simulator's faults: each
//! failure must be classified by what the caller may conclude.

use std::time::Duration;

use app::exchange::{Exchange, ExchangeError, PlaceRequest};
use app::{Clock, ManualClock, SystemClock};
use aws_adapters::exchange_http::{HttpExchange, Venue};
use domain::Catalog;
use exchange_sim::app::{Running, Settings};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation};
use exchange_sim::venue::VenueProfile;
use system_tests::conformance::exchange::{market_buy, ExchangeUnderTest};
use system_tests::sim_exchange::{fast_fills, spawn_exchange_sim_with, EngineExchange};

/// 2024-03-01T12:00:00Z: the in-process exchange's time starts here.
const T0_MS: u64 = 1_709_294_400_000;

fn config(seed: u64, profile: VenueProfile) -> exchange_sim::EngineConfig {
    exchange_sim::EngineConfig {
        venue: profile,
        ..fast_fills(seed)
    }
}

/// The engine in-process; time passes only when a check says so. Its clock
/// runs `offset_ms` from the platform's.
pub struct InProcess {
    exchange: EngineExchange,
    clock: ManualClock,
}

impl InProcess {
    fn new(seed: u64, profile: VenueProfile, offset_ms: i64) -> Self {
        let clock = ManualClock::at(T0_MS);
        let exchange = EngineExchange::new(config(seed, profile), clock.clone())
            .expect("engine")
            .with_clock_offset(offset_ms);
        InProcess { exchange, clock }
    }
}

impl ExchangeUnderTest for InProcess {
    type Port = EngineExchange;
    fn exchange(&self) -> &EngineExchange {
        &self.exchange
    }
    fn now_ms(&self) -> u64 {
        self.exchange.venue_now()
    }
    fn platform_now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
    async fn pass_ms(&self, ms: u64) {
        self.clock.advance_ms(ms);
    }
}

/// The HTTP client against a simulator on the system clock (plus its offset).
pub struct OverHttp {
    exchange: HttpExchange,
    server: Running,
    offset_ms: i64,
}

impl OverHttp {
    async fn spawn(seed: u64, timeout: Duration) -> Self {
        Self::spawn_as(seed, timeout, VenueProfile::Tombstone, 0).await
    }

    async fn spawn_as(seed: u64, timeout: Duration, profile: VenueProfile, offset_ms: i64) -> Self {
        let mut settings = Settings::new(config(seed, profile));
        settings.clock_offset_ms = offset_ms;
        let (url, server) = spawn_exchange_sim_with(settings).await;
        let venue = Venue::simulator(profile.as_str()).expect("a simulator profile");
        // Pages of two, so following `next_page_token` is exercised.
        let exchange = HttpExchange::new(&url, Catalog::us_equities(), timeout)
            .expect("client")
            .with_venue(venue)
            .with_page_limit(2);
        OverHttp {
            exchange,
            server,
            offset_ms,
        }
    }

    fn set_faults(&self, faults: FaultConfig) {
        let now = self.now_ms();
        self.server
            .state
            .faults()
            .set(faults, now)
            .expect("valid faults");
    }

    fn heal(&self) {
        self.server.state.faults().heal();
    }

    fn orders_held(&self) -> usize {
        self.server.state.engine().order_count()
    }
}

impl ExchangeUnderTest for OverHttp {
    type Port = HttpExchange;
    fn exchange(&self) -> &HttpExchange {
        &self.exchange
    }
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms().saturating_add_signed(self.offset_ms)
    }
    fn platform_now_ms(&self) -> u64 {
        SystemClock.now_ms()
    }
    async fn pass_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// Each adapter in each venue profile, the venue's clock 30 s off ours
/// (ahead or behind) as well as on time: the checks give deadlines in the
/// venue's clock, as the platform does.
macro_rules! profiles {
    ($($name:ident => $profile:expr, $offset:expr;)*) => {$(
        mod $name {
            use super::*;
            mod in_process {
                system_tests::exchange_conformance!(super::InProcess::new(7, $profile, $offset));
            }
            mod over_http {
                system_tests::exchange_conformance!(
                    super::OverHttp::spawn_as(7, aws_adapters::exchange_http::DEFAULT_TIMEOUT, $profile, $offset).await
                );
            }
        }
    )*};
}

profiles! {
    tombstone => exchange_sim::venue::VenueProfile::Tombstone, 0;
    deadline_venue_ahead => exchange_sim::venue::VenueProfile::Deadline, 30_000;
    plain_venue_behind => exchange_sim::venue::VenueProfile::Plain, -30_000;
}

// ---- The HTTP client under faults -----------------------------------------

/// Client budget for the fault tests: the platform's test budget for the
/// in-process simulator (a loopback call answered in milliseconds).
const SHORT_TIMEOUT: Duration = system_tests::platform::EXCHANGE_CALL_TIMEOUT;
/// How long the simulator holds back a "timeout" answer: well past [`SHORT_TIMEOUT`].
const HELD_BACK_MS: u64 = system_tests::platform::EXCHANGE_HELD_BACK_MS;

fn faults_on(op: Operation, faults: OpFaults) -> FaultConfig {
    let mut config = FaultConfig {
        timeout_delay_ms: HELD_BACK_MS,
        ..FaultConfig::healthy()
    };
    config.operations.insert(op, faults);
    config
}

fn outcome_unknown<T: std::fmt::Debug>(result: Result<T, ExchangeError>) {
    assert!(
        matches!(result, Err(ExchangeError::OutcomeUnknown(_))),
        "{result:?}"
    );
}

/// GIVEN a place fault; WHEN placing; THEN the outcome is unknown, and after
/// healing a lookup by client id tells whether the order landed.
async fn place_under(faults: OpFaults, landed: bool) {
    let venue = OverHttp::spawn(11, SHORT_TIMEOUT).await;
    venue.set_faults(faults_on(Operation::Place, faults));
    let request: PlaceRequest = market_buy(&venue, 10);
    outcome_unknown(venue.exchange.place(&request).await);
    venue.heal();
    let found = venue
        .exchange
        .order(&request.client_order_id)
        .await
        .expect("lookup");
    assert_eq!(found.is_some(), landed, "{found:?}");
    assert_eq!(venue.orders_held(), usize::from(landed));
}

#[tokio::test]
async fn effect_then_5xx_is_unknown_and_the_order_is_found() {
    place_under(
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn effect_then_reset_is_unknown_and_the_order_is_found() {
    place_under(
        OpFaults {
            fail_after_reset: 1.0,
            ..OpFaults::default()
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn effect_then_timeout_is_unknown_and_the_order_is_found() {
    place_under(
        OpFaults {
            fail_after_timeout: 1.0,
            ..OpFaults::default()
        },
        true,
    )
    .await;
}

/// The client cannot tell a 5xx before the effect from one after: unknown,
/// and the lookup is what finds that nothing landed.
#[tokio::test]
async fn fail_before_5xx_is_unknown_and_nothing_is_found() {
    place_under(
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
        false,
    )
    .await;
}

#[tokio::test]
async fn fail_before_reset_is_unknown_and_nothing_is_found() {
    place_under(
        OpFaults {
            fail_before_reset: 1.0,
            ..OpFaults::default()
        },
        false,
    )
    .await;
}

/// A failed lookup is never read as "no such order".
#[tokio::test]
async fn a_failed_lookup_is_unknown_not_none() {
    let venue = OverHttp::spawn(12, SHORT_TIMEOUT).await;
    let request = market_buy(&venue, 10);
    venue.set_faults(faults_on(
        Operation::GetOrderByClientId,
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
    ));
    outcome_unknown(venue.exchange.order(&request.client_order_id).await);
}

/// A 5xx on a cancel of an unknown id may have left a tombstone: unknown.
#[tokio::test]
async fn effect_then_5xx_on_cancel_is_unknown_and_the_tombstone_holds() {
    let venue = OverHttp::spawn(13, SHORT_TIMEOUT).await;
    let request = market_buy(&venue, 10);
    venue.set_faults(faults_on(
        Operation::Cancel,
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
    ));
    outcome_unknown(venue.exchange.cancel(&request.client_order_id, None).await);
    venue.heal();
    let late = venue.exchange.place(&request).await.expect("answered");
    assert!(
        matches!(late, app::exchange::PlaceOutcome::Rejected { .. }),
        "{late:?}"
    );
}

/// An exchange that is down refuses the connection: the call never happened.
#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let venue = OverHttp::spawn(14, SHORT_TIMEOUT).await;
    let request = market_buy(&venue, 10);
    let OverHttp {
        exchange, server, ..
    } = venue;
    server.stop().await.expect("stopped");
    let result = exchange.place(&request).await;
    assert!(
        matches!(result, Err(ExchangeError::Unavailable(_))),
        "{result:?}"
    );
}
