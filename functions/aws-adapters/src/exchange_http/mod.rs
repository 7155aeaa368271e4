//! HTTP client of an exchange's REST API, implementing the `Exchange` port.
//!
//! - [`dialect`]: what a venue's answers mean, per venue (the simulator's
//!   dialect is one table among others), with the guarantees it gives;
//! - [`wire`]: the JSON this client reads and writes;
//! - [`signer`]: request signing for venues that authenticate calls.
//!
//! Every failure is classified by what the caller may conclude from it:
//! - `Unavailable`: the request certainly did not take effect (connection
//!   refused, `429`);
//! - `OutcomeUnknown`: it may have (timeout, connection reset after sending,
//!   `5xx`, `408`), so the caller looks the client order id up;
//! - `Rejected` (a place outcome, not an error): the exchange holds no order
//!   from this request and never will;
//! - `Protocol`: an answer this client cannot act on (including a client
//!   order id held for *another* request: the platform only re-sends
//!   identical requests, so that means a bug or a lost record).
//!
//! The venue's clock is measured (its time endpoint, halfway through the
//! round trip) and kept for a minute: deadlines are sent in its clock.

mod dialect;
mod signer;
mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::exchange::{
    CancelOutcome, Exchange, ExchangeError, ExchangeOrder, PlaceOutcome, PlaceRequest, VenueClock,
};
use app::{Clock, SystemClock};
use domain::order::{Execution, OrderId, VenueRules};
use domain::{Catalog, Price, Symbol};
use reqwest::{StatusCode, Url};

pub use dialect::{Meaning, Route, Rule, Venue};
pub use signer::{HmacSigner, RequestSigner};
use wire::{
    protocol, CancelBody, ExecutionBody, ExecutionPageBody, OrderBody, OrderPageBody, PlaceBody,
    ProblemBody, QuoteBody, TimeBody,
};

/// Default budget of one call: well inside a Lambda's run time, and long
/// enough for a healthy exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Items asked for per page (the simulator allows up to 500).
pub const DEFAULT_PAGE_LIMIT: usize = 500;
/// Most pages one listing follows (an order's executions, a day's orders):
/// far beyond any real order or day at 500 a page; a token that never ends
/// is reported, not followed for ever.
pub const MAX_PAGES: usize = 10_000;
/// A measurement of the venue's clock is trusted this long.
const CLOCK_TTL_MS: u64 = 60_000;
/// Longest piece of an unreadable answer quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

#[derive(Debug, Clone)]
pub struct HttpExchange {
    http: reqwest::Client,
    base_url: Url,
    catalog: Catalog,
    page_limit: usize,
    venue: Venue,
    signer: Option<Arc<dyn RequestSigner>>,
    clock: Arc<Mutex<Option<(VenueClock, u64)>>>,
}

/// A status and body, read whole (answers are small), and the venue's
/// `Date` header.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
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

impl Answer {
    fn problem(&self) -> Option<ProblemBody> {
        serde_json::from_slice(&self.body).ok()
    }

    fn meaning(&self, venue: &Venue, route: Route) -> Option<Meaning> {
        let problem = self.problem();
        venue.meaning(
            route,
            self.status.as_u16(),
            problem.as_ref().map(|p| p.problem_type.as_str()),
        )
    }

    /// The problem's detail, or the start of the body.
    fn detail(&self) -> String {
        self.problem()
            .and_then(|p| p.detail)
            .unwrap_or_else(|| quote_body(&self.body))
    }

    /// A failure the venue's table gives no meaning to on this route.
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

impl HttpExchange {
    /// A client of the exchange simulator's default profile (`tombstone`);
    /// [`HttpExchange::with_venue`] configures another venue.
    pub fn new(base_url: &str, catalog: Catalog, timeout: Duration) -> Result<Self, ExchangeError> {
        let invalid = |e: String| ExchangeError::Protocol(format!("exchange base URL: {e}"));
        let base_url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if base_url.cannot_be_a_base() {
            return Err(invalid("not a base URL".into()));
        }
        let http = crate::https::client(timeout)
            .map_err(|e| ExchangeError::Protocol(format!("HTTP client: {e}")))?;
        let venue = Venue::simulator("tombstone")
            .ok_or_else(|| ExchangeError::Protocol("no default venue".into()))?;
        Ok(HttpExchange {
            http,
            base_url,
            catalog,
            page_limit: DEFAULT_PAGE_LIMIT,
            venue,
            signer: None,
            clock: Arc::new(Mutex::new(None)),
        })
    }

    pub fn with_venue(mut self, venue: Venue) -> Self {
        self.venue = venue;
        self
    }

    pub fn with_signer(mut self, signer: Arc<dyn RequestSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Asks for listings `limit` at a time (at least one); small pages let
    /// tests exercise paging.
    pub fn with_page_limit(mut self, limit: usize) -> Self {
        self.page_limit = limit.max(1);
        self
    }

    pub fn venue(&self) -> &Venue {
        &self.venue
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
        let mut request = request
            .build()
            .map_err(|e| ExchangeError::Protocol(format!("request: {e}")))?;
        if let Some(signer) = &self.signer {
            let body = request
                .body()
                .and_then(|b| b.as_bytes())
                .unwrap_or_default()
                .to_vec();
            let path = match request.url().query() {
                Some(query) => format!("{}?{query}", request.url().path()),
                None => request.url().path().to_owned(),
            };
            let headers = signer.sign(
                request.method().as_str(),
                &path,
                &body,
                SystemClock.now_ms(),
            );
            for (name, value) in headers {
                let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| protocol("signature header", e))?;
                let value = reqwest::header::HeaderValue::from_str(&value)
                    .map_err(|e| protocol("signature header", e))?;
                request.headers_mut().insert(name, value);
            }
        }
        let response = self.http.execute(request).await.map_err(transport_error)?;
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

    /// Every page of a listing, each answer read by `page`.
    async fn pages<T>(
        &self,
        url: Url,
        extra: &[(&str, &str)],
        page: impl Fn(&Answer) -> Result<(Vec<T>, Option<String>), ExchangeError>,
    ) -> Result<Vec<T>, ExchangeError> {
        let limit = self.page_limit.to_string();
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, &str)> = extra.to_vec();
            query.push(("limit", limit.as_str()));
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let answer = self.send(self.http.get(url.clone()).query(&query)).await?;
            let (items, next) = page(&answer)?;
            all.extend(items);
            match next.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(all),
            }
        }
        Err(ExchangeError::Protocol(format!(
            "{url} runs past {MAX_PAGES} pages"
        )))
    }

    /// Measures the venue's clock: its time, against ours halfway through
    /// the round trip.
    async fn measure_clock(&self) -> Result<VenueClock, ExchangeError> {
        let before = SystemClock.now_ms();
        let answer = self.send(self.http.get(self.url(&["v1", "time"]))).await?;
        let after = SystemClock.now_ms();
        if !answer.status.is_success() {
            return Err(answer.error());
        }
        let time: TimeBody = answer.decode()?;
        let midpoint = before + (after - before) / 2;
        let offset_ms = i64::try_from(time.now_ms).unwrap_or(i64::MAX)
            - i64::try_from(midpoint).unwrap_or(i64::MAX);
        Ok(VenueClock {
            offset_ms,
            // The venue read its clock somewhere within the round trip.
            uncertainty_ms: (after - before) / 2 + 1,
        })
    }
}

// ---- Answers, route by route (pure, so they are unit-tested) ---------------

fn place_answer(venue: &Venue, answer: &Answer) -> Result<Option<PlaceOutcome>, ExchangeError> {
    if matches!(answer.status, StatusCode::CREATED | StatusCode::OK) {
        // The order exists; if we cannot read it, we do not know its state.
        let body: OrderBody = answer
            .decode()
            .map_err(|e| ExchangeError::OutcomeUnknown(e.to_string()))?;
        let order = body
            .parse()
            .map_err(|e| ExchangeError::OutcomeUnknown(e.to_string()))?;
        return Ok(Some(PlaceOutcome::Accepted(order)));
    }
    match answer.meaning(venue, Route::Place) {
        Some(Meaning::Rejected) => Ok(Some(PlaceOutcome::Rejected {
            reason: answer.detail(),
        })),
        // The id is taken by this very request: the caller looks it up.
        Some(Meaning::AlreadyExists) => Ok(None),
        Some(Meaning::HeldForAnotherRequest) => Err(ExchangeError::Protocol(format!(
            "the exchange holds an order under this client order id for a different request \
             (the platform only re-sends identical requests: a bug or a lost record): {}",
            answer.detail()
        ))),
        _ => Err(answer.error()),
    }
}

fn lookup_answer(venue: &Venue, answer: &Answer) -> Result<Option<ExchangeOrder>, ExchangeError> {
    if answer.status.is_success() {
        return answer.decode::<OrderBody>()?.parse().map(Some);
    }
    // Only the venue's own "no such order" means none: a 404 from a wrong
    // route or a proxy must not be read as "never placed".
    match answer.meaning(venue, Route::Lookup) {
        Some(Meaning::NotFound) => Ok(None),
        _ => Err(answer.error()),
    }
}

fn cancel_answer(venue: &Venue, answer: &Answer) -> Result<CancelOutcome, ExchangeError> {
    if !answer.status.is_success() {
        return match answer.meaning(venue, Route::Cancel) {
            Some(Meaning::UnknownOrder) => Ok(CancelOutcome::NotFound),
            _ => Err(answer.error()),
        };
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

fn execution_page(answer: &Answer) -> Result<(Vec<Execution>, Option<String>), ExchangeError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let page: ExecutionPageBody = answer.decode()?;
    let executions = page
        .executions
        .into_iter()
        .map(ExecutionBody::parse)
        .collect::<Result<_, _>>()?;
    Ok((executions, page.next_page_token))
}

fn order_page(answer: &Answer) -> Result<(Vec<ExchangeOrder>, Option<String>), ExchangeError> {
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let page: OrderPageBody = answer.decode()?;
    let orders = page
        .orders
        .into_iter()
        .map(OrderBody::parse)
        .collect::<Result<_, _>>()?;
    Ok((orders, page.next_page_token))
}

fn quote_answer(answer: &Answer, symbol: &Symbol) -> Result<Price, ExchangeError> {
    if answer.status == StatusCode::NOT_FOUND {
        // Our catalog lists a symbol the exchange does not: configuration, not market.
        return Err(ExchangeError::Protocol(format!(
            "symbol {symbol} is not listed at the exchange: {}",
            answer.detail()
        )));
    }
    if !answer.status.is_success() {
        return Err(answer.error());
    }
    let quote: QuoteBody = answer.decode()?;
    Price::parse(&quote.last).map_err(|e| protocol("quote price", e))
}

impl Exchange for HttpExchange {
    fn rules(&self) -> VenueRules {
        self.venue.rules
    }

    async fn place(&self, request: &PlaceRequest) -> Result<PlaceOutcome, ExchangeError> {
        let url = self.url(&["v1", "orders"]);
        let answer = self
            .send(self.http.post(url).json(&PlaceBody::new(request)))
            .await?;
        match place_answer(&self.venue, &answer)? {
            Some(outcome) => Ok(outcome),
            // "Already exists" for this very request: it is there; fetch it.
            None => match self.order(&request.client_order_id).await? {
                Some(order) => Ok(PlaceOutcome::Accepted(order)),
                None => Err(ExchangeError::OutcomeUnknown(
                    "the venue says the order exists, yet does not find it".into(),
                )),
            },
        }
    }

    async fn order(
        &self,
        client_order_id: &OrderId,
    ) -> Result<Option<ExchangeOrder>, ExchangeError> {
        let answer = self
            .send(self.http.get(self.by_client_id_url(client_order_id)))
            .await?;
        lookup_answer(&self.venue, &answer)
    }

    async fn executions(&self, exchange_order_id: &str) -> Result<Vec<Execution>, ExchangeError> {
        let url = self.url(&["v1", "orders", exchange_order_id, "executions"]);
        self.pages(url, &[], execution_page).await
    }

    async fn cancel(
        &self,
        client_order_id: &OrderId,
        exchange_order_id: Option<&str>,
    ) -> Result<CancelOutcome, ExchangeError> {
        let url = match (self.venue.rules.cancel_by_client_id, exchange_order_id) {
            (true, _) => self.by_client_id_url(client_order_id),
            (false, Some(id)) => self.url(&["v1", "orders", id]),
            (false, None) => {
                return Err(ExchangeError::Protocol(
                    "this venue cancels only by its own order id, which is not known yet".into(),
                ))
            }
        };
        let answer = self.send(self.http.delete(url)).await?;
        cancel_answer(&self.venue, &answer)
    }

    /// The last trade price. The port carries no side, so neither the ask
    /// (for buys) nor the bid (for sells): a market order's protection adds
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

    async fn clock(&self) -> Result<VenueClock, ExchangeError> {
        let now = SystemClock.now_ms();
        let cached = *self.clock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((clock, measured_at)) = cached {
            if now.saturating_sub(measured_at) < CLOCK_TTL_MS {
                return Ok(clock);
            }
        }
        let clock = self.measure_clock().await?;
        if clock.offset_ms.unsigned_abs() > SKEW_WARNING_MS {
            tracing::warn!(
                offset_ms = clock.offset_ms,
                "the venue's clock is far from ours"
            );
        }
        // Embedded Metric Format: the skew is watched by an alarm.
        println!(
            "{}",
            crate::metrics::line(
                "exchange",
                &[("VenueClockSkewMs", clock.offset_ms.unsigned_abs())]
            )
        );
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some((clock, now));
        Ok(clock)
    }

    async fn day_orders(&self, trade_date: &str) -> Result<Vec<ExchangeOrder>, ExchangeError> {
        let url = self.url(&["v1", "orders"]);
        self.pages(url, &[("trade_date", trade_date)], order_page)
            .await
    }
}

/// A skew this large is logged (the alarm's bound is in the template).
const SKEW_WARNING_MS: u64 = 5_000;

#[cfg(test)]
mod tests;
