//! Sample orders for tests.

use domain::order::{
    ExecId, Execution, FillRecord, FillState, Order, OrderId, OrderRequest, OrderType, Recovery,
    Step, TimeInForce,
};
use domain::{AccountId, Catalog, Price, Quantity, Side};

pub fn new_order_id() -> OrderId {
    OrderId::parse(&uuid::Uuid::now_v7().hyphenated().to_string()).expect("a UUID is an order id")
}

/// A limit buy of 10 AAPL at 100.00 just recorded (`reserve: processing`),
/// due for recovery at `due_at_ms`.
pub fn sample_order(account: &AccountId, now_ms: u64, due_at_ms: u64) -> Order {
    let catalog = Catalog::us_equities();
    let request = OrderRequest::new(
        catalog.symbol("AAPL").expect("listed"),
        Side::Buy,
        OrderType::Limit,
        Quantity::new(10).expect("positive"),
        Some(Price::parse("100.00").expect("price")),
        TimeInForce::Day,
    )
    .expect("valid request");
    let pricing = request
        .pricing(Price::parse("100.00").expect("price"), 0, 1)
        .expect("in range");
    Order {
        id: new_order_id(),
        account: account.clone(),
        request,
        protection: pricing.protection,
        reservation: pricing.reservation,
        created_at_ms: now_ms,
        place_deadline_ms: now_ms + 10_000,
        reserve: Step::processing(now_ms),
        place: None,
        exchange_order_id: None,
        fills: Default::default(),
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
        recovery: Recovery {
            due_at_ms,
            ..Recovery::default()
        },
    }
}

/// One execution of `shares` at `cents` under `exec_id`.
pub fn execution(exec_id: &str, shares: u64, cents: u64) -> Execution {
    Execution {
        exec_id: ExecId::parse(exec_id).expect("exec id"),
        exchange_order_id: "X-1".into(),
        quantity: Quantity::new(shares).expect("shares"),
        price: Price::from_cents(cents).expect("price"),
        cum_quantity: None,
    }
}

/// The record of that execution, settled.
pub fn settled_record(exec_id: &str, shares: u64, cents: u64, at_ms: u64) -> FillRecord {
    let mut record = FillRecord::recorded(&execution(exec_id, shares, cents), at_ms);
    record.state = FillState::Settled {
        from_reserved_units: shares * cents,
        release_units: 0,
    };
    record
}
