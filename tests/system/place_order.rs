//! `POST /orders` and friends on the local stack with the exchange simulator:
//! idempotency, every step's unknown outcome, rejections and bad input.

use std::collections::BTreeMap;

use app::{Balances, Clock};
use domain::order::{Driver, OrderId, OrderStatus};
use domain::{AccountId, Asset, Balance, Catalog, Outcome};
use exchange_sim::faults::{FaultConfig, OpFaults, Operation as SimOperation};
use futures::future::join_all;
use place_order::wire::{OrderBody, OrderListBody};
use place_order::{Problem, PROBLEM_CONTENT_TYPE, REPLAYED_HEADER};
use reqwest::StatusCode;
use serde_json::json;
use system_tests::conformance::balances::{balance_of, funded_account};
use system_tests::faulty_proxy::Mode;
use system_tests::orders::new_order_id;
use system_tests::platform::{bearer, Platform, PlatformOptions};

fn limit_buy(quantity: u64, price: &str) -> serde_json::Value {
    json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": quantity.to_string(), "limit_price": price})
}

async fn order_body(response: reqwest::Response) -> OrderBody {
    response.json().await.expect("an order")
}

fn id_of(body: &OrderBody) -> OrderId {
    OrderId::parse(&body.id).expect("order id")
}

/// The reservation moved once: reserved equals what one order holds.
async fn assert_reserved(platform: &Platform, account: &AccountId, units: u64) {
    let cash = balance_of(&platform.balances, account, &Asset::Cash).await;
    assert_eq!(cash.reserved, units, "reserved cash");
}

fn exchange_faults(operation: SimOperation, faults: OpFaults) -> FaultConfig {
    FaultConfig {
        operations: BTreeMap::from([(operation, faults)]),
        ..FaultConfig::healthy()
    }
}

#[tokio::test]
async fn places_an_order_and_answers_replays_with_it() {
    let platform = Platform::spawn("place").await;
    let account = funded_account(&platform.balances, "alice", 1_000_000).await;
    let first = platform
        .post_order(&account, "k-1", &limit_buy(10, "200.00"))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get(REPLAYED_HEADER).is_none());
    let placed = order_body(first).await;
    assert!(matches!(
        placed.status,
        OrderStatus::Open | OrderStatus::PartiallyFilled | OrderStatus::Filled
    ));
    assert_eq!(placed.reserved.amount, "2000.00");
    let steps: Vec<(&str, &str)> = placed
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(
        steps[..2],
        [("reserve", "succeeded"), ("place", "succeeded")]
    );

    let again = platform
        .post_order(&account, "k-1", &limit_buy(10, "200.00"))
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()[REPLAYED_HEADER], "true");
    assert_eq!(order_body(again).await.id, placed.id);

    let reused = platform
        .post_order(&account, "k-1", &limit_buy(11, "200.00"))
        .await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Problem = reused.json().await.expect("problem");
    assert_eq!(problem.problem_type, place_order::problem_type::KEY_REUSED);

    assert_reserved(&platform, &account, 200_000).await;
    assert_eq!(platform.exchange_orders_for(&id_of(&placed)), 1);

    // Readable by its owner, with its history; invisible to anyone else.
    let read = platform
        .http
        .get(format!("{}/orders/{}", platform.orders_url, placed.id))
        .header("authorization", bearer(&account))
        .send()
        .await
        .expect("sent");
    assert_eq!(read.status(), StatusCode::OK);
    let stranger = platform
        .http
        .get(format!("{}/orders/{}", platform.orders_url, placed.id))
        .header(
            "authorization",
            bearer(&system_tests::new_account("mallory")),
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(
        stranger.status(),
        StatusCode::NOT_FOUND,
        "another account's order is not found, not forbidden"
    );
}

/// 20 identical requests at once: one order, one reservation, one exchange order.
#[tokio::test]
async fn concurrent_identical_requests_make_one_order() {
    let platform = Platform::spawn("concurrent").await;
    let account = funded_account(&platform.balances, "bob", 1_000_000).await;
    let body = limit_buy(5, "100.00");
    let responses =
        join_all((0..20).map(|_| platform.post_order(&account, "same-key", &body))).await;
    let mut ids = Vec::new();
    for response in responses {
        assert!(
            matches!(
                response.status(),
                StatusCode::CREATED | StatusCode::ACCEPTED
            ),
            "{}",
            response.status()
        );
        ids.push(order_body(response).await.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order");
    let id = OrderId::parse(&ids[0]).expect("id");
    platform
        .orders()
        .drive(&id, Driver::Recovery)
        .await
        .expect("drive");
    assert_reserved(&platform, &account, 50_000).await;
    assert_eq!(platform.exchange_orders_for(&id), 1);
}

#[tokio::test]
async fn insufficient_funds_rejects_and_reserves_nothing() {
    let platform = Platform::spawn("poor").await;
    let account = funded_account(&platform.balances, "carol", 10_000).await;
    let response = platform
        .post_order(&account, "too-big", &limit_buy(10, "200.00"))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Problem = response.json().await.expect("problem");
    let order = problem.order.expect("the rejected order");
    assert_eq!(order.status, OrderStatus::Rejected);
    assert!(order.closed_at_ms.is_some(), "closed");
    assert_eq!(
        balance_of(&platform.balances, &account, &Asset::Cash).await,
        Balance {
            available: 10_000,
            reserved: 0,
            owed: 0,
        }
    );
    assert_eq!(platform.exchange_orders_for(&id_of(&order)), 0);
    // Replayed as the same rejection.
    let again = platform
        .post_order(&account, "too-big", &limit_buy(10, "200.00"))
        .await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.headers()[REPLAYED_HEADER], "true");
}

/// The exchange refuses the order (its id was tombstoned): the reservation is
/// released exactly once and the order closes.
#[tokio::test]
async fn exchange_rejection_releases_the_reservation_once() {
    let id = new_order_id();
    let platform = Platform::spawn_with(
        "rejected",
        PlatformOptions {
            order_ids: Some(vec![id.clone()]),
            ..PlatformOptions::default()
        },
    )
    .await;
    let orders = platform.orders();
    use app::exchange::Exchange;
    let exchange = aws_adapters::exchange_http::HttpExchange::new(
        &platform.exchange_url,
        Catalog::us_equities(),
        system_tests::platform::EXCHANGE_CALL_TIMEOUT,
    )
    .expect("client");
    exchange.cancel(&id, None).await.expect("tombstone the id");
    let account = funded_account(&platform.balances, "dave", 100_000).await;
    let response = platform
        .post_order(&account, "k", &limit_buy(1, "100.00"))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let order = platform.order(&id).await;
    assert_eq!(order.status(), OrderStatus::Rejected);
    assert!(order.is_closed());
    // Driving again does nothing more: the release happened once.
    orders.drive(&id, Driver::Recovery).await.expect("drive");
    let release = platform
        .balances
        .lookup(&account, &id.release_key())
        .await
        .expect("lookup")
        .expect("released");
    assert_eq!(release.outcome, Outcome::Succeeded);
    assert_eq!(
        balance_of(&platform.balances, &account, &Asset::Cash).await,
        Balance {
            available: 100_000,
            reserved: 0,
            owed: 0,
        }
    );
}

/// Balances takes the reservation but the answer is lost; or the call never
/// reaches Balances. Either way the caller gets 202, a retry with the key
/// gets the same order, and recovery finishes it with one reservation.
#[tokio::test]
async fn unknown_reservation_outcome_is_recovered_by_key() {
    for mode in [Mode::LoseResponse, Mode::Refuse] {
        let platform = Platform::spawn("reserve-unknown").await;
        let account = funded_account(&platform.balances, "erin", 1_000_000).await;
        platform.balances_proxy.set(mode);
        let first = platform
            .post_order(&account, "k", &limit_buy(3, "100.00"))
            .await;
        assert_eq!(first.status(), StatusCode::ACCEPTED, "{mode:?}");
        let pending = order_body(first).await;
        assert_eq!(pending.status, OrderStatus::Pending);
        assert_eq!(pending.steps[0].state, "processing");
        let took_effect = mode == Mode::LoseResponse;
        assert_reserved(&platform, &account, if took_effect { 30_000 } else { 0 }).await;

        let retry = platform
            .post_order(&account, "k", &limit_buy(3, "100.00"))
            .await;
        assert_eq!(retry.status(), StatusCode::ACCEPTED);
        assert_eq!(order_body(retry).await.id, pending.id);

        platform.balances_proxy.set(Mode::Pass);
        let id = id_of(&pending);
        let recovered = platform
            .orders()
            .drive(&id, Driver::Recovery)
            .await
            .expect("drive");
        assert!(recovered.is_placed(), "{mode:?}: {recovered:?}");
        assert_reserved(&platform, &account, 30_000).await;
        assert_eq!(platform.exchange_orders_for(&id), 1);
    }
}

/// The exchange takes the order and the answer is lost (5xx, reset, or too
/// slow). The handler looks it up by client id within its window (found:
/// `201`); when even that cannot answer in its budget (a held-back answer),
/// `202` and recovery finds it. Either way one exchange order.
#[tokio::test]
async fn placement_that_took_effect_is_found_by_lookup() {
    let modes = [
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
        OpFaults {
            fail_after_reset: 1.0,
            ..OpFaults::default()
        },
        OpFaults {
            fail_after_timeout: 1.0,
            ..OpFaults::default()
        },
    ];
    for faults in modes {
        let platform = Platform::spawn("place-lost").await;
        let account = funded_account(&platform.balances, "fay", 1_000_000).await;
        let mut config = exchange_faults(SimOperation::Place, faults.clone());
        config.timeout_delay_ms = system_tests::platform::EXCHANGE_HELD_BACK_MS;
        platform.set_exchange_faults(config);
        let first = platform
            .post_order(&account, "k", &limit_buy(2, "100.00"))
            .await;
        let status = first.status();
        let body = order_body(first).await;
        let id = id_of(&body);
        if faults.fail_after_timeout > 0.0 {
            assert_eq!(status, StatusCode::ACCEPTED, "{faults:?}");
        } else {
            assert_eq!(
                status,
                StatusCode::CREATED,
                "{faults:?}: found within the window"
            );
            assert!(body.exchange_order_id.is_some());
        }
        assert_eq!(platform.exchange_orders_for(&id), 1, "it took effect");

        // A retry with the key answers the same order and sends nothing new.
        let retry = platform
            .post_order(&account, "k", &limit_buy(2, "100.00"))
            .await;
        assert_eq!(order_body(retry).await.id, id.as_str());
        platform.heal_exchange();
        let recovered = platform
            .orders()
            .drive(&id, Driver::Recovery)
            .await
            .expect("drive");
        assert!(recovered.is_placed(), "{faults:?}");
        assert!(recovered.exchange_order_id.is_some());
        assert_eq!(platform.exchange_orders_for(&id), 1);
        assert_reserved(&platform, &account, 20_000).await;
    }
}

/// The placement never reaches the exchange while its window is open: the
/// handler sends it again with the same client order id until its budget is
/// spent (`202`, the sends counted); recovery asks and waits until the
/// deadline plus margins, then cancels by client id (a tombstone), records
/// "not placed" with the attempts and the last error, releases once, closes.
#[tokio::test]
async fn placement_that_never_arrived_is_concluded_only_after_the_deadline() {
    // The handler's budget runs on the real clock from the request's start:
    // generous enough that a loaded machine, where the claim, the order and
    // the reservation before the first send take seconds, still leaves it
    // time to send again (the POST takes the whole budget here, 8 s).
    let mut settings = system_tests::platform::test_settings();
    settings.handler_budget_ms = 8_000;
    settings.placement_window_ms = 10_000;
    let options = PlatformOptions {
        settings,
        ..Default::default()
    };
    let platform = Platform::spawn_with("place-never", options).await;
    let account = funded_account(&platform.balances, "gus", 1_000_000).await;
    platform.set_exchange_faults(exchange_faults(
        SimOperation::Place,
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
    ));
    let first = platform
        .post_order(&account, "k", &limit_buy(4, "100.00"))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let id = id_of(&order_body(first).await);
    let sent = platform.order(&id).await;
    let placement = sent.place.as_ref().expect("started");
    assert!(
        placement.sends > 1,
        "sent again within the window: {placement:?}"
    );
    assert!(placement.last_error.is_some());

    let orders = platform.orders();
    let settings = &platform.settings;
    // Past the deadline (the exchange still refusing), short of the margins.
    let now = platform.clock.now_ms();
    platform
        .clock
        .advance_ms((sent.place_deadline_ms + 1).saturating_sub(now));
    let early = orders.drive(&id, Driver::Recovery).await.expect("drive");
    assert!(
        early.place.as_ref().is_some_and(|p| p.step.is_processing()),
        "not concluded before the deadline and margins"
    );
    assert!(!early.is_closed());
    assert_reserved(&platform, &account, 40_000).await;

    platform.heal_exchange();
    platform.clock.advance_ms(
        settings.recovery.clock_skew_margin_ms + settings.recovery.max_in_flight_ms + 1,
    );
    let late = orders.drive(&id, Driver::Recovery).await.expect("drive");
    assert_eq!(late.status(), OrderStatus::Failed);
    assert!(late.is_closed());
    assert_reserved(&platform, &account, 0).await;
    assert_eq!(platform.exchange_orders_for(&id), 0);
    let audit = platform.exchange.state.engine().audit();
    assert!(
        audit
            .tombstones
            .iter()
            .any(|t| t.client_order_id == id.as_str()),
        "a late request can never land"
    );
}

/// The first send fails before reaching the exchange and the window is
/// still open: recovery's lookup finds nothing and sends it again with the
/// same client order id; it is placed, never failed for a transient reason.
#[tokio::test]
async fn a_placement_that_did_not_arrive_is_sent_again_within_its_window() {
    let platform = Platform::spawn("place-resend").await;
    let account = funded_account(&platform.balances, "gwen", 1_000_000).await;
    platform.set_exchange_faults(exchange_faults(
        SimOperation::Place,
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
    ));
    let first = platform
        .post_order(&account, "k", &limit_buy(4, "100.00"))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let id = id_of(&order_body(first).await);
    platform.heal_exchange();
    let placed = platform
        .orders()
        .drive(&id, Driver::Recovery)
        .await
        .expect("drive");
    assert!(placed.is_placed(), "{placed:?}");
    assert_eq!(platform.exchange_orders_for(&id), 1);
}

/// Crash points between a step's `processing` record and its external call:
/// the records say `processing`, nothing was sent. Recovery sends the
/// reservation (its key makes a repeat harmless); a placement whose window
/// is open it sends again (the same request); one whose window has closed it
/// asks about, and concludes "not placed" only after the deadline and margins.
#[tokio::test]
async fn crashes_before_sending_are_recovered() {
    use app::order_store::OrderStore;
    use domain::order::{Placement, Step, StepState};
    let platform = Platform::spawn("crash").await;
    let account = funded_account(&platform.balances, "hal", 1_000_000).await;
    let orders = platform.orders();
    let now = platform.clock.now_ms();

    // Crash after `reserve: processing` was recorded.
    let reserving = system_tests::orders::sample_order(&account, now, now);
    orders.store().insert(&reserving).await.expect("insert");
    let recovered = orders
        .drive(&reserving.id, Driver::Recovery)
        .await
        .expect("drive");
    assert!(recovered.reserve.is_succeeded() && recovered.is_placed());
    assert_eq!(platform.exchange_orders_for(&reserving.id), 1);

    // Crash after `place: processing` was recorded (the reservation was made).
    let reserved = |order: &domain::order::Order| domain::Operation::Reserve {
        asset: Asset::Cash,
        amount: order.reservation.amount,
    };
    let mut placing = system_tests::orders::sample_order(&account, now, now);
    platform
        .balances
        .execute(&account, &placing.id.reserve_key(), &reserved(&placing))
        .await
        .expect("reserve");
    placing.reserve = Step::done(StepState::Succeeded, now);
    let mut placement = Placement::started(now, Some(placing.place_deadline_ms));
    placement.sends = 1;
    placing.place = Some(placement.clone());
    orders.store().insert(&placing).await.expect("insert");
    let sent = orders
        .drive(&placing.id, Driver::Recovery)
        .await
        .expect("drive");
    assert!(sent.is_placed(), "sent again within its window: {sent:?}");
    assert_eq!(platform.exchange_orders_for(&placing.id), 1);

    // The same crash, found only after the window closed: never sent again,
    // concluded only after the deadline and margins.
    let mut stale = system_tests::orders::sample_order(&account, now, now);
    platform
        .balances
        .execute(&account, &stale.id.reserve_key(), &reserved(&stale))
        .await
        .expect("reserve");
    stale.reserve = Step::done(StepState::Succeeded, now);
    stale.place = Some(placement);
    orders.store().insert(&stale).await.expect("insert");
    let recovery = &platform.settings.recovery;
    platform.clock.advance_ms(stale.place_deadline_ms - now + 1);
    let waiting = orders
        .drive(&stale.id, Driver::Recovery)
        .await
        .expect("drive");
    assert!(
        waiting
            .place
            .as_ref()
            .is_some_and(|p| p.step.is_processing()),
        "never re-sent after its window, never concluded early"
    );
    assert_eq!(platform.exchange_orders_for(&stale.id), 0);
    platform
        .clock
        .advance_ms(recovery.clock_skew_margin_ms + recovery.max_in_flight_ms);
    let concluded = orders
        .drive(&stale.id, Driver::Recovery)
        .await
        .expect("drive");
    assert_eq!(concluded.status(), OrderStatus::Failed);
    assert!(concluded.is_closed());
    // The first two orders' 10 x 100.00 each stay reserved.
    assert_reserved(&platform, &account, 200_000).await;
}

/// A market buy reserves at the quote plus the collar; a sell reserves shares.
#[tokio::test]
async fn market_buys_and_sells_reserve_what_they_may_need() {
    let platform = Platform::spawn("market").await;
    let account = funded_account(&platform.balances, "max", 100_000_000).await;
    let shares = domain::Amount::new(50).expect("positive");
    let aapl = Catalog::us_equities().asset("AAPL").expect("listed");
    let deposit = domain::Operation::Deposit {
        asset: aapl.clone(),
        amount: shares,
    };
    platform
        .balances
        .execute(
            &account,
            &domain::IdempotencyKey::parse("shares").expect("key"),
            &deposit,
        )
        .await
        .expect("deposit");

    let market = json!({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "10"});
    let bought = order_body(platform.post_order(&account, "m-1", &market).await).await;
    let reserved_cents = domain::money::parse_units(&bought.reserved.amount, 2).expect("amount");
    let protection = bought
        .protection_price
        .as_deref()
        .map(|p| domain::money::parse_units(p, 2).expect("price"))
        .expect("a market buy carries its protective limit");
    // The reservation is exactly what the protective limit lets it spend.
    assert_eq!(reserved_cents, protection * 10);
    let quote = platform
        .exchange
        .state
        .engine()
        .quote("AAPL", app::Clock::now_ms(&app::SystemClock))
        .expect("quote");
    let last = quote.last.cents();
    assert!(
        protection >= last * 10_400 / 10_000 && protection <= last * 10_600 / 10_000,
        "{protection} vs {last}"
    );
    // The exchange got it as a limit at that price: it can never fill above.
    let held = platform.exchange.state.engine().audit();
    let at_exchange = held
        .orders
        .iter()
        .find(|o| o.client_order_id == bought.id)
        .expect("placed");
    assert_eq!(at_exchange.limit_price.map(|p| p.cents()), Some(protection));
    assert!(at_exchange
        .executions
        .iter()
        .all(|e| e.price.cents() <= protection));

    let sell = json!({"symbol": "AAPL", "side": "sell", "type": "limit", "quantity": "20", "limit_price": "1.00"});
    let sold = order_body(platform.post_order(&account, "s-1", &sell).await).await;
    assert_eq!(
        sold.reserved,
        place_order::wire::AmountBody {
            asset: "AAPL".into(),
            amount: "20".into()
        }
    );
    let held = balance_of(&platform.balances, &account, &aapl).await;
    assert_eq!(held.reserved, 20);
}

#[tokio::test]
async fn lists_newest_first_with_a_cursor() {
    let platform = Platform::spawn("list").await;
    let account = funded_account(&platform.balances, "ivy", 10_000_000).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let response = platform
            .post_order(&account, &format!("k-{i}"), &limit_buy(1, "10.00"))
            .await;
        ids.push(order_body(response).await.id);
    }
    ids.reverse();
    let list = |cursor: Option<String>| {
        let mut url = format!("{}/orders?limit=2", platform.orders_url);
        if let Some(cursor) = cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        platform
            .http
            .get(url)
            .header("authorization", bearer(&account))
            .send()
    };
    let first: OrderListBody = list(None).await.expect("sent").json().await.expect("page");
    assert_eq!(
        first
            .orders
            .iter()
            .map(|o| o.id.clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    let second: OrderListBody = list(first.next_cursor)
        .await
        .expect("sent")
        .json()
        .await
        .expect("page");
    assert_eq!(
        second
            .orders
            .iter()
            .map(|o| o.id.clone())
            .collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(second.next_cursor, None);
    let bad = list(Some("zz".into())).await.expect("sent");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// A limit buy far below the market does not fill; cancelling it closes it
/// through the normal path and releases the whole reservation.
#[tokio::test]
async fn cancel_closes_through_the_normal_path() {
    let platform = Platform::spawn("cancel").await;
    let account = funded_account(&platform.balances, "jo", 1_000_000).await;
    let placed = order_body(
        platform
            .post_order(&account, "k", &limit_buy(5, "1.00"))
            .await,
    )
    .await;
    assert_eq!(placed.status, OrderStatus::Open);
    let cancel = || {
        platform
            .http
            .delete(format!("{}/orders/{}", platform.orders_url, placed.id))
            .header("authorization", bearer(&account))
            .send()
    };
    let response = cancel().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let id = id_of(&placed);
    // The exchange confirmed the cancel in its answer: the order is closed.
    let closed = platform.order(&id).await;
    assert_eq!(closed.status(), OrderStatus::Cancelled);
    assert!(closed.is_closed());
    assert_reserved(&platform, &account, 0).await;
    assert_eq!(
        cancel().await.expect("sent").status(),
        StatusCode::OK,
        "cancel is idempotent"
    );
}

struct Bad {
    what: &'static str,
    auth: Option<String>,
    key: Option<String>,
    content_type: &'static str,
    body: String,
    status: StatusCode,
}

/// Every malformed request gets a 4xx problem+json and writes nothing, in
/// either table.
#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let platform = Platform::spawn("bad-order").await;
    let account = funded_account(&platform.balances, "kim", 1_000_000).await;
    let auth = Some(bearer(&account));
    let ok =
        r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1","limit_price":"10.00"}"#;
    let case = |what, body: &str, status| Bad {
        what,
        auth: auth.clone(),
        key: Some(format!("key-{what}")),
        content_type: "application/json",
        body: body.to_owned(),
        status,
    };
    let bad_request = StatusCode::BAD_REQUEST;
    let mut cases = vec![
        case("malformed JSON", r#"{"symbol":"AAPL","#, bad_request),
        case(
            "unknown field",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1","limit_price":"10.00","account":"someone-else"}"#,
            bad_request,
        ),
        case(
            "unknown symbol",
            r#"{"symbol":"DOGE","side":"buy","type":"limit","quantity":"1","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "zero quantity",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"0","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "negative quantity",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"-5","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "huge quantity",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"99999999999","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "fractional quantity",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1.5","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "price off tick",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1","limit_price":"10.001"}"#,
            bad_request,
        ),
        case(
            "limit price on a market order",
            r#"{"symbol":"AAPL","side":"buy","type":"market","quantity":"1","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "limit order without a price",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1"}"#,
            bad_request,
        ),
        case(
            "unknown time in force",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1","limit_price":"10.00","time_in_force":"forever"}"#,
            bad_request,
        ),
        case(
            "unknown side",
            r#"{"symbol":"AAPL","side":"short","type":"limit","quantity":"1","limit_price":"10.00"}"#,
            bad_request,
        ),
        case(
            "too large to reserve",
            r#"{"symbol":"AAPL","side":"buy","type":"limit","quantity":"1000000","limit_price":"999999999.00"}"#,
            bad_request,
        ),
        Bad {
            auth: None,
            ..case("missing token", ok, StatusCode::UNAUTHORIZED)
        },
        Bad {
            auth: Some("Bearer not-a-token".into()),
            ..case("invalid token", ok, StatusCode::UNAUTHORIZED)
        },
        Bad {
            key: None,
            ..case("missing key", ok, bad_request)
        },
        Bad {
            key: Some("k".repeat(256)),
            ..case("oversized key", ok, bad_request)
        },
        Bad {
            content_type: "text/plain",
            ..case("wrong content type", ok, StatusCode::UNSUPPORTED_MEDIA_TYPE)
        },
    ];
    let padding = " ".repeat(place_order::MAX_BODY_BYTES);
    cases.push(case(
        "oversized body",
        &format!("{{\"symbol\":\"AAPL\",{padding}\"side\":\"buy\"}}"),
        StatusCode::PAYLOAD_TOO_LARGE,
    ));

    let before = platform.snapshot().await;
    for bad in cases {
        let mut request = platform
            .http
            .post(format!("{}/orders", platform.orders_url))
            .body(bad.body.clone())
            .header("content-type", bad.content_type);
        if let Some(auth) = &bad.auth {
            request = request.header("authorization", auth);
        }
        if let Some(key) = &bad.key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status(), bad.status, "{}", bad.what);
        assert_eq!(
            response.headers()["content-type"],
            PROBLEM_CONTENT_TYPE,
            "{}",
            bad.what
        );
        let problem: Problem = response.json().await.expect("problem");
        assert!(
            problem.detail.is_some_and(|d| !d.is_empty()),
            "{} explains itself",
            bad.what
        );
        assert_eq!(
            platform.snapshot().await,
            before,
            "{} wrote nothing",
            bad.what
        );
    }
    // Reading: no token, another account's order, a malformed id.
    let get = |path: String, auth: Option<String>| {
        let mut request = platform.http.get(format!("{}{path}", platform.orders_url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    assert_eq!(
        get("/orders".into(), None).await.expect("sent").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(format!("/orders/{}", new_order_id()), auth.clone())
            .await
            .expect("sent")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/orders/not-an-id".into(), auth.clone())
            .await
            .expect("sent")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/orders?limit=0".into(), auth)
            .await
            .expect("sent")
            .status(),
        StatusCode::BAD_REQUEST
    );
}

/// The exchange's answer to a cancel is lost, before or after the cancel
/// took effect: the caller gets `202` with `cancel: processing` (never a
/// `503`: the platform holds the intent and repeats it), and recovery
/// repeats the cancel until the exchange confirms; the order closes cancelled.
#[tokio::test]
async fn a_cancel_whose_answer_is_lost_is_repeated_by_the_platform() {
    let modes = [
        OpFaults {
            fail_before_5xx: 1.0,
            ..OpFaults::default()
        },
        OpFaults {
            fail_after_5xx: 1.0,
            ..OpFaults::default()
        },
    ];
    for faults in modes {
        let platform = Platform::spawn("cancel-lost").await;
        let account = funded_account(&platform.balances, "kay", 1_000_000).await;
        let placed = order_body(
            platform
                .post_order(&account, "k", &limit_buy(5, "1.00"))
                .await,
        )
        .await;
        platform.set_exchange_faults(exchange_faults(SimOperation::Cancel, faults.clone()));
        let lost = platform
            .http
            .delete(format!("{}/orders/{}", platform.orders_url, placed.id))
            .header("authorization", bearer(&account))
            .send()
            .await
            .expect("sent");
        assert_eq!(lost.status(), StatusCode::ACCEPTED, "{faults:?}");
        let body = order_body(lost).await;
        let cancel = body
            .steps
            .iter()
            .find(|s| s.name == "cancel")
            .expect("a cancel step");
        assert_eq!(cancel.state, "processing");
        platform.heal_exchange();
        let id = id_of(&placed);
        platform.reconcile_until_closed(&id).await;
        let closed = platform.order(&id).await;
        assert_eq!(closed.status(), OrderStatus::Cancelled, "{faults:?}");
        assert_reserved(&platform, &account, 0).await;
    }
}
