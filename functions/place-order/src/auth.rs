//! The caller's account comes from the JWT that API Gateway's authorizer
//! verified (claim `sub`), never from the request body.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::AccountId;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;

use crate::problem::ApiError;

/// The claim that names the account.
pub const ACCOUNT_CLAIM: &str = "sub";

pub struct Caller(pub AccountId);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let claims = match parts.extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                context.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
            }
            _ => None,
        };
        let account = claims
            .and_then(|jwt| jwt.claims.get(ACCOUNT_CLAIM))
            .ok_or_else(ApiError::unauthenticated)?;
        AccountId::parse(account)
            .map(Caller)
            .map_err(|_| ApiError::unauthenticated())
    }
}
