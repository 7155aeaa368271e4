//! The orders API's OpenAPI document is valid OpenAPI 3 (checked by the
//! pinned `openapi-spec-validator` of the local stack's venv), lists exactly
//! the routes the router serves, and describes what the router really
//! answers: real responses of every route, success and error, are validated
//! against the document's schemas (by `openapi-schema-validator`), and so
//! is every example in it.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use app::clock::ManualClock;
use app::memory::{MemoryLedgerStore, MemoryOrderStore};
use app::orders::{OrderSettings, Orders};
use app::BalancesService;
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::body::Body;
use domain::{Amount, Asset, Catalog, IdempotencyKey, Operation};
use http::{Method, Request, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use system_tests::sim_exchange::{fast_fills, EngineExchange};
use tower::ServiceExt;

fn document_path() -> std::path::PathBuf {
    local_stack::workspace_root().join("functions/place-order/openapi.yaml")
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let document: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(document_path()).expect("openapi.yaml"))
            .expect("YAML");
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

/// Validates the document, its examples and `responses` (a JSON file of
/// `{method, path, status, content_type, headers, body}`) with the pinned
/// validators. Prints one line per problem and exits 1 if there is any.
const VALIDATE: &str = r##"
import json, sys, yaml
from openapi_spec_validator import validate
from openapi_schema_validator import OAS31Validator

doc = yaml.safe_load(open(sys.argv[1]))
validate(doc)  # raises, naming the place, if the document is not valid OpenAPI

def resolve(node):
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node

def check(schema, value, where, errors):
    rooted = dict(schema)
    rooted["components"] = doc["components"]  # so "#/components/..." resolves
    for error in OAS31Validator(rooted).iter_errors(value):
        path = "/".join(str(p) for p in error.absolute_path)
        errors.append(f"{where}: at /{path}: {error.message}")

errors = []
checked_examples = 0
for path, item in doc["paths"].items():
    for method, operation in item.items():
        if method not in ("get", "post", "put", "patch", "delete"):
            continue
        bodies = [("request", resolve(operation.get("requestBody", {})))]
        bodies += [(status, resolve(r)) for status, r in operation["responses"].items()]
        for label, body in bodies:
            for media, content in body.get("content", {}).items():
                examples = [("example", content["example"])] if "example" in content else []
                examples += [(n, resolve(e)["value"]) for n, e in content.get("examples", {}).items()]
                for name, value in examples:
                    checked_examples += 1
                    check(content["schema"], value, f"{method} {path} {label} {media} example {name}", errors)

responses = json.load(open(sys.argv[2]))
for r in responses:
    where = f"{r['method']} {r['path']} -> {r['status']} {r['content_type']}"
    operation = doc["paths"][r["path"]][r["method"]]
    documented = operation["responses"].get(str(r["status"]))
    if documented is None:
        errors.append(f"{where}: status not documented")
        continue
    documented = resolve(documented)
    content = documented.get("content", {}).get(r["content_type"])
    if content is None:
        errors.append(f"{where}: content type not documented")
        continue
    for header in r["headers"]:
        if header.lower() not in {h.lower() for h in documented.get("headers", {})}:
            errors.append(f"{where}: header {header} not documented")
    check(content["schema"], r["body"], where, errors)

for line in errors:
    print(line)
print(f"{len(responses)} responses and {checked_examples} examples checked, {len(errors)} problems")
sys.exit(1 if errors else 0)
"##;

/// Runs [`VALIDATE`] with the local stack's pinned Python packages.
fn validate(responses: &[Value]) {
    local_stack::ensure_installed().expect("pinned tools installed");
    let file = std::env::temp_dir().join(format!(
        "openapi-responses-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&file, serde_json::to_vec(responses).expect("json")).expect("write");
    let output = Command::new(local_stack::python_tool("python"))
        .args(["-c", VALIDATE])
        .arg(document_path())
        .arg(&file)
        .output()
        .expect("python runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "the OpenAPI document or a response does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_document_is_valid_openapi() {
    validate(&[]);
}

#[test]
fn the_document_lists_exactly_the_served_routes() {
    let served: BTreeSet<(String, String)> = place_order::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented_routes(), served);
}

type TestOrders = Orders<
    MemoryOrderStore,
    BalancesService<MemoryLedgerStore, ManualClock>,
    EngineExchange,
    ManualClock,
>;

/// The router over in-memory stores and the simulated exchange, and a way
/// to fund accounts.
struct Api {
    router: axum::Router,
    ledger: BalancesService<MemoryLedgerStore, ManualClock>,
}

fn api() -> Api {
    let clock = ManualClock::at(1_800_000_000_000);
    let exchange = EngineExchange::new(fast_fills(1), Arc::new(clock.clone())).expect("engine");
    let ledger_store = MemoryLedgerStore::default();
    let orders: TestOrders = Orders::new(
        MemoryOrderStore::default(),
        BalancesService::new(ledger_store.clone(), clock.clone()),
        exchange,
        clock.clone(),
        OrderSettings::default(),
    );
    Api {
        router: place_order::router(orders, Catalog::us_equities()),
        ledger: BalancesService::new(ledger_store, clock),
    }
}

/// A request as API Gateway passes it after its JWT authorizer: the claims
/// and scopes in the request context (`None`: no authorizer context).
fn request(
    method: Method,
    uri: &str,
    caller: Option<(&str, &[&str])>,
    headers: &[(&str, &str)],
    body: Body,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(body).expect("request");
    match caller {
        None => request,
        Some((subject, scopes)) => {
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims.insert("sub".into(), subject.into());
            jwt.claims
                .insert("iss".into(), "https://issuer.test/".into());
            jwt.claims.insert("scope".into(), scopes.join(" "));
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.jwt = Some(jwt);
            let mut context = ApiGatewayV2httpRequestContext::default();
            context.authorizer = Some(authorizer);
            request.with_request_context(RequestContext::ApiGatewayV2(context))
        }
    }
}

const BOTH: &[&str] = &["orders:read", "orders:write"];
const READ: &[&str] = &["orders:read"];
const WRITE: &[&str] = &["orders:write"];

/// Each documented route reaches a handler: unauthenticated, it is refused
/// with 401 by the handler, not 404/405 by the router.
#[tokio::test]
async fn every_documented_route_is_served() {
    let api = api();
    for (method, path) in documented_routes() {
        let uri = path.replace("{id}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let answer = api
            .router
            .clone()
            .oneshot(request(method.clone(), &uri, None, &[], Body::empty()))
            .await
            .expect("answered");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
}

/// One observed answer, in the form [`VALIDATE`] reads.
async fn observe(api: &Api, template: &str, request: Request<Body>) -> (StatusCode, Value, Value) {
    let method = request.method().as_str().to_lowercase();
    let answer = api.router.clone().oneshot(request).await.expect("answered");
    let status = answer.status();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let headers: Vec<String> = answer
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k == place_order::REPLAYED_HEADER)
        .collect();
    let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(
            content_type,
            place_order::PROBLEM_CONTENT_TYPE,
            "{method} {template} -> {status}: every error is problem+json"
        );
    }
    let observed = json!({
        "method": method, "path": template, "status": status.as_u16(),
        "content_type": content_type, "headers": headers, "body": body.clone(),
    });
    (status, body, observed)
}

/// Real answers of every route, successes and refusals, match the document.
#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let api = api();
    let funded = |account: &'static str, cents: u64| {
        let ledger = &api.ledger;
        async move {
            let account = domain::AccountId::parse(account).expect("account");
            let deposit = Operation::Deposit {
                asset: Asset::Cash,
                amount: Amount::new(cents).expect("amount"),
            };
            let key = IdempotencyKey::parse("funding").expect("key");
            ledger
                .execute(account, key, deposit)
                .await
                .expect("deposit");
        }
    };
    funded("alice", 10_000_000).await;
    funded("poor", 100).await;
    let json_headers = |key: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ]
    };
    let limit_buy = json!({"symbol": "AAPL", "side": "buy", "type": "limit",
                           "quantity": "10", "limit_price": "187.25", "time_in_force": "day"});
    let body = |value: &Value| Body::from(serde_json::to_vec(value).expect("json"));
    let alice = Some(("alice", BOTH));
    let mut observed = Vec::new();
    let mut seen = BTreeSet::new();
    let mut record = |(status, body, answer): (StatusCode, Value, Value)| {
        let method = answer["method"].as_str().unwrap_or_default().to_owned();
        let path = answer["path"].as_str().unwrap_or_default().to_owned();
        seen.insert(format!("{method} {path} {}", status.as_u16()));
        observed.push(answer);
        body
    };

    // POST /orders: placed, replayed, reused key, rejected, malformed, refused.
    let post = |caller, headers: &[(&str, &str)], payload: Body| {
        request(Method::POST, "/orders", caller, headers, payload)
    };
    let placed = record(
        observe(
            &api,
            "/orders",
            post(alice, &json_headers("o-1"), body(&limit_buy)),
        )
        .await,
    );
    let id = placed["id"].as_str().expect("an order").to_owned();
    record(
        observe(
            &api,
            "/orders",
            post(alice, &json_headers("o-1"), body(&limit_buy)),
        )
        .await,
    );
    let other = json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "11", "limit_price": "187.25"});
    record(
        observe(
            &api,
            "/orders",
            post(alice, &json_headers("o-1"), body(&other)),
        )
        .await,
    );
    let rejected = record(
        observe(
            &api,
            "/orders",
            post(Some(("poor", BOTH)), &json_headers("p-1"), body(&limit_buy)),
        )
        .await,
    );
    assert_eq!(rejected["type"], "/problems/order-rejected", "{rejected}");
    let market = json!({"symbol": "AAPL", "side": "buy", "type": "market", "quantity": "1"});
    record(
        observe(
            &api,
            "/orders",
            post(alice, &json_headers("o-2"), body(&market)),
        )
        .await,
    );
    for (headers, payload) in [
        (json_headers("bad-1"), Body::from("{\"symbol\":")),
        (json_headers("bad-2"), body(&json!({"symbol": "AAPL"}))),
        (
            json_headers("bad-3"),
            body(
                &json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "1", "limit_price": "1.001"}),
            ),
        ),
        (vec![("content-type", "application/json")], body(&limit_buy)),
        (
            vec![("content-type", "text/plain"), ("idempotency-key", "bad-4")],
            body(&limit_buy),
        ),
        (
            json_headers("bad-5"),
            Body::from(vec![b' '; place_order::MAX_BODY_BYTES + 1]),
        ),
    ] {
        record(observe(&api, "/orders", post(alice, &headers, payload)).await);
    }
    record(
        observe(
            &api,
            "/orders",
            post(None, &json_headers("o-3"), body(&limit_buy)),
        )
        .await,
    );
    record(
        observe(
            &api,
            "/orders",
            post(
                Some(("alice", READ)),
                &json_headers("o-4"),
                body(&limit_buy),
            ),
        )
        .await,
    );

    // GET /orders, /orders/{id}, /orders/{id}/executions.
    let get = |uri: &str, caller| request(Method::GET, uri, caller, &[], Body::empty());
    let page = record(observe(&api, "/orders", get("/orders?limit=1", alice)).await);
    if let Some(cursor) = page["next_cursor"].as_str() {
        record(
            observe(
                &api,
                "/orders",
                get(&format!("/orders?cursor={cursor}"), alice),
            )
            .await,
        );
    }
    for bad in ["/orders?limit=0", "/orders?cursor=zz", "/orders?colour=red"] {
        record(observe(&api, "/orders", get(bad, alice)).await);
    }
    record(observe(&api, "/orders", get("/orders", Some(("alice", WRITE)))).await);
    let one = format!("/orders/{id}");
    record(observe(&api, "/orders/{id}", get(&one, alice)).await);
    record(observe(&api, "/orders/{id}", get(&one, Some(("bob", BOTH)))).await);
    record(observe(&api, "/orders/{id}", get("/orders/not-an-id", alice)).await);
    let executions = format!("/orders/{id}/executions");
    record(observe(&api, "/orders/{id}/executions", get(&executions, alice)).await);
    record(
        observe(
            &api,
            "/orders/{id}/executions",
            get(&format!("{executions}?limit=1"), alice),
        )
        .await,
    );
    record(
        observe(
            &api,
            "/orders/{id}/executions",
            get(&format!("{executions}?cursor=zz"), alice),
        )
        .await,
    );
    record(observe(&api, "/orders/{id}/executions", get(&executions, None)).await);

    // DELETE /orders/{id}: cancelled (or already ended), again, unknown, read-only.
    let delete = |uri: &str, caller| request(Method::DELETE, uri, caller, &[], Body::empty());
    record(observe(&api, "/orders/{id}", delete(&one, Some(("alice", READ)))).await);
    record(observe(&api, "/orders/{id}", delete(&one, alice)).await);
    record(observe(&api, "/orders/{id}", delete(&one, alice)).await);
    record(
        observe(
            &api,
            "/orders/{id}",
            delete("/orders/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", alice),
        )
        .await,
    );

    // The refusals the test meant to see were seen.
    for expected in [
        "post /orders 422",
        "post /orders 400",
        "post /orders 401",
        "post /orders 403",
        "post /orders 413",
        "post /orders 415",
        "get /orders 200",
        "get /orders 400",
        "get /orders 403",
        "get /orders/{id} 200",
        "get /orders/{id} 404",
        "get /orders/{id}/executions 200",
        "get /orders/{id}/executions 400",
        "delete /orders/{id} 403",
        "delete /orders/{id} 404",
    ] {
        assert!(
            seen.contains(expected),
            "not observed: {expected}; saw {seen:?}"
        );
    }
    validate(&observed);
}
