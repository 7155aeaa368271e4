//! DynamoDB adapters.

mod ledger_store;

pub use ledger_store::DynamoLedgerStore;

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
