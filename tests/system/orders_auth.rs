//! The orders API's caller comes from the JWT claims API Gateway passes:
//! any identity provider's subject gets an account of its own (mapped with
//! its issuer), and each route needs its scope (`orders:read` for `GET`,
//! `orders:write` for `POST` and `DELETE`); a missing scope is `403`
//! problem+json and nothing is written.

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
use domain::{AccountId, Amount, Asset, Catalog, IdempotencyKey, Operation};
use http::{Method, Request, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use place_order::AccountMapping;
use serde_json::{json, Value};
use system_tests::sim_exchange::{fast_fills, EngineExchange};
use tower::ServiceExt;

const ISSUER: &str = "https://tenant.auth0.example/";
const READ: &str = "orders:read";
const WRITE: &str = "orders:write";

struct Api {
    router: axum::Router,
    ledger: BalancesService<MemoryLedgerStore, ManualClock>,
    store: MemoryOrderStore,
    accounts: AccountMapping,
}

fn api() -> Api {
    let clock = ManualClock::at(1_800_000_000_000);
    let exchange = EngineExchange::new(fast_fills(7), Arc::new(clock.clone())).expect("engine");
    let ledger_store = MemoryLedgerStore::default();
    let store = MemoryOrderStore::default();
    let orders = Orders::new(
        store.clone(),
        BalancesService::new(ledger_store.clone(), clock.clone()),
        exchange,
        clock.clone(),
        OrderSettings::default(),
    );
    let accounts = AccountMapping::new(Some(ISSUER.into()));
    Api {
        router: place_order::router_with(orders, Catalog::us_equities(), accounts.clone()),
        ledger: BalancesService::new(ledger_store, clock),
        store,
        accounts,
    }
}

impl Api {
    /// The account `subject` of `issuer` maps to, funded.
    async fn fund(&self, issuer: &str, subject: &str) -> AccountId {
        let account = self
            .accounts
            .account(Some(issuer), subject)
            .expect("account");
        let deposit = Operation::Deposit {
            asset: Asset::Cash,
            amount: Amount::new(10_000_000).expect("amount"),
        };
        let key = IdempotencyKey::parse("funding").expect("key");
        self.ledger
            .execute(account.clone(), key, deposit)
            .await
            .expect("deposit");
        account
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: (&str, &str, &[&str]),
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (issuer, subject, scopes) = token;
        let mut builder = Request::builder().method(method).uri(uri);
        if body.is_some() {
            builder = builder
                .header("content-type", "application/json")
                .header("idempotency-key", "k-1");
        }
        let payload = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("iss".into(), issuer.into());
        jwt.claims.insert("sub".into(), subject.into());
        jwt.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer = Some(authorizer);
        let request = builder
            .body(payload)
            .expect("request")
            .with_request_context(RequestContext::ApiGatewayV2(context));
        let answer = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("answered");
        let status = answer.status();
        if status.is_client_error() {
            assert_eq!(
                answer.headers()["content-type"],
                place_order::PROBLEM_CONTENT_TYPE
            );
        }
        let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Every order of `account` as stored.
    async fn stored(&self, account: &AccountId) -> usize {
        app::order_store::OrderStore::list_for_account(&self.store, account, None, 100)
            .await
            .expect("list")
            .orders
            .len()
    }
}

fn order() -> Value {
    json!({"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "2", "limit_price": "100.00"})
}

/// `auth0|…` and `…@clients` used to be refused with 401; each now trades
/// from an account of its own, which other subjects and issuers never see.
#[tokio::test]
async fn any_identity_providers_subject_trades_from_its_own_account() {
    let api = api();
    for subject in [
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "xyz@clients",
        "plain-user_1",
    ] {
        let account = api.fund(ISSUER, subject).await;
        let (status, placed) = api
            .call(
                Method::POST,
                "/orders",
                (ISSUER, subject, &[WRITE]),
                Some(order()),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
            "{subject}: {status} {placed}"
        );
        assert_eq!(api.stored(&account).await, 1, "{subject}");
        let id = placed["id"].as_str().expect("id");
        let (status, listed) = api
            .call(Method::GET, "/orders", (ISSUER, subject, &[READ]), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["orders"][0]["id"], id);
        // The same subject at another issuer is someone else.
        let (status, _) = api
            .call(
                Method::GET,
                &format!("/orders/{id}"),
                ("https://other.example/", subject, &[READ]),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{subject}");
    }
    assert_eq!(
        api.accounts
            .account(Some(ISSUER), "plain-user_1")
            .map(|a| a.to_string()),
        Some("plain-user_1".to_owned()),
        "a plain subject of the issuer is its own account id"
    );
}

/// A token without the route's scope is `403` problem+json, and nothing is
/// written: no order, no cancel.
#[tokio::test]
async fn a_missing_scope_is_403_and_writes_nothing() {
    let api = api();
    let subject = "auth0|scoped";
    let account = api.fund(ISSUER, subject).await;

    for scopes in [&[][..], &[READ][..]] {
        let (status, problem) = api
            .call(
                Method::POST,
                "/orders",
                (ISSUER, subject, scopes),
                Some(order()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{scopes:?}");
        assert_eq!(problem["type"], "/problems/insufficient-scope");
        assert_eq!(api.stored(&account).await, 0, "no order written");
    }

    let (_, placed) = api
        .call(
            Method::POST,
            "/orders",
            (ISSUER, subject, &[WRITE]),
            Some(order()),
        )
        .await;
    let id = placed["id"].as_str().expect("id").to_owned();
    let (status, problem) = api
        .call(
            Method::DELETE,
            &format!("/orders/{id}"),
            (ISSUER, subject, &[READ]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "/problems/insufficient-scope");
    let (_, stored) = api
        .call(
            Method::GET,
            &format!("/orders/{id}"),
            (ISSUER, subject, &[READ]),
            None,
        )
        .await;
    assert!(stored.get("cancel_requested_at_ms").is_none(), "{stored}");

    for uri in [
        "/orders".to_owned(),
        format!("/orders/{id}"),
        format!("/orders/{id}/executions"),
    ] {
        let (status, problem) = api
            .call(Method::GET, &uri, (ISSUER, subject, &[WRITE]), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(problem["type"], "/problems/insufficient-scope", "{uri}");
    }
}
