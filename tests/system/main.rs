//! System tests: one binary, run against the local stack (moto_server) that
//! `local_stack::Stack::ensure_running` starts or reuses.

mod balances;
mod balances_api;
mod balances_model;
mod emulator;
mod exchange;
mod fill_processor;
mod fill_webhook;
mod metering;
mod openapi;
mod order_store;
mod place_order;
mod reconciler;
// mod simulation;
mod template;
