//! Sample orders for tests.

use domain::order::{Order, OrderId, OrderRequest, OrderType, Recovery, Step};
use domain::{AccountId, Catalog, IdempotencyKey, Price, Quantity, Side};

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
    )
    .expect("valid request");
    let reservation = request
        .reservation(Price::parse("100.00").expect("price"), 0)
        .expect("in range");
    let id = new_order_id();
    Order {
        idempotency_key: IdempotencyKey::parse(&format!("key-{id}")).expect("valid key"),
        id,
        account: account.clone(),
        request,
        reservation,
        created_at_ms: now_ms,
        place_deadline_ms: now_ms + 10_000,
        reserve: Step::processing(now_ms),
        place: None,
        exchange_order_id: None,
        fills: Vec::new(),
        final_report: None,
        cancel_requested_at_ms: None,
        release: None,
        closed_at_ms: None,
        recovery: Recovery {
            attempts: 0,
            next_attempt_at_ms: due_at_ms,
            lease_until_ms: 0,
            flagged: None,
        },
    }
}
