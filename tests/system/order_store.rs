//! The `OrderStore` port's conformance suite, in memory and on DynamoDB.

mod in_memory {
    system_tests::order_store_conformance!(app::memory::MemoryOrderStore::default());
}

mod on_dynamodb {
    async fn store() -> aws_adapters::dynamodb::DynamoOrderStore {
        let stack = local_stack::Stack::ensure_running()
            .await
            .expect("local stack");
        let resources = stack
            .create_resources(&local_stack::unique_prefix("orders"))
            .await
            .expect("resources");
        let client = aws_sdk_dynamodb::Client::new(&stack.sdk_config());
        aws_adapters::dynamodb::DynamoOrderStore::new(client, resources.table("TradingTable"))
    }

    system_tests::order_store_conformance!(store().await);
}
