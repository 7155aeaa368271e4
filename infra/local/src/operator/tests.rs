use super::*;
use domain::order::{
    Cancel, Execution, FillTotals, FlagReason, OrderRequest, Placement, Recovery, TimeInForce,
};
use domain::{AccountId, Catalog, Price, Quantity, Side};

/// 2024-05-01T12:00:00.000Z
const T0: u64 = 1_714_564_800_000;

fn order() -> Order {
    let catalog = Catalog::us_equities();
    let request = OrderRequest::new(
        catalog.symbol("AAPL").unwrap(),
        Side::Buy,
        OrderType::Limit,
        Quantity::new(10).unwrap(),
        Some(Price::parse("187.25").unwrap()),
        TimeInForce::Day,
    )
    .unwrap();
    let pricing = request
        .pricing(Price::parse("187.00").unwrap(), 500, 1)
        .unwrap();
    Order {
        id: OrderId::parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap(),
        account: AccountId::parse("alice").unwrap(),
        request,
        protection: pricing.protection,
        reservation: pricing.reservation,
        created_at_ms: T0,
        place_deadline_ms: T0 + 15_000,
        reserve: Step::done(StepState::Succeeded, T0 + 40),
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
    o.place = Some(Placement::started(T0 + 50, Some(T0 + 15_000)));
    o.record_placed("X-1", T0 + 1_250);
    o
}

fn execution(n: u32, shares: u64, price: &str) -> Execution {
    Execution {
        exec_id: domain::order::ExecId::parse(&format!("exec-{n}")).unwrap(),
        exchange_order_id: "X-1".into(),
        quantity: Quantity::new(shares).unwrap(),
        price: Price::parse(price).unwrap(),
        cum_quantity: None,
    }
}

fn policy() -> RecoveryPolicy {
    crate::host::local_order_settings().recovery
}

#[test]
fn the_timeline_reads_in_utc_with_decimals_and_durations() {
    let mut o = placed();
    o.take_fill(&execution(1, 4, "187.20"), T0 + 2_000).unwrap();
    let records = vec![FillRecord::recorded(&execution(1, 4, "187.20"), T0 + 2_000)];
    let text = timeline(&o, &records, T0 + 3_000, &policy());
    assert!(
        text.starts_with("order 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b — partially_filled"),
        "{text}"
    );
    assert!(text.contains("buy 10 AAPL limit 187.25 day"), "{text}");
    assert!(text.contains("reserved       1872.50 USD"), "{text}");
    assert!(text.contains("2024-05-01T12:00:00.000Z"), "{text}");
    assert!(text.contains("2024-05-01T12:00:01.250Z"), "{text}");
    assert!(
        text.contains("execution exec-1: 4 @ 187.20 = 748.80 USD"),
        "{text}"
    );
    assert!(
        text.contains(
            "filled         4 of 10 shares in 1 execution(s), 748.80 USD, average 187.2000"
        ),
        "{text}"
    );
    // 1.250 s after the placement started, 0.75 s after that to the execution.
    assert!(text.contains("+1.2s"), "{text}");
    assert!(text.contains("+750ms"), "{text}");
    // The settlement in the slot is what recovery repeats.
    assert!(
        text.contains(&format!(
            "settle again with key {}",
            o.id.settle_key(&records[0].exec_id)
        )),
        "{text}"
    );
}

#[test]
fn the_timeline_shows_flags_the_condition_and_why_nothing_happens() {
    let mut o = placed();
    o.recovery.flag(
        FlagReason::Stuck,
        "placement unresolved for 12 min, 9 attempts",
        T0 + 720_000,
    );
    let ground = o.ground();
    o.recovery.attempted(
        domain::order::ConditionKind::MissingExecutions,
        T0 + 5_000,
        ground,
    );
    o.reported_cum = 3;
    let text = timeline(&o, &[], T0 + 800_000, &policy());
    assert!(text.contains("FLAGGED        stuck since 2024-05-01T12:12:00.000Z: placement unresolved for 12 min, 9 attempts"), "{text}");
    assert!(text.contains("waits on       missing_executions since 2024-05-01T12:00:05.000Z (13m15s ago), 1 attempt(s)"), "{text}");
    assert!(
        text.contains(
            "next           PullExecutions: the exchange reported 3 share(s) more than recorded"
        ),
        "{text}"
    );

    let resting = placed();
    let text = timeline(&resting, &[], T0 + 60_000, &policy());
    assert!(
        text.contains("next           none: nothing: the order rests at the exchange"),
        "{text}"
    );
}

#[test]
fn an_unknown_placement_says_when_absence_becomes_final() {
    let mut o = order();
    let mut placement = Placement::started(T0 + 50, Some(T0 + 15_000));
    placement.sends = 1;
    placement.last_error = Some("timed out".into());
    o.place = Some(placement);
    o.cancel = Some(Cancel {
        requested_at_ms: T0 + 9_000,
        step: None,
    });
    let steps = next_steps(&o, T0 + 30_000, &policy());
    assert_eq!(steps.len(), 1);
    // Tombstone venue: cancelling by client id settles it.
    assert_eq!(steps[0].action, "Cancel");
    let mut plain = policy();
    plain.venue = domain::order::VenueRules::PLAIN;
    let steps = next_steps(&o, T0 + 30_000, &plain);
    assert_eq!(steps[0].action, "LookupPlacement");
    // 15 s window + 1 s skew margin + 5 s in flight.
    assert!(
        steps[0]
            .why
            .contains("absence can be final from 2024-05-01T12:00:21.000Z"),
        "{:?}",
        steps
    );
    let text = timeline(&o, &[], T0 + 30_000, &plain);
    assert!(text.contains("last send unanswered: timed out"), "{text}");
    assert!(text.contains("cancel requested"), "{text}");
}

#[test]
fn the_json_document_carries_the_order_and_what_is_next() {
    let o = placed();
    let value = timeline_json(&o, &[], T0 + 60_000, &policy());
    assert_eq!(value["order"]["id"], o.id.as_str());
    assert_eq!(value["status"], "open");
    assert_eq!(value["now"], "2024-05-01T12:01:00.000Z");
    assert_eq!(value["next"][0]["action"], "none");
    assert!(value["timeline"].as_array().unwrap().len() >= 4);
}

#[test]
fn dead_letter_reasons_come_from_the_attribute_the_body_or_the_redrive_policy() {
    let report = serde_json::to_string(&ExchangeReport::Execution {
        client_order_id: OrderId::parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").unwrap(),
        execution: execution(1, 4, "187.20"),
    })
    .unwrap();
    assert_eq!(
        dead_letter_reason(Some("exec id reused"), &report),
        "exec id reused"
    );
    let set_aside = serde_json::json!({"set_aside": {"reason": "not confirmed by the exchange", "payload": report}}).to_string();
    assert_eq!(
        dead_letter_reason(None, &set_aside),
        "not confirmed by the exchange"
    );
    assert_eq!(dead_letter_kind(None, &set_aside), "set_aside");
    assert!(dead_letter_reason(None, &report).contains("maxReceiveCount"));
    assert_eq!(dead_letter_kind(None, &report), "execution");
    assert_eq!(dead_letter_kind(Some("final"), &report), "final");
    assert!(dead_letter_reason(Some("  "), "garbage").starts_with("unknown"));
    // The report inside a set-aside message can be sent back; garbage cannot.
    assert!(report_in(&set_aside).is_some());
    assert!(report_in(&report).is_some());
    let unreadable =
        serde_json::json!({"set_aside": {"reason": "bad", "payload": "{not json"}}).to_string();
    assert!(report_in(&unreadable).is_none());
}

#[test]
fn decisions_parse_from_the_command_line() {
    assert_eq!(parse_decision("not-placed").unwrap(), Decision::NotPlaced);
    assert_eq!(
        parse_decision("acknowledged").unwrap(),
        Decision::Acknowledged
    );
    assert!(parse_decision("maybe").is_err());
}

#[test]
fn flagged_lines_name_every_reason() {
    let mut o = placed();
    o.recovery.flag(
        FlagReason::BeyondReservation,
        "execution exec-9 costs 12 units beyond the reservation",
        T0 + 1_000,
    );
    o.recovery.flag(
        FlagReason::Overfilled,
        "executed 11 of 10 shares",
        T0 + 2_000,
    );
    let line = flagged_line(&o);
    assert!(line.contains("beyond_reservation,overfilled"), "{line}");
    assert!(line.contains("2024-05-01T12:00:01.000Z"), "{line}");
    assert!(line.contains("costs 12 units"), "{line}");
}
