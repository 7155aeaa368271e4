//! Scenario 1 (a placement whose answer is lost, or that never arrives) on
//! each venue profile the exchange port knows — a tombstone, a request
//! deadline, neither — with the venue's clock off ours, and time in force.
//! Funds come back exactly when absence is proven, never earlier.

use std::collections::BTreeMap;

use app::orders::TradingCalendar;
use app::Clock;
use domain::order::{OrderId, OrderStatus};
use domain::{AccountId, Asset};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use exchange_sim::venue::VenueProfile;
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::platform::{Platform, PlatformOptions};

const PROFILES: [VenueProfile; 3] = [
    VenueProfile::Tombstone,
    VenueProfile::Deadline,
    VenueProfile::Plain,
];
const DAY_MS: u64 = 86_400_000;

/// A platform on `profile`, the venue's clock `offset_ms` off ours, and the
/// platform's trading calendar closing a few seconds from now (so a test can
/// move past the end-of-day check by moving the clock).
async fn platform_on(label: &str, profile: VenueProfile, offset_ms: i64) -> Platform {
    let mut options = PlatformOptions {
        clock_offset_ms: offset_ms,
        ..PlatformOptions::default()
    };
    options.engine.venue = profile;
    options.settings.calendar = calendar_closing_in(60_000);
    Platform::spawn_with(&format!("{label}-{}", profile.as_str()), options).await
}

/// Closes `in_ms` from now (UTC); the check runs 1 s after the close. Near
/// midnight UTC it waits for the new day, so the close falls on today.
fn calendar_closing_in(in_ms: u64) -> TradingCalendar {
    let mut now = app::SystemClock.now_ms();
    if now % DAY_MS > DAY_MS - in_ms - 60_000 {
        std::thread::sleep(std::time::Duration::from_millis(
            DAY_MS - now % DAY_MS + 1_000,
        ));
        now = app::SystemClock.now_ms();
    }
    TradingCalendar {
        close_utc_ms: now % DAY_MS + in_ms,
        check_after_close_ms: 1_000,
    }
}

fn placements_fail(faults: OpFaults) -> FaultConfig {
    FaultConfig {
        operations: BTreeMap::from([(SimOperation::Place, faults)]),
        ..FaultConfig::healthy()
    }
}

async fn place(
    platform: &Platform,
    account: &AccountId,
    key: &str,
    body: serde_json::Value,
) -> OrderId {
    let response = platform.post_order(account, key, &body).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    OrderId::parse(body["id"].as_str().expect("an order id")).expect("order id")
}

fn marketable_buy(quantity: u64) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": "500.00"})
}

fn resting_buy(time_in_force: &str) -> serde_json::Value {
    serde_json::json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "3", "limit_price": "1.00", "time_in_force": time_in_force})
}

async fn reserved(platform: &Platform, account: &AccountId) -> u64 {
    balance_of(&platform.balances, account, &Asset::Cash)
        .await
        .reserved
}

/// The answer is lost after the placement took effect: on every profile,
/// at every clock offset, the order is found, filled once and settled.
#[tokio::test]
async fn a_placement_whose_answer_is_lost_is_found_on_every_venue() {
    for profile in PROFILES {
        for offset_ms in [-30_000, 0, 30_000] {
            let platform = platform_on("venue-found", profile, offset_ms).await;
            let account = funded_account(&platform.balances, "val", 10_000_000).await;
            platform.set_exchange_faults(placements_fail(OpFaults {
                fail_after_5xx: 1.0,
                ..OpFaults::default()
            }));
            let id = place(&platform, &account, "k", marketable_buy(5)).await;
            platform.heal_exchange();
            platform.exchange_finished(&id).await;
            platform.reconcile_until_closed(&id).await;
            let order = platform.order(&id).await;
            let context = format!("{} at {offset_ms} ms", profile.as_str());
            assert_eq!(order.status(), OrderStatus::Filled, "{context}: {order:?}");
            assert_eq!(platform.exchange_orders_for(&id), 1, "{context}");
            assert_eq!(reserved(&platform, &account).await, 0, "{context}");
        }
    }
}

/// A healthy placement is never refused for the venue's clock: ±30 s.
#[tokio::test]
async fn no_placement_is_refused_for_the_venue_clock() {
    for profile in PROFILES {
        for offset_ms in [-30_000, 30_000] {
            let platform = platform_on("venue-skew", profile, offset_ms).await;
            let account = funded_account(&platform.balances, "sam", 10_000_000).await;
            let id = place(&platform, &account, "k", marketable_buy(2)).await;
            let order = platform.order(&id).await;
            let context = format!("{} at {offset_ms} ms", profile.as_str());
            assert!(order.is_placed(), "{context}: {order:?}");
            platform.exchange_finished(&id).await;
            platform.reconcile_until_closed(&id).await;
            assert_eq!(
                platform.order(&id).await.status(),
                OrderStatus::Filled,
                "{context}"
            );
        }
    }
}

/// Every send is lost before the venue for the whole placement window. The
/// reservation is held while absence is unproven; it comes back once the
/// venue's guarantee proves it: a tombstone or the request deadline (after
/// the window, the measured skew and the longest flight), or, on a venue
/// with neither, its complete list of the day's orders.
#[tokio::test]
async fn a_placement_that_never_arrived_is_released_only_once_absence_is_proven() {
    for profile in PROFILES {
        for offset_ms in [-30_000, 30_000] {
            let context = format!("{} at {offset_ms} ms", profile.as_str());
            let platform = platform_on("venue-absent", profile, offset_ms).await;
            let account = funded_account(&platform.balances, "abe", 10_000_000).await;
            platform.set_exchange_faults(placements_fail(OpFaults {
                fail_before_5xx: 1.0,
                ..OpFaults::default()
            }));
            let id = place(&platform, &account, "k", marketable_buy(5)).await;
            let order = platform.order(&id).await;
            assert!(!order.is_closed(), "{context}: {order:?}");
            assert!(reserved(&platform, &account).await > 0, "{context}");

            // Inside the window and its margins nothing is concluded.
            platform
                .clock
                .advance_ms(platform.settings.placement_window_ms / 2);
            platform.reconcile().await;
            assert!(!platform.order(&id).await.is_closed(), "{context}");
            assert!(reserved(&platform, &account).await > 0, "{context}");

            if profile == VenueProfile::Plain {
                // Past every margin, still unproven: unknown, funds held,
                // a reason the caller can read; until the day's list.
                let before_close =
                    platform.settings.calendar.close_utc_ms - app::SystemClock.now_ms() % DAY_MS;
                let step = platform.step_past_recovery_ms().min(before_close / 2);
                platform.clock.advance_ms(step);
                platform.reconcile().await;
                let order = platform.order(&id).await;
                assert_eq!(order.status(), OrderStatus::Unknown, "{context}: {order:?}");
                assert!(order.status_reason().is_some());
                assert!(reserved(&platform, &account).await > 0, "{context}");
            }
            platform.reconcile_until_closed(&id).await;
            let order = platform.order(&id).await;
            assert_eq!(order.status(), OrderStatus::Failed, "{context}: {order:?}");
            assert_eq!(platform.exchange_orders_for(&id), 0, "{context}");
            assert_eq!(reserved(&platform, &account).await, 0, "{context}");
        }
    }
}

/// On a venue with neither a tombstone nor a deadline, a request that lands
/// late (after every margin, before the day's check) is found by the
/// end-of-day check and finished, once.
#[tokio::test]
async fn on_a_plain_venue_a_late_arrival_is_found_by_the_day_list() {
    let platform = platform_on("venue-late", VenueProfile::Plain, 0).await;
    let account = funded_account(&platform.balances, "lee", 10_000_000).await;
    platform.set_exchange_faults(placements_fail(OpFaults {
        fail_before_5xx: 1.0,
        ..OpFaults::default()
    }));
    let id = place(&platform, &account, "k", marketable_buy(5)).await;
    platform.heal_exchange();
    let exchange = aws_adapters::exchange_http::HttpExchange::new(
        &platform.exchange_url,
        domain::Catalog::us_equities(),
        system_tests::platform::EXCHANGE_CALL_TIMEOUT,
    )
    .expect("client")
    .with_venue(platform.venue.clone());
    let request = app::orders::place_request(&platform.order(&id).await);
    let landed = app::exchange::Exchange::place(&exchange, &request)
        .await
        .expect("answered");
    assert!(
        matches!(landed, app::exchange::PlaceOutcome::Accepted(_)),
        "{landed:?}"
    );
    platform.exchange_finished(&id).await;
    platform.reconcile_until_closed(&id).await;
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Filled, "{order:?}");
    assert_eq!(platform.exchange_orders_for(&id), 1);
    assert_eq!(reserved(&platform, &account).await, 0);
}

/// A `day` order rests until the close and is released by the day's
/// check; a `gtc` order rests on across it with its funds held.
#[tokio::test]
async fn day_orders_end_at_the_close_and_gtc_orders_rest_on() {
    let mut options = PlatformOptions::default();
    options.settings.calendar = calendar_closing_in(10_000);
    // The venue closes with the platform's calendar.
    options.engine.close_utc_ms = options.settings.calendar.close_utc_ms;
    let platform = Platform::spawn_with("venue-tif", options).await;
    let account = funded_account(&platform.balances, "tif", 10_000_000).await;
    let day = place(&platform, &account, "day", resting_buy("day")).await;
    let gtc = place(&platform, &account, "gtc", resting_buy("gtc")).await;
    let held = reserved(&platform, &account).await;
    assert_eq!(held, 600, "both rest with 3.00 reserved each");
    system_tests::wait_until("the venue's close", || async {
        platform
            .exchange
            .state
            .engine()
            .get_by_client_id(day.as_str())
            .is_some_and(|o| o.status.is_terminal())
    })
    .await;
    platform.reconcile_until_closed(&day).await;
    assert_eq!(platform.order(&day).await.status(), OrderStatus::Expired);
    let gtc_order = platform.order(&gtc).await;
    assert_eq!(gtc_order.status(), OrderStatus::Open, "{gtc_order:?}");
    assert_eq!(reserved(&platform, &account).await, 300, "gtc funds held");
}
