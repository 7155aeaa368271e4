//! Shared harness of the system tests: spawn a service on the local stack,
//! and the conformance suites that every adapter of a port must pass.

pub mod bench;
pub mod conformance;
pub mod crash;
pub mod faulty_proxy;
pub mod hooks;
pub mod iam;
pub mod orders;
pub mod platform;
pub mod sim_exchange;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use app::{BalancesService, SystemClock};
use aws_adapters::dynamodb::DynamoLedgerStore;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::{AccountId, Catalog};
use local_stack::{unique_prefix, Stack};

/// Longest a test waits for something that a healthy system does in well
/// under a second (the exchange filling an order, a message reaching the
/// dead-letter queue): generous, so a loaded 2-core machine never fails a
/// test for being slow, yet a bound, so a hang still fails.
pub const WAIT_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `condition` until it holds; panics naming `what` after [`WAIT_BOUND`].
/// Tests wait on conditions, never for a fixed time.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < WAIT_BOUND,
            "waited {WAIT_BOUND:?} for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A fresh account id, so tests sharing a table never meet.
pub fn new_account(label: &str) -> AccountId {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    AccountId::parse(&format!("{label}-{}", &suffix[..12])).expect("valid account id")
}

/// Serves `router` on an ephemeral loopback port until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// The Balances service on the local stack: its own table, its router on
/// loopback ports (one per caller, see [`iam`]), and an HTTP client of it.
pub struct BalancesApp {
    /// As the reconciler's role (a trading role).
    pub base_url: String,
    /// As the operator's role (the admin role).
    pub admin_url: String,
    /// Deposits as the operator, the rest as the reconciler.
    pub client: iam::ServiceBalances,
    /// The service's router, to serve as other callers ([`iam::serve_as`]).
    pub router: axum::Router,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub table: String,
}

pub async fn spawn_balances(label: &str) -> BalancesApp {
    let stack = Stack::ensure_running().await.expect("local stack");
    let resources = stack
        .create_resources(&unique_prefix(label))
        .await
        .expect("resources");
    let table = resources.table("BalancesTable").to_owned();
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config());
    let catalog = Catalog::us_equities();
    let store = DynamoLedgerStore::new(dynamodb.clone(), table.clone(), catalog.clone());
    let router = balances::router(
        BalancesService::new(store, SystemClock),
        catalog,
        iam::roles(),
    );
    let base_url = format!(
        "http://{}",
        iam::serve_as_role(router.clone(), iam::RECONCILER_ROLE).await
    );
    let admin_url = format!(
        "http://{}",
        iam::serve_as_role(router.clone(), iam::OPERATOR_ROLE).await
    );
    let client = iam::ServiceBalances::new(
        &base_url,
        &admin_url,
        crate::platform::BALANCES_CALL_TIMEOUT,
    );
    BalancesApp {
        base_url,
        admin_url,
        client,
        router,
        dynamodb,
        table,
    }
}

impl BalancesApp {
    /// Every item of the table, to show that a refused request changed nothing.
    pub async fn snapshot(&self) -> BTreeMap<String, String> {
        table_snapshot(&self.dynamodb, &self.table).await
    }
}

/// Every item of a table, keyed by `pk|sk`, with its attributes rendered.
pub async fn table_snapshot(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let key = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            let mut fields: Vec<(&String, &AttributeValue)> = item.iter().collect();
            fields.sort_by_key(|(name, _)| *name);
            items.insert(
                format!("{table}|{}|{}", key("pk"), key("sk")),
                format!("{fields:?}"),
            );
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}
