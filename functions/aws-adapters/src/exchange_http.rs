//! HTTP client of the exchange's REST API, implementing the `Exchange` port.
//!
//! Every failure is classified by what the caller may conclude from it:
//! - `Unavailable`: the request certainly did not take effect (connection
//!   refused, `429`);
//! - `OutcomeUnknown`: it may have (timeout, connection reset after sending,
//!   `5xx`, `408`), so the caller looks the client order id up;
//! - `Rejected` (a place outcome, not an error): the exchange holds no order
//!   from this request and never will;
//! - `Protocol`: an answer this client cannot act on. A place refused because
//!   its client order id is held for *another* request is one of these, not a
//!   rejection: the exchange does hold an order under that id, and the
//!   platform only ever re-sends identical requests, so it means a bug or a
//!   lost record. The caller looks the id up.
//!
//! Money travels as decimal strings and is parsed with the domain's parsers,
//! never through a float.

use std::time::Duration;

use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, ExchangeOrderStatus, PlaceOutcome,
    PlaceRequest,
};
use domain::money::parse_units;
use domain::order::{ExecId, Execution, OrderId, OrderType};
use domain::{Catalog, Price, Quantity, Side, Symbol};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};

/// Default budget of one call: well inside a Lambda's run time, and long
/// enough for a healthy exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Executions asked for per page (the simulator allows up to 500).
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Most pages `executions` follows. An order holds at most a few hundred
/// fills, so more pages means a token that never ends: stop and report it.
pub const MAX_EXECUTION_PAGES: usize = 50;
/// Longest piece of an unreadable answer quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// Problem types (`type` of an `application/problem+json` answer) this
/// client acts on.
pub mod problem_type {
    pub const ORDER_NOT_FOUND: &str = "urn:exchange-sim:problem:order-not-found";
    pub const IDEMPOTENCY_MISMATCH: &str = "urn:exchange-sim:problem:idempotency-mismatch";
    pub const DEADLINE_PASSED: &str = "urn:exchange-sim:problem:deadline-passed";
    pub const UNKNOWN_SYMBOL: &str = "urn:exchange-sim:problem:unknown-symbol";
}

#[derive(Debug, Clone)]
pub struct HttpExchange {
    http: reqwest::Client,
    base_url: Url,
    catalog: Catalog,
    page_limit: usize,
}

impl HttpExchange {
    pub fn new(base_url: &str, catalog: Catalog, timeout: Duration) -> Result<Self, ExchangeError> {
        let invalid = |e: String| ExchangeError::Protocol(format!("exchange base URL: {e}"));
        let base_url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if base_url.cannot_be_a_base() {
            return Err(invalid("not a base URL".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ExchangeError::Protocol(format!("HTTP client: {e}")))?;
        Ok(HttpExchange {
            http,
            base_url,
            catalog,
            page_limit: DEFAULT_PAGE_LIMIT,
        })
    }

    /// Asks for executions `limit` at a time (at least one); small pages let
    /// tests exercise paging.
    pub fn with_page_limit(mut self, limit: usize) -> Self {
        self.page_limit = limit.max(1);
        self
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // Each segment is percent-encoded, so an id can never add a path level.
            path.pop_if_empty().extend(segments);
        }
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, ExchangeError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        Ok(Answer {
            status,
            body: body.to_vec(),
        })
    }

    fn by_client_id_url(&self, client_order_id: &OrderId) -> Url {
        self.url(&["v1", "orders:by-client-id", client_order_id.as_str()])
    }
}

/// A status and body, read whole (answers are small).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    fn problem(&self) -> Option<ProblemBody> {
        serde_json::from_slice(&self.body).ok()
    }

    fn has_problem_type(&self, expected: &str) -> bool {
        self.problem().is_some_and(|p| p.problem_type == expected)
    }

    /// The problem's detail, or the start of the body.
    fn detail(&self) -> String {
        self.problem()
            .and_then(|p| p.detail)
            .unwrap_or_else(|| quote_body(&self.body))
    }

    /// A failure that no route gives a specific meaning to.
    fn error(&self) -> ExchangeError {
        let text = format!("{}: {}", self.status, self.detail());
        match self.status {
            // Throttled before reaching the exchange: nothing happened.
            StatusCode::TOO_MANY_REQUESTS => ExchangeError::Unavailable(text),
            s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                ExchangeError::OutcomeUnknown(text)
            }
            _ => ExchangeError::Protocol(text),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, ExchangeError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ExchangeError::Protocol(format!(
                "unreadable answer ({e}): {}",
                quote_body(&self.body)
            ))
        })
    }
}

fn quote_body(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(MAX_QUOTED_BODY_CHARS)
        .collect()
}

fn transport_error(error: reqwest::Error) -> ExchangeError {
    // Only a failure to connect proves the request never left; a timeout or a
    // reset may come after the exchange acted on it.
    if error.is_connect() {
        ExchangeError::Unavailable(crate::error_chain(&error))
    } else {
        ExchangeError::OutcomeUnknown(crate::error_chain(&error))
    }
}

// ---- Wire format -----------------------------------------------------------

#[derive(Debug, Serialize)]
struct PlaceBody<'a> {
    client_order_id: &'a str,
    account: &'a str,
    symbol: &'a str,
    side: &'static str,
    #[serde(rename = "type")]
    order_type: &'static str,
    quantity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_price: Option<String>,
    /// Unix milliseconds (the exchange also takes RFC 3339).
    expire_at: u64,
}

impl<'a> PlaceBody<'a> {
    fn new(request: &'a PlaceRequest) -> Self {
        PlaceBody {
            client_order_id: request.client_order_id.as_str(),
            account: request.account.as_str(),
            symbol: request.symbol.as_str(),
            side: match request.side {
                Side::Buy => "buy",
                Side::Sell => "sell",
            },
            order_type: match request.order_type {
                OrderType::Market => "market",
                OrderType::Limit => "limit",
            },
            quantity: request.quantity.to_string(),
            limit_price: request.limit_price.map(|p| p.to_string()),
            expire_at: request.expire_at_ms,
        }
    }
}

/// The fields of an order this client reads; others are ignored, so the
/// exchange may add fields.
#[derive(Debug, Deserialize)]
struct OrderBody {
    order_id: String,
    client_order_id: String,
    status: String,
    cum_quantity: String,
}

#[derive(Debug, Deserialize)]
struct ExecutionBody {
    exec_id: String,
    order_id: String,
    quantity: String,
    price: String,
}

#[derive(Debug, Deserialize)]
struct ExecutionPageBody {
    executions: Vec<ExecutionBody>,
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CancelBody {
    outcome: String,
    order: Option<OrderBody>,
}

#[derive(Debug, Deserialize)]
struct QuoteBody {
    last: String,
}

#[derive(Debug, Deserialize)]
struct ProblemBody {
    #[serde(rename = "type")]
    problem_type: String,
    detail: Option<String>,
}

fn protocol(what: &str, error: impl std::fmt::Display) -> ExchangeError {
    ExchangeError::Protocol(format!("{what}: {error}"))
}

impl OrderBody {
    fn parse(self) -> Result<ExchangeOrder, ExchangeError> {
        let status = match self.status.as_str() {
            "new" => ExchangeOrderStatus::New,
            "partially_filled" => ExchangeOrderStatus::PartiallyFilled,
            "filled" => ExchangeOrderStatus::Filled,
            "cancelled" => ExchangeOrderStatus::Cancelled,
            "expired" => ExchangeOrderStatus::Expired,
            "rejected" => ExchangeOrderStatus::Rejected,
            other => return Err(protocol("order status", format!("`{other:.32}`"))),
        };
        Ok(ExchangeOrder {
            client_order_id: OrderId::parse(&self.client_order_id)
                .map_err(|e| protocol("client_order_id", e))?,
            status,
            // A count that may be zero, so not a `Quantity`; still a decimal string.
            cum_quantity: parse_units(&self.cum_quantity, 0)
                .map_err(|e| protocol("cum_quantity", e))?,
            order_id: self.order_id,
        })
    }
}

impl ExecutionBody {
    fn parse(self) -> Result<Execution, ExchangeError> {
        Ok(Execution {
            exec_id: ExecId::parse(&self.exec_id).map_err(|e| protocol("exec_id", e))?,
            quantity: Quantity::parse(&self.quantity)
                .map_err(|e| protocol("execution quantity", e))?,
            price: Price::parse(&self.price).map_err(|e| protocol("execution price", e))?,
            exchange_order_id: self.order_id,
        })
    }
}

// ---- Answers, route by route (pure, so they are unit-tested) ---------------

fn place_answer(answer: &Answer) -> Result<PlaceOutcome, ExchangeError> {
    match answer.status {
        StatusCode::CREATED | StatusCode::OK => {
            // The order exists; if we cannot read it, we do not know its state.
            let body: OrderBody = answer
                .decode()
                .map_err(|e| ExchangeError::OutcomeUnknown(e.to_string()))?;
            let order = body
                .parse()
                .map_err(|e| ExchangeError::OutcomeUnknown(e.to_string()))?;
            Ok(PlaceOutcome::Accepted(order))
        }
        // Invalid, too large, or tombstoned: nothing stored, now or later.
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::CONFLICT => {
            Ok(PlaceOutcome::Rejected {
                reason: answer.detail(),
            })
        }
        StatusCode::UNPROCESSABLE_ENTITY
            if answer.has_problem_type(problem_type::DEADLINE_PASSED) =>
        {
            Ok(PlaceOutcome::Rejected {
                reason: answer.detail(),
            })
        }
        StatusCode::UNPROCESSABLE_ENTITY
            if answer.has_problem_type(problem_type::IDEMPOTENCY_MISMATCH) =>
        {
            Err(ExchangeError::Protocol(format!(
                "the exchange holds an order under this client order id for a different request \
                 (the platform only re-sends identical requests: a bug or a lost record): {}",
                answer.detail()
            )))
        }
        _ => Err(answer.error()),
    }
}

fn lookup_answer(answer: &Answer) -> Result<Option<ExchangeOrder>, ExchangeError> {
    if answer.status.is_success() {
        return answer.decode::<OrderBody>()?.parse().map(Some);
    }
    // Only the exchange's own "no such order" means none: a 404 from a wrong
    // route or a proxy must not be read as "never placed".
    if answer.status == StatusCode::NOT_FOUND
        && answer.has_problem_type(problem_type::ORDER_NOT_FOUND)
    {
        return Ok(None);
    }
    Err(answer.error())
}

fn cancel_answer(answer: &Answer) -> Result<CancelOutcome, ExchangeError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let body: CancelBody = answer.decode()?;
    match (body.outcome.as_str(), body.order) {
        ("tombstoned", _) => Ok(CancelOutcome::Tombstoned),
        ("cancelled" | "already_terminal", Some(order)) => order.parse().map(CancelOutcome::Known),
        (outcome, _) => Err(protocol(
            "cancel answer",
            format!("outcome `{outcome:.32}` without the order it needs"),
        )),
    }
}

fn page_answer(answer: &Answer) -> Result<(Vec<Execution>, Option<String>), ExchangeError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let page: ExecutionPageBody = answer.decode()?;
    let executions = page
        .executions
        .into_iter()
        .map(ExecutionBody::parse)
        .collect::<Result<_, _>>()?;
    Ok((executions, page.next_page_token.filter(|t| !t.is_empty())))
}

fn quote_answer(answer: &Answer, symbol: &Symbol) -> Result<Price, ExchangeError> {
    if answer.status == StatusCode::NOT_FOUND
        && answer.has_problem_type(problem_type::UNKNOWN_SYMBOL)
    {
        // Our catalog lists a symbol the exchange does not: configuration, not market.
        return Err(ExchangeError::Protocol(format!(
            "symbol {symbol} is not listed at the exchange"
        )));
    }
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let quote: QuoteBody = answer.decode()?;
    Price::parse(&quote.last).map_err(|e| protocol("quote price", e))
}

impl Exchange for HttpExchange {
    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let url = self.url(&["v1", "orders"]);
        let answer = self
            .send(self.http.post(url).json(&PlaceBody::new(request)))
            .await?;
        place_answer(&answer)
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        let answer = self
            .send(self.http.get(self.by_client_id_url(client_order_id)))
            .await?;
        lookup_answer(&answer)
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        let url = self.url(&["v1", "orders", exchange_order_id, "executions"]);
        let limit = self.page_limit.to_string();
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_EXECUTION_PAGES {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let answer = self.send(self.http.get(url.clone()).query(&query)).await?;
            let (page, next) = page_answer(&answer)?;
            all.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
        Err(ExchangeError::Protocol(format!(
            "executions of order {exchange_order_id} run past {MAX_EXECUTION_PAGES} pages"
        )))
    }

    async fn cancel(&self, client_order_id: &OrderId) -> Result<CancelOutcome, ExchangeError> {
        let answer = self
            .send(self.http.delete(self.by_client_id_url(client_order_id)))
            .await?;
        cancel_answer(&answer)
    }

    /// The last trade (mid) price. The port carries no side, so neither the
    /// ask (for buys) nor the bid (for sells): a market buy's reservation adds
    /// its collar on top, which covers the half spread.
    async fn reference_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        // Ask only for symbols we trade; anything else is a caller's bug.
        self.catalog
            .symbol(symbol.as_str())
            .map_err(|e| protocol("reference price", e))?;
        let url = self.url(&["v1", "quotes", symbol.as_str()]);
        let answer = self.send(self.http.get(url)).await?;
        quote_answer(&answer, symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0190f3c2-7a4e-7b1a-9c3d-5e6f7a8b9c0d";

    fn answer(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).expect("status"),
            body: body.to_string().into_bytes(),
        }
    }

    fn problem(status: u16, slug: &str) -> Answer {
        answer(
            status,
            json!({"type": format!("urn:exchange-sim:problem:{slug}"), "title": "x",
                   "status": status, "detail": format!("detail of {slug}")}),
        )
    }

    fn order_json(status: &str, cum: &str) -> serde_json::Value {
        json!({"order_id": "ex-1", "client_order_id": ID, "status": status,
               "cum_quantity": cum, "quantity": "10", "executions": []})
    }

    #[test]
    fn created_and_replayed_places_are_accepted() {
        for status in [201, 200] {
            let outcome = place_answer(&answer(status, order_json("new", "0"))).expect("accepted");
            let PlaceOutcome::Accepted(order) = outcome else {
                panic!("not accepted: {outcome:?}");
            };
            assert_eq!(order.order_id, "ex-1");
            assert_eq!(order.client_order_id.as_str(), ID);
            assert_eq!(
                (order.status, order.cum_quantity),
                (ExchangeOrderStatus::New, 0)
            );
        }
    }

    #[test]
    fn refusals_that_leave_nothing_are_rejections() {
        for a in [
            problem(400, "validation"),
            problem(409, "client-order-id-tombstoned"),
            problem(422, "deadline-passed"),
        ] {
            let outcome = place_answer(&a).expect("answered");
            assert!(
                matches!(&outcome, PlaceOutcome::Rejected { reason } if reason.starts_with("detail of")),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn an_id_held_for_another_request_is_not_a_rejection() {
        let result = place_answer(&problem(422, "idempotency-mismatch"));
        assert!(
            matches!(&result, Err(ExchangeError::Protocol(m)) if m.contains("different request")),
            "{result:?}"
        );
        // An unknown 422 is not taken as a rejection either.
        assert!(matches!(
            place_answer(&problem(422, "something-new")),
            Err(ExchangeError::Protocol(_))
        ));
    }

    #[test]
    fn failures_are_classified_by_what_the_caller_may_conclude() {
        let cases = [
            (problem(503, "injected-fault"), "unknown"),
            (answer(500, json!("boom")), "unknown"),
            (answer(408, json!({})), "unknown"),
            (answer(429, json!({})), "unavailable"),
            (answer(401, json!({})), "protocol"),
        ];
        for (a, expected) in cases {
            let kind = match place_answer(&a) {
                Err(ExchangeError::OutcomeUnknown(_)) => "unknown",
                Err(ExchangeError::Unavailable(_)) => "unavailable",
                Err(ExchangeError::Protocol(_)) => "protocol",
                Ok(o) => panic!("{}: {o:?}", a.status),
            };
            assert_eq!(kind, expected, "{}", a.status);
        }
    }

    #[test]
    fn an_unreadable_accepted_place_is_an_unknown_outcome() {
        let result = place_answer(&answer(201, json!({"order_id": "ex-1"})));
        assert!(
            matches!(result, Err(ExchangeError::OutcomeUnknown(_))),
            "{result:?}"
        );
    }

    #[test]
    fn only_the_exchanges_not_found_means_no_order() {
        assert_eq!(lookup_answer(&problem(404, "order-not-found")), Ok(None));
        assert!(matches!(
            lookup_answer(&problem(404, "not-found")),
            Err(ExchangeError::Protocol(_))
        ));
        let found = lookup_answer(&answer(200, order_json("partially_filled", "4")))
            .expect("found")
            .expect("some");
        assert_eq!(
            (found.status, found.cum_quantity),
            (ExchangeOrderStatus::PartiallyFilled, 4)
        );
    }

    #[test]
    fn cancel_outcomes_map_to_the_port() {
        let tombstoned = answer(
            200,
            json!({"client_order_id": ID, "outcome": "tombstoned", "order": null}),
        );
        assert_eq!(cancel_answer(&tombstoned), Ok(CancelOutcome::Tombstoned));
        for outcome in ["cancelled", "already_terminal"] {
            let a = answer(
                200,
                json!({"client_order_id": ID, "outcome": outcome, "order": order_json("cancelled", "2")}),
            );
            assert!(matches!(
                cancel_answer(&a),
                Ok(CancelOutcome::Known(ExchangeOrder {
                    status: ExchangeOrderStatus::Cancelled,
                    ..
                }))
            ));
        }
        let no_order = answer(200, json!({"client_order_id": ID, "outcome": "cancelled"}));
        assert!(matches!(
            cancel_answer(&no_order),
            Err(ExchangeError::Protocol(_))
        ));
    }

    #[test]
    fn executions_are_parsed_from_decimal_strings() {
        let a = answer(
            200,
            json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                                   "price": "187.25", "cum_quantity": "3"}],
                   "next_page_token": "1"}),
        );
        let (page, next) = page_answer(&a).expect("page");
        assert_eq!(next.as_deref(), Some("1"));
        assert_eq!(page[0].price, Price::from_cents(18_725).expect("price"));
        assert_eq!(page[0].quantity.shares(), 3);
        let float = answer(
            200,
            json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                                   "price": 187.25}]}),
        );
        assert!(matches!(
            page_answer(&float),
            Err(ExchangeError::Protocol(_))
        ));
        let sub_cent = answer(
            200,
            json!({"executions": [{"exec_id": "e-1", "order_id": "ex-1", "quantity": "3",
                                   "price": "187.255"}]}),
        );
        assert!(matches!(
            page_answer(&sub_cent),
            Err(ExchangeError::Protocol(_))
        ));
    }

    #[test]
    fn the_reference_price_is_the_last_price() {
        let symbol = Catalog::us_equities().symbol("AAPL").expect("listed");
        let a = answer(
            200,
            json!({"symbol": "AAPL", "bid": "187.24", "ask": "187.26", "last": "187.25"}),
        );
        assert_eq!(quote_answer(&a, &symbol).map(Price::cents), Ok(18_725));
        assert!(matches!(
            quote_answer(&problem(404, "unknown-symbol"), &symbol),
            Err(ExchangeError::Protocol(_))
        ));
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        let exchange = HttpExchange::new(
            "http://exchange.test/base/",
            Catalog::us_equities(),
            DEFAULT_TIMEOUT,
        )
        .expect("client");
        let url = exchange.url(&["v1", "orders", "a/b?c", "executions"]);
        assert_eq!(
            url.as_str(),
            "http://exchange.test/base/v1/orders/a%2Fb%3Fc/executions"
        );
        assert!(HttpExchange::new("not a url", Catalog::us_equities(), DEFAULT_TIMEOUT).is_err());
    }

    #[tokio::test]
    async fn a_refused_connection_is_unavailable() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let exchange = HttpExchange::new(
            &format!("http://127.0.0.1:{port}"),
            Catalog::us_equities(),
            DEFAULT_TIMEOUT,
        )
        .expect("client");
        let id = OrderId::parse(ID).expect("id");
        let result = exchange.order(&id).await;
        assert!(
            matches!(result, Err(ExchangeError::Unavailable(_))),
            "{result:?}"
        );
    }
}
