//! API Gateway (HTTP API) on localhost: each request becomes the
//! `ApiGatewayV2httpRequest` event Lambda would deliver, JWT claims included
//! once the token is verified as the JWT authorizer would, and goes through
//! `lambda_http`'s own event-to-request conversion into the function's
//! router, the same router `main.rs` hands to `lambda_http::run`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
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

/// One route of the HTTP API: a path prefix, the function behind it, and
/// whether the JWT authorizer guards it.
#[derive(Clone)]
pub struct Route {
    pub prefix: &'static str,
    pub function: Router,
    pub jwt: bool,
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
    let claims = if route.jwt {
        match authorize(&gateway.jwt_key, &parts.headers) {
            Some(claims) => Some(claims),
            None => return gateway_error(StatusCode::UNAUTHORIZED, "Unauthorized"),
        }
    } else {
        None
    };
    let event = to_event(&parts, &body, claims);
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

fn to_event(
    parts: &http::request::Parts,
    body: &Bytes,
    claims: Option<jwt::Claims>,
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
    if let Some(claims) = claims {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = HashMap::from([
            ("sub".to_owned(), claims.sub),
            ("iss".to_owned(), claims.iss),
            ("aud".to_owned(), claims.aud),
            ("exp".to_owned(), claims.exp.to_string()),
        ]);
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
    }
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
