//! The order flow on the local stack: the trading and Balances tables on the
//! emulator, the Balances service behind a proxy a test can break, the
//! exchange simulator, and the orders API behind a stand-in for API
//! Gateway's JWT authorizer.

use std::collections::BTreeMap;
use std::time::Duration;

use app::clock::OffsetClock;
use app::memory::MemoryFillQueue;
use app::orders::{OrderSettings, Orders};
use app::{BalancesService, SystemClock};
use aws_adapters::balances_http::HttpBalances;
use aws_adapters::dynamodb::{DynamoLedgerStore, DynamoOrderStore};
use aws_adapters::exchange_http::{HttpExchange, Venue};
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use domain::order::{Order, OrderId, RecoveryPolicy};
use domain::{AccountId, Catalog};
use exchange_sim::app::Running;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use local_stack::{unique_prefix, Stack};

use crate::faulty_proxy::FaultyProxy;
use crate::sim_exchange::{fast_fills, spawn_exchange_sim_with};
use crate::{serve, table_snapshot};

/// Budget of one Balances call in the tests: generous, because Balances
/// waits on the shared emulator, which a loaded machine can make slow; the
/// tests that lose an answer do it with the proxy, not with a timeout.
pub const BALANCES_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Budget of one exchange call: the simulator runs in-process and answers in
/// milliseconds; tests that hold an answer back hold it for
/// [`EXCHANGE_HELD_BACK_MS`], well past this.
pub const EXCHANGE_CALL_TIMEOUT: Duration = Duration::from_secs(3);
pub const EXCHANGE_HELD_BACK_MS: u64 = 6_000;

/// Stand-in token: `Bearer test-token:<account>`. In AWS the HTTP API's JWT
/// authorizer verifies a real token and hands the claims to the function the
/// same way this does.
pub const TOKEN_PREFIX: &str = "test-token:";

pub fn bearer(account: &AccountId) -> String {
    format!("Bearer {TOKEN_PREFIX}{account}")
}

/// Stands in for API Gateway's JWT authorizer (see [`TOKEN_PREFIX`]).
pub async fn authorizer(request: Request, next: Next) -> Response {
    let account = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| v.strip_prefix(TOKEN_PREFIX))
        .map(str::to_owned);
    let request = match account {
        Some(account) => {
            let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
            jwt.claims
                .insert(place_order::ACCOUNT_CLAIM.into(), account);
            // The stand-in token grants every route's scope.
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
        None => request,
    };
    next.run(request).await
}

pub type StackOrders = Orders<DynamoOrderStore, HttpBalances, HttpExchange, OffsetClock>;

pub struct Platform {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub trading_table: String,
    pub balances_table: String,
    /// Straight to the Balances service (set-up and assertions; deposits on
    /// the admin route).
    pub balances: crate::iam::ServiceBalances,
    /// The orders API's way to Balances.
    pub balances_proxy: FaultyProxy,
    pub exchange: Running,
    pub exchange_url: String,
    /// The venue's dialect and guarantees the platform is configured with.
    pub venue: Venue,
    pub orders_url: String,
    pub clock: OffsetClock,
    pub settings: OrderSettings,
    pub http: reqwest::Client,
    /// Where the fill processor sets reports aside in these tests.
    pub set_aside: MemoryFillQueue,
}

/// Short deadlines, so tests can pass them by moving the clock.
pub fn test_settings() -> OrderSettings {
    OrderSettings {
        placement_window_ms: 5_000,
        handler_budget_ms: 2_000,
        recovery: RecoveryPolicy {
            clock_skew_margin_ms: 1_000,
            max_in_flight_ms: 3_000,
            retry_base_ms: 100,
            retry_max_ms: 1_000,
            gap_grace_ms: 1_000,
            market_silence_ms: 1_000,
            flag_after_ms: 60_000,
            ..RecoveryPolicy::default()
        },
        ..OrderSettings::default()
    }
}

/// How a test's platform is set up.
pub struct PlatformOptions {
    pub settings: OrderSettings,
    /// A fixed sequence of ids for the orders this platform makes.
    pub order_ids: Option<Vec<OrderId>>,
    /// The exchange simulator: its venue profile and market behaviour.
    pub engine: exchange_sim::EngineConfig,
    /// The venue's clock against the platform's.
    pub clock_offset_ms: i64,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        PlatformOptions {
            settings: test_settings(),
            order_ids: None,
            engine: fast_fills(rand_seed()),
            clock_offset_ms: 0,
        }
    }
}

impl Platform {
    pub async fn spawn(label: &str) -> Platform {
        Self::spawn_with(label, PlatformOptions::default()).await
    }

    pub async fn spawn_with(label: &str, options: PlatformOptions) -> Platform {
        let stack = Stack::ensure_running().await.expect("local stack");
        let resources = stack
            .create_resources(&unique_prefix(label))
            .await
            .expect("resources");
        let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config());
        Self::assemble(dynamodb, &resources, options).await
    }

    /// The platform over an existing DynamoDB client (a metered one, say).
    pub async fn assemble(
        dynamodb: aws_sdk_dynamodb::Client,
        resources: &local_stack::Resources,
        options: PlatformOptions,
    ) -> Platform {
        let catalog = Catalog::us_equities();
        let trading_table = resources.table("TradingTable").to_owned();
        let balances_table = resources.table("BalancesTable").to_owned();
        let ledger =
            DynamoLedgerStore::new(dynamodb.clone(), balances_table.clone(), catalog.clone());
        let balances_router = balances::router(
            BalancesService::new(ledger, SystemClock),
            catalog.clone(),
            crate::iam::roles(),
        );
        // The functions call as a trading role, set-up deposits as the operator.
        let balances_address =
            crate::iam::serve_as_role(balances_router.clone(), crate::iam::PLACE_ORDER_ROLE).await;
        let admin_address =
            crate::iam::serve_as_role(balances_router, crate::iam::OPERATOR_ROLE).await;
        let balances_proxy = FaultyProxy::spawn(balances_address).await;
        let balances = crate::iam::ServiceBalances::new(
            &format!("http://{balances_address}"),
            &format!("http://{admin_address}"),
            BALANCES_CALL_TIMEOUT,
        );
        let profile = options.engine.venue;
        let mut sim = exchange_sim::app::Settings::new(options.engine);
        sim.clock_offset_ms = options.clock_offset_ms;
        let (exchange_url, exchange) = spawn_exchange_sim_with(sim).await;
        let venue = Venue::simulator(profile.as_str()).expect("a simulator profile");

        let mut platform = Platform {
            dynamodb,
            trading_table,
            balances_table,
            balances,
            balances_proxy,
            exchange,
            exchange_url,
            venue,
            orders_url: String::new(),
            clock: OffsetClock::default(),
            settings: options.settings,
            http: reqwest::Client::new(),
            set_aside: MemoryFillQueue::default(),
        };
        let mut orders = platform.orders();
        if let Some(ids) = options.order_ids {
            let ids = std::sync::Mutex::new(ids.into_iter());
            orders = orders.with_order_ids(move || {
                ids.lock()
                    .ok()
                    .and_then(|mut i| i.next())
                    .unwrap_or_else(crate::orders::new_order_id)
            });
        }
        let router =
            place_order::router(orders, catalog).layer(axum::middleware::from_fn(authorizer));
        platform.orders_url = format!("http://{}", serve(router).await);
        platform
    }

    /// The order use cases on this platform's adapters (what the reconciler
    /// and fill processor run), sharing its clock.
    pub fn orders(&self) -> StackOrders {
        self.orders_with(|store, balances, exchange| (store, balances, exchange))
    }

    /// The order use cases with each adapter wrapped (fault injection).
    pub fn orders_with<S2, B2, E2: app::exchange::Exchange>(
        &self,
        wrap: impl FnOnce(DynamoOrderStore, HttpBalances, HttpExchange) -> (S2, B2, E2),
    ) -> Orders<S2, B2, E2, OffsetClock> {
        let catalog = Catalog::us_equities();
        let store = DynamoOrderStore::new(self.dynamodb.clone(), self.trading_table.clone());
        let balances = HttpBalances::new(
            &self.balances_proxy.url(),
            catalog.clone(),
            BALANCES_CALL_TIMEOUT,
        )
        .expect("client");
        let exchange = HttpExchange::new(&self.exchange_url, catalog, EXCHANGE_CALL_TIMEOUT)
            .expect("client")
            .with_venue(self.venue.clone());
        let (store, balances, exchange) = wrap(store, balances, exchange);
        Orders::new(
            store,
            balances,
            exchange,
            self.clock.clone(),
            self.settings.clone(),
        )
    }

    /// The order as recovery sees it (its settling slot resolved).
    pub async fn order(&self, id: &OrderId) -> Order {
        let orders = self.orders();
        let account = self.stored(id).await.account;
        orders.get(&account, id).await.expect("order exists")
    }

    /// The order item exactly as stored.
    pub async fn stored(&self, id: &OrderId) -> Order {
        let store = DynamoOrderStore::new(self.dynamodb.clone(), self.trading_table.clone());
        app::order_store::OrderStore::load(&store, id)
            .await
            .expect("load")
            .expect("order exists")
            .value
    }

    /// Every execution recorded for the order (its own records and the slot).
    pub async fn executions(&self, id: &OrderId) -> Vec<domain::order::FillRecord> {
        let orders = self.orders();
        let order = self.order(id).await;
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = orders
                .all_executions(&order, after.as_ref(), 100)
                .await
                .expect("executions");
            all.extend(page.fills);
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    }

    pub async fn post_order(
        &self,
        account: &AccountId,
        key: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/orders", self.orders_url))
            .header("authorization", bearer(account))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .expect("sent")
    }

    /// Reconciler settings for tests.
    pub fn reconciler_settings(&self) -> reconciler::Settings {
        reconciler::Settings {
            page_size: 100,
            max_run_ms: 20_000,
            safety_margin_ms: 1_000,
        }
    }

    /// One reconciler run, as the schedule would start it.
    pub async fn reconcile(&self) -> reconciler::RunSummary {
        reconciler::run_once(&self.orders(), &self.reconciler_settings(), 30_000).await
    }

    /// Moves the platform's clock past every backoff, deadline and grace,
    /// then runs the reconciler until no open order is due (at most
    /// `max_runs` runs). Returns how many runs it took.
    pub async fn reconcile_until_quiet(&self, max_runs: usize) -> usize {
        for run in 1..=max_runs {
            self.clock.advance_ms(self.step_past_recovery_ms());
            let summary = self.reconcile().await;
            if summary.examined == 0 {
                return run;
            }
        }
        max_runs
    }

    /// Long enough for every timing of recovery to have passed once: the
    /// placement window, the margins, the longest backoff and grace, and the
    /// index's lag.
    pub fn step_past_recovery_ms(&self) -> u64 {
        let r = &self.settings.recovery;
        self.settings.placement_window_ms
            + r.clock_skew_margin_ms
            + r.max_in_flight_ms
            + r.retry_max_ms.max(r.gap_grace_ms).max(r.market_silence_ms)
            + app::orders::INDEX_LAG_MS
            + 1_000
    }

    /// Runs the reconciler until the order is closed: work that waits on the
    /// exchange (an order it is still filling in real time) gets its time.
    /// Panics after [`crate::WAIT_BOUND`].
    pub async fn reconcile_until_closed(&self, id: &OrderId) {
        crate::wait_until(&format!("recovery to close {id}"), || async {
            self.reconcile_until_quiet(20).await;
            self.order(id).await.is_closed()
        })
        .await;
    }

    /// Every item of both tables, to show a refused request wrote nothing.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        let mut all = table_snapshot(&self.dynamodb, &self.trading_table).await;
        all.extend(table_snapshot(&self.dynamodb, &self.balances_table).await);
        all
    }

    pub fn set_exchange_faults(&self, config: exchange_sim::faults::FaultConfig) {
        let now = app::Clock::now_ms(&SystemClock);
        self.exchange
            .state
            .faults()
            .set(config, now)
            .expect("valid fault configuration");
    }

    pub fn heal_exchange(&self) {
        self.exchange.state.faults().heal();
    }

    /// What the exchange's webhooks carry for this order: each execution and,
    /// once it ended, its final status.
    pub fn reports_from_audit(&self, id: &OrderId) -> Vec<domain::order::ExchangeReport> {
        use domain::order::{ExchangeReport, ExecId, Execution, FinalReport, FinalStatus};
        let audit = self.exchange.state.engine().audit();
        let order = audit
            .orders
            .iter()
            .find(|o| o.client_order_id == id.as_str())
            .expect("at the exchange");
        let mut reports: Vec<ExchangeReport> = order
            .executions
            .iter()
            .map(|e| ExchangeReport::Execution {
                client_order_id: id.clone(),
                execution: Execution {
                    exec_id: ExecId::parse(&e.exec_id).expect("exec id"),
                    exchange_order_id: order.order_id.clone(),
                    quantity: domain::Quantity::new(e.quantity.shares()).expect("quantity"),
                    price: domain::Price::from_cents(e.price.cents()).expect("price"),
                    cum_quantity: Some(e.cum_quantity.shares()),
                },
            })
            .collect();
        let status = match order.status {
            exchange_sim::OrderStatus::Filled => Some(FinalStatus::Filled),
            exchange_sim::OrderStatus::Cancelled => Some(FinalStatus::Cancelled),
            exchange_sim::OrderStatus::Expired => Some(FinalStatus::Expired),
            exchange_sim::OrderStatus::Rejected => Some(FinalStatus::Rejected),
            _ => None,
        };
        if let Some(status) = status {
            reports.push(ExchangeReport::Final {
                client_order_id: id.clone(),
                exchange_order_id: order.order_id.clone(),
                report: FinalReport {
                    status,
                    cum_quantity: order.cum_quantity.shares(),
                },
            });
        }
        reports
    }

    /// Waits until the exchange has finished the order (it fills within
    /// ~100 ms when healthy); returns what its webhooks carry.
    pub async fn exchange_finished(&self, id: &OrderId) -> Vec<domain::order::ExchangeReport> {
        crate::wait_until(&format!("the exchange to finish {id}"), || async {
            let audit = self.exchange.state.engine().audit();
            audit
                .orders
                .iter()
                .any(|o| o.client_order_id == id.as_str() && o.status.is_terminal())
        })
        .await;
        self.reports_from_audit(id)
    }

    /// Orders the exchange holds under this client id.
    pub fn exchange_orders_for(&self, id: &OrderId) -> usize {
        let audit = self.exchange.state.engine().audit();
        audit
            .orders
            .iter()
            .filter(|o| o.client_order_id == id.as_str())
            .count()
    }
}

pub fn rand_seed() -> u64 {
    u64::from(uuid::Uuid::new_v4().as_fields().0)
}
