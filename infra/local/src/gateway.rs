//! API Gateway (HTTP API) on localhost: each request becomes the
//! `ApiGatewayV2httpRequest` event Lambda would deliver, with the
//! authorizer's context in it, and goes through `lambda_http`'s own
//! event-to-request conversion into the function's router, the same router
//! `main.rs` hands to `lambda_http::run`.
//!
//! - JWT routes: the token is verified as the JWT authorizer would, the
//!   route's scope required (`orders:read` for `GET`, `orders:write`
//!   otherwise: the template's `AuthorizationScopes`; `403` without it), and
//!   the claims and scopes passed in `requestContext.authorizer.jwt`.
//! - IAM routes: in AWS the caller's SigV4 signature names its role; here
//!   each principal gets a loopback listener of its own, whose requests
//!   carry that role in `requestContext.authorizer.iam`, as API Gateway
//!   passes it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription,
    ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
    ApiGatewayV2httpRequestContext, ApiGatewayV2httpRequestContextHttpDescription,
};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use lambda_http::request::LambdaRequest;
use tower::ServiceExt;

use crate::jwt;

/// Largest payload API Gateway passes to a function.
const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// The AWS account of the local stack (moto's default): the API owner's,
/// and every local principal's.
pub const LOCAL_AWS_ACCOUNT_ID: &str = "123456789012";

/// One route of the HTTP API: a path prefix, the function behind it, and
/// how it is authorised.
#[derive(Clone)]
pub struct Route {
    pub prefix: &'static str,
    pub function: Router,
    pub auth: Auth,
}

/// How API Gateway authorises a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No authorizer (the webhook checks its own signature).
    None,
    /// The JWT authorizer, with the route's scope.
    Jwt,
    /// The IAM authorizer; the caller is the listener's principal.
    Iam(Principal),
}

/// An IAM role as a caller of an IAM-authorised API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: String,
    pub account_id: String,
}

impl Principal {
    pub fn local(role: &str) -> Self {
        Principal {
            role: role.to_owned(),
            account_id: LOCAL_AWS_ACCOUNT_ID.to_owned(),
        }
    }

    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`, as a Lambda
    /// function's execution role appears to the APIs it calls.
    pub fn user_arn(&self) -> String {
        format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            self.account_id,
            self.role,
            self.session()
        )
    }

    fn session(&self) -> String {
        format!("{}-local", self.role)
    }

    fn authorizer(&self) -> ApiGatewayRequestAuthorizerIamDescription {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        let role_id = format!("AROALOCAL{}", self.role.len());
        iam.access_key = Some("ASIALOCALACCESSKEY".into());
        iam.account_id = Some(self.account_id.clone());
        iam.caller_id = Some(format!("{role_id}:{}", self.session()));
        iam.user_id = Some(format!("{role_id}:{}", self.session()));
        iam.user_arn = Some(self.user_arn());
        iam
    }
}

#[derive(Clone)]
pub struct Gateway {
    routes: Arc<Vec<Route>>,
    jwt_key: Arc<Vec<u8>>,
}

impl Gateway {
    pub fn new(routes: Vec<Route>, jwt_key: Vec<u8>) -> Self {
        Gateway {
            routes: Arc::new(routes),
            jwt_key: Arc::new(jwt_key),
        }
    }

    pub fn into_router(self) -> Router {
        Router::new().fallback(handle).with_state(self)
    }
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    // API Gateway's own answers are not problem+json; they look like this.
    (
        status,
        [("content-type", "application/json")],
        format!(r#"{{"message":"{message}"}}"#),
    )
        .into_response()
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some(route) = gateway
        .routes
        .iter()
        .find(|r| path.starts_with(r.prefix))
        .cloned()
    else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = http_body_util::Limited::new(body, MAX_PAYLOAD_BYTES)
        .collect()
        .await
        .map(|b| b.to_bytes())
    else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let authorizer = match &route.auth {
        Auth::None => None,
        Auth::Jwt => {
            let Some(claims) = authorize(&gateway.jwt_key, &parts.headers) else {
                return gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized");
            };
            let needed = place_order::required_scope(&parts.method);
            if !scopes(&claims).any(|s| s == needed) {
                return gateway_error(StatusCode::FORBIDDEN, "Forbidden");
            }
            Some(jwt_authorizer(claims))
        }
        Auth::Iam(principal) => {
            let mut authorizer = ApiGatewayRequestAuthorizer::default();
            authorizer.iam = Some(principal.authorizer());
            Some(authorizer)
        }
    };
    let event = to_event(&parts, &body, authorizer);
    let request: http::Request<lambda_http::Body> = LambdaRequest::ApiGatewayV2(event).into();
    match route.function.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

fn authorize(key: &[u8], headers: &HeaderMap) -> Option<jwt::Claims> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    jwt::verify(key, token, now_s).ok()
}

fn scopes(claims: &jwt::Claims) -> impl Iterator<Item = &str> {
    claims.scope.as_deref().unwrap_or("").split_whitespace()
}

/// What the JWT authorizer passes: the claims as strings, and the scopes
/// split out of the `scope` claim.
fn jwt_authorizer(claims: jwt::Claims) -> ApiGatewayRequestAuthorizer {
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    let granted: Vec<String> = scopes(&claims).map(str::to_owned).collect();
    jwt.scopes = (!granted.is_empty()).then_some(granted);
    jwt.claims = HashMap::from([
        ("sub".to_owned(), claims.sub),
        ("iss".to_owned(), claims.iss),
        ("aud".to_owned(), claims.aud),
        ("exp".to_owned(), claims.exp.to_string()),
    ]);
    if let Some(scope) = claims.scope {
        jwt.claims.insert("scope".to_owned(), scope);
    }
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    authorizer
}

fn to_event(
    parts: &http::request::Parts,
    body: &Bytes,
    authorizer: Option<ApiGatewayRequestAuthorizer>,
) -> ApiGatewayV2httpRequest {
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(format!("{} {}", parts.method, parts.uri.path()));
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = parts.uri.query().map(str::to_owned);
    event.headers = parts.headers.clone();
    if let Some(query) = parts.uri.query() {
        let pairs: HashMap<String, Vec<String>> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name.to_owned(), vec![value.to_owned()])
            })
            .collect();
        event.query_string_parameters = pairs.into();
    }
    let mut http_description = ApiGatewayV2httpRequestContextHttpDescription::default();
    http_description.method = parts.method.clone();
    http_description.path = Some(parts.uri.path().to_owned());
    http_description.protocol = Some("HTTP/1.1".into());
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http = http_description;
    context.stage = Some("$default".into());
    context.route_key = event.route_key.clone();
    context.request_id = Some(uuid::Uuid::new_v4().to_string());
    context.account_id = Some(LOCAL_AWS_ACCOUNT_ID.to_owned());
    context.authorizer = authorizer;
    event.request_context = context;
    // Text bodies pass as they are; anything else base64, as API Gateway does.
    match std::str::from_utf8(body) {
        Ok(text) => {
            event.body = (!text.is_empty()).then(|| text.to_owned());
            event.is_base64_encoded = false;
        }
        Err(_) => {
            use base64::Engine as _;
            event.body = Some(base64::engine::general_purpose::STANDARD.encode(body));
            event.is_base64_encoded = true;
        }
    }
    event
}

/// Serves a router on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::any;
    use lambda_http::RequestExt;

    /// A function that answers with the authorizer context it was given.
    fn echo() -> Router {
        Router::new().fallback(any(|request: Request| async move {
            let authorizer = match request.request_context_ref() {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
                    serde_json::to_value(&context.authorizer).unwrap_or_default()
                }
                _ => serde_json::Value::Null,
            };
            axum::Json(authorizer)
        }))
    }

    async fn call(
        gateway: &Gateway,
        request: http::Request<axum::body::Body>,
    ) -> (StatusCode, serde_json::Value) {
        let response = gateway
            .clone()
            .into_router()
            .oneshot(request)
            .await
            .expect("answered");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn get(uri: &str, token: Option<&str>) -> http::Request<axum::body::Body> {
        let mut request = http::Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(axum::body::Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn an_iam_listener_passes_its_principal_as_api_gateway_does() {
        let principal = Principal::local("local-ReconcilerFunctionRole");
        let gateway = Gateway::new(
            vec![Route {
                prefix: "/",
                function: echo(),
                auth: Auth::Iam(principal.clone()),
            }],
            Vec::new(),
        );
        let (status, authorizer) = call(&gateway, get("/accounts/a/balances", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(authorizer["iam"]["userArn"], principal.user_arn());
        assert_eq!(authorizer["iam"]["accountId"], LOCAL_AWS_ACCOUNT_ID);
        assert_eq!(
            principal.user_arn(),
            format!(
                "arn:aws:sts::{LOCAL_AWS_ACCOUNT_ID}:assumed-role/local-ReconcilerFunctionRole/local-ReconcilerFunctionRole-local"
            )
        );
    }

    #[tokio::test]
    async fn a_jwt_route_needs_a_valid_token_and_the_methods_scope() {
        let key = b"local-key".to_vec();
        let gateway = Gateway::new(
            vec![Route {
                prefix: "/orders",
                function: echo(),
                auth: Auth::Jwt,
            }],
            key.clone(),
        );
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let reader = jwt::token_with_scope(&key, "auth0|abc", "orders:read", now_s, 60);

        assert_eq!(
            call(&gateway, get("/orders", None)).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, authorizer) = call(&gateway, get("/orders", Some(&reader))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(authorizer["jwt"]["claims"]["sub"], "auth0|abc");
        assert_eq!(authorizer["jwt"]["claims"]["iss"], jwt::ISSUER);
        assert_eq!(
            authorizer["jwt"]["scopes"],
            serde_json::json!(["orders:read"])
        );

        let post = http::Request::post("/orders")
            .header("authorization", format!("Bearer {reader}"))
            .body(axum::body::Body::empty())
            .expect("request");
        let (status, body) = call(&gateway, post).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["message"], "Forbidden");
    }
}
