//! The API's clients: what they ask for, what they were answered, and the
//! HTTP calls themselves, made through the orders router exactly as API
//! Gateway hands a request to the Lambda (the JWT authorizer's claims in
//! the request context). A client without an answer (a crash, a `503`, a
//! request lost on the way) sends the same request again with the same
//! `Idempotency-Key`; a request it gave up on may still land, late.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::body::{Body, Bytes};
use domain::order::{OrderId, OrderType, TimeInForce};
use domain::{AccountId, Asset, Catalog, Side, Symbol};
use http::{Method, Request, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use place_order::wire::PlaceOrderBody;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tower::ServiceExt;

use crate::scenario::Scenario;

/// Symbols the clients trade.
pub const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "TSLA", "NVDA"];
/// A client sends a request at most this often before giving up on it.
pub const MAX_ATTEMPTS: u32 = 5;
/// Largest ordinary order, in shares; big orders go to [`MAX_BIG_SHARES`].
pub const MAX_SHARES: u64 = 50;
pub const MAX_BIG_SHARES: u64 = 2_000;
/// Largest answer body read.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// A placement request, as the client keeps it to send again.
#[derive(Debug, Clone)]
pub struct Post {
    pub account: AccountId,
    pub key: String,
    pub body: PlaceOrderBody,
    pub attempts: u32,
}

/// A cancel the API accepted (`2xx`): when it was asked (an event number)
/// and when it was answered.
#[derive(Debug, Clone, Copy)]
pub struct AcceptedCancel {
    pub requested_event: u64,
    pub answered_ms: u64,
}

/// What one API call came back with.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

pub struct Clients {
    /// The traders; the first is poor (its orders are refused for funds).
    pub accounts: Vec<AccountId>,
    /// Places the resting crowd, if the seed has one.
    pub crowd: Option<AccountId>,
    pub crowd_left: usize,
    pub symbols: Vec<Symbol>,
    next_key: u64,
    /// Placements without an answer yet.
    pub pending: Vec<Post>,
    /// The order each (account, key) was answered with.
    pub answered: BTreeMap<(AccountId, String), OrderId>,
    /// Orders the clients know of, in the order they learnt them.
    pub known: Vec<(AccountId, OrderId)>,
    pub cancels: BTreeMap<OrderId, AcceptedCancel>,
    /// Cancels without an answer yet (account, order, attempts).
    pub cancel_retries: Vec<(AccountId, OrderId, u32)>,
    /// Cancels a client decided to send at a time (ms).
    pub planned_cancels: Vec<(u64, AccountId, OrderId)>,
    /// Requests that will land late: (time, sequence) → the request.
    late: BTreeMap<(u64, u64), Post>,
    late_sent: u64,
    /// Keys ever sent: each may create at most one order.
    pub keys_used: usize,
}

impl Clients {
    pub fn new(scenario: &Scenario, catalog: &Catalog) -> Self {
        let account = |name: &str| AccountId::parse(name).expect("a valid account id");
        let crowd_left = scenario.workload.crowd_orders;
        Clients {
            accounts: vec![account("poor"), account("alice"), account("bob")],
            crowd: (crowd_left > 0).then(|| account("crowd")),
            crowd_left,
            symbols: SYMBOLS
                .iter()
                .map(|s| catalog.symbol(s).expect("a listed symbol"))
                .collect(),
            next_key: 0,
            pending: Vec::new(),
            answered: BTreeMap::new(),
            known: Vec::new(),
            cancels: BTreeMap::new(),
            cancel_retries: Vec::new(),
            planned_cancels: Vec::new(),
            late: BTreeMap::new(),
            late_sent: 0,
            keys_used: 0,
        }
    }

    /// What each account starts with: (account, asset, units).
    pub fn funding(&self, _catalog: &Catalog) -> Vec<(AccountId, Asset, u64)> {
        let mut funding = Vec::new();
        for (n, account) in self.accounts.iter().enumerate() {
            let (cash, shares) = if n == 0 {
                (200_000, 5)
            } else {
                (2_000_000_000, 5_000)
            };
            funding.push((account.clone(), Asset::Cash, cash));
            for symbol in &self.symbols {
                funding.push((account.clone(), Asset::Shares(symbol.clone()), shares));
            }
        }
        if let Some(crowd) = &self.crowd {
            funding.push((crowd.clone(), Asset::Cash, 100_000_000_000));
        }
        funding
    }

    pub fn new_key(&mut self) -> String {
        self.next_key += 1;
        self.keys_used += 1;
        format!("client-key-{}", self.next_key)
    }

    /// A request copy that will land at `at_ms`.
    pub fn land_late(&mut self, at_ms: u64, post: Post) {
        self.late_sent += 1;
        self.late.insert((at_ms, self.late_sent), post);
    }

    pub fn next_late(&mut self, now_ms: u64) -> Option<Post> {
        let entry = self.late.first_entry()?;
        if entry.key().0 > now_ms {
            return None;
        }
        Some(entry.remove())
    }

    pub fn next_late_ms(&self) -> Option<u64> {
        self.late.keys().next().map(|(at, _)| *at)
    }

    pub fn forget_late(&mut self) {
        self.late.clear();
    }

    /// Records an answer; `Err` when the key was answered with another order before.
    pub fn answered(&mut self, post: &Post, id: &OrderId) -> Result<(), String> {
        let slot = (post.account.clone(), post.key.clone());
        match self.answered.get(&slot) {
            Some(earlier) if earlier != id => Err(format!(
                "key {} of {} was answered with order {earlier} and then with {id}",
                post.key, post.account
            )),
            Some(_) => Ok(()),
            None => {
                self.answered.insert(slot, id.clone());
                self.known.push((post.account.clone(), id.clone()));
                Ok(())
            }
        }
    }
}

/// Prices in cents, as the API's decimal string.
pub fn price_text(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An order a trader might send, around the quote `(bid, ask)` in cents.
pub fn order_body(
    rng: &mut ChaCha8Rng,
    symbol: &Symbol,
    quote: (u64, u64),
    big: bool,
) -> PlaceOrderBody {
    let side = if rng.gen_bool(0.55) {
        Side::Buy
    } else {
        Side::Sell
    };
    let quantity = if big {
        rng.gen_range(100..=MAX_BIG_SHARES)
    } else {
        rng.gen_range(1..=MAX_SHARES)
    };
    let time_in_force = *[
        TimeInForce::Day,
        TimeInForce::Day,
        TimeInForce::Gtc,
        TimeInForce::Ioc,
    ]
    .choose(rng)
    .expect("a choice");
    if rng.gen_bool(0.3) {
        return PlaceOrderBody {
            symbol: symbol.to_string(),
            side,
            order_type: OrderType::Market,
            quantity: quantity.to_string(),
            limit_price: None,
            time_in_force: Some(time_in_force),
        };
    }
    let (bid, ask) = quote;
    // Marketable, near the quote, or resting well away from it.
    let bps: i64 = match rng.gen_range(0..10) {
        0..=4 => rng.gen_range(0..=100),
        5..=7 => rng.gen_range(-50..=50),
        _ => -rng.gen_range(300..=1_500),
    };
    let cents = match side {
        Side::Buy => ask as i64 + ask as i64 * bps / 10_000,
        Side::Sell => bid as i64 - bid as i64 * bps / 10_000,
    };
    PlaceOrderBody {
        symbol: symbol.to_string(),
        side,
        order_type: OrderType::Limit,
        quantity: quantity.to_string(),
        limit_price: Some(price_text(cents.max(1) as u64)),
        time_in_force: Some(time_in_force),
    }
}

/// A resting buy well below the market, as the crowd places them.
pub fn crowd_body(rng: &mut ChaCha8Rng, symbol: &Symbol, bid: u64) -> PlaceOrderBody {
    let below_bps = rng.gen_range(1_000..=3_000);
    PlaceOrderBody {
        symbol: symbol.to_string(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        quantity: rng.gen_range(1..=10u64).to_string(),
        limit_price: Some(price_text(bid - bid * below_bps / 10_000)),
        time_in_force: Some(if rng.gen_bool(0.5) {
            TimeInForce::Gtc
        } else {
            TimeInForce::Day
        }),
    }
}

/// The request as API Gateway hands it over after its JWT authorizer
/// accepted a token of `account`.
pub fn request(
    method: Method,
    path: &str,
    account: &AccountId,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(key) = key {
        builder = builder.header(place_order::IDEMPOTENCY_KEY_HEADER, key);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(body.map_or_else(Body::empty, Body::from))
        .expect("a valid request");
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims
        .insert(place_order::ACCOUNT_CLAIM.into(), account.to_string());
    jwt.scopes = Some(vec![
        place_order::READ_SCOPE.into(),
        place_order::WRITE_SCOPE.into(),
    ]);
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    request.with_request_context(RequestContext::ApiGatewayV2(context))
}

/// Sends `request` through `router` and reads the whole answer.
pub async fn call(router: axum::Router, request: Request<Body>) -> Answer {
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    Answer { status, body }
}
