use std::collections::HashSet;

use super::*;
use crate::money::Price;

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
        expire_at: T0 + 5_000,
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
    let err = e.place(late.clone(), late.expire_at + 1).expect_err("late");
    assert_eq!(err, PlaceError::DeadlinePassed);
    assert_eq!(e.order_count(), 0);
    assert!(e.get_by_client_id("c-1").is_none());
    assert!(!e.is_tombstoned("c-1"));
    // At the deadline exactly, the request is still on time.
    assert!(e.place(late.clone(), late.expire_at).is_ok());
}

#[test]
fn a_tombstoned_id_can_never_be_placed() {
    let mut e = engine(1);
    let c = e.cancel_by_client_id("c-1", T0);
    assert_eq!(c.outcome, CancelOutcome::Tombstoned);
    assert_eq!(
        e.cancel_by_client_id("c-1", T0 + 1).outcome,
        CancelOutcome::Tombstoned
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
    let c = e.cancel_by_client_id("c-1", T0 + 1);
    assert_eq!(c.outcome, CancelOutcome::Cancelled);
    let events = drain(&mut e);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status, OrderStatus::Cancelled);
    let again = e.cancel_by_client_id("c-1", T0 + 2);
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
        ..EngineConfig::default()
    })
    .expect("config");
    e.place(limit("c-1", Side::Buy, 10, 100), T0)
        .expect("placed"); // $1.00 for AAPL
    let events = drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    assert_eq!(o.status, OrderStatus::Expired);
    assert!(o.executions.is_empty());
    assert!(o.updated_at >= T0 + e.config().order_lifetime_ms);
    assert_eq!(events.len(), 1);
}

#[test]
fn market_orders_fill_within_the_collar() {
    let mut e = engine(9);
    let q = e.quote("AAPL", T0).expect("quote");
    e.place(market("c-1", Side::Buy, 500), T0).expect("placed");
    drain(&mut e);
    let o = e.get_by_client_id("c-1").expect("order");
    let bound = q.ask.cents() + q.ask.cents() * e.config().collar_bps / 10_000;
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
                e.cancel_by_client_id(&format!("m-{}", k / 2), T0 + k * 97);
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
            fill_interval_min_ms: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            cancel_probability: 0.7,
            expire_probability: 0.7,
            ..EngineConfig::default()
        },
        EngineConfig {
            collar_bps: 10_000,
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
