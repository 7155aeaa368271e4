//! The Balances API's callers in the tests: API Gateway's IAM authorizer
//! names the caller's role in the request context; here each principal
//! gets a loopback listener whose requests carry its role, as the local
//! runner does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use app::{Balances, BalancesCallError};
use aws_adapters::balances_http::{HttpBalances, HttpBalancesAdmin};
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::extract::Request;
use axum::middleware::Next;
use domain::{AccountId, Asset, Balance, Catalog, IdempotencyKey, Operation, OperationRecord};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

/// The account that owns the API and the roles.
pub const AWS_ACCOUNT_ID: &str = "123456789012";
/// The trading functions' roles (`BALANCES_TRADING_ROLES`).
pub const PLACE_ORDER_ROLE: &str = "test-PlaceOrderRole";
pub const FILL_PROCESSOR_ROLE: &str = "test-FillProcessorRole";
pub const RECONCILER_ROLE: &str = "test-ReconcilerRole";
pub const TRADING_ROLES: [&str; 3] = [PLACE_ORDER_ROLE, FILL_PROCESSOR_ROLE, RECONCILER_ROLE];
/// The operator's role (`BALANCES_ADMIN_ROLES`).
pub const OPERATOR_ROLE: &str = "test-OperatorRole";

/// The role lists the tests' Balances service runs with.
pub fn roles() -> balances::Roles {
    balances::Roles::parse(&TRADING_ROLES.join(","), OPERATOR_ROLE).expect("valid role names")
}

/// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
pub fn assumed_role_arn(account_id: &str, role: &str) -> String {
    format!("arn:aws:sts::{account_id}:assumed-role/{role}/{role}-session")
}

/// The request context API Gateway passes for a call signed by `user_arn`
/// (`None`: a request with no IAM identity).
pub fn iam_context(user_arn: Option<String>) -> RequestContext {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.account_id = Some(AWS_ACCOUNT_ID.into());
    if let Some(user_arn) = user_arn {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.account_id = user_arn.split(':').nth(4).map(str::to_owned);
        iam.user_arn = Some(user_arn);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        context.authorizer = Some(authorizer);
    }
    RequestContext::ApiGatewayV2(context)
}

/// Serves `router` on a loopback port whose every request comes from
/// `user_arn` (`None`: no identity).
pub async fn serve_as(router: axum::Router, user_arn: Option<String>) -> SocketAddr {
    let context = iam_context(user_arn);
    let router = router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let context = context.clone();
            async move { next.run(request.with_request_context(context)).await }
        },
    ));
    crate::serve(router).await
}

/// Serves `router` as the role `role` of the API's account.
pub async fn serve_as_role(router: axum::Router, role: &str) -> SocketAddr {
    serve_as(router, Some(assumed_role_arn(AWS_ACCOUNT_ID, role))).await
}

/// The Balances service as a whole, for set-up and assertions: deposits go
/// to the admin route as the operator, everything else to the trading route
/// as a trading role. No function of the platform is ever given one.
#[derive(Debug, Clone)]
pub struct ServiceBalances {
    pub trading: HttpBalances,
    pub admin: HttpBalancesAdmin,
}

impl ServiceBalances {
    pub fn new(trading_url: &str, admin_url: &str, timeout: std::time::Duration) -> Self {
        let catalog = Catalog::us_equities();
        ServiceBalances {
            trading: HttpBalances::new(trading_url, catalog.clone(), timeout).expect("client"),
            admin: HttpBalancesAdmin::new(admin_url, catalog, timeout).expect("client"),
        }
    }
}

impl Balances for ServiceBalances {
    async fn execute(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        operation: &Operation,
    ) -> Result<OperationRecord, BalancesCallError> {
        match balances::authz::route_of(operation) {
            balances::authz::Access::Admin => self.admin.execute(account, key, operation).await,
            _ => self.trading.execute(account, key, operation).await,
        }
    }

    async fn lookup(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, BalancesCallError> {
        self.trading.lookup(account, key).await
    }

    async fn balances(
        &self,
        account: &AccountId,
    ) -> Result<BTreeMap<Asset, Balance>, BalancesCallError> {
        self.trading.balances(account).await
    }
}
