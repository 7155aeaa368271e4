use super::*;
use crate::asset::{Asset, Catalog};
use crate::ids::AccountId;
use crate::ledger::Side;
use crate::money::{Price, Quantity};

const T0: u64 = 1_700_000_000_000;
const DEADLINE: u64 = T0 + 10_000;

fn policy() -> RecoveryPolicy {
    RecoveryPolicy::default()
}

fn id() -> OrderId {
    OrderId::parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap()
}

fn exec(n: u32) -> ExecId {
    ExecId::parse(&format!("exec-{n}")).unwrap()
}

fn request(side: Side, order_type: OrderType, limit: Option<&str>) -> OrderRequest {
    let catalog = Catalog::us_equities();
    OrderRequest::new(
        catalog.symbol("AAPL").unwrap(),
        side,
        order_type,
        Quantity::new(10).unwrap(),
        limit.map(|l| Price::parse(l).unwrap()),
        TimeInForce::Day,
    )
    .unwrap()
}

/// A limit buy of 10 AAPL at 100.00, reserve succeeded.
fn order() -> Order {
    let request = request(Side::Buy, OrderType::Limit, Some("100.00"));
    let pricing = request
        .pricing(Price::parse("99.00").unwrap(), 500, 1)
        .unwrap();
    Order {
        id: id(),
        account: AccountId::parse("acct").unwrap(),
        request,
        protection: pricing.protection,
        reservation: pricing.reservation,
        created_at_ms: T0,
        place_deadline_ms: DEADLINE,
        reserve: Step::done(StepState::Succeeded, T0),
        place: None,
        exchange_order_id: None,
        fills: FillTotals::default(),
        settling: None,
        backlog: false,
        reported_cum: 0,
        final_report: None,
        contradicted: false,
        cancel: None,
        release: None,
        released_units: 0,
        release_units: 0,
        closed_at_ms: None,
        recovery: Recovery::default(),
    }
}

fn placed() -> Order {
    let mut o = order();
    o.place = Some(Placement::started(T0, Some(DEADLINE)));
    o.record_placed("X-1", T0 + 1);
    o
}

fn execution(n: u32, shares: u64, cents: u64) -> Execution {
    Execution {
        exec_id: exec(n),
        exchange_order_id: "X-1".into(),
        quantity: Quantity::new(shares).unwrap(),
        price: Price::from_cents(cents).unwrap(),
        cum_quantity: None,
    }
}

/// Settles the slot and archives it, as the fill processor's two writes do.
fn settle_slot(o: &mut Order, now: u64) {
    o.settled(now);
    if let Some(fill) = o.settling.as_mut() {
        fill.archived = true;
    }
}

#[test]
fn market_orders_carry_a_protective_limit_that_bounds_the_reservation() {
    let last = Price::parse("100.00").unwrap();
    let buy = request(Side::Buy, OrderType::Market, None);
    let pricing = buy.pricing(last, 500, 1).unwrap();
    assert_eq!(pricing.protection, Some(Price::parse("105.00").unwrap()));
    assert_eq!(pricing.reservation.asset, Asset::Cash);
    assert_eq!(pricing.reservation.amount.units(), 10 * 10_500);
    // Rounded up to the tick, so the collar is never undershot.
    let pricing = buy
        .pricing(Price::parse("100.01").unwrap(), 500, 5)
        .unwrap();
    // 100.01 x 1.05 = 105.0105 -> 105.02 -> the next 0.05 tick: 105.05.
    assert_eq!(pricing.protection, Some(Price::from_cents(10_505).unwrap()));
    // A market sell gets a floor, rounded down; it reserves its shares.
    let sell = request(Side::Sell, OrderType::Market, None);
    let pricing = sell.pricing(last, 500, 1).unwrap();
    assert_eq!(pricing.protection, Some(Price::parse("95.00").unwrap()));
    assert_eq!(pricing.reservation.amount.units(), 10);
    // Collar 0: no protection; the reservation is at the reference price.
    let pricing = buy.pricing(last, 0, 1).unwrap();
    assert_eq!(pricing.protection, None);
    assert_eq!(pricing.reservation.amount.units(), 100_000);
    // A limit order is sent with its own limit.
    let limit = request(Side::Buy, OrderType::Limit, Some("99.50"));
    assert_eq!(limit.pricing(last, 500, 1).unwrap().protection, None);
}

#[test]
fn request_validates_price_against_type() {
    let catalog = Catalog::us_equities();
    let make = |t, p: Option<&str>| {
        OrderRequest::new(
            catalog.symbol("AAPL").unwrap(),
            Side::Buy,
            t,
            Quantity::new(1).unwrap(),
            p.map(|p| Price::parse(p).unwrap()),
            TimeInForce::Gtc,
        )
    };
    assert_eq!(
        make(OrderType::Limit, None),
        Err(OrderError::MissingLimitPrice)
    );
    assert_eq!(
        make(OrderType::Market, Some("1.00")),
        Err(OrderError::UnexpectedLimitPrice)
    );
    assert!(make(OrderType::Limit, Some("1.00")).is_ok());
}

#[test]
fn ids_and_derived_keys() {
    assert!(OrderId::parse("0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").is_err());
    assert!(ExecId::parse("has space").is_err());
    assert!(ExecId::parse(&"x".repeat(MAX_EXEC_ID_LEN + 1)).is_err());
    let o = id();
    assert_eq!(o.settle_key(&exec(1)).as_str(), format!("{o}:fill:exec-1"));
    assert_ne!(o.reserve_key(), o.release_key());
}

#[test]
fn happy_path_with_the_release_riding_on_the_last_settlement() {
    let p = policy();
    let mut o = order();
    o.reserve = Step::processing(T0);
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::Reserve]
    );
    o.reserve.finish(StepState::Succeeded, T0);
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::Place]
    );
    o.place = Some(Placement::started(T0, Some(DEADLINE)));
    o.place.as_mut().unwrap().sends = 1;
    // Its answer lost: a handler asks while the window is open, recovery always.
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::LookupPlacement]
    );
    assert!(next_actions(&o, DEADLINE + 1, &p, Driver::Handler).is_empty());
    assert_eq!(
        next_actions(&o, DEADLINE + 1, &p, Driver::Recovery),
        vec![Action::LookupPlacement]
    );
    o.record_placed("X-1", T0 + 1);
    assert_eq!(o.status(), OrderStatus::Open);
    assert!(next_actions(&o, T0 + 2, &p, Driver::Recovery).is_empty());
    assert_eq!(pending_condition(&o, T0 + 2, &p), None, "healthy resting");

    // 4 at 99.00: not the last.
    o.take_fill(&execution(1, 4, 9_900), T0 + 3).unwrap();
    assert_eq!(o.settling.as_ref().unwrap().from_reserved_units, 39_600);
    assert_eq!(o.settling.as_ref().unwrap().release_units, 0);
    assert_eq!(
        next_actions(&o, T0 + 3, &p, Driver::Handler),
        vec![Action::Settle]
    );
    settle_slot(&mut o, T0 + 4);
    o.fold_settled().unwrap();
    assert_eq!(o.fills.quantity, 4);

    // 6 at 98.00: the last. The rest of the reservation rides on it.
    o.take_fill(&execution(2, 6, 9_800), T0 + 5).unwrap();
    let fill = o.settling.clone().unwrap();
    assert_eq!(fill.from_reserved_units, 58_800);
    assert_eq!(fill.release_units, 100_000 - 39_600 - 58_800);
    assert!(o.release.as_ref().unwrap().is_processing());
    assert_eq!(o.unused_reservation(), 0);
    assert_eq!(
        next_actions(&o, T0 + 5, &p, Driver::Handler),
        vec![Action::Settle]
    );
    o.settled(T0 + 6);
    assert!(o.release.as_ref().unwrap().is_succeeded());
    assert_eq!(o.released_units, 1_600);
    assert_eq!(
        next_actions(&o, T0 + 6, &p, Driver::Handler),
        vec![Action::Close]
    );
    assert_eq!(o.status(), OrderStatus::Filled);
}

#[test]
fn an_execution_beyond_the_reservation_is_taken_and_flagged_never_refused() {
    let mut market = placed();
    market.request = request(Side::Buy, OrderType::Market, None);
    // Reserved 10 x 105.00 = 1,050.00 (protection); the venue ignored it.
    market.reservation.amount = crate::Amount::new(105_000).unwrap();
    let taken = market.take_fill(&execution(1, 10, 10_600), T0 + 2).unwrap();
    assert_eq!(
        taken.flags.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![FlagReason::BeyondReservation]
    );
    let fill = market.settling.clone().unwrap();
    assert_eq!(fill.from_reserved_units, 105_000, "the whole reservation");
    assert_eq!(fill.release_units, 0);
    // An overfill is taken too.
    let mut o = placed();
    o.take_fill(&execution(1, 10, 9_000), T0 + 2).unwrap();
    settle_slot(&mut o, T0 + 3);
    o.fold_settled().unwrap();
    let taken = o.take_fill(&execution(2, 1, 9_000), T0 + 4).unwrap();
    assert!(taken.flags.iter().any(|f| f.0 == FlagReason::Overfilled));
    assert_eq!(o.filled_quantity(), 11);
}

#[test]
fn a_cancel_before_the_placement_stops_it_and_after_it_is_sent_by_any_driver() {
    let p = policy();
    let mut o = order();
    o.cancel = Some(Cancel {
        requested_at_ms: T0,
        step: None,
    });
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::AbandonUnsent]
    );
    // Placement in flight: venues that cancel by client id settle it at once.
    let mut o = order();
    o.place = Some(Placement::started(T0, Some(DEADLINE)));
    o.cancel = Some(Cancel {
        requested_at_ms: T0,
        step: None,
    });
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::Cancel]
    );
    let plain = RecoveryPolicy {
        venue: VenueRules::PLAIN,
        ..policy()
    };
    assert_eq!(
        next_actions(&o, T0, &plain, Driver::Recovery),
        vec![Action::LookupPlacement],
        "the venue's own id is needed first"
    );
    // Placed and partially filled: the cancel goes out, whatever else is recorded.
    let mut o = placed();
    o.take_fill(&execution(1, 4, 9_900), T0 + 2).unwrap();
    settle_slot(&mut o, T0 + 3);
    o.cancel = Some(Cancel {
        requested_at_ms: T0 + 4,
        step: Some(Step::processing(T0 + 4)),
    });
    for driver in [Driver::Handler, Driver::Recovery] {
        assert_eq!(next_actions(&o, T0 + 5, &p, driver), vec![Action::Cancel]);
    }
    assert_eq!(
        pending_condition(&o, T0 + 5, &p),
        Some(ConditionKind::Cancel)
    );
    // Confirmed with the final status: the rest is released once.
    o.cancel.as_mut().unwrap().step = Some(Step::done(StepState::Succeeded, T0 + 6));
    o.record_final(&FinalReport {
        status: FinalStatus::Cancelled,
        cum_quantity: 4,
    });
    assert_eq!(
        next_actions(&o, T0 + 6, &p, Driver::Handler),
        vec![Action::Release {
            units: 100_000 - 39_600
        }]
    );
    assert_eq!(o.status(), OrderStatus::Cancelled);
}

#[test]
fn unsent_placements_are_abandoned_only_after_the_window() {
    let p = policy();
    let o = order();
    assert_eq!(
        next_actions(&o, DEADLINE, &p, Driver::Recovery),
        vec![Action::Place]
    );
    assert_eq!(
        next_actions(&o, DEADLINE + 1, &p, Driver::Recovery),
        vec![Action::AbandonUnsent]
    );
}

#[test]
fn a_send_that_provably_failed_is_sent_again_until_the_deadline() {
    let p = policy();
    let mut o = order();
    let mut placement = Placement::started(T0, Some(DEADLINE));
    placement.sends = 1;
    placement.resend = true;
    o.place = Some(placement);
    assert_eq!(
        next_actions(&o, DEADLINE, &p, Driver::Handler),
        vec![Action::Resend]
    );
    assert!(next_actions(&o, DEADLINE + 1, &p, Driver::Handler).is_empty());
    assert_eq!(
        next_actions(&o, DEADLINE + 1, &p, Driver::Recovery),
        vec![Action::LookupPlacement]
    );
}

#[test]
fn a_placement_is_never_sent_again_after_a_cancel() {
    let plain = RecoveryPolicy {
        venue: VenueRules::PLAIN,
        ..policy()
    };
    let mut o = order();
    let mut placement = Placement::started(T0, Some(DEADLINE));
    placement.sends = 1;
    placement.resend = true;
    o.place = Some(placement);
    o.cancel = Some(Cancel {
        requested_at_ms: T0 + 1,
        step: Some(Step::processing(T0 + 1)),
    });
    // What may be in flight is settled by lookup (and, after the window,
    // by the venue's absence proof), never by sending it once more.
    for driver in [Driver::Handler, Driver::Recovery] {
        assert_eq!(
            next_actions(&o, DEADLINE, &plain, driver),
            vec![Action::LookupPlacement]
        );
    }
}

#[test]
fn a_contradicted_order_is_finished_once_its_final_report_is_in() {
    let mut o = placed();
    o.take_fill(&execution(1, 3, 9_900), T0 + 2).unwrap();
    settle_slot(&mut o, T0 + 3);
    o.record_final(&FinalReport {
        status: FinalStatus::Filled,
        cum_quantity: 5,
    });
    assert_eq!(o.missing_quantity(), 2);
    assert!(!o.finished_at_exchange());
    // The venue's own list names only this execution, with 5 shares.
    o.contradicted = true;
    assert_eq!(o.missing_quantity(), 0);
    assert!(o.finished_at_exchange());
}

#[test]
fn a_final_status_with_executions_missing_is_a_signal_and_they_are_pulled() {
    let p = policy();
    let mut o = placed();
    o.record_final(&FinalReport {
        status: FinalStatus::Filled,
        cum_quantity: 10,
    });
    assert_eq!(o.missing_quantity(), 10);
    assert!(next_actions(&o, T0 + 2, &p, Driver::Handler).is_empty());
    assert_eq!(
        next_actions(&o, T0 + 2, &p, Driver::Recovery),
        vec![Action::PullExecutions]
    );
    assert_eq!(
        pending_condition(&o, T0 + 2, &p),
        Some(ConditionKind::MissingExecutions)
    );
    assert_eq!(
        next_look_ms(&o, ConditionKind::MissingExecutions, 1, T0 + 2, &p),
        T0 + 2 + p.gap_grace_ms
    );
}

#[test]
fn a_resting_limit_order_is_healthy_and_a_silent_market_order_is_not() {
    let p = policy();
    let o = placed();
    let later = T0 + 6 * 3_600_000;
    assert_eq!(pending_condition(&o, later, &p), None);
    assert!(next_actions(&o, later, &p, Driver::Recovery).is_empty());
    let mut market = placed();
    market.request = request(Side::Buy, OrderType::Market, None);
    assert_eq!(pending_condition(&market, T0 + 2, &p), None);
    assert_eq!(
        pending_condition(&market, T0 + 2 + p.market_silence_ms, &p),
        Some(ConditionKind::Silence)
    );
}

#[test]
fn flags_are_kept_once_each_with_the_first_detail() {
    let mut r = Recovery::default();
    assert!(r.flag(FlagReason::Shortfall, "owes 70.00", T0));
    assert!(!r.flag(FlagReason::Shortfall, "again", T0 + 1));
    assert!(r.flag(FlagReason::Reopened, "reopened", T0 + 2));
    assert_eq!(r.flags, vec![FlagReason::Shortfall, FlagReason::Reopened]);
    assert_eq!(r.flag_detail.as_deref(), Some("owes 70.00"));
    use ConditionKind::{Cancel, Settlement};
    // (kind, at, ground done/missing) -> (attempts, since), and why.
    let looks = [
        (Settlement, 0, (3, 5), (1, 0), "first met"),
        (Settlement, 5, (3, 5), (2, 0), "tried again, nothing gained"),
        (Cancel, 9, (3, 5), (1, 9), "reset on a new condition"),
        (Cancel, 12, (3, 7), (2, 9), "more missing is no progress"),
        (
            Cancel,
            15,
            (4, 7),
            (1, 15),
            "reset when more is done, whoever did it",
        ),
        (Cancel, 18, (4, 6), (1, 18), "reset when less is missing"),
    ];
    for (kind, at, (done, missing), (attempts, since), why) in looks {
        let c = r.attempted(kind, T0 + at, Ground { done, missing });
        assert_eq!((c.attempts, c.since_ms), (attempts, T0 + since), "{why}");
    }
}

// ---- state machine: perform whatever next_actions asks, with random outcomes ----

mod state_machine {
    use super::*;
    use proptest::prelude::*;

    /// What the world answers when an action runs.
    #[derive(Debug, Clone)]
    enum World {
        Succeeds,
        /// The call's outcome is unknown (the record stays as it was).
        Unknown,
        /// The exchange executes `shares` at `cents` (when the order rests there).
        Executes {
            shares: u64,
            cents: u64,
        },
        /// The exchange ends the order (cancel or expiry) with what it executed.
        Ends,
        /// The caller cancels.
        CallerCancels,
        Tick {
            ms: u64,
        },
    }

    fn world() -> impl Strategy<Value = World> {
        prop_oneof![
            4 => Just(World::Succeeds),
            1 => Just(World::Unknown),
            2 => (1u64..=4, 9_000u64..=10_000).prop_map(|(shares, cents)| World::Executes { shares, cents }),
            1 => Just(World::Ends),
            1 => Just(World::CallerCancels),
            1 => (1u64..=30_000).prop_map(|ms| World::Tick { ms }),
        ]
    }

    #[derive(Default)]
    struct Exchange {
        placed: bool,
        executed: Vec<(u64, u64)>,
        finished: Option<FinalStatus>,
        tombstoned: bool,
    }

    fn perform(o: &mut Order, ex: &mut Exchange, action: &Action, world: &World, now: u64) {
        let ok = !matches!(world, World::Unknown);
        match action {
            Action::Reserve if ok => o.reserve.finish(StepState::Succeeded, now),
            Action::Place | Action::Resend => {
                if o.place.is_none() {
                    o.place = Some(Placement::started(now, Some(o.place_deadline_ms)));
                }
                let placement = o.place.as_mut().expect("started");
                placement.sends += 1;
                placement.resend = false;
                if ok && !ex.tombstoned && now <= o.place_deadline_ms {
                    ex.placed = true;
                    o.record_placed("X-1", now);
                }
            }
            Action::AbandonUnsent => {
                let mut placement = Placement::started(now, None);
                placement.step.finish(
                    StepState::Failed(StepFailure::NotPlaced {
                        detail: "never sent".into(),
                    }),
                    now,
                );
                o.place = Some(placement);
            }
            Action::LookupPlacement if ok => {
                if ex.placed {
                    o.record_placed("X-1", now);
                } else if now > absence_final_at_ms(o, &policy()) {
                    ex.tombstoned = true;
                    o.place.as_mut().expect("processing").step.finish(
                        StepState::Failed(StepFailure::NotPlaced {
                            detail: "tombstoned".into(),
                        }),
                        now,
                    );
                }
            }
            Action::Cancel if ok => {
                if !ex.placed {
                    ex.tombstoned = true;
                    o.place.as_mut().expect("processing").step.finish(
                        StepState::Failed(StepFailure::NotPlaced {
                            detail: "tombstoned".into(),
                        }),
                        now,
                    );
                    return;
                }
                ex.finished.get_or_insert(FinalStatus::Cancelled);
                let cum = ex.executed.iter().map(|(s, _)| s).sum();
                let cancel = o.cancel.as_mut().expect("requested");
                cancel.step = Some(Step::done(StepState::Succeeded, now));
                o.record_final(&FinalReport {
                    status: ex.finished.expect("set"),
                    cum_quantity: cum,
                });
            }
            Action::PullExecutions if ok => {
                // One missing execution at a time, as the slot takes them.
                let filled = o.filled_quantity();
                let mut seen = 0;
                for (n, &(shares, cents)) in ex.executed.iter().enumerate() {
                    seen += shares;
                    if seen > filled {
                        if let Some(f) = o.settling.as_mut() {
                            f.archived = true;
                        }
                        o.fold_settled().expect("in range");
                        o.take_fill(&execution(n as u32, shares, cents), now)
                            .expect("in range");
                        return;
                    }
                }
                if let Some(status) = ex.finished {
                    let cum = ex.executed.iter().map(|(s, _)| s).sum();
                    o.record_final(&FinalReport {
                        status,
                        cum_quantity: cum,
                    });
                }
            }
            Action::Settle if ok => settle_slot(o, now),
            Action::Release { units } => {
                if o.release.is_none() {
                    o.release = Some(Step::processing(now));
                    o.release_units = *units;
                }
                if ok {
                    o.release
                        .as_mut()
                        .expect("started")
                        .finish(StepState::Succeeded, now);
                    o.released_units += o.release_units;
                    o.release_units = 0;
                }
            }
            Action::Close => o.closed_at_ms = Some(now),
            _ => {}
        }
    }

    proptest! {
        /// Whatever the world answers, performing what next_actions asks never
        /// breaks an invariant, and once the world behaves the order closes
        /// with every execution applied once and the reservation all used or returned.
        #[test]
        fn performing_next_actions_keeps_invariants_and_finishes(steps in prop::collection::vec(world(), 1..60)) {
            let p = policy();
            let mut o = order();
            o.reserve = Step::processing(T0);
            let mut ex = Exchange::default();
            let mut now = T0;
            for world in &steps {
                match world {
                    World::Executes { shares, cents } if ex.placed && ex.finished.is_none() => {
                        let done: u64 = ex.executed.iter().map(|(s, _)| s).sum();
                        let shares = (*shares).min(10 - done);
                        if shares > 0 {
                            ex.executed.push((shares, *cents));
                        }
                        if done + shares == 10 {
                            ex.finished = Some(FinalStatus::Filled);
                        }
                    }
                    World::Ends if ex.placed && ex.finished.is_none() => ex.finished = Some(FinalStatus::Cancelled),
                    World::CallerCancels if o.cancel.is_none() => {
                        o.cancel = Some(Cancel { requested_at_ms: now, step: None });
                    }
                    World::Tick { ms } => now += ms,
                    _ => {}
                }
                let actions = next_actions(&o, now, &p, Driver::Recovery);
                if let Some(action) = actions.first() {
                    perform(&mut o, &mut ex, action, world, now);
                }
                prop_assert!(o.consumed_units() + o.released_units <= o.reservation.amount.units());
                prop_assert!(!(o.place.as_ref().is_some_and(|p| p.step.is_failed()) && ex.placed), "never 'not placed' for a placed order");
                prop_assert!(!(o.cancel.is_some() && o.place.is_none() && ex.placed), "a cancel before the placement stops it");
            }
            if ex.placed && ex.finished.is_none() {
                ex.finished = Some(FinalStatus::Cancelled);
            }
            for _ in 0..80 {
                now += 60_000;
                let actions = next_actions(&o, now, &p, Driver::Recovery);
                match actions.first() {
                    Some(action) => perform(&mut o, &mut ex, action, &World::Succeeds, now),
                    // Nothing signals a problem: the end-of-day check asks the exchange.
                    None if !o.is_closed() && o.is_placed() => {
                        perform(&mut o, &mut ex, &Action::PullExecutions, &World::Succeeds, now)
                    }
                    None => break,
                }
            }
            prop_assert!(o.is_closed(), "finished once the world behaves: {o:?}");
            let executed: u64 = ex.executed.iter().map(|(s, _)| s).sum();
            prop_assert_eq!(o.filled_quantity(), executed, "every execution applied once");
            prop_assert!(o.settling.as_ref().is_none_or(|f| f.settle.is_succeeded()));
            prop_assert_eq!(o.consumed_units() + o.released_units, o.reservation.amount.units(), "the reservation is used or returned");
            prop_assert!(!(o.cancel.is_some() && ex.placed && ex.finished.is_none()), "an accepted cancel is never left live");
        }
    }
}
