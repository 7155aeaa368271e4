//! The orders API's OpenAPI document lists exactly the routes the router
//! serves, and the router serves every route it lists.

use std::collections::BTreeSet;
use std::sync::Arc;

use app::clock::ManualClock;
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::{OrderSettings, Orders};
use app::BalancesService;
use domain::Catalog;
use serde_yaml::Value;
use system_tests::sim_exchange::{fast_fills, EngineExchange};
use tower::ServiceExt;

fn documented_routes() -> BTreeSet<(String, String)> {
    let path = local_stack::workspace_root().join("functions/place-order/openapi.yaml");
    let document: Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("openapi.yaml")).expect("YAML");
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("key");
            if ["get", "post", "put", "patch", "delete"].contains(&method) {
                routes.insert((method.to_owned(), path.as_str().expect("path").to_owned()));
            }
        }
    }
    routes
}

#[test]
fn the_document_lists_exactly_the_served_routes() {
    let served: BTreeSet<(String, String)> = place_order::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented_routes(), served);
}

/// Each documented route reaches a handler: unauthenticated, it is refused
/// with 401 by the handler, not 404/405 by the router.
#[tokio::test]
async fn every_documented_route_is_served() {
    let clock = ManualClock::at(1_800_000_000_000);
    let exchange = EngineExchange::new(fast_fills(1), Arc::new(clock.clone())).expect("engine");
    let balances = BalancesService::new(MemoryLedgerStore::default(), clock.clone());
    let orders = Orders::new(
        MemoryOrderStore::default(),
        balances,
        exchange,
        clock,
        OrderSettings::default(),
    );
    let router = place_order::router(orders, Catalog::us_equities());
    for (method, path) in documented_routes() {
        let uri = path.replace("{id}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        let request = http::Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(uri)
            .body(axum::body::Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("answered");
        assert_eq!(
            response.status(),
            http::StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
}
