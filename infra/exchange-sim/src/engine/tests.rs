use std::collections::HashSet;

use super::*;
use crate::hostile::HostileKind;
use crate::money::Price;
use crate::quotes::QuoteBook;

const T0: u64 = 1_709_294_400_000; // 2024-03-01T12:00:00Z

fn limit(id: &str, side: Side, qty: u64, price_cents: u64) -> PlaceOrder {
    PlaceOrder {
        client_order_id: id.to_string(),
        account: "acc-1".to_string(),
        symbol: "AAPL".to_string(),
        side,
        order_type: OrderType::Limit,
        quantity: Quantity::new(qty).expect("qty"),
        limit_price: Price::from_cents(price_cents),
        expire_at: Some(T0 + 5_000),
        time_in_force: TimeInForce::Day,
    }
}

fn market(id: &str, side: Side, qty: u64) -> PlaceOrder {
    PlaceOrder {
        order_type: OrderType::Market,
        limit_price: None,
        ..limit(id, side, qty, 1)
    }
}

fn engine(seed: u64) -> Engine {
    Engine::new(EngineConfig {
        seed,
        ..EngineConfig::default()
    })
    .expect("config")
}

/// Runs the engine until nothing is scheduled, returning every event.
fn drain(e: &mut Engine) -> Vec<ExchangeEvent> {
    let mut events = e.advance(T0);
    while let Some(due) = e.next_due_ms() {
        events.extend(e.advance(due));
    }
    events
}

#[test]
fn the_same_request_twenty_times_makes_one_order() {
    let mut e = engine(1);
    let first = e.place(market("c-1", Side::Buy, 100), T0).expect("placed");
    assert!(!first.replayed);
    for k in 1..20 {
        let again = e
            .place(market("c-1", Side::Buy, 100), T0 + k)
            .expect("replayed");
        assert!(again.replayed);
        assert_eq!(again.order.order_id, first.order.order_id);
    }
    assert_eq!(e.order_count(), 1);
}

#[test]
fn reusing_an_id_with_a_different_request_is_refused_and_changes_nothing() {
    let mut e = engine(1);
    let first = e.place(market("c-1", Side::Buy, 100), T0).expect("placed");
    let err = e
        .place(market("c-1", Side::Buy, 101), T0)
        .expect_err("mismatch");
    assert_eq!(err, PlaceError::IdempotencyMismatch("c-1".into()));
    assert_eq!(e.get_by_client_id("c-1"), Some(first.order));
    assert_eq!(
        e.audit().rejected_requests[0].reason,
        RejectReason::IdempotencyMismatch
    );
}

#[test]
fn a_request_after_its_deadline_leaves_nothing_behind() {
    let mut e = engine(1);
    let late = market("c-1", Side::Buy, 100);
    let deadline = late.expire_at.expect("a deadline");
    let err = e.place(late.clone(), deadline + 1).expect_err("late");
    assert_eq!(err, PlaceError::DeadlinePassed);
    assert_eq!(e.order_count(), 0);
    assert!(e.get_by_client_id("c-1").is_none());
    assert!(!e.is_tombstoned("c-1"));
    // At the deadline exactly, the request is still on time.
    assert!(e.place(late.clone(), deadline).is_ok());
}

#[test]
fn a_tombstoned_id_can_never_be_placed() {
    let mut e = engine(1);
    let c = e.cancel_by_client_id("c-1", T0).expect("tombstoned");
    assert_eq!(c.outcome, CancelOutcome::Tombstoned);
    assert_eq!(
        e.cancel_by_client_id("c-1", T0 + 1).map(|c| c.outcome),
        Ok(CancelOutcome::Tombstoned)
    );
    let err = e
        .place(market("c-1", Side::Buy, 100), T0 + 2)
        .expect_err("tombstoned");
    assert_eq!(err, PlaceError::Tombstoned("c-1".into()));
    assert!(e.get_by_client_id("c-1").is_none());
    let audit = e.audit();
    assert_eq!(
        audit.tombstones.len(),
        1,
        "a second cancel adds no tombstone"
    );
    assert_eq!(audit.rejected_requests[0].reason, RejectReason::Tombstoned);
    assert!(audit.orders.is_empty());
}

#[test]
fn cancelling_an_open_order_stops_its_fills_and_reports_once() {
    let mut e = engine(3);
    e.place(market("c-1", Side::Buy, 1_000), T0)
        .expect("placed");
    let c = e.cancel_by_client_id("c-1", T0 + 1).expect("known");
    assert_eq!(c.outcome, CancelOutcome::Cancelled);
    let events = drain(&mut e);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, OrderStatus::Cancelled);
    let again = e.cancel_by_client_id("c-1", T0 + 2).expect("known");
    assert_eq!(again.outcome, CancelOutcome::AlreadyTerminal);
    let order = e.get_by_client_id("c-1").expect("order");
    assert_eq!(
        (order.status, order.executions.len()),
        (OrderStatus::Cancelled, 0)
    );
}

/// Every order reaches a terminal status; fills never exceed the quantity;
/// executions are unique and add up; limit prices are respected; each order
/// reports exactly one terminal status event.
#[test]
fn fills_add_up_never_exceed_quantity_and_have_unique_ids() {
    for seed in 0..20 {
        let mut e = Engine::new(EngineConfig {
            seed,
            max_chunks: 6,
            cancel_probability: 0.2,
            expire_probability: 0.2,
            ..EngineConfig::default()
        })
        .expect("config");
        for k in 0..40u64 {
            let side = if k % 2 == 0 { Side::Buy } else { Side::Sell };
            let qty = 1 + (k * 37) % 500;
            let req = match k % 3 {
                0 => market(&format!("m-{k}"), side, qty),
                // Around the quote, so some fill and some never do.
                _ => limit(&format!("l-{k}"), side, qty, 18_700 + (k % 7) * 10),
            };
            e.place(req, T0 + k).expect("placed");
        }
        let events = drain(&mut e);
        let audit = e.audit();
        let mut exec_ids = HashSet::new();
        for o in &audit.orders {
            assert!(o.status.is_terminal(), "seed {seed}: {o:?}");
            let sum: u64 = o.executions.iter().map(|x| x.quantity.shares()).sum();
            assert_eq!(sum, o.cum_quantity.shares());
            assert!(o.cum_quantity <= o.quantity);
            assert_eq!(
                o.status == OrderStatus::Filled,
                o.cum_quantity == o.quantity
            );
            for x in &o.executions {
                assert!(exec_ids.insert(x.exec_id.clone()), "duplicate exec id");
                assert!(
                    x.cum_quantity.shares() + x.leaves_quantity.shares() == o.quantity.shares()
                );
                if let Some(limit) = o.limit_price {
                    match o.side {
                        Side::Buy => assert!(x.price <= limit),
                        Side::Sell => assert!(x.price >= limit),
                    }
                }
            }
            let terminal_events = events
                .iter()
                .filter(|ev| ev.order_id == o.order_id && ev.event_type == EventType::OrderStatus)
                .count();
            assert_eq!(terminal_events, 1);
        }
        let exec_events = events
            .iter()
            .filter(|ev| ev.event_type == EventType::Execution)
            .count();
        assert_eq!(exec_events, exec_ids.len());
        let event_ids: HashSet<_> = events.iter().map(|ev| ev.event_id.clone()).collect();
        assert_eq!(event_ids.len(), events.len(), "event ids are unique");
    }
}

#[test]
fn some_orders_end_cancelled_or_expired_with_a_partial_fill() {
    let mut e = Engine::new(EngineConfig {
        seed: 11,
        min_chunks: 4,
        max_chunks: 8,
        cancel_probability: 0.4,
        expire_probability: 0.4,
        ..EngineConfig::default()
    })
    .expect("config");
    for k in 0..50 {
        e.place(market(&format!("m-{k}"), Side::Buy, 100), T0)
            .expect("placed");
    }
    drain(&mut e);
    let audit = e.audit();
    let partial = |s: OrderStatus| {
        audit.orders.iter().any(|o| {
            o.status == s && o.cum_quantity > Quantity::ZERO && o.cum_quantity < o.quantity
        })
    };
    assert!(partial(OrderStatus::Cancelled));
    assert!(partial(OrderStatus::Expired));
    assert!(audit.orders.iter().any(|o| o.status == OrderStatus::Filled));
}

#[test]
fn a_limit_that_never_becomes_marketable_expires_at_the_end_of_its_life() {
    let mut e = Engine::new(EngineConfig {
        seed: 5,
        cancel_probability: 0.0,
        expire_probability: 0.0,
        order_lifetime_ms: 60_000,
        ..EngineConfig::default()
    })
    .expect("config");
    e.place(limit("c-1", Side::Buy, 10, 100), T0)
        .expect("placed"); // $1.00 for AAPL
    let events = drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    assert_eq!(o.status, OrderStatus::Expired);
    assert!(o.executions.is_empty());
    assert_eq!(o.updated_at, T0 + e.config().order_lifetime_ms);
    assert_eq!(o.good_until, T0 + 60_000);
    assert_eq!(events.len(), 1);
}

#[test]
fn market_orders_fill_within_an_optional_collar() {
    let mut e = Engine::new(EngineConfig {
        seed: 9,
        collar_bps: Some(500),
        ..EngineConfig::default()
    })
    .expect("config");
    let q = e.quote("AAPL", T0).expect("quote");
    e.place(market("c-1", Side::Buy, 500), T0).expect("placed");
    drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    let bound = q.ask.cents() + q.ask.cents() * 500 / 10_000;
    assert!(o.executions.iter().all(|x| x.price.cents() <= bound));
    assert!(!o.executions.is_empty());
}

#[test]
fn the_same_seed_inputs_and_times_give_the_same_run() {
    let run = |seed: u64| {
        let mut e = engine(seed);
        let mut events = Vec::new();
        for k in 0..30u64 {
            e.place(market(&format!("m-{k}"), Side::Buy, 10 + k), T0 + k * 97)
                .expect("placed");
            events.extend(e.advance(T0 + k * 97));
            if k % 7 == 0 {
                let _ = e.cancel_by_client_id(&format!("m-{}", k / 2), T0 + k * 97);
            }
        }
        events.extend(drain(&mut e));
        (events, e.audit())
    };
    let (a, audit_a) = run(42);
    let (b, audit_b) = run(42);
    assert_eq!(a, b);
    assert_eq!(audit_a, audit_b);
    let (c, _) = run(43);
    assert_ne!(a, c, "another seed gives another run");
}

#[test]
fn executions_are_paginated_with_a_token() {
    let mut e = Engine::new(EngineConfig {
        seed: 2,
        min_chunks: 7,
        max_chunks: 7,
        cancel_probability: 0.0,
        expire_probability: 0.0,
        ..EngineConfig::default()
    })
    .expect("config");
    let placed = e.place(market("c-1", Side::Sell, 70), T0).expect("placed");
    drain(&mut e);
    let id = placed.order.order_id;
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let page = e.executions(&id, token.as_deref(), Some(3)).expect("page");
        assert!(page.executions.len() <= 3);
        all.extend(page.executions);
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(all, e.get_by_order_id(&id).expect("order").executions);
    assert_eq!(all.len(), 7);
    assert_eq!(e.executions(&id, Some("x"), None), Err(PageError::BadToken));
    assert_eq!(
        e.executions(&id, Some("99"), None),
        Err(PageError::BadToken)
    );
    assert_eq!(e.executions("nope", None, None), Err(PageError::NotFound));
}

#[test]
fn bad_configurations_are_refused() {
    let bad = [
        EngineConfig {
            min_chunks: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            min_chunks: 4,
            max_chunks: 3,
            ..EngineConfig::default()
        },
        EngineConfig {
            max_chunks: MAX_CHUNKS + 1,
            ..EngineConfig::default()
        },
        EngineConfig {
            fill_interval_min_ms: 600,
            fill_interval_max_ms: 500,
            ..EngineConfig::default()
        },
        EngineConfig {
            close_utc_ms: MS_PER_DAY,
            ..EngineConfig::default()
        },
        EngineConfig {
            gtc_max_days: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            gap_probability: 0.1,
            gap_max_bps: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            chunk_tail_alpha: Some(f64::NAN),
            ..EngineConfig::default()
        },
        EngineConfig {
            hostile: Some(HostileConfig {
                phantom_order: 1.5,
                ..HostileConfig::none()
            }),
            ..EngineConfig::default()
        },
        EngineConfig {
            cancel_probability: 0.7,
            expire_probability: 0.7,
            ..EngineConfig::default()
        },
        EngineConfig {
            collar_bps: Some(10_000),
            ..EngineConfig::default()
        },
    ];
    for c in bad {
        assert!(Engine::new(c.clone()).is_err(), "{c:?}");
    }
}

#[test]
fn split_makes_positive_parts_that_add_up() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (total, n) in [(1, 1), (2, 2), (10, 3), (1_000_000, 50)] {
        let parts = split(&mut rng, total, n);
        assert_eq!(parts.len() as u64, n);
        assert_eq!(parts.iter().sum::<u64>(), total);
        assert!(parts.iter().all(|p| *p > 0));
    }
}

// ---- venue profiles, time in force, market behaviour, hostility, scale ----

/// 20:00 UTC on T0's day: the default session close.
const CLOSE: u64 = T0 + 8 * 3_600_000;

/// No exchange-side cancels or expiries: only what a test does decides.
fn config(seed: u64) -> EngineConfig {
    EngineConfig {
        seed,
        cancel_probability: 0.0,
        expire_probability: 0.0,
        ..EngineConfig::default()
    }
}

fn with(config: EngineConfig) -> Engine {
    Engine::new(config).expect("config")
}

fn no_deadline(req: PlaceOrder) -> PlaceOrder {
    PlaceOrder {
        expire_at: None,
        ..req
    }
}

fn tif(req: PlaceOrder, time_in_force: TimeInForce) -> PlaceOrder {
    PlaceOrder {
        time_in_force,
        ..req
    }
}

fn of_order<'a>(events: &'a [ExchangeEvent], client_order_id: &str) -> Vec<&'a ExchangeEvent> {
    events
        .iter()
        .filter(|ev| ev.client_order_id == client_order_id)
        .collect()
}

#[test]
fn a_deadline_venue_refuses_unknown_cancels_and_keeps_no_tombstone() {
    let mut e = with(EngineConfig {
        venue: VenueProfile::Deadline,
        ..config(1)
    });
    assert_eq!(
        e.cancel_by_client_id("c-1", T0),
        Err(CancelError::UnknownOrder)
    );
    assert!(!e.is_tombstoned("c-1"));
    assert_eq!(e.tombstone_count(), 0);
    let placed = e
        .place(market("c-1", Side::Buy, 10), T0 + 1)
        .expect("the id is still free");
    let c = e.cancel_by_client_id("c-1", T0 + 2).expect("known");
    assert_eq!(c.outcome, CancelOutcome::Cancelled);
    assert_eq!(c.order.map(|o| o.order_id), Some(placed.order.order_id));
    assert_eq!(
        e.place(no_deadline(market("c-2", Side::Buy, 10)), T0),
        Err(PlaceError::DeadlineRequired)
    );
    assert_eq!(
        e.place(market("c-3", Side::Buy, 10), T0 + 5_001),
        Err(PlaceError::DeadlinePassed)
    );
    assert!(e.get_by_client_id("c-3").is_none());
    let v = e.venue();
    assert_eq!(
        (v.request_deadline, v.tombstones, v.cancel_by_client_id),
        (true, false, true)
    );
    assert!(e.audit().tombstones.is_empty());
}

#[test]
fn a_plain_venue_has_no_deadline_and_cancels_only_by_its_own_id() {
    let mut e = with(EngineConfig {
        venue: VenueProfile::Plain,
        ..config(1)
    });
    assert_eq!(
        e.place(market("c-1", Side::Buy, 10), T0),
        Err(PlaceError::UnsupportedField("expire_at"))
    );
    assert_eq!(e.order_count(), 0);
    // Nothing is ever too late at a venue without a request deadline.
    let later = T0 + 3_600_000;
    let placed = e
        .place(no_deadline(market("c-1", Side::Buy, 10)), later)
        .expect("placed");
    let id = placed.order.order_id.clone();
    assert_eq!(placed.order.expire_at, None);
    assert_eq!(
        e.get_by_client_id("c-1").map(|o| o.order_id),
        Some(id.clone())
    );
    for client_id in ["c-1", "never-seen"] {
        assert_eq!(
            e.cancel_by_client_id(client_id, later + 1),
            Err(CancelError::CancelByOrderIdOnly)
        );
    }
    let c = e.cancel_by_order_id(&id, later + 1).expect("known");
    assert_eq!(
        (c.outcome, c.client_order_id.as_str()),
        (CancelOutcome::Cancelled, "c-1")
    );
    assert_eq!(
        e.cancel_by_order_id(&id, later + 2).map(|c| c.outcome),
        Ok(CancelOutcome::AlreadyTerminal)
    );
    assert_eq!(
        e.cancel_by_order_id("nope", later),
        Err(CancelError::UnknownOrder)
    );
    assert_eq!(
        e.place(market("c-1", Side::Buy, 10), later),
        Err(PlaceError::UnsupportedField("expire_at")),
        "a malformed request is refused before its id is looked at"
    );
    assert_eq!(e.tombstone_count(), 0);
    let v = e.venue();
    assert_eq!(
        (v.request_deadline, v.tombstones, v.cancel_by_client_id),
        (false, false, false)
    );
}

#[test]
fn every_venue_cancels_by_its_own_order_id() {
    for venue in [
        VenueProfile::Tombstone,
        VenueProfile::Deadline,
        VenueProfile::Plain,
    ] {
        let mut e = with(EngineConfig { venue, ..config(2) });
        let req = match venue {
            VenueProfile::Plain => no_deadline(limit("c-1", Side::Buy, 10, 100)),
            _ => limit("c-1", Side::Buy, 10, 100),
        };
        let placed = e.place(req, T0).expect("placed");
        let c = e
            .cancel_by_order_id(&placed.order.order_id, T0 + 1)
            .expect("known");
        assert_eq!(c.outcome, CancelOutcome::Cancelled, "{venue:?}");
        let events = e.advance(T0 + 1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status, OrderStatus::Cancelled);
        assert_eq!(
            (e.open_order_count(), e.scheduled_task_count()),
            (0, 0),
            "{venue:?}: nothing left to fall due"
        );
    }
}

#[test]
fn a_day_order_rests_until_the_close_and_expires_there() {
    let mut e = with(config(5));
    let placed = e
        .place(limit("c-1", Side::Buy, 10, 100), T0)
        .expect("placed");
    assert_eq!(placed.order.good_until, CLOSE);
    assert_eq!(placed.order.time_in_force, TimeInForce::Day);
    assert_eq!(placed.order.trade_date.to_string(), "2024-03-01");
    assert!(e.advance(CLOSE - 1).is_empty());
    assert_eq!((e.open_order_count(), e.resting_order_count()), (1, 1));
    let events = e.advance(CLOSE);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].status, events[0].occurred_at),
        (OrderStatus::Expired, CLOSE)
    );
    assert_eq!((e.open_order_count(), e.resting_order_count()), (0, 0));
    assert_eq!(e.next_due_ms(), None);
}

#[test]
fn an_order_accepted_at_the_close_belongs_to_the_next_trade_date() {
    let mut e = with(config(5));
    let req = PlaceOrder {
        expire_at: Some(CLOSE + 5_000),
        ..limit("c-1", Side::Buy, 10, 100)
    };
    let placed = e.place(req, CLOSE).expect("placed");
    assert_eq!(placed.order.trade_date.to_string(), "2024-03-02");
    assert_eq!(placed.order.good_until, CLOSE + MS_PER_DAY);
}

#[test]
fn a_gtc_order_rests_across_closes_until_its_limit() {
    let mut e = with(EngineConfig {
        gtc_max_days: 2,
        ..config(6)
    });
    let placed = e
        .place(tif(limit("c-1", Side::Buy, 10, 100), TimeInForce::Gtc), T0)
        .expect("placed");
    let end = CLOSE + 2 * MS_PER_DAY;
    assert_eq!(placed.order.good_until, end);
    assert!(
        e.advance(CLOSE + MS_PER_DAY).is_empty(),
        "alive past two closes"
    );
    assert_eq!(
        e.get_by_client_id("c-1").map(|o| o.status),
        Some(OrderStatus::New)
    );
    let events = e.advance(end);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].status, events[0].occurred_at),
        (OrderStatus::Expired, end)
    );
}

#[test]
fn ioc_fills_what_is_marketable_at_once_and_cancels_the_rest() {
    let mut e = with(EngineConfig {
        min_chunks: 4,
        max_chunks: 4,
        ..config(8)
    });
    let filled = e
        .place(tif(market("m-1", Side::Buy, 40), TimeInForce::Ioc), T0)
        .expect("placed");
    assert_eq!(filled.order.status, OrderStatus::Filled);
    assert_eq!(filled.order.executions.len(), 4);
    assert!(filled.order.executions.iter().all(|x| x.occurred_at == T0));
    assert_eq!(filled.order.good_until, T0);
    let nothing = e
        .place(tif(limit("l-1", Side::Buy, 40, 100), TimeInForce::Ioc), T0)
        .expect("placed");
    assert_eq!(
        (nothing.order.status, nothing.order.executions.len()),
        (OrderStatus::Cancelled, 0)
    );
    let events = e.advance(T0);
    assert_eq!(of_order(&events, "m-1").len(), 5, "4 executions and filled");
    let l1 = of_order(&events, "l-1");
    assert_eq!(l1.len(), 1);
    assert_eq!(l1[0].status, OrderStatus::Cancelled);
    assert_eq!((e.open_order_count(), e.next_due_ms()), (0, None));

    // A venue-side cut part-way: what filled stays, the rest is cancelled.
    let mut e = with(EngineConfig {
        min_chunks: 4,
        max_chunks: 4,
        cancel_probability: 1.0,
        ..config(8)
    });
    let partial = (0..20)
        .map(|k| {
            let req = tif(market(&format!("p-{k}"), Side::Sell, 40), TimeInForce::Ioc);
            e.place(req, T0).expect("placed").order
        })
        .collect::<Vec<_>>();
    assert!(partial.iter().all(|o| o.status == OrderStatus::Cancelled
        && o.executions.len() < 4
        && o.executions.iter().all(|x| x.occurred_at == T0)));
    assert!(partial.iter().any(|o| !o.executions.is_empty()));
}

#[test]
fn a_resting_limit_fills_at_the_first_quote_step_that_reaches_it() {
    let mut checked = 0;
    for seed in 20..40 {
        let mut e = with(config(seed));
        let ask0 = e.quote("AAPL", T0).expect("quote").ask.cents();
        let limit_cents = ask0 - 20;
        // The same walk stepped by hand: the first step whose ask reaches the limit.
        let mut reference = QuoteBook::new(seed);
        let Some(first_step) = (T0 / QUOTE_STEP_MS..CLOSE / QUOTE_STEP_MS).find(|s| {
            reference
                .quote("AAPL", s * QUOTE_STEP_MS)
                .is_some_and(|q| q.ask.cents() <= limit_cents)
        }) else {
            continue; // this seed's walk never comes down that far today
        };
        e.place(limit("c-1", Side::Buy, 30, limit_cents), T0)
            .expect("placed");
        drain(&mut e);
        let o = e.get_by_client_id("c-1").expect("order");
        let first = o.executions.first().expect("it filled");
        assert_eq!(first.occurred_at, first_step * QUOTE_STEP_MS, "seed {seed}");
        assert!(o.executions.iter().all(|x| x.price.cents() <= limit_cents));
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} seeds crossed");
}

#[test]
fn without_a_collar_a_market_order_fills_wherever_a_gap_takes_the_price() {
    let mut e = with(EngineConfig {
        gap_probability: 0.3,
        gap_max_bps: 2_000,
        min_chunks: 20,
        max_chunks: 20,
        fill_interval_min_ms: 5_000,
        fill_interval_max_ms: 10_000,
        ..config(7)
    });
    let ask0 = e.quote("AAPL", T0).expect("quote").ask.cents();
    e.place(market("c-1", Side::Buy, 200), T0).expect("placed");
    drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    assert_eq!(o.status, OrderStatus::Filled);
    let worst = o
        .executions
        .iter()
        .map(|x| x.price.cents().abs_diff(ask0))
        .max()
        .unwrap_or(0);
    assert!(worst > ask0 / 20, "moved only {worst} cents from {ask0}");
}

#[test]
fn limits_are_honoured_through_gaps() {
    let mut rested_then_filled = 0;
    for seed in 0..5 {
        let mut e = with(EngineConfig {
            gap_probability: 0.05,
            gap_max_bps: 1_000,
            ..config(seed)
        });
        let mid = e.quote("AAPL", T0).expect("quote").last.cents();
        for k in 0..40u64 {
            let away = mid * (1 + k % 8) / 100; // 1% to 8% from the quote
            let (side, price) = if k % 2 == 0 {
                (Side::Buy, mid - away)
            } else {
                (Side::Sell, mid + away)
            };
            e.place(limit(&format!("l-{k}"), side, 5, price), T0 + k)
                .expect("placed");
        }
        drain(&mut e);
        for o in e.audit().orders {
            let limit = o.limit_price.expect("a limit order");
            for x in &o.executions {
                match o.side {
                    Side::Buy => assert!(x.price <= limit, "seed {seed}: {x:?}"),
                    Side::Sell => assert!(x.price >= limit, "seed {seed}: {x:?}"),
                }
            }
            let late = o
                .executions
                .first()
                .is_some_and(|x| x.occurred_at > T0 + 1_000);
            rested_then_filled += usize::from(late);
        }
    }
    assert!(
        rested_then_filled > 0,
        "some limits rest, then fill after a move"
    );
}

#[test]
fn a_broken_venue_fills_limits_through_their_price() {
    let mut e = with(EngineConfig {
        honours_limits: false,
        ..config(9)
    });
    e.place(limit("b-1", Side::Buy, 10, 100), T0)
        .expect("placed"); // $1.00
    e.place(limit("s-1", Side::Sell, 10, 100_000), T0)
        .expect("placed"); // $1,000.00
    drain(&mut e);
    let buy = e.get_by_client_id("b-1").expect("order");
    let sell = e.get_by_client_id("s-1").expect("order");
    assert_eq!(
        (buy.status, sell.status),
        (OrderStatus::Filled, OrderStatus::Filled)
    );
    assert!(buy.executions.iter().all(|x| x.price.cents() > 100));
    assert!(sell.executions.iter().all(|x| x.price.cents() < 100_000));
}

#[test]
fn heavy_tailed_chunk_counts_are_mostly_small_with_a_long_tail() {
    let mut e = with(EngineConfig {
        min_chunks: 1,
        max_chunks: MAX_CHUNKS,
        chunk_tail_alpha: Some(1.0),
        ..config(3)
    });
    let counts: Vec<u64> = (0..20_000).map(|_| e.draw_chunk_count(1_000_000)).collect();
    let at_least = |k: u64| counts.iter().filter(|n| **n >= k).count();
    // P(n >= k) = 1/k: 83% at most 5, 1% at least 100, 0.1% at least 1,000.
    assert!(counts.len() - at_least(6) > 15_000, "{}", at_least(6));
    assert!((100..400).contains(&at_least(100)), "{}", at_least(100));
    assert!((5..60).contains(&at_least(1_000)), "{}", at_least(1_000));
    assert!(counts
        .iter()
        .all(|n| (1..=u64::from(MAX_CHUNKS)).contains(n)));
    // Every execution is at least one share.
    assert!((0..1_000).all(|_| e.draw_chunk_count(7) <= 7));
}

#[test]
fn with_no_fill_interval_many_executions_share_one_millisecond() {
    let mut e = with(EngineConfig {
        min_chunks: 50,
        max_chunks: 50,
        fill_interval_min_ms: 0,
        fill_interval_max_ms: 0,
        ..config(4)
    });
    e.place(market("c-1", Side::Buy, 500), T0).expect("placed");
    let events = e.advance(T0);
    let o = e.get_by_client_id("c-1").expect("order");
    assert_eq!((o.status, o.executions.len()), (OrderStatus::Filled, 50));
    assert!(o.executions.iter().all(|x| x.occurred_at == T0));
    assert_eq!(events.len(), 51);
}

fn hostile(seed: u64, h: HostileConfig) -> Engine {
    with(EngineConfig {
        hostile: Some(h),
        min_chunks: 3,
        max_chunks: 3,
        ..config(seed)
    })
}

#[test]
fn a_phantom_order_is_reported_that_the_venue_never_held() {
    let mut e = hostile(
        1,
        HostileConfig {
            phantom_order: 1.0,
            ..HostileConfig::none()
        },
    );
    e.place(market("c-1", Side::Buy, 30), T0).expect("placed");
    let events = drain(&mut e);
    let records = e.hostile_events().to_vec();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.kind, HostileKind::PhantomOrder);
    assert!(e.get_by_client_id(&r.client_order_id).is_none());
    assert!(e.get_by_order_id(&r.order_id).is_none());
    let phantom = of_order(&events, &r.client_order_id);
    let kinds: Vec<_> = phantom
        .iter()
        .map(|ev| (ev.event_type, ev.status))
        .collect();
    assert_eq!(
        kinds,
        [
            (EventType::Execution, OrderStatus::Filled),
            (EventType::OrderStatus, OrderStatus::Filled)
        ]
    );
    assert_eq!(phantom[0].exec_id.as_ref(), r.exec_ids.first());
    assert_eq!(phantom[0].account, "acc-1");
    assert_eq!(of_order(&events, "c-1").len(), 4, "the real order as usual");
    assert_eq!(e.order_count(), 1);
}

#[test]
fn refused_requests_get_executions_the_client_thinks_impossible() {
    let h = HostileConfig {
        refused_order_fill: 1.0,
        ..HostileConfig::none()
    };
    let mut e = hostile(2, h.clone());
    e.cancel_by_client_id("ghost", T0).expect("tombstoned");
    assert!(e.place(market("ghost", Side::Buy, 10), T0).is_err());
    assert!(e.place(market("late", Side::Sell, 10), T0 + 5_001).is_err());
    let events = e.advance(T0 + 5_001);
    assert_eq!(of_order(&events, "ghost").len(), 2);
    let late = of_order(&events, "late");
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].side, Side::Sell);
    assert!(late[0].quantity.is_some_and(|q| q.shares() <= 10));
    let kinds: Vec<_> = e.hostile_events().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [HostileKind::RefusedOrderFill; 3]);
    assert_eq!(e.order_count(), 0, "REST still holds nothing");

    let mut e = with(EngineConfig {
        venue: VenueProfile::Deadline,
        hostile: Some(h),
        ..config(2)
    });
    assert_eq!(
        e.cancel_by_client_id("nobody", T0),
        Err(CancelError::UnknownOrder)
    );
    let events = e.advance(T0);
    assert_eq!(of_order(&events, "nobody").len(), 1);
    assert_eq!(events[0].account, crate::hostile::UNKNOWN_ACCOUNT);
}

#[test]
fn a_reused_exec_id_reports_another_quantity_or_price_while_rest_keeps_the_truth() {
    let mut e = hostile(
        3,
        HostileConfig {
            exec_id_reused: 1.0,
            ..HostileConfig::none()
        },
    );
    e.place(market("c-1", Side::Buy, 30), T0).expect("placed");
    let events = drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    assert_eq!(o.executions.len(), 3);
    for x in &o.executions {
        let reports: Vec<_> = events
            .iter()
            .filter(|ev| ev.exec_id.as_ref() == Some(&x.exec_id))
            .collect();
        assert_eq!(reports.len(), 2);
        assert_ne!(reports[0].event_id, reports[1].event_id);
        let truthful =
            |ev: &&&ExchangeEvent| ev.quantity == Some(x.quantity) && ev.price == Some(x.price);
        assert_eq!(reports.iter().filter(truthful).count(), 1, "{reports:?}");
    }
    let records = e.hostile_events();
    assert_eq!(records.len(), 3);
    for r in records {
        assert_eq!(r.kind, HostileKind::ExecIdReused);
        let altered = r.altered.as_ref().expect("what changed");
        assert_ne!(altered.truth, altered.reported);
    }
}

#[test]
fn a_final_status_can_overtake_the_last_executions() {
    let mut e = hostile(
        4,
        HostileConfig {
            status_before_executions: 1.0,
            ..HostileConfig::none()
        },
    );
    e.place(market("c-1", Side::Buy, 30), T0).expect("placed");
    let events = drain(&mut e);
    let mine = of_order(&events, "c-1");
    assert_eq!(mine.len(), 4, "every event is still sent once");
    let status_at = mine
        .iter()
        .position(|ev| ev.event_type == EventType::OrderStatus)
        .expect("status");
    assert!(status_at < 3, "the status went before an execution");
    let r = &e.hostile_events()[0];
    assert_eq!(r.kind, HostileKind::StatusBeforeExecutions);
    let o = e.get_by_client_id("c-1").expect("order");
    let last: Vec<_> = o.executions[3 - r.exec_ids.len()..]
        .iter()
        .map(|x| x.exec_id.clone())
        .collect();
    assert_eq!(r.exec_ids, last, "the held ones are the last ones");
}

#[test]
fn an_execution_can_arrive_after_the_final_status() {
    let mut e = hostile(
        5,
        HostileConfig {
            execution_after_status: 1.0,
            late_execution_ms: 2_000,
            ..HostileConfig::none()
        },
    );
    e.place(market("c-1", Side::Buy, 30), T0).expect("placed");
    // Each batch with the time it was taken at.
    let mut batches = vec![(T0, e.advance(T0))];
    while let Some(due) = e.next_due_ms() {
        batches.push((due, e.advance(due)));
    }
    let when = |pred: &dyn Fn(&ExchangeEvent) -> bool| {
        batches
            .iter()
            .find(|(_, b)| b.iter().any(pred))
            .map(|(t, _)| *t)
    };
    let o = e.get_by_client_id("c-1").expect("order");
    let last_exec = o.executions.last().expect("filled").exec_id.clone();
    let status_sent = when(&|ev| ev.event_type == EventType::OrderStatus).expect("status");
    let last_sent = when(&|ev| ev.exec_id.as_ref() == Some(&last_exec)).expect("sent");
    assert_eq!(last_sent, status_sent + 2_000);
    let r = &e.hostile_events()[0];
    assert_eq!(
        (r.kind, &r.exec_ids),
        (HostileKind::ExecutionAfterStatus, &vec![last_exec])
    );
}

#[test]
fn hostility_is_seeded_and_never_changes_what_the_venue_does() {
    let run = |h: Option<HostileConfig>| {
        let mut e = with(EngineConfig {
            hostile: h,
            max_chunks: 5,
            ..config(11)
        });
        let mut events = Vec::new();
        for k in 0..40u64 {
            let req = market(&format!("m-{k}"), Side::Buy, 10 + k);
            let _ = e.place(req, T0 + k * 50);
            if k % 5 == 0 {
                let _ = e.cancel_by_client_id(&format!("ghost-{k}"), T0 + k * 50);
            }
            events.extend(e.advance(T0 + k * 50));
        }
        events.extend(drain(&mut e));
        (events, e.audit())
    };
    let rates = HostileConfig {
        phantom_order: 0.3,
        refused_order_fill: 0.5,
        exec_id_reused: 0.3,
        status_before_executions: 0.3,
        execution_after_status: 0.3,
        late_execution_ms: 500,
    };
    let (calm_events, calm) = run(None);
    let (a_events, a) = run(Some(rates.clone()));
    let (b_events, b) = run(Some(rates));
    assert_eq!((&a_events, &a), (&b_events, &b), "same seed, same run");
    assert_eq!(a.orders, calm.orders, "REST truth is the same");
    assert_ne!(a_events, calm_events);
    let kinds: HashSet<_> = a.hostile_events.iter().map(|r| r.kind).collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

#[test]
fn an_injected_event_goes_out_with_the_next_advance_and_is_recorded() {
    let mut e = with(config(1));
    let id = e.next_injected_event_id();
    let event = ExchangeEvent {
        event_type: EventType::Execution,
        event_id: id.clone(),
        client_order_id: "never-sent".into(),
        order_id: "o-x".into(),
        account: "acc-1".into(),
        symbol: "AAPL".into(),
        side: Side::Buy,
        exec_id: Some("x-1".into()),
        quantity: Quantity::new(5).ok(),
        price: Price::from_cents(100),
        cum_quantity: Quantity::from_shares(5),
        leaves_quantity: Quantity::ZERO,
        status: OrderStatus::Filled,
        occurred_at: T0,
    };
    e.inject_event(event.clone(), T0);
    assert_eq!(e.advance(T0), vec![event]);
    let r = &e.hostile_events()[0];
    assert_eq!(
        (r.kind, r.client_order_id.as_str(), r.event_ids.clone()),
        (HostileKind::Injected, "never-sent", vec![id.clone()])
    );
    assert_ne!(e.next_injected_event_id(), id);
}

#[test]
fn the_days_orders_and_executions_are_listed_by_trade_date_in_pages() {
    let mut e = with(EngineConfig {
        min_chunks: 2,
        max_chunks: 2,
        ..config(12)
    });
    let day1 = TradeDate::parse("2024-03-01").expect("date");
    let day2 = TradeDate::parse("2024-03-02").expect("date");
    for k in 0..7 {
        e.place(market(&format!("d1-{k}"), Side::Buy, 10), T0 + k)
            .expect("placed");
    }
    drain(&mut e);
    // Accepted just before the close, filled after it: a day-1 order with
    // day-2 executions.
    let late = PlaceOrder {
        expire_at: Some(CLOSE + 5_000),
        ..tif(market("gtc", Side::Buy, 10), TimeInForce::Gtc)
    };
    e.place(late, CLOSE - 10).expect("placed");
    for k in 0..3 {
        let req = PlaceOrder {
            expire_at: Some(CLOSE + 5_000),
            ..market(&format!("d2-{k}"), Side::Sell, 10)
        };
        e.place(req, CLOSE + k).expect("placed");
    }
    drain(&mut e);

    let mut day1_orders = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = e
            .orders_for_trade_date(day1, token.as_deref(), Some(3))
            .expect("page");
        assert!(page.orders.len() <= 3);
        day1_orders.extend(page.orders);
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    let ids: Vec<_> = day1_orders
        .iter()
        .map(|o| o.client_order_id.as_str())
        .collect();
    assert_eq!(
        ids,
        ["d1-0", "d1-1", "d1-2", "d1-3", "d1-4", "d1-5", "d1-6", "gtc"]
    );
    assert!(day1_orders
        .iter()
        .all(|o| o.execution_count == 2 && o.cum_quantity.shares() == 10));
    let day2_orders = e.orders_for_trade_date(day2, None, None).expect("page");
    assert_eq!(day2_orders.orders.len(), 3);

    let executions = |date| {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = e
                .executions_for_trade_date(date, token.as_deref(), Some(4))
                .expect("page");
            all.extend(page.executions);
            token = page.next_page_token;
            if token.is_none() {
                return all;
            }
        }
    };
    let x1 = executions(day1);
    let x2 = executions(day2);
    assert_eq!((x1.len(), x2.len()), (14, 8));
    assert!(x1.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at));
    assert!(x1
        .iter()
        .all(|x| x.trade_date == day1 && x.occurred_at < CLOSE));
    assert_eq!(
        x2.iter().filter(|x| x.client_order_id == "gtc").count(),
        2,
        "a GTC order's later executions are listed on their own date"
    );
    assert_eq!(e.execution_count(), 22);
    assert_eq!(
        e.orders_for_trade_date(day1, Some("x"), None),
        Err(PageError::BadToken)
    );
    let empty = e
        .executions_for_trade_date(TradeDate::parse("2030-01-01").expect("date"), None, None)
        .expect("page");
    assert_eq!((empty.executions.len(), empty.next_page_token), (0, None));
}

/// 10,000 resting limit orders in one book and one order filled in 5,000
/// executions: everything adds up, nothing rescans, nothing is left behind.
#[test]
fn ten_thousand_resting_orders_and_one_order_of_five_thousand_executions() {
    const RESTING: u64 = 10_000;
    let mut e = with(EngineConfig {
        min_chunks: 5_000,
        max_chunks: 5_000,
        fill_interval_min_ms: 0,
        fill_interval_max_ms: 0,
        ..config(17)
    });
    let ask = e.quote("AAPL", T0).expect("quote").ask.cents();
    let mut resting_ids = Vec::new();
    for k in 0..RESTING {
        // Far outside the walk's band either way: these never fill.
        let (side, price) = if k % 2 == 0 {
            (Side::Buy, 1 + k % 100)
        } else {
            (Side::Sell, ask * 3 + k % 100)
        };
        let placed = e
            .place(limit(&format!("r-{k}"), side, 1, price), T0)
            .expect("placed");
        resting_ids.push(placed.order.order_id);
    }
    e.place(market("big", Side::Buy, 5_000), T0)
        .expect("placed");
    let events = e.advance(T0);
    assert_eq!(events.len(), 5_001, "5,000 executions and one filled");
    let big = e.order_summary_by_client_id("big").expect("order");
    assert_eq!(
        (big.status, big.execution_count, big.cum_quantity.shares()),
        (OrderStatus::Filled, 5_000, 5_000)
    );
    let execs = e.get_by_client_id("big").expect("order").executions;
    let ids: HashSet<_> = execs.iter().map(|x| &x.exec_id).collect();
    assert_eq!(ids.len(), 5_000);
    assert!(
        execs
            .windows(2)
            .all(|w| w[1].cum_quantity.shares()
                == w[0].cum_quantity.shares() + w[1].quantity.shares())
    );
    assert_eq!(e.execution_count(), 5_000);
    assert_eq!(
        (e.open_order_count(), e.resting_order_count()),
        (RESTING as usize, RESTING as usize)
    );

    // An hour passes: nothing to do, and nothing is done.
    assert!(e.advance(T0 + 3_600_000).is_empty());
    let day = e.calendar().trade_date(T0);
    let (mut listed, mut pages, mut token) = (0, 0, None::<String>);
    loop {
        let page = e
            .orders_for_trade_date(day, token.as_deref(), Some(MAX_PAGE_LIMIT))
            .expect("page");
        listed += page.orders.len();
        pages += 1;
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((listed, pages), (RESTING as usize + 1, 21));
    let first = e
        .executions_for_trade_date(day, None, Some(MAX_PAGE_LIMIT))
        .expect("page");
    assert_eq!(first.executions[..], execs[..MAX_PAGE_LIMIT]);

    for id in resting_ids.iter().step_by(2) {
        e.cancel_by_order_id(id, T0 + 3_600_001).expect("known");
    }
    assert_eq!(e.open_order_count(), RESTING as usize / 2);
    let expired = e.advance(CLOSE);
    let cancelled_and_expired = expired.len();
    assert_eq!(cancelled_and_expired, RESTING as usize);
    assert_eq!(
        (
            e.open_order_count(),
            e.resting_order_count(),
            e.scheduled_task_count()
        ),
        (0, 0, 0)
    );
    assert_eq!(e.next_due_ms(), None);
}
