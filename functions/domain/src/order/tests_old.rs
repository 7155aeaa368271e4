use super::*;
use crate::asset::Catalog;

const T0: u64 = 1_700_000_000_000;
const DEADLINE: u64 = T0 + 10_000;

fn policy() -> RecoveryPolicy {
    RecoveryPolicy {
        quiet_after_ms: 60_000,
        clock_skew_margin_ms: 5_000,
        max_invocation_ms: 30_000,
    }
}

fn id() -> OrderId {
    OrderId::parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap()
}

fn exec(n: u32) -> ExecId {
    ExecId::parse(&format!("exec-{n}")).unwrap()
}

/// A limit buy of 10 AAPL at 100.00, reserve succeeded.
fn order() -> Order {
    let catalog = Catalog::us_equities();
    let request = OrderRequest::new(
        catalog.symbol("AAPL").unwrap(),
        Side::Buy,
        OrderType::Limit,
        Quantity::new(10).unwrap(),
        Some(Price::parse("100.00").unwrap()),
    )
    .unwrap();
    let reservation = request
        .reservation(Price::parse("99.00").unwrap(), 500)
        .unwrap();
    let mut reserve = Step::processing(T0);
    reserve.finish(StepState::Succeeded, T0);
    Order {
        id: id(),
        account: AccountId::parse("acct").unwrap(),
        idempotency_key: IdempotencyKey::parse("k").unwrap(),
        request,
        reservation,
        created_at_ms: T0,
        place_deadline_ms: DEADLINE,
        reserve,
        place: None,
        exchange_order_id: None,
        fills: Vec::new(),
        final_report: None,
        cancel_requested_at_ms: None,
        release: None,
        closed_at_ms: None,
        recovery: Recovery::default(),
    }
}

fn step(state: StepState) -> Step {
    let mut step = Step::processing(T0);
    step.finish(state, T0 + 1);
    step
}

fn execution(n: u32, shares: u64, cents: u64) -> Execution {
    Execution {
        exec_id: exec(n),
        exchange_order_id: "X-1".into(),
        quantity: Quantity::new(shares).unwrap(),
        price: Price::from_cents(cents).unwrap(),
    }
}

#[test]
fn reservation_of_each_kind() {
    let mut o = order();
    assert_eq!(
        o.reservation,
        Reservation {
            asset: Asset::Cash,
            amount: Amount::new(100_000).unwrap()
        }
    );
    o.request.order_type = OrderType::Market;
    o.request.limit_price = None;
    // 10 x 99.00 x 1.05 = 1039.50
    let market = o
        .request
        .reservation(Price::parse("99.00").unwrap(), 500)
        .unwrap();
    assert_eq!(market.amount.units(), 103_950);
    // Rounded up: 1 x 0.01 x 1.05 = 0.0105 -> 0.02
    o.request.quantity = Quantity::new(1).unwrap();
    assert_eq!(
        o.request
            .reservation(Price::from_cents(1).unwrap(), 500)
            .unwrap()
            .amount
            .units(),
        2
    );
    o.request.side = Side::Sell;
    let sell = o
        .request
        .reservation(Price::parse("99.00").unwrap(), 500)
        .unwrap();
    assert_eq!(sell.asset, Asset::Shares(o.request.symbol.clone()));
    assert_eq!(sell.amount.units(), 1);
}

#[test]
fn request_validates_price_against_type() {
    let symbol = Catalog::us_equities().symbol("AAPL").unwrap();
    let q = Quantity::new(1).unwrap();
    let p = Some(Price::from_cents(1).unwrap());
    assert_eq!(
        OrderRequest::new(symbol.clone(), Side::Buy, OrderType::Limit, q, None),
        Err(OrderError::MissingLimitPrice)
    );
    assert_eq!(
        OrderRequest::new(symbol, Side::Buy, OrderType::Market, q, p),
        Err(OrderError::UnexpectedLimitPrice)
    );
}

#[test]
fn ids_and_derived_keys() {
    assert!(OrderId::parse("0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").is_err());
    assert!(OrderId::parse("not-a-uuid").is_err());
    assert_eq!(
        id().settle_key(&exec(7)).as_str(),
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b:fill:exec-7"
    );
    assert!(ExecId::parse("").is_err());
    assert!(ExecId::parse(&"e".repeat(129)).is_err());
}

#[test]
fn happy_path_walks_through_every_step() {
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
    o.place = Some(Step::processing(T0));
    assert_eq!(next_actions(&o, T0, &p, Driver::Handler), vec![]);
    o.record_placed("X-1", T0 + 1);
    assert_eq!(o.status(), OrderStatus::Open);
    assert_eq!(
        o.apply_execution(&execution(1, 4, 9_900), T0 + 2),
        Ok(FillApplied::Recorded)
    );
    assert_eq!(o.status(), OrderStatus::PartiallyFilled);
    assert_eq!(
        next_actions(&o, T0 + 2, &p, Driver::Handler),
        vec![Action::Settle(exec(1))]
    );
    o.fills[0].settle.finish(StepState::Succeeded, T0 + 3);
    assert_eq!(next_actions(&o, T0 + 3, &p, Driver::Handler), vec![]);
    o.apply_execution(&execution(2, 6, 10_000), T0 + 4).unwrap();
    o.fills[1].settle.finish(StepState::Succeeded, T0 + 5);
    o.record_final(FinalReport {
        status: FinalStatus::Filled,
        cum_quantity: 10,
    });
    // 100,000 reserved - 4 x 99.00 - 6 x 100.00 = 400 cents unused
    assert_eq!(
        next_actions(&o, T0 + 5, &p, Driver::Handler),
        vec![Action::Release { units: 400 }]
    );
    o.release = Some(step(StepState::Succeeded));
    assert_eq!(
        next_actions(&o, T0 + 6, &p, Driver::Handler),
        vec![Action::Close]
    );
    o.closed_at_ms = Some(T0 + 7);
    assert_eq!(next_actions(&o, T0 + 7, &p, Driver::Recovery), vec![]);
    assert_eq!(o.status(), OrderStatus::Filled);
}

#[test]
fn fills_are_applied_once_and_within_bounds() {
    let mut o = order();
    o.place = Some(Step::processing(T0));
    assert_eq!(
        o.apply_execution(&execution(1, 3, 10_000), T0),
        Ok(FillApplied::Recorded)
    );
    assert!(
        o.place.as_ref().unwrap().is_succeeded(),
        "a fill proves placement"
    );
    assert_eq!(o.exchange_order_id.as_deref(), Some("X-1"));
    assert_eq!(
        o.apply_execution(&execution(1, 3, 10_000), T0),
        Ok(FillApplied::Duplicate)
    );
    assert_eq!(o.filled_quantity(), 3);
    assert_eq!(
        o.apply_execution(&execution(2, 8, 10_000), T0),
        Err(FillError::Overfill {
            fill: 8,
            ordered: 10
        })
    );
    assert!(matches!(
        o.apply_execution(&execution(3, 1, 10_001), T0),
        Err(FillError::AboveLimit { .. })
    ));
    assert_eq!(o.filled_quantity(), 3, "refused fills leave no trace");
}

#[test]
fn a_fill_after_not_placed_is_a_contradiction() {
    let mut o = order();
    o.place = Some(step(StepState::Failed(StepFailure::NotPlaced {
        detail: "tombstoned".into(),
    })));
    assert_eq!(
        o.apply_execution(&execution(1, 1, 100), T0),
        Err(FillError::ConcludedNotPlaced)
    );
}

#[test]
fn unknown_placement_waits_for_the_deadline_margin() {
    let p = policy();
    let o = order();
    assert!(!placement_unknown_is_final(&o, DEADLINE, &p));
    assert!(!placement_unknown_is_final(&o, DEADLINE + 35_000, &p));
    assert!(placement_unknown_is_final(&o, DEADLINE + 35_001, &p));
}

#[test]
fn unsent_placement_is_abandoned_after_deadline_or_cancel() {
    let p = policy();
    let mut o = order();
    assert_eq!(
        next_actions(&o, DEADLINE + 1, &p, Driver::Handler),
        vec![Action::AbandonUnsentPlacement]
    );
    o.cancel_requested_at_ms = Some(T0);
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::AbandonUnsentPlacement]
    );
    o.place = Some(step(StepState::Failed(StepFailure::NotPlaced {
        detail: "cancelled".into(),
    })));
    assert_eq!(o.status(), OrderStatus::Cancelled);
    assert_eq!(
        next_actions(&o, T0, &p, Driver::Handler),
        vec![Action::Release { units: 100_000 }]
    );
}

#[test]
fn quiet_open_orders_are_pulled_by_recovery_only() {
    let p = policy();
    let mut o = order();
    o.place = Some(step(StepState::Succeeded));
    assert_eq!(next_actions(&o, T0 + 59_000, &p, Driver::Recovery), vec![]);
    assert_eq!(
        next_actions(&o, T0 + 60_001, &p, Driver::Recovery),
        vec![Action::PullExecutions]
    );
    assert_eq!(next_actions(&o, T0 + 60_001, &p, Driver::Handler), vec![]);
    o.record_final(FinalReport {
        status: FinalStatus::Cancelled,
        cum_quantity: 2,
    });
    assert_eq!(
        next_actions(&o, T0 + 2, &p, Driver::Recovery),
        vec![Action::PullExecutions],
        "fills are missing"
    );
}

// ---- every combination of step states --------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fills {
    None,
    OneSettling,
    OneSettled,
    AllSettled,
}

fn combinations() -> Vec<(Order, u64, Driver, String)> {
    let reserves = [
        StepState::Processing,
        StepState::Succeeded,
        StepState::Failed(StepFailure::InsufficientFunds),
    ];
    let places: [Option<StepState>; 5] = [
        None,
        Some(StepState::Processing),
        Some(StepState::Succeeded),
        Some(StepState::Failed(StepFailure::ExchangeRejected {
            detail: "no".into(),
        })),
        Some(StepState::Failed(StepFailure::NotPlaced {
            detail: "tombstone".into(),
        })),
    ];
    let fills = [
        Fills::None,
        Fills::OneSettling,
        Fills::OneSettled,
        Fills::AllSettled,
    ];
    let finals = [
        None,
        Some(FinalStatus::Filled),
        Some(FinalStatus::Cancelled),
    ];
    let releases = [
        None,
        Some(StepState::Processing),
        Some(StepState::Succeeded),
    ];
    let mut all = Vec::new();
    for reserve in &reserves {
        for place in &places {
            for fill in fills {
                // Unreachable: recording a fill records the placement too.
                if place.is_none() && !matches!(fill, Fills::None) {
                    continue;
                }
                for final_status in finals {
                    for release in &releases {
                        for closed in [false, true] {
                            for cancel in [false, true] {
                                for now in [T0 + 1, DEADLINE + 1, T0 + 120_000] {
                                    for driver in [Driver::Handler, Driver::Recovery] {
                                        let mut o = order();
                                        o.reserve = step(reserve.clone());
                                        o.place = place.clone().map(step);
                                        let filled = match fill {
                                            Fills::None => vec![],
                                            Fills::OneSettling => vec![(1, 4, false)],
                                            Fills::OneSettled => vec![(1, 4, true)],
                                            Fills::AllSettled => vec![(1, 4, true), (2, 6, true)],
                                        };
                                        for (n, shares, settled) in filled {
                                            let mut settle = Step::processing(T0);
                                            if settled {
                                                settle.finish(StepState::Succeeded, T0 + 1);
                                            }
                                            o.fills.push(Fill {
                                                exec_id: exec(n),
                                                quantity: Quantity::new(shares).unwrap(),
                                                price: Price::parse("99.00").unwrap(),
                                                received_at_ms: T0,
                                                settle,
                                            });
                                        }
                                        o.final_report = final_status.map(|status| FinalReport {
                                            status,
                                            cum_quantity: if status == FinalStatus::Filled {
                                                10
                                            } else {
                                                4
                                            },
                                        });
                                        o.release = release.clone().map(step);
                                        o.closed_at_ms = closed.then_some(T0 + 2);
                                        o.cancel_requested_at_ms = cancel.then_some(T0);
                                        let label = format!(
                                            "reserve {reserve:?} place {place:?} fills {fill:?} final {final_status:?} release {release:?} closed {closed} cancel {cancel} now {now} {driver:?}"
                                        );
                                        all.push((o, now, driver, label));
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    all
}

#[test]
fn every_combination_of_step_states_is_safe() {
    let p = policy();
    let cases = combinations();
    assert_eq!(cases.len(), 3 * (4 * 4 + 1) * 3 * 3 * 2 * 2 * 3 * 2);
    for (o, now, driver, label) in cases {
        let actions = next_actions(&o, now, &p, driver);
        let has = |wanted: &dyn Fn(&Action) -> bool| actions.iter().any(wanted);
        // Closed orders are finished.
        if o.is_closed() {
            assert!(actions.is_empty(), "{label}: {actions:?}");
            continue;
        }
        // Records out of order are an operator's matter.
        if !o.reserve.is_succeeded() && o.place.is_some() {
            assert!(
                matches!(actions.as_slice(), [Action::Flag(_)]),
                "{label}: {actions:?}"
            );
            continue;
        }
        // Nothing moves past a reservation that has not succeeded.
        if !o.reserve.is_succeeded() {
            assert!(
                actions
                    .iter()
                    .all(|a| matches!(a, Action::Reserve | Action::Close)),
                "{label}: {actions:?}"
            );
        }
        if o.reserve.is_processing() && o.place.is_none() {
            assert_eq!(actions, vec![Action::Reserve], "{label}");
        }
        // Placement starts only once, only before the deadline, never after a cancel.
        if has(&|a| matches!(a, Action::Place)) {
            assert!(
                o.place.is_none()
                    && now <= o.place_deadline_ms
                    && o.cancel_requested_at_ms.is_none(),
                "{label}"
            );
        }
        // Asking the exchange is recovery's job.
        if driver == Driver::Handler {
            assert!(
                !has(&|a| matches!(a, Action::LookupPlacement | Action::PullExecutions)),
                "{label}: {actions:?}"
            );
        }
        // An unknown placement is never concluded from the records alone.
        if o.place.as_ref().is_some_and(Step::is_processing) && o.fills.is_empty() {
            assert!(
                !has(&|a| matches!(a, Action::Release { .. } | Action::Close)),
                "{label}: {actions:?}"
            );
        }
        // Every settlement finishes before the release or the close.
        let settling = o.fills.iter().any(|f| f.settle.is_processing());
        if settling && o.reserve.is_succeeded() && !has(&|a| matches!(a, Action::Flag(_))) {
            assert!(
                !has(&|a| matches!(a, Action::Release { .. } | Action::Close)),
                "{label}: {actions:?}"
            );
            assert!(
                has(&|a| matches!(a, Action::Settle(_))),
                "{label}: {actions:?}"
            );
        }
        // A release returns exactly what the fills did not consume.
        for action in &actions {
            if let Action::Release { units } = action {
                assert_eq!(Some(*units), o.unused_reservation().ok(), "{label}");
                assert!(*units <= o.reservation.amount.units());
                assert!(
                    o.release.as_ref().is_none_or(|r| !r.is_succeeded()),
                    "{label}: released twice"
                );
            }
        }
        // Closing needs evidence that the exchange is done with the order.
        if has(&|a| matches!(a, Action::Close)) && o.reserve.is_succeeded() {
            let place = o.place.as_ref().expect("placement decided");
            let done = place.is_failed()
                || o.final_report
                    .as_ref()
                    .is_some_and(|r| r.cum_quantity == o.filled_quantity());
            assert!(done, "{label}: closed while the exchange may still fill");
            let unused = o.unused_reservation().unwrap_or(0);
            assert!(
                unused == 0 || o.release.as_ref().is_some_and(Step::is_succeeded),
                "{label}: closed holding a reservation"
            );
        }
        // Contradictions go to an operator, not through the ledger.
        if o.place.as_ref().is_some_and(Step::is_failed)
            && !o.fills.is_empty()
            && o.reserve.is_succeeded()
        {
            assert!(
                matches!(actions.as_slice(), [Action::Flag(_)]),
                "{label}: {actions:?}"
            );
        }
        // An open order always has something to do, or is waiting on news.
        if actions.is_empty() {
            let waiting = o.place.as_ref().is_some_and(|p| !p.is_failed())
                && (driver == Driver::Handler
                    || now.saturating_sub(o.last_progress_ms()) < p.quiet_after_ms);
            assert!(waiting, "{label}: stuck with nothing to do");
        }
    }
}

// ---- state machine: perform whatever next_actions asks, with random outcomes ----

mod state_machine {
    use super::*;
    use proptest::prelude::*;

    /// What the world answers when an action runs.
    #[derive(Debug, Clone)]
    enum World {
        /// The action's call succeeds.
        Succeeds,
        /// The call's outcome is unknown (the record stays as it was).
        Unknown,
        /// The exchange executes `shares` at `cents` (when the order rests there).
        Executes { shares: u64, cents: u64 },
        /// The exchange ends the order (cancel or expiry) with what it executed.
        Ends,
        /// Time passes.
        Tick { ms: u64 },
    }

    fn world() -> impl Strategy<Value = World> {
        prop_oneof![
            4 => Just(World::Succeeds),
            1 => Just(World::Unknown),
            2 => (1u64..=4, 9_000u64..=10_000).prop_map(|(shares, cents)| World::Executes { shares, cents }),
            1 => Just(World::Ends),
            1 => (1u64..=30_000).prop_map(|ms| World::Tick { ms }),
        ]
    }

    /// The exchange's side: what it executed and whether it finished.
    #[derive(Default)]
    struct Exchange {
        placed: bool,
        executed: Vec<(u64, u64)>,
        finished: Option<FinalStatus>,
    }

    fn perform(o: &mut Order, ex: &mut Exchange, action: &Action, world: &World, now: u64) {
        let ok = !matches!(world, World::Unknown);
        match action {
            Action::Reserve if ok => o.reserve.finish(StepState::Succeeded, now),
            Action::Place => {
                o.place = Some(Step::processing(now));
                if ok {
                    ex.placed = true;
                    o.record_placed("X-1", now);
                }
            }
            Action::AbandonUnsentPlacement => {
                let mut step = Step::processing(now);
                step.finish(
                    StepState::Failed(StepFailure::NotPlaced {
                        detail: "late".into(),
                    }),
                    now,
                );
                o.place = Some(step);
            }
            Action::LookupPlacement if ok => {
                if ex.placed {
                    o.record_placed("X-1", now);
                } else if placement_unknown_is_final(o, now, &policy()) {
                    o.place.as_mut().expect("processing").finish(
                        StepState::Failed(StepFailure::NotPlaced {
                            detail: "tombstoned".into(),
                        }),
                        now,
                    );
                }
            }
            Action::PullExecutions if ok => {
                for (n, &(shares, cents)) in ex.executed.iter().enumerate() {
                    let execution = execution(n as u32, shares, cents);
                    o.apply_execution(&execution, now)
                        .expect("the exchange stays within the order");
                }
                if let Some(status) = ex.finished {
                    let cum = ex.executed.iter().map(|(s, _)| s).sum();
                    o.record_final(FinalReport {
                        status,
                        cum_quantity: cum,
                    });
                }
            }
            Action::Settle(exec_id) if ok => {
                let fill = o
                    .fills
                    .iter_mut()
                    .find(|f| &f.exec_id == exec_id)
                    .expect("recorded");
                fill.settle.finish(StepState::Succeeded, now);
            }
            Action::Release { .. } => {
                o.release.get_or_insert_with(|| Step::processing(now));
                if ok {
                    o.release
                        .as_mut()
                        .expect("started")
                        .finish(StepState::Succeeded, now);
                }
            }
            Action::Close => o.closed_at_ms = Some(now),
            _ => {}
        }
    }

    proptest! {
        /// Whatever the world answers, performing what next_actions asks never
        /// breaks an invariant, and once the world behaves the order closes.
        #[test]
        fn performing_next_actions_keeps_invariants_and_finishes(steps in prop::collection::vec(world(), 1..60)) {
            let p = policy();
            let mut o = order();
            o.reserve = Step::processing(T0);
            let mut ex = Exchange::default();
            let mut now = T0;
            for world in &steps {
                // The exchange acts on its own, whatever the platform does.
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
                    World::Tick { ms } => now += ms,
                    _ => {}
                }
                let actions = next_actions(&o, now, &p, Driver::Recovery);
                prop_assert!(!actions.iter().any(|a| matches!(a, Action::Flag(_))), "no contradiction: {actions:?}");
                if let Some(action) = actions.first() {
                    perform(&mut o, &mut ex, action, world, now);
                }
                prop_assert!(o.filled_quantity() <= o.request.quantity.shares());
                prop_assert!(o.unused_reservation().is_ok(), "never beyond the reservation");
                prop_assert!(!(o.place.as_ref().is_some_and(Step::is_failed) && ex.placed), "never 'not placed' for a placed order");
            }
            // Faults stop: the exchange finishes, every call succeeds, time moves on.
            if ex.placed && ex.finished.is_none() {
                ex.finished = Some(FinalStatus::Cancelled);
            }
            for _ in 0..40 {
                now += 60_000;
                let actions = next_actions(&o, now, &p, Driver::Recovery);
                let Some(action) = actions.first() else { break };
                perform(&mut o, &mut ex, action, &World::Succeeds, now);
            }
            prop_assert!(o.is_closed(), "finished once the world behaves: {o:?}");
            let executed: u64 = ex.executed.iter().map(|(s, _)| s).sum();
            prop_assert_eq!(o.filled_quantity(), executed, "every execution applied once");
            prop_assert!(o.fills.iter().all(|f| f.settle.is_succeeded()));
        }
    }
}
