//! Who calls, and what they may do, from the JWT that API Gateway's
//! authorizer verified (`requestContext.authorizer.jwt`), never from the
//! request itself.
//!
//! **Account.** Identity providers name their users freely (`auth0|5f7c…`,
//! `xyz@clients`, a UUID), while an account id is `[A-Za-z0-9_-]{1,64}`.
//! The mapping is total and one-to-one:
//! - a `sub` that is already a valid account id not starting with `_`,
//!   issued by the home issuer (`JWT_ISSUER`; when unset, by the one issuer
//!   the API's authorizer trusts), is the account id as it is;
//! - any other (`sub`, `iss`) pair maps to `_` followed by the unpadded
//!   base64url SHA-256 of `iss`, a zero byte and `sub` (44 characters).
//!
//! The two forms cannot meet (only the second starts with `_`), and two
//! issuers' users never share an account unless one of them is the home
//! issuer and issues plain ids.
//!
//! **Scopes.** `GET` routes need `orders:read`; `POST` and `DELETE` need
//! `orders:write`. They are read from `jwt.scopes`, and from the `scope`
//! (space-separated) and `scp` claims, which API Gateway passes as strings.
//! A token without the scope a route needs is `403`.

use std::collections::BTreeSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::AccountId;
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizerJwtDescription;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// The claim that names the caller at its identity provider.
pub const ACCOUNT_CLAIM: &str = "sub";
/// The claim that names the identity provider.
pub const ISSUER_CLAIM: &str = "iss";
/// Needed by every `GET` route.
pub const READ_SCOPE: &str = "orders:read";
/// Needed by `POST /orders` and `DELETE /orders/{id}`.
pub const WRITE_SCOPE: &str = "orders:write";
/// First character of a mapped (hashed) account id; never of a plain one.
pub const MAPPED_ACCOUNT_PREFIX: char = '_';

/// How (`iss`, `sub`) becomes an account id (see the module comment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountMapping {
    /// Plain `sub`s of this issuer are account ids as they are; `None`:
    /// of any issuer (the API trusts one).
    home_issuer: Option<String>,
}

impl AccountMapping {
    pub fn new(home_issuer: Option<String>) -> Self {
        AccountMapping {
            home_issuer: home_issuer.filter(|i| !i.trim().is_empty()),
        }
    }

    /// `JWT_ISSUER`: the issuer the API's JWT authorizer trusts.
    pub fn from_env() -> Self {
        Self::new(std::env::var("JWT_ISSUER").ok())
    }

    /// The account of the user `subject` of `issuer`; `None` for an empty subject.
    pub fn account(&self, issuer: Option<&str>, subject: &str) -> Option<AccountId> {
        if subject.is_empty() {
            return None;
        }
        let home = match &self.home_issuer {
            Some(home) => issuer == Some(home.as_str()),
            None => true,
        };
        if home && !subject.starts_with(MAPPED_ACCOUNT_PREFIX) {
            if let Ok(account) = AccountId::parse(subject) {
                return Some(account);
            }
        }
        let mut digest = Sha256::new();
        digest.update(issuer.unwrap_or_default().as_bytes());
        digest.update([0u8]);
        digest.update(subject.as_bytes());
        let mapped = format!(
            "{MAPPED_ACCOUNT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(digest.finalize())
        );
        // 44 characters of the account id alphabet: always valid.
        AccountId::parse(&mapped).ok()
    }
}

/// The scope a request needs, by its method.
pub fn required_scope(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        READ_SCOPE
    } else {
        WRITE_SCOPE
    }
}

/// Every scope the token grants.
fn granted_scopes(jwt: &ApiGatewayRequestAuthorizerJwtDescription) -> BTreeSet<&str> {
    let listed = jwt.scopes.iter().flatten().map(String::as_str);
    let scope_claim = jwt
        .claims
        .get("scope")
        .into_iter()
        .flat_map(|s| s.split_whitespace());
    // An array claim arrives as the string "[a b]".
    let scp_claim = jwt.claims.get("scp").into_iter().flat_map(|s| {
        s.trim_matches(|c| c == '[' || c == ']')
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
    });
    listed.chain(scope_claim).chain(scp_claim).collect()
}

/// The calling account, allowed to use the route it called.
pub struct Caller(pub AccountId);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let jwt = match parts.extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => {
                context.authorizer.as_ref().and_then(|a| a.jwt.as_ref())
            }
            _ => None,
        }
        .ok_or_else(ApiError::unauthenticated)?;
        let subject = jwt
            .claims
            .get(ACCOUNT_CLAIM)
            .ok_or_else(ApiError::unauthenticated)?;
        let mapping = parts
            .extensions
            .get::<AccountMapping>()
            .cloned()
            .unwrap_or_default();
        let issuer = jwt.claims.get(ISSUER_CLAIM).map(String::as_str);
        let account = mapping
            .account(issuer, subject)
            .ok_or_else(ApiError::unauthenticated)?;
        let needed = required_scope(&parts.method);
        if !granted_scopes(jwt).contains(needed) {
            tracing::warn!(%account, scope = needed, "refused: scope missing");
            return Err(ApiError::insufficient_scope(needed));
        }
        Ok(Caller(account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const HOME: &str = "https://login.example.com/";

    #[test]
    fn plain_subjects_of_the_home_issuer_are_their_own_account() {
        let mapping = AccountMapping::new(Some(HOME.into()));
        let account = mapping.account(Some(HOME), "acct-42_x").expect("account");
        assert_eq!(account.as_str(), "acct-42_x");
        // Without a configured home issuer, any issuer's plain subject.
        let open = AccountMapping::default();
        assert_eq!(
            open.account(None, "alice").map(|a| a.to_string()),
            Some("alice".into())
        );
    }

    #[test]
    fn any_other_subject_maps_to_a_stable_hashed_account() {
        let mapping = AccountMapping::new(Some(HOME.into()));
        for subject in [
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "xyz@clients",
            "ünïcode",
            "_looks-mapped",
            &"a".repeat(65),
        ] {
            let account = mapping.account(Some(HOME), subject).expect("account");
            assert!(account.as_str().starts_with('_'), "{subject}: {account}");
            assert_eq!(account.as_str().len(), 44);
            assert_eq!(mapping.account(Some(HOME), subject), Some(account));
        }
        assert_eq!(mapping.account(Some(HOME), ""), None);
    }

    #[test]
    fn issuers_never_share_accounts() {
        let mapping = AccountMapping::new(Some(HOME.into()));
        let home = mapping.account(Some(HOME), "alice").expect("account");
        let other = mapping
            .account(Some("https://other.example.com/"), "alice")
            .expect("account");
        assert_ne!(home, other);
        assert!(other.as_str().starts_with('_'));
        let a = mapping.account(Some("https://a/"), "x|1").expect("account");
        let b = mapping.account(Some("https://b/"), "x|1").expect("account");
        assert_ne!(a, b);
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            mapping.account(Some("ab"), "c|"),
            mapping.account(Some("a"), "bc|")
        );
    }

    #[test]
    fn scopes_come_from_the_list_or_the_claims() {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        assert!(granted_scopes(&jwt).is_empty());
        jwt.scopes = Some(vec![READ_SCOPE.into()]);
        assert!(granted_scopes(&jwt).contains(READ_SCOPE));
        jwt.scopes = None;
        jwt.claims = HashMap::from([("scope".to_owned(), "openid orders:write".to_owned())]);
        assert!(granted_scopes(&jwt).contains(WRITE_SCOPE));
        assert!(!granted_scopes(&jwt).contains(READ_SCOPE));
        jwt.claims = HashMap::from([("scp".to_owned(), "[orders:read orders:write]".to_owned())]);
        assert_eq!(
            granted_scopes(&jwt),
            BTreeSet::from([READ_SCOPE, WRITE_SCOPE])
        );
        assert_eq!(required_scope(&Method::GET), READ_SCOPE);
        assert_eq!(required_scope(&Method::POST), WRITE_SCOPE);
        assert_eq!(required_scope(&Method::DELETE), WRITE_SCOPE);
    }
}
