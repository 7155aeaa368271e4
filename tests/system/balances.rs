//! The Balances port's conformance suite against each adapter: in memory,
//! the service directly on DynamoDB, and the HTTP client through the service
//! on DynamoDB (the local stack).

mod in_memory {
    use app::memory::MemoryLedgerStore;
    use app::{BalancesService, SystemClock};

    system_tests::balances_conformance!(BalancesService::new(
        MemoryLedgerStore::default(),
        SystemClock
    ));
}

mod service_on_dynamodb {
    use app::{BalancesService, SystemClock};
    use aws_adapters::dynamodb::DynamoLedgerStore;
    use domain::Catalog;

    async fn service() -> BalancesService<DynamoLedgerStore, SystemClock> {
        let app = system_tests::spawn_balances("svc").await;
        let store = DynamoLedgerStore::new(
            app.dynamodb.clone(),
            app.table.clone(),
            Catalog::us_equities(),
        );
        BalancesService::new(store, SystemClock)
    }

    system_tests::balances_conformance!(service().await);
}

mod http_client_on_dynamodb {
    system_tests::balances_conformance!(system_tests::spawn_balances("http").await.client);
}
