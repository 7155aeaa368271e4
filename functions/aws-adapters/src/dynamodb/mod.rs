//! DynamoDB adapters.

mod compact;
mod ledger_store;
mod order_store;

pub use compact::{lengthen, shorten};
pub use ledger_store::DynamoLedgerStore;
pub use order_store::{
    DynamoOrderStore, ACCOUNT_ORDERS_INDEX, ATTR_ACCOUNT, ATTR_DUE_AT, ATTR_FLAGGED,
    ATTR_OPEN_SHARD, FLAGGED_ORDERS_INDEX, OPEN_ORDERS_INDEX,
};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};

/// Names the failure with its whole cause chain (the SDK's `Display` alone
/// says only "service error").
pub(crate) fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    DisplayErrorContext(error).to_string()
}

mod metering;

pub use metering::{
    format_half_units, item_size, metered_client, number_size, read_half_units, usage_report,
    value_size, write_units, DescribeError, IndexSchema, Meter, Projection, TableSchema,
    TableUsage, Usage,
};
