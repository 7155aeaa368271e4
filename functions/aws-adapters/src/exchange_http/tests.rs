use super::*;
use app::exchange::ExchangeOrderStatus;
use serde_json::json;

const ID: &str = "0190f3c2-7a4e-7b1a-9c3d-5e6f7a8b9c0d";

fn answer(status: u16, body: serde_json::Value) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).expect("status"),
        body: body.to_string().into_bytes(),
    }
}

fn problem(status: u16, slug: &str) -> Answer {
    answer(
        status,
        json!({"type": format!("urn:exchange-sim:problem:{slug}"), "title": "x",
               "status": status, "detail": format!("detail of {slug}")}),
    )
}

fn order_json(status: &str, cum: &str) -> serde_json::Value {
    json!({"order_id": "ex-1", "client_order_id": ID, "status": status,
           "cum_quantity": cum, "quantity": "10", "executions": []})
}

fn venue(profile: &str) -> Venue {
    Venue::simulator(profile).expect("profile")
}

#[test]
fn created_and_replayed_places_are_accepted() {
    for status in [201, 200] {
        let outcome = place_answer(&venue("tombstone"), &answer(status, order_json("new", "0")))
            .expect("accepted")
            .expect("an outcome");
        let PlaceOutcome::Accepted(order) = outcome else {
            panic!("not accepted: {outcome:?}");
        };
        assert_eq!(order.order_id, "ex-1");
        assert_eq!(order.client_order_id, ID);
        assert_eq!(
            (order.status, order.cum_quantity),
            (ExchangeOrderStatus::New, 0)
        );
    }
}

#[test]
fn refusals_that_leave_nothing_are_rejections() {
    for a in [
        problem(400, "validation"),
        problem(409, "client-order-id-tombstoned"),
        problem(422, "deadline-passed"),
    ] {
        let outcome = place_answer(&venue("tombstone"), &a).expect("answered");
        assert!(
            matches!(&outcome, Some(PlaceOutcome::Rejected { reason }) if reason.starts_with("detail of")),
            "{outcome:?}"
        );
    }
}

#[test]
fn already_exists_is_found_where_a_venue_says_so() {
    const ALREADY: &[Rule] = &[Rule {
        route: Route::Place,
        status: 409,
        code: "duplicate_client_order_id",
        meaning: Meaning::AlreadyExists,
    }];
    let strict = Venue {
        name: "strict",
        rules: VenueRules::PLAIN,
        table: ALREADY,
    };
    let a = problem(409, "duplicate_client_order_id");
    assert_eq!(place_answer(&strict, &a), Ok(None), "look it up: it exists");
    // The simulator's 409 is a tombstone: rejected.
    assert!(matches!(
        place_answer(
            &venue("tombstone"),
            &problem(409, "client-order-id-tombstoned")
        ),
        Ok(Some(PlaceOutcome::Rejected { .. }))
    ));
}

#[test]
fn an_id_held_for_another_request_is_not_a_rejection() {
    let result = place_answer(&venue("tombstone"), &problem(422, "idempotency-mismatch"));
    assert!(
        matches!(&result, Err(ExchangeError::Protocol(m)) if m.contains("different request")),
        "{result:?}"
    );
    // An unknown 422 is not taken as a rejection either.
    assert!(matches!(
        place_answer(&venue("tombstone"), &problem(422, "something-new")),
        Err(ExchangeError::Protocol(_))
    ));
}

#[test]
fn failures_are_classified_by_what_the_caller_may_conclude() {
    let cases = [
        (problem(503, "injected-fault"), "unknown"),
        (answer(500, json!("boom")), "unknown"),
        (answer(408, json!({})), "unknown"),
        (answer(429, json!({})), "unavailable"),
        (answer(401, json!({})), "protocol"),
    ];
    for (a, expected) in cases {
        let kind = match place_answer(&venue("tombstone"), &a) {
            Err(ExchangeError::OutcomeUnknown(_)) => "unknown",
            Err(ExchangeError::Unavailable(_)) => "unavailable",
            Err(ExchangeError::Protocol(_)) => "protocol",
            Ok(o) => panic!("{}: {o:?}", a.status),
        };
        assert_eq!(kind, expected, "{}", a.status);
    }
}

#[test]
fn an_unreadable_accepted_place_is_an_unknown_outcome() {
    let result = place_answer(
        &venue("tombstone"),
        &answer(201, json!({"order_id": "ex-1"})),
    );
    assert!(
        matches!(result, Err(ExchangeError::OutcomeUnknown(_))),
        "{result:?}"
    );
}

#[test]
fn only_the_venues_not_found_means_no_order() {
    let v = venue("deadline");
    assert_eq!(
        lookup_answer(&v, &problem(404, "order-not-found")),
        Ok(None)
    );
    assert!(matches!(
        lookup_answer(&v, &problem(404, "not-found")),
        Err(ExchangeError::Protocol(_))
    ));
    let found = lookup_answer(&v, &answer(200, order_json("partially_filled", "4")))
        .expect("found")
        .expect("some");
    assert_eq!(
        (found.status, found.cum_quantity),
        (ExchangeOrderStatus::PartiallyFilled, 4)
    );
}

#[test]
fn cancel_outcomes_map_to_the_port() {
    let v = venue("tombstone");
    let tombstoned = answer(
        200,
        json!({"client_order_id": ID, "outcome": "tombstoned", "order": null}),
    );
    assert_eq!(
        cancel_answer(&v, &tombstoned),
        Ok(CancelOutcome::Tombstoned)
    );
    for outcome in ["cancelled", "already_terminal"] {
        let a = answer(
            200,
            json!({"client_order_id": ID, "outcome": outcome, "order": order_json("cancelled", "2")}),
        );
        assert!(matches!(
            cancel_answer(&v, &a),
            Ok(CancelOutcome::Known(ExchangeOrder {
                status: ExchangeOrderStatus::Cancelled,
                ..
            }))
        ));
    }
    assert_eq!(
        cancel_answer(&venue("deadline"), &problem(404, "unknown_order")),
        Ok(CancelOutcome::NotFound)
    );
    let no_order = answer(200, json!({"client_order_id": ID, "outcome": "cancelled"}));
    assert!(matches!(
        cancel_answer(&v, &no_order),
        Err(ExchangeError::Protocol(_))
    ));
}

#[test]
fn executions_are_parsed_from_decimal_strings() {
    let a = answer(
        200,
        json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                               "price": "187.25", "cum_quantity": "3"}],
               "next_page_token": "1"}),
    );
    let (page, next) = execution_page(&a).expect("page");
    assert_eq!(next.as_deref(), Some("1"));
    assert_eq!(page[0].price, Price::from_cents(18_725).expect("price"));
    assert_eq!(page[0].quantity.shares(), 3);
    assert_eq!(page[0].cum_quantity, Some(3));
    let float = answer(
        200,
        json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                               "price": 187.25}]}),
    );
    assert!(matches!(
        execution_page(&float),
        Err(ExchangeError::Protocol(_))
    ));
    let sub_cent = answer(
        200,
        json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                               "price": "187.255"}]}),
    );
    assert!(matches!(
        execution_page(&sub_cent),
        Err(ExchangeError::Protocol(_))
    ));
}

#[test]
fn a_days_orders_are_read_page_by_page() {
    let a = answer(
        200,
        json!({"orders": [order_json("expired", "3")], "next_page_token": "7"}),
    );
    let (orders, next) = order_page(&a).expect("page");
    assert_eq!(next.as_deref(), Some("7"));
    assert_eq!(orders[0].status, ExchangeOrderStatus::Expired);
    assert_eq!(orders[0].cum_quantity, 3);
}

#[test]
fn the_reference_price_is_the_last_price() {
    let symbol = Catalog::us_equities().symbol("AAPL").expect("listed");
    let a = answer(
        200,
        json!({"symbol": "AAPL", "bid": "187.24", "ask": "187.26", "last": "187.25"}),
    );
    assert_eq!(quote_answer(&a, &symbol).map(Price::cents), Ok(18_725));
    assert!(matches!(
        quote_answer(&problem(404, "unknown-symbol"), &symbol),
        Err(ExchangeError::Protocol(_))
    ));
}

#[test]
fn the_request_deadline_goes_only_to_venues_that_take_one() {
    let catalog = Catalog::us_equities();
    let mut request = PlaceRequest {
        client_order_id: OrderId::parse(ID).expect("id"),
        account: domain::AccountId::parse("a1").expect("account"),
        symbol: catalog.symbol("AAPL").expect("listed"),
        side: domain::Side::Buy,
        order_type: domain::order::OrderType::Limit,
        quantity: domain::Quantity::new(1).expect("quantity"),
        limit_price: Some(Price::from_cents(100).expect("price")),
        time_in_force: domain::order::TimeInForce::Gtc,
        deadline_ms: Some(42),
    };
    let body = serde_json::to_value(PlaceBody::new(&request)).expect("json");
    assert_eq!(body["expire_at"], 42);
    assert_eq!(body["time_in_force"], "gtc");
    request.deadline_ms = None;
    let body = serde_json::to_value(PlaceBody::new(&request)).expect("json");
    assert!(body.get("expire_at").is_none());
}

#[test]
fn path_segments_are_percent_encoded() {
    let exchange = HttpExchange::new(
        "http://exchange.test/base/",
        Catalog::us_equities(),
        DEFAULT_TIMEOUT,
    )
    .expect("client");
    let url = exchange.url(&["v1", "orders", "a/b?c", "executions"]);
    assert_eq!(
        url.as_str(),
        "http://exchange.test/base/v1/orders/a%2Fb%3Fc/executions"
    );
    assert!(HttpExchange::new("not a url", Catalog::us_equities(), DEFAULT_TIMEOUT).is_err());
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let exchange = HttpExchange::new(
        &format!("http://127.0.0.1:{port}"),
        Catalog::us_equities(),
        DEFAULT_TIMEOUT,
    )
    .expect("client");
    let id = OrderId::parse(ID).expect("id");
    let result = exchange.order(&id).await;
    assert!(
        matches!(result, Err(ExchangeError::Unavailable(_))),
        "{result:?}"
    );
}
