//! The Balances API authorises each operation by its caller (on the local
//! stack): the trading functions' roles may reserve, settle and release on
//! the trading route; only the operator's role may deposit, and only on the
//! admin route; both may read. Every refusal is a `403` problem+json that
//! writes nothing.

use app::{Balances, BalancesCallError};
use aws_adapters::balances_http::wire::{
    problem_type, Problem, IDEMPOTENCY_KEY_HEADER, PROBLEM_CONTENT_TYPE,
};
use aws_adapters::balances_http::{HttpBalances, HttpBalancesAdmin};
use domain::{Catalog, Outcome};
use reqwest::StatusCode;
use serde_json::{json, Value};
use system_tests::conformance::balances::{deposit, funded_account, key, reserve};
use system_tests::iam::{
    assumed_role_arn, serve_as, serve_as_role, AWS_ACCOUNT_ID, OPERATOR_ROLE, TRADING_ROLES,
};
use system_tests::platform::BALANCES_CALL_TIMEOUT;
use system_tests::{spawn_balances, BalancesApp};

/// Where an operation is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Trading,
    Admin,
}

impl Route {
    fn path(self, account: &str) -> String {
        match self {
            Route::Trading => format!("/accounts/{account}/operations"),
            Route::Admin => format!("/admin/accounts/{account}/operations"),
        }
    }
}

fn deposit_body() -> Value {
    json!({"type": "deposit", "asset": "USD", "amount": "1000.00"})
}

fn reserve_body() -> Value {
    json!({"type": "reserve", "asset": "USD", "amount": "10.00"})
}

fn release_body() -> Value {
    json!({"type": "release", "asset": "USD", "amount": "5.00"})
}

fn settle_body() -> Value {
    json!({"type": "settle", "symbol": "AAPL", "side": "buy", "quantity": "1",
           "price": "5.00", "from_reserved": "5.00"})
}

/// A caller of the service: a loopback listener carrying one identity.
struct As {
    url: String,
    http: reqwest::Client,
}

impl As {
    async fn role(app: &BalancesApp, role: &str) -> As {
        let address = serve_as_role(app.router.clone(), role).await;
        As::at(format!("http://{address}"))
    }

    async fn arn(app: &BalancesApp, arn: Option<String>) -> As {
        let address = serve_as(app.router.clone(), arn).await;
        As::at(format!("http://{address}"))
    }

    fn at(url: String) -> As {
        As {
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn post(
        &self,
        route: Route,
        account: &str,
        key: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{}", self.url, route.path(account)))
            .header(IDEMPOTENCY_KEY_HEADER, key)
            .json(body)
            .send()
            .await
            .expect("sent");
        answer(response).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("sent");
        answer(response).await
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v == PROBLEM_CONTENT_TYPE);
    let body: Value = response.json().await.unwrap_or_default();
    if status == StatusCode::FORBIDDEN {
        assert!(problem, "a 403 is problem+json: {body}");
        let parsed: Problem = serde_json::from_value(body.clone()).expect("a problem");
        assert_eq!(parsed.problem_type, problem_type::FORBIDDEN);
        assert_eq!(parsed.status, 403);
    }
    (status, body)
}

/// Sends a request that must be refused with `403`, and shows that the
/// table is exactly as it was.
async fn refused(
    app: &BalancesApp,
    caller: &As,
    route: Route,
    account: &str,
    key: &str,
    body: &Value,
) {
    let before = app.snapshot().await;
    let (status, answer) = caller.post(route, account, key, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{route:?} {body}: {answer}");
    assert_eq!(
        app.snapshot().await,
        before,
        "{route:?} {body} wrote nothing"
    );
}

/// A caller without the admin role cannot create money: a deposit is
/// refused on both routes, for every trading role, and writes nothing; the
/// key stays free, so the operator's deposit under it is a first run, not a
/// replay of a refusal.
#[tokio::test]
async fn a_caller_without_the_admin_role_cannot_deposit() {
    let app = spawn_balances("authz-deposit").await;
    let account = funded_account(&app.client, "authz-dep", 100).await;
    for role in TRADING_ROLES {
        let caller = As::role(&app, role).await;
        for route in [Route::Trading, Route::Admin] {
            refused(
                &app,
                &caller,
                route,
                account.as_str(),
                "mint",
                &deposit_body(),
            )
            .await;
        }
    }
    let operator = As::role(&app, OPERATOR_ROLE).await;
    let (status, record) = operator
        .post(Route::Admin, account.as_str(), "mint", &deposit_body())
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["outcome"], "succeeded");
}

/// Each trading function's role calls every route: its own operations
/// (reserve, settle, release on the trading route) and the reads pass;
/// everything else is refused and writes nothing.
#[tokio::test]
async fn each_trading_role_passes_only_its_own_operations() {
    let app = spawn_balances("authz-trading").await;
    for role in TRADING_ROLES {
        let account = funded_account(&app.client, "authz-trade", 100_000).await;
        let acct = account.as_str();
        let caller = As::role(&app, role).await;
        for (key, body) in [
            ("o:reserve", reserve_body()),
            ("o:fill:e1", settle_body()),
            ("o:release", release_body()),
        ] {
            let (status, answer) = caller.post(Route::Trading, acct, key, &body).await;
            assert_eq!(status, StatusCode::OK, "{role} {body}: {answer}");
        }
        let (status, record) = caller
            .get(&format!("/accounts/{acct}/operations/o:reserve"))
            .await;
        assert_eq!(status, StatusCode::OK, "{role}: {record}");
        let (status, balances) = caller.get(&format!("/accounts/{acct}/balances")).await;
        assert_eq!(status, StatusCode::OK, "{role}: {balances}");
        assert_eq!(balances["balances"]["USD"]["reserved"], "0.00");

        refused(
            &app,
            &caller,
            Route::Trading,
            acct,
            "t-deposit",
            &deposit_body(),
        )
        .await;
        for body in [
            deposit_body(),
            reserve_body(),
            settle_body(),
            release_body(),
        ] {
            refused(&app, &caller, Route::Admin, acct, "a-any", &body).await;
        }
    }
}

/// The operator deposits on the admin route and reads; it does not trade,
/// and the admin route runs no trading operation, whoever asks.
#[tokio::test]
async fn the_operator_deposits_only_on_the_admin_route() {
    let app = spawn_balances("authz-admin").await;
    let operator = As::role(&app, OPERATOR_ROLE).await;
    let account = system_tests::new_account("authz-op");
    let acct = account.as_str();
    let (status, answer) = operator
        .post(Route::Admin, acct, "funding", &deposit_body())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = operator.get(&format!("/accounts/{acct}/balances")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = operator
        .get(&format!("/accounts/{acct}/operations/funding"))
        .await;
    assert_eq!(status, StatusCode::OK);

    for body in [reserve_body(), settle_body(), release_body()] {
        refused(&app, &operator, Route::Admin, acct, "op-trade", &body).await;
        refused(&app, &operator, Route::Trading, acct, "op-trade", &body).await;
    }
    refused(
        &app,
        &operator,
        Route::Trading,
        acct,
        "op-dep",
        &deposit_body(),
    )
    .await;
}

/// No identity, an IAM user, a role of another account, an unknown role:
/// refused on every route, reads included, with nothing written.
#[tokio::test]
async fn callers_without_a_listed_role_are_refused_everywhere() {
    let app = spawn_balances("authz-strangers").await;
    let account = funded_account(&app.client, "authz-str", 10_000).await;
    let acct = account.as_str();
    let strangers = [
        None,
        Some(format!(
            "arn:aws:iam::{AWS_ACCOUNT_ID}:user/{OPERATOR_ROLE}"
        )),
        Some(assumed_role_arn("999999999999", OPERATOR_ROLE)),
        Some(assumed_role_arn("999999999999", TRADING_ROLES[0])),
        Some(assumed_role_arn(AWS_ACCOUNT_ID, "SomeOtherRole")),
    ];
    for arn in strangers {
        let caller = As::arn(&app, arn.clone()).await;
        for route in [Route::Trading, Route::Admin] {
            for body in [deposit_body(), reserve_body()] {
                refused(&app, &caller, route, acct, "stranger", &body).await;
            }
        }
        for path in [
            format!("/accounts/{acct}/balances"),
            format!("/accounts/{acct}/operations/funding"),
        ] {
            let (status, answer) = caller.get(&path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{arn:?} {path}: {answer}");
        }
    }
}

/// The HTTP clients reach their own routes: deposits through the admin
/// client as the operator; the trading client's deposit and the admin
/// client's reserve are refused as invalid (nothing to retry).
#[tokio::test]
async fn the_http_clients_reach_their_routes() {
    let app = spawn_balances("authz-clients").await;
    let catalog = Catalog::us_equities();
    let account = system_tests::new_account("authz-cli");
    let admin = HttpBalancesAdmin::new(&app.admin_url, catalog.clone(), BALANCES_CALL_TIMEOUT)
        .expect("client");
    let trading = HttpBalances::new(&app.base_url, catalog, BALANCES_CALL_TIMEOUT).expect("client");

    let before = app.snapshot().await;
    let minted = trading.execute(&account, &key("mint"), &deposit(500)).await;
    assert!(
        matches!(&minted, Err(BalancesCallError::Invalid(detail)) if detail.contains("403")),
        "{minted:?}"
    );
    let reserved = admin.execute(&account, &key("r"), &reserve(1)).await;
    assert!(
        matches!(&reserved, Err(BalancesCallError::Invalid(detail)) if detail.contains("403")),
        "{reserved:?}"
    );
    assert_eq!(app.snapshot().await, before);

    let record = admin
        .execute(&account, &key("mint"), &deposit(500))
        .await
        .expect("deposit");
    assert_eq!(record.outcome, Outcome::Succeeded);
    assert_eq!(
        admin.lookup(&account, &key("mint")).await.expect("lookup"),
        Some(record)
    );
    let reserved = trading
        .execute(&account, &key("r"), &reserve(100))
        .await
        .expect("reserve");
    assert_eq!(reserved.outcome, Outcome::Succeeded);
    let balances = admin.balances(&account).await.expect("balances");
    assert_eq!(balances[&domain::Asset::Cash].available, 400);
}
